package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Users every host has besides root, all logging in with the bed's key.
const (
	// SSHUserSudo may run anything with `sudo -n`, without a password.
	SSHUserSudo = "ops"
	// SSHUserNoSudo has no sudo rights at all.
	SSHUserNoSudo = "nosudo"
)

// SSHAccess is how a client logs in to the bed's hosts over SSH: every host
// runs sshd on its address, port Port, and lets root, SSHUserSudo and
// SSHUserNoSudo in with the key in KeyFile.
//
// The hosts' addresses have no route from the real machine (nothing of the
// bed is in its network namespace): the ssh command gets there through
// ProxyCommand (ConfigFile sets it for every host), a Go client through Dial.
// Inside a host the addresses are reachable directly.
type SSHAccess struct {
	// KeyFile is the client's private key (ed25519, mode 0600).
	KeyFile string
	// KnownHostsFile has each host's key under its address, bed name and
	// node name.
	KnownHostsFile string
	// ConfigFile is an ssh_config for `ssh -F ConfigFile root@h1`: the key,
	// the known hosts, strict host key checking and the proxy command.
	ConfigFile string
	// ProxyCommand connects stdin/stdout to %h:%p in the bed's network.
	ProxyCommand string
	// Port is sshd's port on every host.
	Port int
	// NetnsPath is the network namespace of the bed's bridge, from which
	// every host address is reachable (see DialInNetns).
	NetnsPath string
}

// SSH says how to reach the hosts' sshd.
func (b *Bed) SSH() SSHAccess {
	dir := b.sshDir()
	return SSHAccess{
		KeyFile:        filepath.Join(dir, "id_ed25519"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		ConfigFile:     filepath.Join(dir, "config"),
		ProxyCommand:   fmt.Sprintf("%s --name %s --root %s dial %%h %%p", filepath.Join(b.BinDir(), "testbed"), b.Name, filepath.Dir(b.Dir)),
		Port:           22,
		NetnsPath:      "/run/netns/" + b.bridgeNetns(),
	}
}

// Dial opens a TCP connection to addr (host:port) on the bed's network, for
// a Go SSH client (golang.org/x/crypto/ssh.NewClientConn over it).
func (a SSHAccess) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return DialInNetns(ctx, a.NetnsPath, addr)
}

// Args are the ssh(1) options that log in without the config file.
func (a SSHAccess) Args() []string {
	return []string{"-i", a.KeyFile, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=" + a.KnownHostsFile,
		"-o", "StrictHostKeyChecking=yes", "-o", "ProxyCommand=" + a.ProxyCommand}
}

func (b *Bed) sshDir() string { return filepath.Join(b.Dir, "ssh") }

// sshdConfigPath is the host's sshd configuration; hostinit.sh starts sshd
// when it exists.
const sshdConfigPath = "/etc/testbed/sshd_config"

// sshdConfig is the host's own sshd configuration: no PAM (its session
// modules want capabilities root lacks here), keys only, authorized keys in
// the host's /etc since /root is the machine's. The PATH is the host's, also
// for sudo, as kubeadm's tools are in /usr/bin on a real host.
func sshdConfig(listen, path string) string {
	return `# The test bed's sshd (pkg/testbed): started by hostinit.sh, killed with the host.
ListenAddress ` + listen + `
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PidFile none
PrintMotd no
MaxStartups 100:30:200
SetEnv PATH=` + path + `
Subsystem sftp /usr/lib/openssh/sftp-server
`
}

func sudoersConfig(path string) string {
	return `# The test bed: ` + SSHUserSudo + ` may do anything without a password, ` + SSHUserNoSudo + ` nothing.
Defaults secure_path="` + path + `"
` + SSHUserSudo + ` ALL=(ALL:ALL) NOPASSWD: ALL
`
}

