package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/sshhost"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/workstation"
)

// SSHOptions choose SSH as the host transport: the plugin then runs the
// host-local binary on each control-plane host over SSH, as it runs it in
// host pods otherwise (same verbs, same arguments, same results). It is
// how the plugin reaches hosts whose apiserver is down.
type SSHOptions struct {
	Enabled    bool
	User       string
	Keys       []string
	Port       int
	Jump       string
	Proxy      string
	KnownHosts string
	AcceptNew  bool
	Hosts      []string
	HostsFile  string
}

// AddFlags registers the SSH flags.
func (o *SSHOptions) AddFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVar(&o.Enabled, "ssh", false, "do the host-level steps over SSH (the host-local binary, copied to "+hostapi.HostBinaryPath+" when missing or of another build) instead of host pods; works with the apiserver down")
	fs.StringVar(&o.User, "ssh-user", "", "SSH login user (default: $USER; sudo -n is used when it is not root)")
	fs.StringSliceVar(&o.Keys, "ssh-key", nil, "SSH private key file (repeatable; default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa; ssh-agent at $SSH_AUTH_SOCK is used too)")
	fs.IntVar(&o.Port, "ssh-port", 22, "SSH port of the hosts")
	fs.StringVar(&o.Jump, "ssh-jump", "", "jump host, [user@]host[:port], as ssh -J")
	fs.StringVar(&o.Proxy, "ssh-proxy-command", "", "connect through this command's stdin/stdout, as ssh's ProxyCommand (%h host, %p port, %r user)")
	fs.StringVar(&o.KnownHosts, "ssh-known-hosts", "", "known_hosts file the hosts' keys are checked against (default: ~/.ssh/known_hosts)")
	fs.BoolVar(&o.AcceptNew, "ssh-accept-new-host-keys", false, "add the keys of hosts not in known_hosts yet (ssh's StrictHostKeyChecking=accept-new); a changed key is always refused")
	fs.StringSliceVar(&o.Hosts, "hosts", nil, "the control-plane hosts, for --ssh when the apiserver cannot list them: NAME, ADDRESS or NAME=ADDRESS, comma-separated")
	fs.StringVar(&o.HostsFile, "hosts-file", "", "inventory for --ssh: one host per line, NAME [ADDRESS] (# comments)")
}

// Validate checks the SSH flags without touching the network.
func (o *SSHOptions) Validate() error {
	if !o.Enabled {
		if len(o.Hosts) > 0 || o.HostsFile != "" {
			return errors.New("--hosts and --hosts-file name the hosts for --ssh: add --ssh")
		}
		return nil
	}
	if o.Port <= 0 || o.Port > 65535 {
		return fmt.Errorf("--ssh-port %d is not a port", o.Port)
	}
	if len(o.Hosts) > 0 && o.HostsFile != "" {
		return errors.New("give the hosts with --hosts or with --hosts-file, not both")
	}
	_, err := o.inventory()
	return err
}

// sshHost is one host of the inventory: its name and where to dial it.
type sshHost struct{ Name, Address string }

// inventory reads --hosts or --hosts-file; nil when neither is given.
func (o *SSHOptions) inventory() ([]sshHost, error) {
	var entries []string
	switch {
	case o.HostsFile != "":
		f, err := os.Open(o.HostsFile)
		if err != nil {
			return nil, fmt.Errorf("reading --hosts-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			fields := strings.Fields(line)
			switch len(fields) {
			case 0:
			case 1:
				entries = append(entries, fields[0])
			case 2:
				entries = append(entries, fields[0]+"="+fields[1])
			default:
				return nil, fmt.Errorf("--hosts-file %s: %q: want NAME [ADDRESS]", o.HostsFile, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading --hosts-file: %w", err)
		}
		if len(entries) == 0 {
			return nil, fmt.Errorf("--hosts-file %s names no host", o.HostsFile)
		}
	case len(o.Hosts) > 0:
		entries = o.Hosts
	default:
		return nil, nil
	}
	return parseHosts(entries)
}

func parseHosts(entries []string) ([]sshHost, error) {
	var hosts []sshHost
	seen := map[string]bool{}
	for _, e := range entries {
		name, addr, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok {
			addr = name
		}
		addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if name == "" || addr == "" || strings.ContainsAny(name+addr, " \t/") {
			return nil, fmt.Errorf("host %q: want NAME, ADDRESS or NAME=ADDRESS", e)
		}
		if seen[name] {
			return nil, fmt.Errorf("host %q is listed twice", name)
		}
		seen[name] = true
		hosts = append(hosts, sshHost{Name: name, Address: addr})
	}
	return hosts, nil
}

// transport is the SSH transport dialling the hosts of resolve.
func (o *SSHOptions) transport(hosts []sshHost, log io.Writer) (*sshhost.Transport, error) {
	byName := map[string]string{}
	for _, h := range hosts {
		byName[h.Name] = h.Address
	}
	resolve := func(node string) (string, error) {
		if a, ok := byName[node]; ok {
			return a, nil
		}
		return "", fmt.Errorf("%w: %s is not one of the hosts (%s)", hostapi.ErrNoSuchHost, node, names(hosts))
	}
	return sshhost.New(sshhost.Options{User: o.User, Port: o.Port, KeyFiles: o.Keys, Agent: true, Jump: o.Jump, ProxyCommand: o.Proxy,
		KnownHostsFile: o.KnownHosts, AcceptNewHostKeys: o.AcceptNew}, resolve, log)
}

func names(hosts []sshHost) string {
	var n []string
	for _, h := range hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, ", ")
}

// hostsFromNodes lists the control-plane nodes with their InternalIP.
func hostsFromNodes(ctx context.Context, cs kubernetes.Interface) ([]sshHost, error) {
	nodes, err := workstation.ControlPlaneNodes(ctx, cs)
	if err != nil {
		return nil, err
	}
	var hosts []sshHost
	for _, n := range nodes {
		if n.Address == "" || net.ParseIP(n.Address) == nil {
			return nil, fmt.Errorf("node %s has no InternalIP to reach it by SSH: name the hosts with --hosts NAME=ADDRESS", n.Name)
		}
		hosts = append(hosts, sshHost{Name: n.Name, Address: n.Address})
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no node has the label %s: name the hosts with --hosts", workstation.ControlPlaneLabel)
	}
	return hosts, nil
}

// sshHosts is the inventory, or else the control-plane nodes of the
// apiserver of cs (nil: none), with a bounded wait: the apiserver may be
// down, which is when --hosts is needed.
func (o *SSHOptions) sshHosts(ctx context.Context, cs kubernetes.Interface, csErr error) ([]sshHost, error) {
	if hosts, err := o.inventory(); err != nil || hosts != nil {
		return hosts, err
	}
	if csErr == nil {
		c, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		hosts, err := hostsFromNodes(c, cs)
		if err == nil {
			return hosts, nil
		}
		csErr = err
	}
	return nil, fmt.Errorf("the control-plane hosts cannot be listed from the apiserver (%v): name them with --hosts NAME=ADDRESS,... or --hosts-file", csErr)
}
