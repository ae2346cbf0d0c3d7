//go:build !unix

package hostlock

import "errors"

// Take has no flock(2) to hold here: the host verbs run on Linux
// control-plane hosts only, so this build refuses them.
func Take(path, what string) (release func(), err error) {
	return nil, errors.New("the host-local verbs run on a Linux control-plane host: there is no host lock on this platform")
}
