package staticpod

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParkAPIServer: parking moves kube-apiserver.yaml into the state dir
// (kept, byte for byte), the settings are still read from it while parked,
// parking again changes nothing, and unparking puts it back; a manifest
// written meanwhile wins and the parked one is kept aside, never deleted.
func TestParkAPIServer(t *testing.T) {
	root := t.TempDir()
	h := NewHost(root)
	manifest := filepath.Join(root, h.APIServerManifest())
	raw := []byte(apiserverManifest)
	if err := os.MkdirAll(filepath.Dir(manifest), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	note, err := h.ParkAPIServer(ctx, 5*time.Second)
	if err != nil || !strings.Contains(note, "moved "+h.APIServerManifest()) {
		t.Fatalf("park: %q, %v", note, err)
	}
	if _, err := os.Stat(manifest); !os.IsNotExist(err) {
		t.Errorf("the manifest is still in the manifests dir after parking (%v)", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, h.parkedAPIServerManifest())); string(got) != string(raw) {
		t.Errorf("the parked manifest differs from the original")
	}
	if !h.APIServerParked() {
		t.Error("APIServerParked is false after parking")
	}
	if got := h.apiServerManifestToRead(); got != h.parkedAPIServerManifest() {
		t.Errorf("settings are read from %s while parked, want the parked manifest", got)
	}
	if note, err := h.ParkAPIServer(ctx, 5*time.Second); err != nil || note != "parked already" {
		t.Errorf("park again: %q, %v", note, err)
	}
	back, err := h.UnparkAPIServer()
	if err != nil || !back {
		t.Fatalf("unpark: %v, %v", back, err)
	}
	if got, _ := os.ReadFile(manifest); string(got) != string(raw) {
		t.Errorf("the manifest put back differs from the original")
	}
	if back, err := h.UnparkAPIServer(); err != nil || back {
		t.Errorf("unpark with nothing parked: %v, %v", back, err)
	}

	// Parked, then a new manifest is written (kubeadm, by hand): it wins.
	if _, err := h.ParkAPIServer(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	newer := []byte(strings.Replace(apiserverManifest, "127.0.0.1:2379", "10.0.0.9:2379", 1))
	if err := os.WriteFile(manifest, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	if back, err := h.UnparkAPIServer(); err != nil || back {
		t.Errorf("unpark over a newer manifest: %v, %v, want it left alone", back, err)
	}
	if got, _ := os.ReadFile(manifest); string(got) != string(newer) {
		t.Errorf("unpark replaced a newer manifest")
	}
	aside, _ := filepath.Glob(filepath.Join(root, h.parkedAPIServerManifest()) + ".superseded-*")
	if len(aside) != 1 {
		t.Errorf("the parked manifest was not kept aside: %v", aside)
	}
}

// TestParkAPIServerWithoutManifest: a host without a kube-apiserver (an
// etcd-only host) has nothing to park, and nothing is created.
func TestParkAPIServerWithoutManifest(t *testing.T) {
	root := t.TempDir()
	h := NewHost(root)
	note, err := h.ParkAPIServer(context.Background(), time.Second)
	if err != nil || note != "no kube-apiserver manifest on this host" {
		t.Errorf("park: %q, %v", note, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("parking on an empty host created %d entries", len(ents))
	}
}

// TestAPIServerShutdownKillAfter: the old apiserver gets the grace on top of
// the --shutdown-delay-duration its manifest sets (an operator's drain time
// for load balancers), and only the grace when it sets none or nonsense.
func TestAPIServerShutdownKillAfter(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		manifest   bool
		want       time.Duration
	}{
		{"no manifest", "", false, APIServerShutdownGrace},
		{"kubeadm's (no delay)", "", true, APIServerShutdownGrace},
		{"delay 20s", "--shutdown-delay-duration=20s", true, 20*time.Second + APIServerShutdownGrace},
		{"delay 1m30s", "--shutdown-delay-duration=1m30s", true, 90*time.Second + APIServerShutdownGrace},
		{"unparseable", "--shutdown-delay-duration=soon", true, APIServerShutdownGrace},
		{"negative", "--shutdown-delay-duration=-5s", true, APIServerShutdownGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			h := NewHost(root)
			if tc.manifest {
				m := apiserverManifest
				if tc.flag != "" {
					m = strings.Replace(m, "    - --etcd-servers", "    - "+tc.flag+"\n    - --etcd-servers", 1)
				}
				p := filepath.Join(root, h.APIServerManifest())
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(m), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := h.apiServerShutdownKillAfter(); got != tc.want {
				t.Errorf("kill after %s, want %s", got, tc.want)
			}
		})
	}
}
