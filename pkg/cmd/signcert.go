package cmd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// SignClientCertOptions: sign a short-lived etcd client certificate for a
// key held elsewhere (the plugin's memory). Run on a member host, in the
// plugin's host pod; the CA key never leaves the host, the client key never
// comes to it.
type SignClientCertOptions struct {
	HostOptions
	CSR      string
	Validity time.Duration

	der []byte // --csr-base64, decoded
}

// NewCmdSignClientCert returns the hidden `kubectl-etcd sign-client-cert`.
func NewCmdSignClientCert(streams genericiooptions.IOStreams) *cobra.Command {
	o := &SignClientCertOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:    "sign-client-cert --csr-base64 DER",
		Short:  "Sign a short-lived etcd client certificate for a certificate request (used by the plugin's host pods)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE:   runE(o),
	}
	o.AddFlags(cmd.Flags(), false)
	cmd.Flags().StringVar(&o.CSR, "csr-base64", "", "the certificate request, DER, base64")
	cmd.Flags().DurationVar(&o.Validity, "validity", time.Hour, "how long the certificate is valid (at most 24h)")
	return cmd
}

// Complete has nothing to fill in: the request comes as a flag.
func (o *SignClientCertOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects a request that is not base64, then a caller that is not
// root. It keeps the decoded request for Run.
func (o *SignClientCertOptions) Validate() error {
	return o.validate(func() error {
		der, err := base64.StdEncoding.DecodeString(o.CSR)
		if err != nil || len(der) == 0 {
			return errors.New("--csr-base64 must hold a base64 DER certificate request")
		}
		o.der = der
		return nil
	})
}

// Run signs the certificate and prints it as JSON.
func (o *SignClientCertOptions) Run(ctx context.Context) error {
	if err := o.load(ctx); err != nil {
		return err
	}
	signed, err := o.host.SignClientCSR(o.config, o.der, o.Validity)
	if err != nil {
		return fmt.Errorf("signing a client certificate on %s: %w", o.config.NodeName(), err)
	}
	return json.NewEncoder(o.Out).Encode(signed)
}
