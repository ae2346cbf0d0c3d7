package sealedca

import (
	"bytes"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	r, err := NewReceiver()
	if err != nil {
		t.Fatal(err)
	}
	b := Bundle{CertPEM: []byte("-----BEGIN CERTIFICATE-----\nabc\n"), KeyPEM: []byte("-----BEGIN EC PRIVATE KEY-----\nsecret-key-bytes\n")}
	sealed, err := Seal(r.PublicKey(), b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-key-bytes")) || bytes.Contains(sealed, []byte("PRIVATE KEY")) {
		t.Fatal("the sealed bundle shows the key")
	}
	got, err := r.Open(sealed)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got.CertPEM, b.CertPEM) || !bytes.Equal(got.KeyPEM, b.KeyPEM) {
		t.Errorf("opened %q, want %q", got, b)
	}

	// Tampered, or sealed for another receiver: refused.
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := r.Open(tampered); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Errorf("tampered bundle: %v", err)
	}
	other, _ := NewReceiver()
	if _, err := other.Open(sealed); err == nil {
		t.Error("a bundle sealed for one receiver opened with another's key")
	}
	if _, err := Seal([]byte("short"), b); err == nil || !strings.Contains(err.Error(), "X25519") {
		t.Errorf("Seal to a bad key: %v", err)
	}
}
