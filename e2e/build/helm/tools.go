//go:build tools

// Package tools pins the helm commands the test cluster runs.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
