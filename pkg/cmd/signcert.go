package cmd

import (
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
}

// NewCmdSignClientCert returns the hidden `kubectl-etcd sign-client-cert`.
func NewCmdSignClientCert(streams genericiooptions.IOStreams) *cobra.Command {
	o := &SignClientCertOptions{HostOptions: HostOptions{IOStreams: streams}}
	cmd := &cobra.Command{
		Use:    "sign-client-cert --csr-base64 DER",
		Short:  "Sign a short-lived etcd client certificate for a certificate request (used by the plugin's host pods)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var der []byte
			if err := o.prepare(cmd, func() error {
				var err error
				if der, err = base64.StdEncoding.DecodeString(o.CSR); err != nil || len(der) == 0 {
					return errors.New("--csr-base64 must hold a base64 DER certificate request")
				}
				return nil
			}); err != nil {
				return err
			}
			signed, err := o.host.SignClientCSR(o.config, der, o.Validity)
			if err != nil {
				return fmt.Errorf("signing a client certificate on %s: %w", o.config.NodeName(), err)
			}
			return json.NewEncoder(o.Out).Encode(signed)
		},
	}
	o.AddFlags(cmd.Flags(), false)
	cmd.Flags().StringVar(&o.CSR, "csr-base64", "", "the certificate request, DER, base64")
	cmd.Flags().DurationVar(&o.Validity, "validity", time.Hour, "how long the certificate is valid (at most 24h)")
	return cmd
}
