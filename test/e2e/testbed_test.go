//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/testbed"
)

// machineState is what a bed must never change on the real machine.
type machineState struct {
	links   string
	sysctls map[string]string
}

var watchedSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops", "net/ipv4/ip_forward"}

func readMachineState(t *testing.T) machineState {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	s := machineState{links: strings.Join(names, " "), sysctls: map[string]string{}}
	for _, k := range watchedSysctls {
		v, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		s.sysctls[k] = strings.TrimSpace(string(v))
	}
	return s
}

func (s machineState) assertSame(t *testing.T, other machineState, when string) {
	t.Helper()
	if s.links != other.links {
		t.Errorf("%s: the real machine's network interfaces changed: %q -> %q", when, s.links, other.links)
	}
	for k, v := range s.sysctls {
		if other.sysctls[k] != v {
			t.Errorf("%s: the real machine's sysctl %s changed: %s -> %s", when, k, v, other.sysctls[k])
		}
	}
}

// assertNothingLeft checks that a torn-down bed left no namespace, mount,
// process, cgroup or state behind.
func assertNothingLeft(t *testing.T, name string) {
	t.Helper()
	if left := testbed.Leftovers(name, ""); len(left) > 0 {
		t.Errorf("bed %s left behind: %v", name, left)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, "kubectl-etcd-testbed/"+name) || strings.Contains(l, "/run/netns/"+name+"-") {
			t.Errorf("mount left behind: %s", l)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cl, _ := os.ReadFile(p)
		if bytes.Contains(cl, []byte("kubectl-etcd-testbed/"+name+"/")) {
			t.Errorf("process left behind: %s: %q", p, bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
		}
	}
	for _, c := range []string{"cpu", "memory", "pids", "cpuset", "systemd", "unified"} {
		if m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", c, name+"-*")); len(m) > 0 {
			t.Errorf("cgroups left behind: %v", m)
		}
	}
}

func etcdctl(ctx context.Context, h *testbed.Host, args ...string) ([]byte, error) {
	base := []string{"etcdctl", "--endpoints=" + h.LocalEtcdURL(),
		"--cacert=/etc/kubernetes/pki/etcd/ca.crt",
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
		"--key=/etc/kubernetes/pki/etcd/healthcheck-client.key"}
	return h.Exec(ctx, append(base, args...)...)
}

// storySingleHostBed: kubeadm init on one host gives a genuine control plane
// whose apiserver stores its objects in the etcd static pod; a power cut
// takes the API away and a power-on brings it back with the data; the bed,
// left up, is found and replaced by the next bed-up of its name; the
// teardown leaves the machine as it was before the bed (before).
func storySingleHostBed(t *testing.T, b *testbed.Bed, before machineState) {
	ctx := context.Background()
	name := b.Name
	h1 := b.Host("h1")
	readMachineState(t).assertSame(t, before, "while the bed is up")

	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("apiserver does not answer: %v", err)
	}
	if v.GitVersion != testbed.KubernetesVersion {
		t.Errorf("apiserver version %s, want %s", v.GitVersion, testbed.KubernetesVersion)
	}
	for _, comp := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		waitPodRunning(t, b, "kube-system", comp+"-h1")
	}
	manifest, err := h1.ReadFile("/etc/kubernetes/manifests/etcd.yaml")
	if err != nil || !bytes.Contains(manifest, []byte("--initial-cluster=h1=https://"+h1.Address+":2380")) {
		t.Errorf("kubeadm's etcd manifest missing or unexpected (err %v):\n%s", err, manifest)
	}

	// The apiserver's data lives in that etcd: write an object, find its key.
	marker := "proof-" + time.Now().Format("150405")
	_, err = cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-marker"}, Data: map[string]string{"v": marker}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := etcdctl(ctx, h1, "get", "/registry/configmaps/default/e2e-marker")
	if err != nil || !bytes.Contains(out, []byte(marker)) {
		t.Fatalf("object not found in h1's etcd (err %v): %q", err, out)
	}

	// Its sshd lets root in by key, ops sudo without a password, nosudo not.
	if out, err := sshHost(ctx, b, "root", h1.Address, "hostname"); err != nil || strings.TrimSpace(string(out)) != h1.NodeName() {
		t.Errorf("ssh root@%s hostname: %v: %q", h1.Address, err, out)
	}
	if out, err := sshHost(ctx, b, testbed.SSHUserSudo, h1.Name, "sudo", "-n", "true"); err != nil {
		t.Errorf("ssh %s@h1 sudo -n true: %v: %q", testbed.SSHUserSudo, err, out)
	}
	if out, err := sshHost(ctx, b, testbed.SSHUserNoSudo, h1.Name, "sudo", "-n", "true"); err == nil {
		t.Errorf("ssh %s@h1 sudo -n true succeeded: %q", testbed.SSHUserNoSudo, out)
	}

	// Power cut: the API goes away; power on: it comes back with the object.
	if err := h1.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Discovery().ServerVersion(); err == nil {
		t.Fatal("apiserver still answers with its only host powered off")
	}
	if out, err := sshHost(ctx, b, "root", h1.Name, "true"); err == nil {
		t.Errorf("ssh to h1 still works with h1 powered off: %q", out)
	}
	start := time.Now()
	if err := h1.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	var cm *corev1.ConfigMap
	deadline := time.Now().Add(3 * time.Minute)
	for cm == nil && time.Now().Before(deadline) {
		got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "e2e-marker", metav1.GetOptions{})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		cm = got
	}
	if cm == nil || cm.Data["v"] != marker {
		t.Fatalf("after power-on the object is not back: %+v", cm)
	}
	t.Logf("API back %s after power-on", time.Since(start).Round(100*time.Millisecond))
	// The same host key (known_hosts is strict) after the power cycle.
	if out, err := sshHost(ctx, b, "root", h1.Name, "true"); err != nil {
		t.Errorf("ssh to h1 after power-on: %v: %q", err, out)
	}

	// The bed is now left up as a crashed test would leave it: the next
	// bed-up of its name finds and replaces it.
	leftoverBedReplaced(t, name, b.Subnet)

	if err := testbed.Down(ctx, name, "", logWriter{t}); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, name)
	readMachineState(t).assertSame(t, before, "after teardown")
}

