package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// fakeStream is one SPDY stream; the test plays the kubelet at its far end.
type fakeStream struct {
	in       *io.PipeReader // what the kubelet sent, read by conn
	kubeOut  *io.PipeWriter // the kubelet writes here
	out      *io.PipeWriter // what conn sends
	kubeIn   *io.PipeReader // the kubelet reads here
	resetMu  sync.Mutex
	resetted bool
}

func newFakeStream() *fakeStream {
	in, kubeOut := io.Pipe()
	kubeIn, out := io.Pipe()
	return &fakeStream{in: in, kubeOut: kubeOut, out: out, kubeIn: kubeIn}
}

// Read returns io.EOF once the stream ended, however it ended, as spdystream does.
func (s *fakeStream) Read(p []byte) (int, error) {
	n, err := s.in.Read(p)
	if err != nil {
		err = io.EOF
	}
	return n, err
}
func (s *fakeStream) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s *fakeStream) Close() error                { return s.out.Close() }
func (s *fakeStream) Reset() error {
	s.resetMu.Lock()
	s.resetted = true
	s.resetMu.Unlock()
	s.in.Close()
	s.out.Close()
	return nil
}
func (s *fakeStream) Headers() http.Header { return http.Header{} }
func (s *fakeStream) Identifier() uint32   { return 1 }

// kubeEnd ends the stream from the kubelet's side, after msg if any.
func (s *fakeStream) kubeEnd(msg string) {
	if msg != "" {
		s.kubeOut.Write([]byte(msg))
	}
	s.kubeOut.Close()
}

type fakeConnection struct {
	streams   []*fakeStream
	closeChan chan bool
	once      sync.Once
}

func (c *fakeConnection) CreateStream(http.Header) (streamhttp.Stream, error) {
	return nil, errors.New("not supported")
}
func (c *fakeConnection) Close() error {
	c.lose()
	return nil
}

// lose ends the connection as losing the tunnel does: every stream ends.
func (c *fakeConnection) lose() {
	c.once.Do(func() {
		close(c.closeChan)
		for _, s := range c.streams {
			s.Reset()
		}
	})
}
func (c *fakeConnection) CloseChan() <-chan bool             { return c.closeChan }
func (c *fakeConnection) SetIdleTimeout(time.Duration)       {}
func (c *fakeConnection) RemoveStreams(...streamhttp.Stream) {}

const what = "port-forward to kube-system/etcd-h2 (node h2) for 10.0.0.12:2379"

func newTestConn(t *testing.T) (*conn, *fakeConnection, *fakeStream, *fakeStream) {
	t.Helper()
	data, errs := newFakeStream(), newFakeStream()
	up := &fakeConnection{streams: []*fakeStream{data, errs}, closeChan: make(chan bool)}
	c := newConn(up, data, errs, addr{"portforward/spdy", "kube-system/etcd-h2:2379"}, addr{"tcp", "10.0.0.12:2379"}, what)
	t.Cleanup(func() { c.Close() })
	return c, up, data, errs
}

func TestConnCarriesData(t *testing.T) {
	c, _, data, _ := newTestConn(t)
	go io.Copy(data.kubeOut, data.kubeIn) // the pod echoes
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if c.RemoteAddr().String() != "10.0.0.12:2379" || c.LocalAddr().Network() != "portforward/spdy" {
		t.Errorf("addresses %s %s", c.LocalAddr().Network(), c.RemoteAddr())
	}
}

func TestConnCloseIsIdempotentAndEndsEverything(t *testing.T) {
	c, up, data, errs := newTestConn(t)
	readErr := make(chan error)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Read returned %v, want net.ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	select {
	case <-up.CloseChan():
	case <-time.After(time.Second):
		t.Fatal("the upgraded connection was not closed")
	}
	for _, s := range []*fakeStream{data, errs} {
		s.resetMu.Lock()
		if !s.resetted {
			t.Error("a stream was not reset")
		}
		s.resetMu.Unlock()
	}
}

func TestConnDeadline(t *testing.T) {
	c, _, _, _ := newTestConn(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past deadline: %v", err)
	}
	// The connection still works after a deadline passed.
	c.SetReadDeadline(time.Time{})
}

