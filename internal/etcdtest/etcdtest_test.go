package etcdtest

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestBinaryIsTheProjectsEtcd(t *testing.T) {
	out, err := exec.Command(Binary(t), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("etcd --version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "etcd Version: 3.7.0") {
		t.Errorf("etcd --version = %q, want release 3.7.0 (the one the test bed deploys)", out)
	}
}

func TestPKIVerifiesForLoopbackOnly(t *testing.T) {
	p := NewPKI(t)
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, p.CACert))
	for _, tc := range []struct {
		cert  string
		usage x509.ExtKeyUsage
		host  string
		ok    bool
	}{
		{p.ServerCert, x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
		{p.ServerCert, x509.ExtKeyUsageServerAuth, "localhost", true},
		{p.ServerCert, x509.ExtKeyUsageServerAuth, "10.0.0.1", false},
		{p.PeerCert, x509.ExtKeyUsageServerAuth, "127.0.0.1", true},
		{p.PeerCert, x509.ExtKeyUsageClientAuth, "", true},
		{p.ClientCert, x509.ExtKeyUsageClientAuth, "", true},
		{p.ClientCert, x509.ExtKeyUsageServerAuth, "", false},
	} {
		_, err := readCert(t, tc.cert).Verify(x509.VerifyOptions{
			Roots: roots, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage},
		})
		if (err == nil) != tc.ok {
			t.Errorf("verifying %s for %q usage %v: err = %v, want ok = %v", tc.cert, tc.host, tc.usage, err, tc.ok)
		}
	}
	if _, err := p.ClientTLS(); err != nil {
		t.Errorf("ClientTLS: %v", err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A member keeps its data across Stop/Start, and Kill really ends it.
func TestMemberRestartKeepsData(t *testing.T) {
	c := StartCluster(t, 1)
	m := c.Members[0]
	if m.ID == 0 {
		t.Fatal("member ID not recorded after start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	id := m.ID
	m.Stop()
	if m.Running() {
		t.Fatal("member still running after Stop")
	}
	m.Start()
	if m.ID != id {
		t.Errorf("member ID after restart = %x, want %x", m.ID, id)
	}
	resp, err := c.Client().Get(ctx, "k")
	if err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Errorf("get after restart = %v, want k=v", resp.Kvs)
	}
	m.Kill()
	if m.Running() {
		t.Fatal("member still running after Kill")
	}
}
