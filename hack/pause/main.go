// Command pause is the test bed's pod sandbox image: it blocks until it is
// told to stop, which is all a pause container does. Built static so it runs
// in a FROM-scratch image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