func TestConnReportsKubeletError(t *testing.T) {
	c, _, data, errs := newTestConn(t)
	// What the kubelet does when nothing listens: message, then both streams end.
	msg := "error forwarding port 2379 to pod abc: dial tcp4 127.0.0.1:2379: connect: connection refused"
	data.kubeEnd("")
	time.Sleep(20 * time.Millisecond) // the error may come after the data stream ended
	errs.kubeEnd(msg)
	_, err := c.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), what) {
		t.Fatalf("Read: %v, want the kubelet's message and the target", err)
	}
	if _, err := c.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Write: %v, want the kubelet's message", err)
	}
}

func TestConnCleanEOF(t *testing.T) {
	c, _, data, errs := newTestConn(t)
	go func() {
		data.kubeOut.Write([]byte("bye"))
		data.kubeEnd("")
		errs.kubeEnd("")
	}()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "bye" {
		t.Fatalf("ReadAll: %q, %v; want bye and a clean EOF", b, err)
	}
}

func TestConnLostTunnel(t *testing.T) {
	c, up, _, _ := newTestConn(t)
	up.lose()
	_, err := c.Read(make([]byte, 1))
	if err == nil || !strings.Contains(err.Error(), "lost the connection") || !strings.Contains(err.Error(), what) {
		t.Fatalf("Read: %v", err)
	}
}

func etcdPod(name, node, ip, urls string, phase corev1.PodPhase) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase, PodIP: ip, HostIP: ip},
	}
	if urls != "" {
		p.Annotations = map[string]string{AdvertiseClientURLsAnnotation: urls}
	}
	return p
}

func TestPodFor(t *testing.T) {
	pods := []corev1.Pod{
		etcdPod("etcd-h1", "h1", "10.0.0.11", "https://10.0.0.11:2379", corev1.PodRunning),
		etcdPod("etcd-h2", "h2", "10.0.0.12", "https://10.0.0.12:2379,https://h2.example:2379", corev1.PodRunning),
		etcdPod("etcd-h3", "h3", "10.0.0.13", "", corev1.PodRunning),
		etcdPod("etcd-h6", "h6", "fd00::6", "https://[fd00::6]:2379", corev1.PodRunning),
		// h4 was readdressed to 10.0.0.14 and its old mirror pod lingers.
		etcdPod("etcd-h4", "h4", "10.0.0.14", "https://10.0.0.14:2379", corev1.PodRunning),
		etcdPod("etcd-h4-old", "h4-old", "10.0.0.99", "https://10.0.0.14:2379", corev1.PodPending),
		etcdPod("etcd-h5", "h5", "10.0.0.15", "https://10.0.0.15:2379", corev1.PodRunning),
		etcdPod("etcd-h5b", "h5b", "10.0.0.16", "https://10.0.0.15:2379", corev1.PodRunning),
	}
	for host, want := range map[string]string{
		"10.0.0.11":               "etcd-h1",
		"h2.example":              "etcd-h2",
		"10.0.0.13":               "etcd-h3", // by IP: no annotation
		"fd00:0:0:0:0:0:0:6":      "etcd-h6",
		"10.0.0.14":               "etcd-h4",
		"10.0.0.99":               "etcd-h4-old", // nobody advertises it; its IP says
		"10.0.0.20":               "",
		"::ffff:10.0.0.11":        "etcd-h1",
		"fd00::7":                 "",
		"etcd-h1.kube-system.pod": "",
	} {
		p, err := podFor(pods, host)
		if err != nil {
			t.Errorf("%s: %v", host, err)
			continue
		}
		got := ""
		if p != nil {
			got = p.Name
		}
		if got != want {
			t.Errorf("%s: got pod %q, want %q", host, got, want)
		}
	}
	if _, err := podFor(pods, "10.0.0.15"); err == nil || !strings.Contains(err.Error(), "etcd-h5 on h5, etcd-h5b on h5b") {
		t.Errorf("two running pods for one address: %v", err)
	}
}

func TestPods(t *testing.T) {
	// Pods and the matching share advertisedHosts; check the IP fallback here.
	p := etcdPod("etcd-h3", "h3", "10.0.0.13", "", corev1.PodRunning)
	if h := advertisedHosts(&p); len(h) != 0 {
		t.Errorf("advertisedHosts without annotation: %v", h)
	}
	if !strings.Contains(describePods([]corev1.Pod{p}), "etcd-h3 on h3: pod IP 10.0.0.13") {
		t.Errorf("describePods: %s", describePods([]corev1.Pod{p}))
	}
}

