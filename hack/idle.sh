#!/usr/bin/env bash
# Runs a command at the lowest CPU priority, in a session of its own, so that
# it only gets the CPU that everything else leaves idle (make test runs the
# Kubernetes components' build beside the unit tests, and make dist beside the
# e2e tests, this way).
#
# "Lowest priority" takes two settings. With the kernel's autogroups (on by
# default) CFS first shares the CPU between sessions, and each daemon of a
# test bed (kubelet, containerd, every static pod) runs in a session of its
# own: a process's nice only counts inside its session. So the command runs in
# a new session (setsid, which also gives it its own process group, so that
# an interrupted run can stop all of it with kill -- -PID) whose autogroup is
# set to nice 19 too (/proc/self/autogroup), and at nice 19 inside it.
# Measured in session 10's cold run: with nice alone, the compiler held half
# the CPU while the e2e tests built the Kubernetes components.
#
# Usage: hack/idle.sh LOG COMMAND [ARGS...]   (in the background: hack/idle.sh LOG CMD &)
# Output goes to LOG; the last line says how the command ended and after how long.
set -uo pipefail
log="${1:?usage: $0 LOG COMMAND [ARGS...]}"
shift
exec setsid bash -c 'echo 19 >/proc/self/autogroup 2>/dev/null
  nice -n 19 "$@"; rc=$?
  echo "idle: $1 ended (exit $rc) after $SECONDS s"; exit $rc' idle "$@" >"$log" 2>&1
