// Package sealedca hands the etcd CA from one control-plane host to another
// without the key ever being readable on the way. The receiving host makes a
// one-time X25519 key pair and publishes only its public half; the sending
// host seals the CA to it with HPKE (RFC 9180); only the receiver, whose
// private half never leaves its process memory, can open it. So the
// workstation that relays the bytes, the apiserver streams they cross and
// the container logs they may land in see only ciphertext.
package sealedca

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// info binds a sealed bundle to this use: a ciphertext made for anything
// else does not open as a CA bundle.
var info = []byte("kubectl-etcd etcd-ca v1")

// Bundle is the etcd CA, PEM-encoded.
type Bundle struct {
	CertPEM []byte `json:"cert"`
	KeyPEM  []byte `json:"key"`
}

// Message is one JSON line of the hand-over between the hosts' pods
// (kubectl-etcd ca-receive / ca-send) and the plugin that relays them. Only
// public keys and ciphertext ever appear in it.
type Message struct {
	Present     bool   `json:"present,omitempty"`
	Installed   bool   `json:"installed,omitempty"`
	PublicKey   []byte `json:"publicKey,omitempty"`
	Sealed      []byte `json:"sealed,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Fingerprint names a CA certificate (SHA-256 of its PEM) in messages
// without showing anything secret.
func Fingerprint(certPEM []byte) string {
	sum := sha256.Sum256(certPEM)
	return hex.EncodeToString(sum[:8])
}

func suite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES256GCM()
}

// Receiver holds the one-time private key of the receiving side.
type Receiver struct {
	priv hpke.PrivateKey
}

// NewReceiver makes a one-time key pair; PublicKey is what the sender needs.
func NewReceiver() (*Receiver, error) {
	kem, _, _ := suite()
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("making a one-time key pair: %w", err)
	}
	return &Receiver{priv: priv}, nil
}

// PublicKey is the public half, safe to show anywhere.
func (r *Receiver) PublicKey() []byte { return r.priv.PublicKey().Bytes() }

// Open decrypts a sealed bundle; tampering or a bundle sealed to another key
// fails.
func (r *Receiver) Open(sealed []byte) (Bundle, error) {
	_, kdf, aead := suite()
	plain, err := hpke.Open(r.priv, kdf, aead, info, sealed)
	if err != nil {
		return Bundle{}, errors.New("the sealed etcd CA does not open with this host's one-time key (corrupted, or sealed for another receiver)")
	}
	var b Bundle
	if err := json.Unmarshal(plain, &b); err != nil {
		return Bundle{}, fmt.Errorf("the sealed etcd CA is not a CA bundle: %w", err)
	}
	return b, nil
}

// Seal encrypts the bundle to the receiver's public key.
func Seal(publicKey []byte, b Bundle) ([]byte, error) {
	kem, kdf, aead := suite()
	pub, err := kem.NewPublicKey(publicKey)
	if err != nil {
		return nil, fmt.Errorf("the receiver's public key is not an X25519 key: %w", err)
	}
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pub, kdf, aead, info, plain)
}
