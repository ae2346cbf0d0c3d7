package cmd

import (
	"net"
	"slices"
	"strings"
	"testing"
)

// TestWorkstationVerbsExplainUnreachableAPIServer: with no apiserver at the
// kubeconfig's address, each workstation verb says so and points at the
// host-local status, instead of failing on its first request.
func TestWorkstationVerbsExplainUnreachableAPIServer(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := "https://" + l.Addr().String()
	l.Close()
	kubeconfig := writeKubeconfig(t, "https://127.0.0.1:1")
	for _, args := range [][]string{
		{"status"}, {"status", "--via", "host-pod"}, {"scale", "--replicas", "3"},
		{"remove", "cp-3"}, {"replace", "cp-3"},
	} {
		_, err := runRoot(t, append(slices.Clone(args), "--kubeconfig", kubeconfig, "--server", server)...)
		prefix := "the apiserver at " + server + " does not answer ("
		suffix := "): if etcd lost quorum, run `kubectl-etcd status --local` as root on a control-plane host"
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), suffix) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s: error %v\nwant %s...connection refused...%s", strings.Join(args, " "), err, prefix, suffix)
		}
	}
}
