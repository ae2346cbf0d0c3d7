// Package certtest makes certificates of a chosen validity for tests: an
// existing certificate re-signed by its CA with new dates, its key, subject,
// names and usages unchanged. Tests use it to make certificates that are
// about to expire, or expired, without waiting a year.
package certtest

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Resign returns certPEM re-signed by the CA (caCertPEM, caKeyPEM) to be
// valid from notBefore to notAfter.
func Resign(certPEM, caCertPEM, caKeyPEM []byte, notBefore, notAfter time.Time) ([]byte, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	ca, err := parseCert(caCertPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := parseKey(caKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: cert.Subject,
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: cert.KeyUsage, ExtKeyUsage: cert.ExtKeyUsage, BasicConstraintsValid: true, IsCA: cert.IsCA,
		SubjectKeyId: cert.SubjectKeyId,
		DNSNames:     cert.DNSNames, IPAddresses: cert.IPAddresses, AuthorityKeyId: ca.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, cert.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, errors.New("unsupported private key")
}
