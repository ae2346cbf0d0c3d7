//go:build !unix

package etcddata

// isMountPoint: data dirs are handled only on Linux hosts; elsewhere (the
// plugin's own build for a workstation) no dir counts as a mount point.
func isMountPoint(string) bool { return false }
