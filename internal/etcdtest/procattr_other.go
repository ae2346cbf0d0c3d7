//go:build !linux

package etcdtest

import "syscall"

// procAttr: only Linux can tie a child's life to its parent; elsewhere the
// cleanups registered by StartCluster are all there is.
func procAttr() *syscall.SysProcAttr { return nil }
