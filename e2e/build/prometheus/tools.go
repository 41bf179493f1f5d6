//go:build tools

// Package tools pins the Prometheus commands the test cluster runs.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
