//go:build tools

// Package tools pins etcd's server command; build.py compiles it with
// `go build -o DIR/etcd go.etcd.io/etcd/server/v3` from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