// layoutSSH writes, before the hosts first boot, the client key and
// known_hosts in the bed dir, and on each host's disk its host key, sshd
// config, authorized keys, users and sudoers. The host keys stay on the
// host's disk across power cycles.
func (b *Bed) layoutSSH() error {
	dir := b.sshDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	acc := b.SSH()
	if err := keygen(acc.KeyFile, "testbed@"+b.Name); err != nil {
		return err
	}
	clientPub, err := os.ReadFile(acc.KeyFile + ".pub")
	if err != nil {
		return err
	}
	var known, cfg strings.Builder
	fmt.Fprintf(&cfg, "# ssh -F %s root@h1 (or %s@, %s@)\n", acc.ConfigFile, SSHUserSudo, SSHUserNoSudo)
	for _, h := range b.Hosts {
		etc := filepath.Join(h.StateDir(), "overlay", "etc", "upper")
		hostKey := filepath.Join(etc, "ssh", "ssh_host_ed25519_key")
		if err := os.MkdirAll(filepath.Dir(hostKey), 0o755); err != nil {
			return err
		}
		if err := keygen(hostKey, "root@"+h.NodeName()); err != nil {
			return err
		}
		pub, err := os.ReadFile(hostKey + ".pub")
		if err != nil {
			return err
		}
		names := sshNames(h)
		f := strings.Fields(string(pub))
		fmt.Fprintf(&known, "%s %s %s\n", strings.Join(names, ","), f[0], f[1])
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n", strings.Join(names, " "), h.Address)

		files := map[string]string{
			strings.TrimPrefix(sshdConfigPath, "/etc/"): sshdConfig(net.JoinHostPort(h.Address, strconv.Itoa(acc.Port)), b.hostPATH()),
			"sudoers.d/testbed":                         sudoersConfig(b.hostPATH()),
			"ssh/authorized_keys/root":                  string(clientPub),
			"ssh/authorized_keys/" + SSHUserSudo:        string(clientPub),
			"ssh/authorized_keys/" + SSHUserNoSudo:      string(clientPub),
		}
		for p, c := range files {
			fp := filepath.Join(etc, p)
			if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if strings.HasPrefix(p, "sudoers.d/") {
				mode = 0o440
			}
			if err := os.WriteFile(fp, []byte(c), mode); err != nil {
				return err
			}
		}
		if err := seedUsers(etc, filepath.Join(h.StateDir(), "overlay", "home", "upper"), SSHUserSudo, SSHUserNoSudo); err != nil {
			return fmt.Errorf("adding users to host %s: %w", h.Name, err)
		}
	}
	fmt.Fprintf(&cfg, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  ProxyCommand %s\n",
		acc.KeyFile, acc.KnownHostsFile, acc.ProxyCommand)
	if err := os.WriteFile(acc.KnownHostsFile, []byte(known.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(acc.ConfigFile, []byte(cfg.String()), 0o644)
}

// sshNames are the names a client may use for the host: its address (also
// in canonical form), the bed's name and its node name.
func sshNames(h *Host) []string {
	names := []string{h.Address}
	if ip := net.ParseIP(h.Address); ip != nil && ip.String() != h.Address {
		names = append(names, ip.String())
	}
	names = append(names, h.Name)
	if h.NodeName() != h.Name {
		names = append(names, h.NodeName())
	}
	return names
}

func keygen(path, comment string) error {
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh-keygen %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// seedUsers gives a host users of its own: its /etc/passwd, group, shadow
// and gshadow start as the machine's plus these users (in the host's /etc
// overlay upper dir, so the machine's files are never changed), with homes
// in the host's /home overlay. They have no password ("*": not locked, so
// sshd lets them in by key).
func seedUsers(etc, home string, users ...string) error {
	files := []string{"passwd", "group", "shadow", "gshadow"}
	content := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil && !(f == "gshadow" && errors.Is(err, os.ErrNotExist)) {
			return err
		}
		content[f] = string(raw)
		if len(raw) > 0 && !strings.HasSuffix(content[f], "\n") {
			content[f] += "\n"
		}
	}
	used := map[string]bool{}
	for _, f := range []string{"passwd", "group"} {
		for _, l := range strings.Split(content[f], "\n") {
			if p := strings.Split(l, ":"); len(p) > 2 {
				used[p[2]] = true
				used["name:"+p[0]] = true
			}
		}
	}
	id := 2000
	for _, u := range users {
		if used["name:"+u] {
			return fmt.Errorf("the machine already has a user or group %q", u)
		}
		for used[strconv.Itoa(id)] {
			id++
		}
		used[strconv.Itoa(id)] = true
		n := strconv.Itoa(id)
		content["passwd"] += u + ":x:" + n + ":" + n + ":test bed user:/home/" + u + ":/bin/bash\n"
		content["group"] += u + ":x:" + n + ":\n"
		content["shadow"] += u + ":*:20000:0:99999:7:::\n"
		if content["gshadow"] != "" {
			content["gshadow"] += u + ":!::\n"
		}
		// home is the root of the host's /home: others must get through it.
		if err := os.MkdirAll(home, 0o755); err != nil {
			return err
		}
		hd := filepath.Join(home, u)
		if err := os.Mkdir(hd, 0o750); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := os.Chown(hd, id, id); err != nil {
			return err
		}
	}
	for _, f := range files {
		if content[f] == "" {
			continue
		}
		st, err := os.Stat(filepath.Join("/etc", f))
		if err != nil {
			return err
		}
		p := filepath.Join(etc, f)
		if err := os.WriteFile(p, []byte(content[f]), st.Mode().Perm()); err != nil {
			return err
		}
		// shadow is root:shadow 0640 on Debian: keep the machine's owner and mode.
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			if err := os.Chown(p, int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
		if err := os.Chmod(p, st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

// sshdUp reports whether the host's sshd accepts connections, or that the
// host has none.
func (h *Host) sshdUp(ctx context.Context) bool {
	if _, err := os.Stat(filepath.Join(h.StateDir(), "overlay", "etc", "upper", strings.TrimPrefix(sshdConfigPath, "/etc/"))); err != nil {
		return true
	}
	c, err := DialInNetns(ctx, h.NetnsPath(), net.JoinHostPort(h.Address, "22"))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
