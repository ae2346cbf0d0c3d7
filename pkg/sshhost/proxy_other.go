//go:build !unix

package sshhost

import (
	"os"
	"os/exec"
)

// ownGroup: no process groups here; killGroup ends the command only.
func ownGroup(*exec.Cmd) {}

func killGroup(p *os.Process) { _ = p.Kill() }
