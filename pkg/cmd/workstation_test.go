package cmd

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestWorkstationVerbsExplainUnreachableAPIServer: with no apiserver at the
// kubeconfig's address, each workstation verb says so and points at the
// host-local status and the SSH survey, instead of failing on its first
// request.
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
		suffix := "): if etcd lost quorum, run `kubectl-etcd status --local` as root on a control-plane host, or from here over SSH: `kubectl etcd status --ssh --hosts NAME=ADDRESS,...` and `kubectl etcd recover --ssh --hosts ...`"
		if err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), suffix) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s: error %v\nwant %s...connection refused...%s", strings.Join(args, " "), err, prefix, suffix)
		}
	}
}

// TestSSHFlags: the SSH transport's flags are checked before anything is
// dialled, each mistake with its own message.
func TestSSHFlags(t *testing.T) {
	dir := t.TempDir()
	inv := dir + "/inventory"
	if err := os.WriteFile(inv, []byte("# control plane\ncp-1 10.0.0.11\ncp-2   # by name\n\n[fd00::13]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := dir + "/bad"
	if err := os.WriteFile(bad, []byte("cp-1 10.0.0.11 extra\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o       SSHOptions
		want    string // hosts as NAME@ADDRESS, or the error
		wantErr bool
	}{
		{o: SSHOptions{Enabled: true, Port: 22, Hosts: []string{"cp-1=10.0.0.11", "10.0.0.12", "cp-3=[fd00::13]"}}, want: "cp-1@10.0.0.11 10.0.0.12@10.0.0.12 cp-3@fd00::13"},
		{o: SSHOptions{Enabled: true, Port: 22, HostsFile: inv}, want: "cp-1@10.0.0.11 cp-2@cp-2 [fd00::13]@fd00::13"},
		{o: SSHOptions{Enabled: true, Port: 22, HostsFile: bad}, wantErr: true, want: `want NAME [ADDRESS]`},
		{o: SSHOptions{Enabled: true, Port: 22, HostsFile: dir + "/missing"}, wantErr: true, want: "reading --hosts-file"},
		{o: SSHOptions{Enabled: true, Port: 22, Hosts: []string{"cp-1", "cp-1=10.0.0.11"}}, wantErr: true, want: `host "cp-1" is listed twice`},
		{o: SSHOptions{Enabled: true, Port: 22, Hosts: []string{"cp-1="}}, wantErr: true, want: `host "cp-1=": want NAME, ADDRESS or NAME=ADDRESS`},
		{o: SSHOptions{Enabled: true, Port: 0, Hosts: []string{"cp-1"}}, wantErr: true, want: "--ssh-port 0 is not a port"},
		{o: SSHOptions{Hosts: []string{"cp-1"}}, wantErr: true, want: "--hosts and --hosts-file name the hosts for --ssh: add --ssh"},
		{o: SSHOptions{Enabled: true, Port: 22, Hosts: []string{"cp-1"}, HostsFile: inv}, wantErr: true, want: "not both"},
	} {
		err := tc.o.Validate()
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: error %v, want %q", tc.o, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%+v: %v", tc.o, err)
		}
		hosts, _ := tc.o.inventory()
		var got []string
		for _, h := range hosts {
			got = append(got, h.Name+"@"+h.Address)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: hosts %q, want %q", tc.o, strings.Join(got, " "), tc.want)
		}
	}
}
