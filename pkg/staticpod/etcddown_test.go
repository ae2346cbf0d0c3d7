package staticpod

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// writeAdminConf writes the host's admin.conf for the apiserver at server;
// it returns its path.
func writeAdminConf(t *testing.T, h *Host, server string) string {
	t.Helper()
	kubeconfig := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: %s\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n", server)
	path := h.Path(h.KubernetesDir + "/admin.conf")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLookupGivesUpWhenEtcdIsDown: an apiserver whose etcd has no quorum
// takes the kubeadm-config read and never answers it, while it answers
// /livez/etcd at once with a failure. With GiveUpWhenEtcdDown the load
// goes on from the host's manifests at once, saying why; without it, it
// waits out its timeout. An apiserver whose /livez/etcd is fine is waited
// for, and its kubeadm-config used.
func TestLookupGivesUpWhenEtcdIsDown(t *testing.T) {
	const clusterConfig = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.1\n"
	for _, tc := range []struct {
		name       string
		etcdDown   bool
		giveUp     bool
		wantSource string
		wantFast   bool
	}{
		{"etcd down, giving up", true, true, "manifests", true},
		{"etcd down, waiting", true, false, "manifests", false},
		{"etcd fine, giving up allowed", false, true, "ConfigMap kube-system/kubeadm-config", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/livez/etcd":
					if tc.etcdDown {
						http.Error(w, "[-]etcd failed: reason withheld\nlivez check failed", http.StatusInternalServerError)
						return
					}
					fmt.Fprint(w, "ok")
				case "/api/v1/namespaces/kube-system/configmaps/kubeadm-config":
					if tc.etcdDown {
						select { // as an apiserver without etcd does: no answer
						case <-r.Context().Done():
						case <-release:
						}
						return
					}
					time.Sleep(300 * time.Millisecond) // slower than /livez/etcd: the read is still waited for
					w.Header().Set("Content-Type", "application/json")
					json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
						"metadata": map[string]any{"name": "kubeadm-config", "namespace": "kube-system"},
						"data":     map[string]string{"ClusterConfiguration": clusterConfig}})
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			defer close(release)
			h, _ := testHost(t, true)
			writeAdminConf(t, h, srv.URL)
			const timeout = 2 * time.Second
			start := time.Now()
			cfg, err := h.LoadConfig(context.Background(), ConfigOptions{NodeName: "cp-1", AdvertiseAddress: "127.0.0.1",
				LookupTimeout: timeout, GiveUpWhenEtcdDown: tc.giveUp})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(cfg.Source, tc.wantSource) {
				t.Errorf("config from %q, want %q", cfg.Source, tc.wantSource)
			}
			if tc.wantSource != "manifests" && cfg.Init.KubernetesVersion != "v1.37.1" {
				t.Errorf("kubernetesVersion %q, want the ConfigMap's v1.37.1", cfg.Init.KubernetesVersion)
			}
			if fast := took < timeout/2; fast != tc.wantFast && tc.etcdDown {
				t.Errorf("the load took %s (lookup timeout %s): want quick %v", took, timeout, tc.wantFast)
			}
		})
	}
}

// etcdDown names what the apiserver said; a transport error is no verdict.
func TestEtcdDownSaysWhy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/livez/etcd" {
			<-r.Context().Done() // the read an apiserver without etcd never answers
			return
		}
		http.Error(w, "[-]etcd failed: reason withheld", http.StatusInternalServerError)
	}))
	h, _ := testHost(t, true)
	path := writeAdminConf(t, h, srv.URL)
	_, err := readKubeadmConfig(context.Background(), path, 2*time.Second, true)
	if err == nil || !strings.Contains(err.Error(), "reports its etcd down") || !strings.Contains(err.Error(), "etcd failed") {
		t.Errorf("read from an apiserver whose etcd is down: %v", err)
	}
	srv.Close()
	_, err = readKubeadmConfig(context.Background(), path, 2*time.Second, true)
	if err == nil || strings.Contains(err.Error(), "reports its etcd down") {
		t.Errorf("read from no apiserver: %v, want the transport's error", err)
	}
}

// SkipLookup asks the apiserver nothing, even one that would answer.
func TestSkipLookupAsksNothing(t *testing.T) {
	asked := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.URL.Path
		http.NotFound(w, r)
	}))
	defer srv.Close()
	h, _ := testHost(t, true)
	writeAdminConf(t, h, srv.URL)
	cfg, err := h.LoadConfig(context.Background(), ConfigOptions{NodeName: "cp-1", AdvertiseAddress: "127.0.0.1", SkipLookup: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.Source, "manifests") {
		t.Errorf("config from %q, want the host's manifests", cfg.Source)
	}
	select {
	case p := <-asked:
		t.Errorf("the apiserver was asked %s", p)
	default:
	}
}
