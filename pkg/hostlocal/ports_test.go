package hostlocal

import (
	"strings"
	"testing"

	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
)

// The ports checked before a member starts are where kubeadm's manifest
// makes it listen: on an IPv6 host its loopback URLs are [::1]'s, not
// 127.0.0.1's (where a stale listener would go unnoticed).
func TestMemberPorts(t *testing.T) {
	cfg := func(addr string) *staticpod.Config {
		return &staticpod.Config{Init: &kubeadmapi.InitConfiguration{LocalAPIEndpoint: kubeadmapi.APIEndpoint{AdvertiseAddress: addr}}}
	}
	for addr, want := range map[string]string{
		"10.0.0.11":   "10.0.0.11:2379 10.0.0.11:2380 127.0.0.1:2379 127.0.0.1:2381",
		"fd00:99::11": "[fd00:99::11]:2379 [fd00:99::11]:2380 [::1]:2379 [::1]:2381",
	} {
		if got := strings.Join(memberPorts(cfg(addr)), " "); got != want {
			t.Errorf("advertising %s: ports %s, want %s", addr, got, want)
		}
	}
}
