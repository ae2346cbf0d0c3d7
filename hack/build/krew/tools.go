//go:build tools

// Package tools pins the krew commands this module builds (krew itself and
// its manifest validator) so their dependencies are recorded in go.sum. A
// module of its own so krew's older Kubernetes libraries never touch
// kubectl-etcd's go.mod.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
