// Package testbed builds kubeadm clusters out of real components on one
// machine: each host is a set of Linux namespaces with its own address,
// filesystem, containerd and kubelet, and the control plane is made by the real
// `kubeadm init` and `kubeadm join`. Tests use it to run kubectl-etcd against
// what users run; people use it through `make bed-up` / `make bed-down`.
//
// Nothing of the real machine is changed: no address, route or interface in
// the root network namespace, no sysctl, nothing under /usr or /opt. The only
// traffic goes to loopback and to the bed's own namespaces.
package testbed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "embed"
)

//go:embed assets/hostinit.sh
var hostInitScript []byte

//go:embed assets/systemctl.sh
var systemctlScript []byte

// Options says what bed to build.
type Options struct {
	// Name prefixes every namespace, cgroup and directory of the bed.
	Name string
	// Subnet is the first three octets of the bed's /24, e.g. "10.99.0";
	// with IPv6, the first four groups of its /64 in fd00::/8, e.g.
	// "fd00:99:0:10".
	Subnet string
	// IPv6 makes a single-stack IPv6 bed: the bridge, the load balancer,
	// every host, kubeadm's advertise addresses, the pod and service
	// subnets and the pods' CNI range are IPv6 only.
	IPv6 bool
	// Domain, when set, makes every node name a dotted one: host h1's
	// hostname, node and etcd member are h1.<Domain>. The bed's own name for
	// the host (namespaces, state dir, Bed.Host) stays h1.
	Domain string
	// Roles gives one entry per host; the first must be RoleInit (or RoleBare).
	Roles []Role
	// Root is where bed state lives (default /var/tmp/kubectl-etcd-testbed).
	Root string
	// Log receives progress lines (default: discarded).
	Log io.Writer
	// EtcdExtraArgs go into the ClusterConfiguration's
	// etcd.local.extraArgs (flag name without dashes → value), as an
	// operator would set them: e.g. a small quota-backend-bytes.
	EtcdExtraArgs map[string]string
	// EtcdImageTag is the ClusterConfiguration's etcd.local.imageTag:
	// EtcdPreviousTag starts the cluster on etcd's previous minor.
	EtcdImageTag string
}

// State is what bed.json records, enough for another process to find and
// tear down the bed.
type State struct {
	Name              string       `json:"name"`
	Subnet            string       `json:"subnet"`
	IPv6              bool         `json:"ipv6,omitempty"`
	Domain            string       `json:"domain,omitempty"`
	Hosts             []HostConfig `json:"hosts"`
	KubernetesVersion string       `json:"kubernetesVersion"`
	ProxyAddr         string       `json:"proxyAddr,omitempty"`
	Token             string       `json:"token"`
	CertificateKey    string       `json:"certificateKey"`
	// EtcdExtraArgs are Options.EtcdExtraArgs, kept for later joins.
	EtcdExtraArgs map[string]string `json:"etcdExtraArgs,omitempty"`
	EtcdImageTag  string            `json:"etcdImageTag,omitempty"`
}

// Bed is a running (or partly running) test bed.
type Bed struct {
	State
	Dir   string
	Hosts []*Host
	log   io.Writer
}

const defaultRoot = "/var/tmp/kubectl-etcd-testbed"

// KubernetesVersion is the version of the components the bed builds and runs.
const KubernetesVersion = "v1.37.2"

