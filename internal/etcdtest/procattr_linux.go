package etcdtest

import "syscall"

// procAttr makes the kernel kill an etcd child if the test binary dies without
// running its cleanups (a panic, a timeout, go test being interrupted), so no
// stray etcd keeps ports and temp dirs busy.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