func TestDialErrors(t *testing.T) {
	if _, err := NewDialer(nil, nil); err == nil {
		t.Error("NewDialer accepted no config")
	}
	cfg := &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDialer(cfg, cs, WithProtocol(Protocol(9))); err == nil {
		t.Error("NewDialer accepted an unknown protocol")
	}
	d, err := NewDialer(cfg, cs)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"10.0.0.1":       "missing port",
		"10.0.0.1:0":     "invalid port",
		"10.0.0.1:2379":  "finding the etcd pod for 10.0.0.1:2379",
		"10.0.0.1:99999": "invalid port",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := d.DialContext(ctx, addr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DialContext(%s): %v, want %q", addr, err, want)
		}
	}
}

// fakeAPIServer lists one etcd pod and answers port-forward upgrades with
// upgrade (nil: hang until the test ends, which closes release), recording
// each attempt. An abandoned upgrade request stays open: handlers that hang
// must wait for release, not for the request's context.
func fakeAPIServer(t *testing.T, upgrade func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) (*rest.Config, <-chan string) {
	t.Helper()
	attempts := make(chan string, 10)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v1/namespaces/kube-system/pods" && r.URL.Query().Get("labelSelector") == EtcdSelector:
			list := corev1.PodList{
				TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
				Items:    []corev1.Pod{etcdPod("etcd-h2", "h2", "10.0.0.12", "https://10.0.0.12:2379", corev1.PodRunning)},
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(list)
		case r.URL.Path == "/api/v1/namespaces/kube-system/pods/etcd-h2/portforward":
			attempts <- r.Method + " " + r.Header.Get("Upgrade")
			if upgrade != nil {
				upgrade(w, r, release)
				return
			}
			<-release
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets hanging handlers end
	return &rest.Config{Host: srv.URL}, attempts
}

func newFakeDialer(t *testing.T, cfg *rest.Config, opts ...Option) *Dialer {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDialer(cfg, cs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A refused WebSocket upgrade falls back to SPDY; a hanging upgrade is
// bounded by the dial's context.
func TestDialFallsBackAndHonoursContext(t *testing.T) {
	cfg, attempts := fakeAPIServer(t, nil)
	d := newFakeDialer(t, cfg)
	// Refuse WebSocket the way an old apiserver does; hang on SPDY.
	cfg2, attempts2 := fakeAPIServer(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		if r.Header.Get("Upgrade") == "websocket" {
			http.Error(w, "no websockets here", http.StatusBadRequest)
			return
		}
		<-release
	})
	d2 := newFakeDialer(t, cfg2)
	for _, tc := range []struct {
		d        *Dialer
		attempts <-chan string
		want     []string
	}{
		{d, attempts, []string{"GET websocket"}},
		{d2, attempts2, []string{"GET websocket", "POST SPDY/3.1"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		_, err := tc.d.DialContext(ctx, "10.0.0.12:2379")
		cancel()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the dial took %s despite a 500ms context", took)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "port-forward to kube-system/etcd-h2 (node h2) for 10.0.0.12:2379") {
			t.Errorf("DialContext: %v", err)
		}
		for _, w := range tc.want {
			select {
			case got := <-tc.attempts:
				if got != w {
					t.Errorf("upgrade attempt %q, want %q", got, w)
				}
			case <-time.After(time.Second):
				t.Errorf("no upgrade attempt %q", w)
			}
		}
	}
}

// Only a refused upgrade falls back: with WebSocket forced, the refusal is
// the answer, and it names the target.
func TestDialWebSocketOnly(t *testing.T) {
	cfg, attempts := fakeAPIServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		http.Error(w, "no websockets here", http.StatusBadRequest)
	})
	d := newFakeDialer(t, cfg, WithProtocol(ProtocolWebSocket))
	_, err := d.DialContext(context.Background(), "10.0.0.12:2379")
	if err == nil || !strings.Contains(err.Error(), "port-forward to kube-system/etcd-h2 (node h2) for 10.0.0.12:2379: websocket upgrade") {
		t.Fatalf("DialContext: %v", err)
	}
	if got := <-attempts; got != "GET websocket" {
		t.Errorf("attempt %q", got)
	}
	select {
	case got := <-attempts:
		t.Errorf("unexpected second attempt %q", got)
	default:
	}
	t.Log(err)
}
