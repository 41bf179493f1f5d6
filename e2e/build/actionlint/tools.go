//go:build tools

// Package tools pins actionlint, which lints the GitHub workflows in tests/test_workflows.py.
package tools

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)