// Image tags kubeadm 1.37.2 expects (DefaultEtcdVersion, pause).
const (
	EtcdImage = "registry.k8s.io/etcd:3.7.0-0"
	// EtcdPreviousTag is the tag of the bed's etcd of the previous minor
	// (hack/build/etcd36), for the upgrade story.
	EtcdPreviousTag = "3.6.16-0"
	PauseImage      = "registry.k8s.io/pause:3.10.2"
	// ToolboxImage has a static busybox, for test pods that need a shell.
	ToolboxImage = "localhost/testbed/toolbox:1"
)

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "ketcd"
	}
	if o.Subnet == "" {
		o.Subnet = DefaultSubnet
		if o.IPv6 {
			o.Subnet = DefaultSubnetIPv6
		}
	}
	if o.Root == "" {
		o.Root = defaultRoot
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

func (b *Bed) addressing() addressing { return addressing{subnet: b.Subnet, ipv6: b.IPv6} }

// LBAddress is the bed's load balancer in front of the apiservers, on the bridge.
func (b *Bed) LBAddress() string { return b.addressing().lb() }

// ControlPlaneEndpoint is the LB's host:port, kubeadm's controlPlaneEndpoint
// (an IPv6 address in brackets).
func (b *Bed) ControlPlaneEndpoint() string { return net.JoinHostPort(b.LBAddress(), "6443") }

// HostAddress is the address of the i-th host slot (from 0), also of a
// slot no host has: an address on the bed's network that nothing answers.
func (b *Bed) HostAddress(i int) string { return b.addressing().host(i) }

// Network is the bed's bridge network in CIDR form.
func (b *Bed) Network() string { return b.addressing().cidr() }

// BinDir holds the binaries every host has on its PATH.
func (b *Bed) BinDir() string { return filepath.Join(b.Dir, "bin") }

// Kubeconfig is the admin kubeconfig for the workstation (the real machine),
// pointing at the bed's proxy on 127.0.0.1.
func (b *Bed) Kubeconfig() string { return filepath.Join(b.Dir, "kubeconfig") }

func (b *Bed) bridgeNetns() string { return b.Name + "-br" }

func (b *Bed) hostPATH() string {
	return b.BinDir() + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// Host returns the host with the given name (the bed's, such as h1, or its
// node name), or nil.
func (b *Bed) Host(name string) *Host {
	for _, h := range b.Hosts {
		if h.Name == name || h.NodeName() == name {
			return h
		}
	}
	return nil
}

func (b *Bed) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[testbed] "+format+"\n", args...)
}

// Load finds an existing bed from its state file.
func Load(name, root string) (*Bed, error) {
	if root == "" {
		root = defaultRoot
	}
	dir := filepath.Join(root, name)
	raw, err := os.ReadFile(filepath.Join(dir, "bed.json"))
	if err != nil {
		return nil, fmt.Errorf("no test bed %q under %s: %w", name, root, err)
	}
	b := &Bed{Dir: dir, log: io.Discard}
	if err := json.Unmarshal(raw, &b.State); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, "bed.json"), err)
	}
	for _, hc := range b.State.Hosts {
		b.Hosts = append(b.Hosts, &Host{HostConfig: hc, bed: b})
	}
	return b, nil
}

// SetLog directs progress lines to w.
func (b *Bed) SetLog(w io.Writer) { b.log = w }

func (b *Bed) save() error {
	raw, _ := json.MarshalIndent(b.State, "", "  ")
	return os.WriteFile(filepath.Join(b.Dir, "bed.json"), raw, 0o600)
}

// CheckRoot fails clearly when not run as root: namespaces, mounts and
// cgroups need it.
func CheckRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the test bed must run as root: it creates network, mount and PID namespaces, mounts and cgroups (try: sudo make bed-up)")
	}
	return nil
}

