package etcdtest

import (
	"fmt"
	"net"
	"testing"
)

// ReservePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago. The kernel hands out ephemeral ports round the range, so a port
// just released is unlikely to be handed to someone else before etcd binds it;
// StartCluster still retries when etcd reports the address in use.
func ReservePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := reservePorts(n)
	if err != nil {
		t.Fatalf("etcdtest: reserving %d loopback ports: %v", n, err)
	}
	return ports
}

func reservePorts(n int) ([]int, error) {
	// Hold every listener until all are chosen, so the n ports are distinct.
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// URL is the https URL of a port on 127.0.0.1, the form etcd's client and peer
// URLs take here.
func URL(port int) string {
	return fmt.Sprintf("https://127.0.0.1:%d", port)
}