// sshHost runs a command on a host over SSH, from the real machine, as the
// bed's ssh config file says.
func sshHost(ctx context.Context, b *testbed.Bed, user, host string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := append([]string{"-F", b.SSH().ConfigFile, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", user + "@" + host}, args...)
	return exec.CommandContext(ctx, "ssh", full...).CombinedOutput()
}

// node is the node (and etcd member) name of the bed's host name: h1 on
// most beds, h1.cp.example.internal on the scale chain's (dotted names).
func node(b *testbed.Bed, name string) string {
	if h := b.Host(name); h != nil {
		return h.NodeName()
	}
	return name
}

// hasRow reports whether a line of out starts with these fields, whatever
// the spaces between them (a table's columns are as wide as its names).
func hasRow(out string, fields ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= len(fields) && strings.Join(f[:len(fields)], " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

func waitPodRunning(t *testing.T, b *testbed.Bed, ns, name string) *corev1.Pod {
	t.Helper()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	var last string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning {
			return p
		}
		if err != nil {
			last = err.Error()
		} else {
			last = string(p.Status.Phase)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("pod %s/%s not running: %s", ns, name, last)
	return nil
}

// bedShape checks the roles a bed was asked for are what kubeadm made:
// every control-plane node labelled so and with kube-apiserver's manifest,
// etcd's manifest only where a member was asked for, workers without
// either. (It stands for the old TestMultiHostBed's shape checks, on the
// beds that have these roles anyway.)
func bedShape(t *testing.T, b *testbed.Bed, roles map[string]testbed.Role) {
	t.Helper()
	ctx := context.Background()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	isCP := map[string]bool{}
	for _, n := range nodes.Items {
		_, isCP[n.Name] = n.Labels["node-role.kubernetes.io/control-plane"]
	}
	if len(nodes.Items) != len(roles) {
		t.Errorf("%d nodes, want %d: %v", len(nodes.Items), len(roles), isCP)
	}
	for name, role := range roles {
		cp := role != testbed.RoleWorker
		member := role == testbed.RoleInit || role == testbed.RoleControlPlane
		if isCP[name] != cp {
			t.Errorf("node %s (role %s): control-plane label %v, want %v", name, role, isCP[name], cp)
		}
		_, err := b.Host(name).ReadFile("/etc/kubernetes/manifests/kube-apiserver.yaml")
		if (err == nil) != cp {
			t.Errorf("%s (role %s): kube-apiserver manifest present %v, want %v", name, role, err == nil, cp)
		}
		_, err = b.Host(name).ReadFile("/etc/kubernetes/manifests/etcd.yaml")
		if (err == nil) != member {
			t.Errorf("%s (role %s): etcd manifest present %v, want %v", name, role, err == nil, member)
		}
	}
}

// storyCableCut: the bed's cut cable (testbed Host.Disconnect), which later
// stories use for partitions: h1 can no longer reach h2's etcd; plugged back
// in, it can. With three members the cut never costs the quorum.
func storyCableCut(t *testing.T, b *testbed.Bed) {
	ctx := context.Background()
	reach := func() error {
		_, err := b.Host("h1").Exec(ctx, "etcdctl", "--endpoints=https://"+b.Host("h2").Address+":2379", "--dial-timeout=2s", "--command-timeout=3s",
			"--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
			"--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "endpoint", "health")
		return err
	}
	if err := reach(); err != nil {
		t.Fatalf("h2's etcd not reachable before the cut: %v", err)
	}
	if err := b.Host("h2").Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reach(); err == nil {
		t.Error("h2's etcd still reachable with its cable cut")
	}
	if err := b.Host("h2").Reconnect(ctx); err != nil {
		t.Fatal(err)
	}
	var rerr error
	for i := 0; i < 20; i++ {
		if rerr = reach(); rerr == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if rerr != nil {
		t.Errorf("h2's etcd not reachable after reconnecting: %v", rerr)
	}
}

// leftoverBedReplaced: a bed left behind (as after a crash) is detected and
// replaced by the next bed-up of its name. The replacement is one bare
// host: the detection and the teardown are what is tested, not kubeadm.
func leftoverBedReplaced(t *testing.T, name, subnet string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log bytes.Buffer
	b2, err := testbed.Up(ctx, testbed.Options{Name: name, Subnet: subnet, Roles: []testbed.Role{testbed.RoleBare}, Log: &log})
	if err != nil {
		t.Fatalf("bed-up over a leftover bed: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), `found a previous bed "`+name+`" left behind`) {
		t.Errorf("the leftover bed was not reported:\n%s", log.String())
	}
	if len(b2.Hosts) != 1 {
		t.Errorf("replacement bed has %d hosts", len(b2.Hosts))
	}
	if _, err := b2.Host("h1").ReadFile("/etc/kubernetes/manifests/etcd.yaml"); err == nil {
		t.Error("the replacement bare host has the old bed's etcd manifest")
	}
}

// hostPod: a privileged pod pinned to h2 with the host's / at /host writes a
// file that appears on h2 only; the pod is deleted afterwards.
func hostPod(t *testing.T, b *testbed.Bed) {
	ctx := context.Background()
	cs, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	proof := "/etc/kubernetes/e2e-host-pod-proof"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-host-pod", Namespace: "kube-system"},
		Spec: corev1.PodSpec{
			NodeName:      node(b, "h2"),
			HostNetwork:   true,
			HostPID:       true,
			RestartPolicy: corev1.RestartPolicyNever,
			Tolerations:   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "w", Image: testbed.ToolboxImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"/bin/sh", "-c", "echo written-by-pod > /host" + proof},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
				VolumeMounts:    []corev1.VolumeMount{{Name: "host", MountPath: "/host"}},
			}},
			Volumes: []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
		},
	}
	if _, err := cs.CoreV1().Pods("kube-system").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var phase corev1.PodPhase
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods("kube-system").Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil {
			phase = p.Status.Phase
			if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	if phase != corev1.PodSucceeded {
		t.Fatalf("host pod ended %q", phase)
	}
	got, err := b.Host("h2").ReadFile(proof)
	if err != nil || strings.TrimSpace(string(got)) != "written-by-pod" {
		t.Errorf("file not on h2: %v %q", err, got)
	}
	for _, other := range b.Hosts {
		if other.Name == "h2" {
			continue
		}
		if _, err := other.ReadFile(proof); err == nil {
			t.Errorf("file written on h2 also appears on %s", other.Name)
		}
	}
	if err := cs.CoreV1().Pods("kube-system").Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := cs.CoreV1().Pods("kube-system").Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Error("host pod still exists after delete")
}

// TestNotRoot: the bed refuses to run without root, before touching anything.
func TestNotRoot(t *testing.T) {
	dir, err := os.MkdirTemp("", "e2e-notroot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "testbed")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/testbed")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	cmd := exec.Command(bin, "up", "--name", "e2enotroot", "--hosts", "1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must run as root") {
		t.Errorf("want a must-run-as-root error, got %v: %s", err, out)
	}
	if left := testbed.Leftovers("e2enotroot", ""); len(left) > 0 {
		t.Errorf("a refused bed-up left %v", left)
	}
}
