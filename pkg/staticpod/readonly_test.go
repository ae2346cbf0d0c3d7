package staticpod

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReadOnlyConfigSurvivesABrokenClusterConfiguration: a kubeadm-config
// whose ClusterConfiguration cannot be parsed (emptied, or hand-edited into
// YAML kubeadm does not read), read through the host's admin.conf from a
// real HTTP server, stops a verb that writes, naming the ConfigMap; a
// read-only verb goes on with the host's own files and a warning saying
// why.
func TestReadOnlyConfigSurvivesABrokenClusterConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name, clusterConfig, wantErr string
	}{
		{"emptied", "", "no ClusterConfiguration document found"},
		{"not kubeadm's", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd: [oops\n", "decoding ClusterConfiguration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/namespaces/kube-system/configmaps/kubeadm-config" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": "kubeadm-config", "namespace": "kube-system"},
					"data":     map[string]string{"ClusterConfiguration": tc.clusterConfig}})
			}))
			defer srv.Close()
			h, _ := testHost(t, true)
			writeAdminConf(t, h, srv.URL)
			ctx := context.Background()
			o := ConfigOptions{NodeName: "cp-1", AdvertiseAddress: "127.0.0.1", LookupTimeout: 5 * time.Second}

			_, err := h.LoadConfig(ctx, o)
			if err == nil || !strings.Contains(err.Error(), "ConfigMap kube-system/kubeadm-config") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("a writing verb's load: %v; want it to name the ConfigMap and say %q", err, tc.wantErr)
			}

			o.ReadOnly = true
			cfg, err := h.LoadConfig(ctx, o)
			if err != nil {
				t.Fatalf("a read-only verb's load: %v", err)
			}
			if !strings.Contains(cfg.Warning, tc.wantErr) || !strings.Contains(cfg.Warning, "only reads") {
				t.Errorf("warning %q", cfg.Warning)
			}
			if !strings.Contains(cfg.Source, "manifests") || cfg.Init.KubernetesVersion != "v1.37.2" || cfg.NodeName() != "cp-1" {
				t.Errorf("read-only config from %q: version %q, node %q", cfg.Source, cfg.Init.KubernetesVersion, cfg.NodeName())
			}
		})
	}
}
