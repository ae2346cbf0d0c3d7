// Package hostlock keeps two kubectl-etcd runs that change one host apart:
// an exclusive flock(2) on a file in kubectl-etcd's state directory, held
// for the run. It is the host-local binary's run lock (there may be no
// apiserver to hold a Lease in), and the agent's, which runs the same verbs
// in a host pod. The kernel frees it when the process ends, however it
// ends, so a killed run never leaves it taken.
package hostlock
