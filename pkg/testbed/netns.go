package testbed

import (
	"context"
	"net"
)

// DialInNetns opens a TCP connection to addr from inside the network namespace nsPath.
func DialInNetns(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetns(nsPath, func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		conn = c
		return err
	})
	return conn, err
}

// ListenInNetns listens on a TCP address inside the network namespace nsPath.
func ListenInNetns(nsPath, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetns(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	return l, err
}