// Up builds and starts a bed. A bed of the same name left behind by an earlier
// run is torn down first, never reused. On failure the partly built bed is
// torn down unless KETCD_KEEP_FAILED_BED=1, and the error says where its logs are.
func Up(ctx context.Context, opts Options) (_ *Bed, err error) {
	opts.defaults()
	if err := CheckRoot(); err != nil {
		return nil, err
	}
	if len(opts.Roles) == 0 || (opts.Roles[0] != RoleInit && opts.Roles[0] != RoleBare) {
		return nil, fmt.Errorf("the first host must have role %q (or %q), got %v", RoleInit, RoleBare, opts.Roles)
	}
	plan := addressing{subnet: opts.Subnet, ipv6: opts.IPv6}
	if err := plan.validate(); err != nil {
		return nil, err
	}
	if len(opts.Roles) > plan.maxHosts() {
		return nil, fmt.Errorf("at most %d hosts fit the bed's %s, asked for %d", plan.maxHosts(), plan.cidr(), len(opts.Roles))
	}
	if err := validDomain(opts.Domain); err != nil {
		return nil, err
	}
	start := time.Now()
	if left := Leftovers(opts.Name, opts.Root); len(left) > 0 {
		fmt.Fprintf(opts.Log, "[testbed] found a previous bed %q left behind (%s): tearing it down first\n", opts.Name, strings.Join(left, ", "))
		if err := Down(ctx, opts.Name, opts.Root, opts.Log); err != nil {
			return nil, fmt.Errorf("cleaning the previous bed %q: %w", opts.Name, err)
		}
	}
	if err := checkSubnetFree(plan); err != nil {
		return nil, err
	}
	prereq, err := Prepare(ctx, opts.Log)
	if err != nil {
		return nil, err
	}
	b := &Bed{Dir: filepath.Join(opts.Root, opts.Name), log: opts.Log}
	b.State = State{
		Name: opts.Name, Subnet: opts.Subnet, IPv6: opts.IPv6, Domain: opts.Domain, KubernetesVersion: KubernetesVersion,
		Token: randomToken(), CertificateKey: randomHex(32), EtcdExtraArgs: opts.EtcdExtraArgs, EtcdImageTag: opts.EtcdImageTag,
	}
	for i, r := range opts.Roles {
		hc := newHostConfig(plan, opts.Domain, i, r)
		b.State.Hosts = append(b.State.Hosts, hc)
		b.Hosts = append(b.Hosts, &Host{HostConfig: hc, bed: b})
	}
	defer func() {
		if err != nil && os.Getenv("KETCD_KEEP_FAILED_BED") != "1" {
			logs := b.collectLogs()
			Down(context.Background(), b.Name, opts.Root, opts.Log)
			err = fmt.Errorf("%w\n%s", err, logs)
		}
	}()
	if err := b.layout(prereq); err != nil {
		return nil, err
	}
	if err := b.network(ctx); err != nil {
		return nil, err
	}
	if err := b.startProxy(); err != nil {
		return nil, err
	}
	b.logf("booting %d hosts", len(b.Hosts))
	if err := each(b.Hosts, func(h *Host) error { return h.PowerOn(ctx) }); err != nil {
		return nil, err
	}
	// The first host needs its images before kubeadm init; the others get
	// theirs while it runs, which takes the imports off the critical path.
	if err := b.importImages(ctx, b.Hosts[0], prereq.Images); err != nil {
		return nil, err
	}
	b.logf("hosts booted, images imported into %s (%s)", b.Hosts[0].Name, time.Since(start).Round(100*time.Millisecond))
	imports := make(chan error, 1)
	go func() {
		imports <- each(b.Hosts[1:], func(h *Host) error { return b.importImages(ctx, h, prereq.Images) })
	}()
	if err := b.kubeadmUp(ctx, imports); err != nil {
		return nil, err
	}
	b.logf("bed %q up in %s: kubeconfig %s", b.Name, time.Since(start).Round(100*time.Millisecond), b.Kubeconfig())
	return b, nil
}

