// Command pause is the test bed's pod sandbox image: it blocks until it is
// told to stop, which is all a pause container does. Built static so it runs
// in a FROM-scratch image. As the real pause does, `pause -v` prints its
// version and exits 0: kubeadm's CreateJob health check runs exactly that as
// a Job and waits for it to complete.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (kubectl-etcd test bed)")
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
