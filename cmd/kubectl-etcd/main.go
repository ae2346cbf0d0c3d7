// Command kubectl-etcd manages the stacked etcd of a kubeadm cluster, as a
// kubectl plugin or as a host-local tool. All behaviour lives in pkg/cmd;
// this file only wires the process to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/cmd"
)

func main() {
	// client-go logs stream-copy errors when a command is cancelled (Ctrl-C
	// during a host pod) as if they were failures; every error that matters
	// reaches the user through the command's own error.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	// Cancel the command's context on Ctrl-C or SIGTERM so in-flight
	// requests stop instead of the process dying mid-operation.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.NewCmdRoot(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).ExecuteContext(ctx)
	stop()
	var exit *cmd.ExitError
	switch {
	case errors.As(err, &exit):
		if exit.Message != "" {
			fmt.Fprintln(os.Stderr, exit.Message)
		}
		os.Exit(exit.Code)
	case err != nil:
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