// each runs fn on the hosts in parallel and joins the errors.
func each(hosts []*Host, fn func(h *Host) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(h) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *Bed) layout(p *Prereqs) error {
	if err := os.MkdirAll(b.BinDir(), 0o755); err != nil {
		return err
	}
	if err := b.save(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "hostinit.sh"), hostInitScript, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.BinDir(), "systemctl"), systemctlScript, 0o755); err != nil {
		return err
	}
	for name, src := range p.HostBinaries {
		if err := os.Symlink(src, filepath.Join(b.BinDir(), name)); err != nil {
			return fmt.Errorf("linking %s into %s: %w", name, b.BinDir(), err)
		}
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n::1 localhost\n")
	for _, h := range b.Hosts {
		if h.NodeName() != h.Name {
			fmt.Fprintf(&hosts, "%s %s %s\n", h.Address, h.NodeName(), h.Name)
		} else {
			fmt.Fprintf(&hosts, "%s %s\n", h.Address, h.Name)
		}
	}
	for _, h := range b.Hosts {
		st := h.StateDir()
		// The host's own /etc starts as an overlay upper dir; pre-seed it with
		// what the host needs before it boots.
		etc := filepath.Join(st, "overlay", "etc", "upper")
		files := map[string]string{
			"hostname":                      h.NodeName() + "\n",
			"hosts":                         hosts.String(),
			"machine-id":                    randomHex(16) + "\n",
			"containerd/config.toml":        containerdConfig,
			"cni/net.d/10-testbed.conflist": cniConfig(b.addressing()),
			"testbed/patches/kubeletconfiguration+strategic.yaml": string(kubeletPatch(h.CgroupRoot())),
		}
		for p, c := range files {
			fp := filepath.Join(etc, p)
			if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(fp, []byte(c), 0o644); err != nil {
				return err
			}
		}
		// Values kubelet wants for the machine-wide sysctls it would otherwise write.
		sysctl := map[string]string{"vm.overcommit_memory": "1\n", "kernel.panic": "10\n", "kernel.panic_on_oops": "1\n"}
		if err := os.MkdirAll(filepath.Join(st, "sysctl"), 0o755); err != nil {
			return err
		}
		for f, v := range sysctl {
			if err := os.WriteFile(filepath.Join(st, "sysctl", f), []byte(v), 0o644); err != nil {
				return err
			}
		}
	}
	return b.layoutSSH()
}

const containerdConfig = `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# The opt plugin would create /opt/containerd on the real machine.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  # Root here lacks CAP_SYS_RESOURCE and cannot lower OOM scores.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`

// cniConfig gives pods off the host network a network of their own host
// only: a bridge with addresses from host-local IPAM, no gateway, no routes,
// no masquerade. The bed's own pods all use the host network; this is for
// kubeadm's CreateJob health check (`kubeadm upgrade plan`/`apply`), whose
// Job pod would otherwise never get a sandbox ("failed to find network info")
// and the check would wait out its full minute. Every host uses the same
// subnet: the bridge lives in the host's own network namespace and no pod
// talks to another host. An IPv6 bed's pods get IPv6 addresses only.
func cniConfig(a addressing) string {
	return `{"cniVersion": "0.4.0", "name": "testbed", "plugins": [
  {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "` + a.cniSubnet() + `"}]]}},
  {"type": "loopback"}
]}
`
}

func (b *Bed) network(ctx context.Context) error {
	for _, s := range networkSteps(b.bridgeNetns(), b.addressing(), b.Hosts) {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("building the bed's network: %w", err)
		}
	}
	return nil
}

