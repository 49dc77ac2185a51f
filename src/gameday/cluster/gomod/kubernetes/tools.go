//go:build tools

// Package tools pins the Kubernetes commands gameday builds; build.py compiles them with
// `go build -o DIR k8s.io/kubernetes/cmd/...` from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
