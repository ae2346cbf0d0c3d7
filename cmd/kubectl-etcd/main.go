// Command kubectl-etcd manages the stacked etcd of a kubeadm cluster, as a
// kubectl plugin or as a host-local tool. All behaviour lives in pkg/cmd;
// this file only wires the process to it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/cmd"
)

func main() {
	// Cancel the command's context on Ctrl-C or SIGTERM so in-flight
	// requests stop instead of the process dying mid-operation.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.NewCmdRoot(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
