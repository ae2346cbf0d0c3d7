package cmd

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/sealedca"
)

// CAReceiveOptions: take the etcd CA, sealed, from another host.
type CAReceiveOptions struct{ HostOptions }

// NewCmdCAReceive returns the hidden `kubectl-etcd ca-receive`.
func NewCmdCAReceive(streams genericiooptions.IOStreams) *cobra.Command {
	o := &CAReceiveOptions{HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:    "ca-receive",
		Hidden: true, // run by the plugin in a host pod
		Short:  "Receive the etcd CA sealed to a one-time key (used by the plugin's host pods)",
		Long: `If this host has the etcd CA, print {"present":true}. Otherwise print a one-time
public key ({"publicKey":...}), read one line {"sealed":...} from stdin (the CA
sealed to that key by "ca-send" on a member host), open it and install it as
kubeadm would (key 0600). The private half of the one-time key exists only in
this process.`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.AddFlags(cmd.Flags(), false)
	return cmd
}

// Complete has nothing to fill in: ca-receive takes no arguments.
func (o *CAReceiveOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects bad flags, then a caller that is not root.
func (o *CAReceiveOptions) Validate() error { return o.validate(nil) }

// Run receives and installs the CA.
func (o *CAReceiveOptions) Run(ctx context.Context) error {
	if err := o.load(ctx); err != nil {
		return err
	}
	enc := json.NewEncoder(o.Out)
	if o.host.HasEtcdCA(o.config) {
		cert, _, err := o.host.ReadEtcdCA(o.config)
		if err != nil {
			return err
		}
		return enc.Encode(sealedca.Message{Present: true, Fingerprint: sealedca.Fingerprint(cert)})
	}
	r, err := sealedca.NewReceiver()
	if err != nil {
		return err
	}
	if err := enc.Encode(sealedca.Message{PublicKey: r.PublicKey()}); err != nil {
		return err
	}
	line, err := bufio.NewReader(o.In).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return fmt.Errorf("waiting for the sealed etcd CA on stdin: %w", err)
	}
	var msg sealedca.Message
	if err := json.Unmarshal(line, &msg); err != nil || len(msg.Sealed) == 0 {
		return errors.New(`stdin did not bring {"sealed": ...}: no etcd CA was installed`)
	}
	b, err := r.Open(msg.Sealed)
	if err != nil {
		return err
	}
	installed, err := o.host.InstallEtcdCA(o.config, b.CertPEM, b.KeyPEM)
	if err != nil {
		return fmt.Errorf("installing the etcd CA on %s: %w", o.config.NodeName(), err)
	}
	return enc.Encode(sealedca.Message{Installed: installed, Present: !installed, Fingerprint: sealedca.Fingerprint(b.CertPEM)})
}

// CASendOptions: seal this host's etcd CA to a receiver's one-time key.
type CASendOptions struct {
	HostOptions
	To string

	pub []byte // --to-public-key, decoded
}

// NewCmdCASend returns the hidden `kubectl-etcd ca-send`.
func NewCmdCASend(streams genericiooptions.IOStreams) *cobra.Command {
	o := &CASendOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:    "ca-send --to-public-key BASE64",
		Hidden: true, // run by the plugin in a host pod
		Short:  "Print this host's etcd CA sealed to a one-time public key (used by the plugin's host pods)",
		Args:   cobra.NoArgs,
		RunE:   runE(o),
	}
	o.AddFlags(cmd.Flags(), false)
	cmd.Flags().StringVar(&o.To, "to-public-key", "", "the receiving host's one-time public key, base64")
	return cmd
}

// Complete has nothing to fill in: the key comes as a flag.
func (o *CASendOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects a key that is not base64, then a caller that is not
// root. It keeps the decoded key for Run.
func (o *CASendOptions) Validate() error {
	return o.validate(func() error {
		pub, err := base64.StdEncoding.DecodeString(o.To)
		if err != nil || len(pub) == 0 {
			return errors.New("--to-public-key must hold the receiver's base64 public key")
		}
		o.pub = pub
		return nil
	})
}

// Run prints this host's etcd CA sealed to the receiver's key.
func (o *CASendOptions) Run(ctx context.Context) error {
	if err := o.load(ctx); err != nil {
		return err
	}
	cert, key, err := o.host.ReadEtcdCA(o.config)
	if err != nil {
		return fmt.Errorf("on %s: %w", o.config.NodeName(), err)
	}
	sealed, err := sealedca.Seal(o.pub, sealedca.Bundle{CertPEM: cert, KeyPEM: key})
	if err != nil {
		return err
	}
	return json.NewEncoder(o.Out).Encode(sealedca.Message{Sealed: sealed, Fingerprint: sealedca.Fingerprint(cert)})
}
