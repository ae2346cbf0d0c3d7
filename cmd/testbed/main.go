// Command testbed brings up and tears down the local kubeadm test bed (see
// pkg/testbed): `make bed-up` / `make bed-down` call it. It must run as root.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var name, root string
	cmd := &cobra.Command{
		Use:          "testbed",
		Short:        "A kubeadm cluster of real components on this machine, one namespace set per host",
		SilenceUsage: true,
	}
	cmd.PersistentFlags().StringVar(&name, "name", "ketcd", "name of the bed (prefix of its namespaces, cgroups and state)")
	cmd.PersistentFlags().StringVar(&root, "root", "", "state directory (default /var/tmp/kubectl-etcd-testbed)")

	var hosts int
	var shape, subnet, domain string
	var ipv6 bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Build what is missing and bring up a bed (replacing a previous one of the same name)",
		Example: `  testbed up --hosts 3                    # kubeadm init on h1, h2 and h3 join as control planes with etcd
  testbed up --shape init,control-plane-no-etcd,control-plane-no-etcd,worker
  testbed up --hosts 3 --ipv6 --domain cp.example.internal   # IPv6 only; nodes h1.cp.example.internal, ...`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			roles, err := parseShape(shape, hosts)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("subnet") && ipv6 {
				subnet = testbed.DefaultSubnetIPv6
			}
			b, err := testbed.Up(cmd.Context(), testbed.Options{Name: name, Root: root, Subnet: subnet, IPv6: ipv6, Domain: domain, Roles: roles, Log: os.Stderr})
			if err != nil {
				return err
			}
			fmt.Printf("\nbed %q is up with %d hosts:\n", b.Name, len(b.Hosts))
			for _, h := range b.Hosts {
				fmt.Printf("  %-4s %-15s %s%s\n", h.Name, h.Address, h.Role, nodeSuffix(h.HostConfig))
			}
			fmt.Printf("\nkubeconfig:    export KUBECONFIG=%s\n", b.Kubeconfig())
			fmt.Printf("enter a host:  make bed-shell HOST=h1   (or: go run ./cmd/testbed --name %s exec h1 -- bash)\n", b.Name)
			fmt.Printf("ssh to a host: ssh -F %s root@h1   (more: testbed --name %s ssh-info)\n", b.SSH().ConfigFile, b.Name)
			fmt.Printf("tear down:     make bed-down\n")
			return nil
		},
	}
	up.Flags().IntVar(&hosts, "hosts", 3, "number of hosts: h1 runs kubeadm init, the others join as control planes with etcd")
	up.Flags().StringVar(&shape, "shape", "", "comma-separated roles, one per host (init, control-plane, control-plane-no-etcd, worker, bare); overrides --hosts")
	up.Flags().StringVar(&subnet, "subnet", testbed.DefaultSubnet, "first three octets of the bed's private /24 (with --ipv6: first four groups of a /64 in fd00::/8, default "+testbed.DefaultSubnetIPv6+")")
	up.Flags().BoolVar(&ipv6, "ipv6", false, "IPv6 single-stack: hosts, load balancer, pods and services have IPv6 addresses only")
	up.Flags().StringVar(&domain, "domain", "", "give the hosts dotted node names, h1.DOMAIN, h2.DOMAIN, ... (e.g. cp.example.internal)")

	down := &cobra.Command{
		Use:   "down",
		Short: "Tear the bed down completely",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := testbed.CheckRoot(); err != nil {
				return err
			}
			return testbed.Down(cmd.Context(), name, root, os.Stderr)
		},
	}

	prepare := &cobra.Command{
		Use:   "prepare",
		Short: "Install the bed's tools and build its components and images, without bringing a bed up",
		Long: `Everything "up" builds before its first host: the apt packages, etcd and the
Kubernetes components (from Go modules), this checkout's binaries and the
images. make test runs it alongside the unit tests, so that a cold machine
compiles the components while those tests wait on etcd.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := testbed.CheckRoot(); err != nil {
				return err
			}
			_, err := testbed.Prepare(cmd.Context(), os.Stderr)
			return err
		},
	}

	execCmd := &cobra.Command{
		Use:   "exec HOST -- COMMAND [ARGS...]",
		Short: "Run a command inside a host (its namespaces, PATH and KUBECONFIG)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := loadHost(name, root, args[0])
			if err != nil {
				return err
			}
			c, err := h.Command(cmd.Context(), args[1:]...)
			if err != nil {
				return err
			}
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := c.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					os.Exit(ee.ExitCode())
				}
				return err
			}
			return nil
		},
	}

	power := func(on bool) *cobra.Command {
		verb := map[bool]string{true: "power-on", false: "power-off"}[on]
		return &cobra.Command{
			Use:   verb + " HOST",
			Short: map[bool]string{true: "Boot a host from its disk", false: "Kill every process of a host at once, keeping its disk"}[on],
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				h, err := loadHost(name, root, args[0])
				if err != nil {
					return err
				}
				if on {
					return h.PowerOn(cmd.Context())
				}
				return h.PowerOff(cmd.Context())
			},
		}
	}

	standalone := &cobra.Command{
		Use:   "standalone-kubelet HOST",
		Short: "Start a kubelet without a cluster on a bare host (it runs static pods only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := testbed.Load(name, root)
			if err != nil {
				return err
			}
			h := b.Host(args[0])
			if h == nil {
				return fmt.Errorf("bed %q has no host %q", name, args[0])
			}
			return b.StandaloneKubelet(cmd.Context(), h)
		},
	}

	// A bare host joins later: a new control-plane host arriving after a
	// failure, the way an operator adds one (the real kubeadm join).
	joinCP := &cobra.Command{
		Use:   "join-control-plane HOST",
		Short: "Join a bare host with the real `kubeadm join --control-plane` (kubeadm adds its etcd member)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := testbed.Load(name, root)
			if err != nil {
				return err
			}
			b.SetLog(os.Stderr)
			h := b.Host(args[0])
			if h == nil {
				return fmt.Errorf("bed %q has no host %q", name, args[0])
			}
			return b.JoinControlPlane(cmd.Context(), h)
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the bed's hosts and whether each is on",
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := testbed.Load(name, root)
			if err != nil {
				return err
			}
			pss, _ := b.MemoryPSS()
			fmt.Printf("bed %q, kubeconfig %s, proxy %s, memory %d MiB (PSS of every host process)\n", b.Name, b.Kubeconfig(), b.ProxyAddr, pss>>20)
			for _, h := range b.Hosts {
				state := "off"
				if h.IsOn() {
					state = fmt.Sprintf("on (pid %d)", h.InitPID())
				}
				fmt.Printf("  %-4s %-15s %-22s %s%s\n", h.Name, h.Address, h.Role, state, nodeSuffix(h.HostConfig))
			}
			return nil
		},
	}

	proxy := &cobra.Command{
		Use:    "proxy",
		Short:  "Serve the bed's apiserver load balancer (started by up)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return testbed.RunProxy(cmd.Context(), name, root)
		},
	}

	sshInfo := &cobra.Command{
		Use:   "ssh-info",
		Short: "Show how to log in to the hosts' sshd (root, ops with sudo, nosudo without)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := testbed.Load(name, root)
			if err != nil {
				return err
			}
			a := b.SSH()
			fmt.Printf("key:         %s\nknown_hosts: %s\nssh config:  %s\nport:        %d\n", a.KeyFile, a.KnownHostsFile, a.ConfigFile, a.Port)
			fmt.Printf("users:       root, %s (sudo without password), %s (no sudo)\n\n", testbed.SSHUserSudo, testbed.SSHUserNoSudo)
			for _, h := range b.Hosts {
				fmt.Printf("  %-4s ssh -F %s root@%s\n", h.Name, a.ConfigFile, h.Name)
			}
			// The addresses have no route from this machine's namespace:
			// without the config file, the proxy command gets there.
			fmt.Printf("\nwithout the config file:\n  ssh %s root@%s\n", shellJoin(a.Args()), b.Hosts[0].Address)
			return nil
		},
	}

	dial := &cobra.Command{
		Use:    "dial HOST PORT",
		Short:  "Connect stdin and stdout to HOST:PORT on the bed's network (ssh's ProxyCommand)",
		Hidden: true,
		Args:   cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := testbed.Load(name, root)
			if err != nil {
				return err
			}
			c, err := b.SSH().Dial(cmd.Context(), net.JoinHostPort(args[0], args[1]))
			if err != nil {
				return err
			}
			defer c.Close()
			go func() {
				io.Copy(c, os.Stdin)
				c.(*net.TCPConn).CloseWrite()
			}()
			_, err = io.Copy(os.Stdout, c)
			return err
		},
	}

	cmd.AddCommand(up, down, prepare, execCmd, power(true), power(false), standalone, joinCP, status, proxy, sshInfo, dial)
	return cmd
}

// nodeSuffix names a host's node when it is not the bed's name for it.
func nodeSuffix(hc testbed.HostConfig) string {
	if hc.NodeName() == hc.Name {
		return ""
	}
	return "  node " + hc.NodeName()
}

// shellJoin quotes args for a shell where they need it.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '\"%$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func loadHost(name, root, host string) (*testbed.Host, error) {
	b, err := testbed.Load(name, root)
	if err != nil {
		return nil, err
	}
	h := b.Host(host)
	if h == nil {
		var names []string
		for _, x := range b.Hosts {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("bed %q has no host %q (hosts: %s)", name, host, strings.Join(names, ", "))
	}
	return h, nil
}

func parseShape(shape string, hosts int) ([]testbed.Role, error) {
	if shape == "" {
		if hosts < 1 {
			return nil, fmt.Errorf("--hosts must be at least 1, got %d", hosts)
		}
		roles := []testbed.Role{testbed.RoleInit}
		for i := 1; i < hosts; i++ {
			roles = append(roles, testbed.RoleControlPlane)
		}
		return roles, nil
	}
	var roles []testbed.Role
	for _, r := range strings.Split(shape, ",") {
		switch role := testbed.Role(strings.TrimSpace(r)); role {
		case testbed.RoleInit, testbed.RoleControlPlane, testbed.RoleControlPlaneNoEtcd, testbed.RoleWorker, testbed.RoleBare:
			roles = append(roles, role)
		default:
			return nil, fmt.Errorf("unknown role %q in --shape (want init, control-plane, control-plane-no-etcd, worker or bare)", r)
		}
	}
	return roles, nil
}
