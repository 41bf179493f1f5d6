//go:build tools

// Package tools pins CoreDNS, the cluster DNS of the test cluster's real node.
package tools

import (
	_ "github.com/coredns/coredns"
)