// networkSteps are the ip(8) commands that build the bed's network: a
// bridge in a namespace of its own holding the load balancer's address, and
// one veth pair per host. An IPv6 bed's addresses skip duplicate address
// detection (nothing else is on the bridge), so they are usable at once.
func networkSteps(br string, a addressing, hosts []*Host) [][]string {
	addr := func(ip string) []string {
		s := []string{ip + "/" + strconv.Itoa(a.prefixLen())}
		if a.ipv6 {
			s = append(s, "nodad")
		}
		return s
	}
	ip := func(args ...string) []string {
		if a.ipv6 {
			return append([]string{"ip", "-6"}, args...)
		}
		return append([]string{"ip"}, args...)
	}
	steps := [][]string{
		{"ip", "netns", "add", br},
		{"ip", "-n", br, "link", "set", "lo", "up"},
		{"ip", "-n", br, "link", "add", "br0", "type", "bridge"},
		append(append([]string{"ip", "-n", br, "addr", "add"}, addr(a.lb())...), "dev", "br0"),
		{"ip", "-n", br, "link", "set", "br0", "up"},
	}
	for _, h := range hosts {
		ns := h.Netns()
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			// The pair is made inside the bridge namespace with its peer moved
			// straight into the host: nothing touches the root namespace.
			[]string{"ip", "-n", br, "link", "add", h.Name, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "-n", br, "link", "set", h.Name, "master", "br0", "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			append(append([]string{"ip", "-n", ns, "addr", "add"}, addr(h.Address)...), "dev", "eth0"),
			[]string{"ip", "-n", ns, "link", "set", "eth0", "up"},
			ip("-n", ns, "route", "add", "default", "via", a.lb()),
			// kubeadm preflight wants forwarding on; it is per network namespace.
			[]string{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		)
		if a.ipv6 {
			steps = append(steps, []string{"ip", "netns", "exec", ns, "sysctl", "-qw",
				"net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1"})
		}
	}
	return steps
}

// checkSubnetFree refuses a network that the real machine already uses.
func checkSubnetFree(a addressing) error {
	if err := a.validate(); err != nil {
		return err
	}
	_, want, err := net.ParseCIDR(a.cidr())
	if err != nil {
		return fmt.Errorf("bad subnet %q: %w", a.subnet, err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ip, n, err := net.ParseCIDR(a.String())
			if err != nil {
				continue
			}
			if want.Contains(ip) || n.Contains(want.IP) {
				return fmt.Errorf("address range %s is already in use on this machine (%s has %s): choose another with --subnet", want, ifc.Name, a)
			}
		}
	}
	return nil
}

func (b *Bed) startProxy() error {
	self := filepath.Join(b.BinDir(), "testbed")
	logf, err := os.OpenFile(filepath.Join(b.Dir, "proxy.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "proxy", "--name", b.Name, "--root", filepath.Dir(b.Dir))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the bed's proxy: %w", err)
	}
	go cmd.Wait()
	if err := os.WriteFile(filepath.Join(b.Dir, "proxy.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return poll(context.Background(), 10*time.Second, "the bed's proxy to listen", func() (bool, error) {
		raw, err := os.ReadFile(filepath.Join(b.Dir, "proxy.addr"))
		if err != nil {
			if !alive(cmd.Process.Pid) {
				return false, fmt.Errorf("the bed's proxy exited: %s", tailFile(filepath.Join(b.Dir, "proxy.log")))
			}
			return false, nil
		}
		b.ProxyAddr = strings.TrimSpace(string(raw))
		return true, b.save()
	})
}

// RunProxy serves the bed's load balancer until ctx ends: on 127.0.0.1 (a free
// port, written to proxy.addr) for the workstation and on the bridge address
// for the hosts. `testbed proxy` calls it in its own process.
func RunProxy(ctx context.Context, name, root string) error {
	b, err := Load(name, root)
	if err != nil {
		return err
	}
	brNs := "/run/netns/" + b.bridgeNetns()
	lbl, err := ListenInNetns(brNs, b.ControlPlaneEndpoint())
	if err != nil {
		return fmt.Errorf("listening on %s in the bed: %w", b.ControlPlaneEndpoint(), err)
	}
	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on 127.0.0.1: %w", err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "proxy.addr"), []byte(local.Addr().String()), 0o644); err != nil {
		return err
	}
	var backends []string
	for _, h := range b.Hosts {
		backends = append(backends, net.JoinHostPort(h.Address, "6443"))
	}
	p := &Proxy{NetnsPath: brNs, Backends: backends}
	return p.Serve(ctx, lbl, local)
}

func (b *Bed) importImages(ctx context.Context, h *Host, images []string) error {
	for _, img := range images {
		if _, err := h.Exec(ctx, "ctr", "-n", "k8s.io", "images", "import", "--platform", "linux/amd64", img); err != nil {
			return fmt.Errorf("importing %s into %s: %w", img, h.Name, err)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomToken() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 22)
	rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b[:6]) + "." + string(b[6:])
}

// caCertHash is kubeadm's discovery pin: sha256 of the CA's public key info.
func caCertHash(pemBytes []byte) (string, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return "", errors.New("cluster CA is not PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("parsing cluster CA: %w", err)
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func (b *Bed) collectLogs() string {
	var s strings.Builder
	fmt.Fprintf(&s, "logs of the failed bed %s:", b.Dir)
	for _, h := range b.Hosts {
		for _, f := range []string{"console.log", "overlay/var/log/upper/testbed/kubelet.log"} {
			p := filepath.Join(h.StateDir(), f)
			if _, err := os.Stat(p); err == nil {
				fmt.Fprintf(&s, "\n--- %s: last lines of %s\n%s", h.Name, p, tailFile(p))
			}
		}
	}
	return s.String()
}
