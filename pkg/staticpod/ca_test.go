package staticpod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The CA moves from a host that has it to one that lacks it, byte for byte,
// key 0600; a host with another CA is never overwritten; bad bundles change
// nothing.
func TestInstallEtcdCA(t *testing.T) {
	src, srcCfg := testHost(t, true)
	if _, err := src.EnsureCerts(srcCfg, true); err != nil {
		t.Fatal(err)
	}
	cert, key, err := src.ReadEtcdCA(srcCfg)
	if err != nil {
		t.Fatal(err)
	}

	dst, dstCfg := testHost(t, true)
	before := treeHash(t, dst.Path("/"))
	for _, bad := range []struct {
		cert, key []byte
		want      string
	}{
		{[]byte("not pem"), key, "not PEM"},
		{cert, []byte("not a key"), "parsing the etcd CA key"},
	} {
		if _, err := dst.InstallEtcdCA(dstCfg, bad.cert, bad.key); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("bad bundle: %v, want %q", err, bad.want)
		}
	}
	other, otherCfg := testHost(t, true)
	if _, err := other.EnsureCerts(otherCfg, true); err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := other.ReadEtcdCA(otherCfg)
	if _, err := dst.InstallEtcdCA(dstCfg, cert, otherKey); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched key: %v", err)
	}
	if after := treeHash(t, dst.Path("/")); after != before {
		t.Fatal("a refused CA changed the host")
	}

	installed, err := dst.InstallEtcdCA(dstCfg, cert, key)
	if err != nil || !installed {
		t.Fatalf("InstallEtcdCA: %v, %v", installed, err)
	}
	gotCert, gotKey, err := dst.ReadEtcdCA(dstCfg)
	if err != nil || string(gotCert) != string(cert) {
		t.Fatalf("installed CA certificate differs: %v", err)
	}
	if len(gotKey) == 0 {
		t.Fatal("no key installed")
	}
	fi, err := os.Stat(filepath.Join(dst.Path(dstCfg.CertDir()), "etcd", "ca.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("ca.key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// Again: already there.
	if installed, err := dst.InstallEtcdCA(dstCfg, cert, key); err != nil || installed {
		t.Errorf("second install: %v, %v; want nothing done", installed, err)
	}
	// Another cluster's CA is refused.
	otherCert, _, _ := other.ReadEtcdCA(otherCfg)
	if _, err := dst.InstallEtcdCA(dstCfg, otherCert, otherKey); !errors.Is(err, ErrOtherEtcdCA) {
		t.Errorf("other CA over ours: %v", err)
	}
}
