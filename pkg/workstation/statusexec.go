package workstation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdcluster"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdctl"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/etcdmetrics"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/hostapi"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/podexec"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/staticpod"
	"github.com/kubectl-etcd/kubectl-etcd/pkg/tunnel"
)

// The exec read path of `status`: etcdctl run inside the etcd static pods
// that already run, with their host's healthcheck-client certificate (by
// path). It creates no pod and signs no certificate, so status answers in
// about the time of one exec; see package etcdctl for why etcdctl is run at
// all. observe (a host pod signs a client certificate, members reached
// through the port-forward tunnel) stays the path of every verb that changes
// something, and status falls back to it when this one cannot answer.

const (
	// etcdContainer is the container of kubeadm's etcd static pod.
	etcdContainer = "etcd"
	// execMemberTimeout bounds one member's status (exec and etcdctl's own
	// 5 s), as etcdcluster's MemberTimeout bounds it on the tunnel path.
	execMemberTimeout = 7 * time.Second
	// execPodTimeout bounds one etcd pod's attempt at the member list.
	execPodTimeout = 10 * time.Second
)

// etcdPod is an etcd static pod as the exec path uses it.
type etcdPod struct {
	name, node string
	ready      bool
	access     etcdctl.Access
	// clientURLs are the member's advertised client URLs (kubeadm's
	// annotation on the pod), known before the member list is.
	clientURLs []string
	// metricsPort is etcd's plain-HTTP metrics listener on the host's
	// loopback (kubeadm's 2381), 0 when it has none (see quickread.go).
	metricsPort uint16
	// memberName and peerURLs are the member's --name and
	// --initial-advertise-peer-urls, for a look by metrics (which
	// identify a pod's member, not what it published).
	memberName string
	peerURLs   []string
	// pod is the mirror pod itself, for the manifest's drift.
	pod *corev1.Pod
}

// listEtcdPods lists kubeadm's etcd static pods.
func (s *Session) listEtcdPods(ctx context.Context) ([]etcdPod, error) {
	pods, err := s.Clientset.CoreV1().Pods(tunnel.Namespace).List(ctx, metav1.ListOptions{LabelSelector: tunnel.EtcdSelector})
	if err != nil {
		return nil, fmt.Errorf("listing etcd pods: %w", err)
	}
	var out []etcdPod
	for i := range pods.Items {
		p := &pods.Items[i]
		e := etcdPod{name: p.Name, node: p.Spec.NodeName, ready: p.Status.Phase == corev1.PodRunning && podReady(p), pod: p}
		for _, c := range p.Spec.Containers {
			if c.Name == etcdContainer {
				args := append(slices.Clone(c.Command), c.Args...)
				e.access = etcdctl.AccessFromArgs(args)
				e.metricsPort, _ = etcdmetrics.LoopbackPort(args)
				e.memberName = staticpod.FlagValue(args, "name")
				for _, u := range strings.Split(staticpod.FlagValue(args, "initial-advertise-peer-urls"), ",") {
					if u = strings.TrimSpace(u); u != "" {
						e.peerURLs = append(e.peerURLs, u)
					}
				}
			}
		}
		for _, u := range strings.Split(p.Annotations[tunnel.AdvertiseClientURLsAnnotation], ",") {
			if u = strings.TrimSpace(u); u != "" {
				e.clientURLs = append(e.clientURLs, u)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// observeByExec is observe without a host pod: the API objects, listed in
// parallel, and etcd as etcdctl in an etcd pod sees it. The result feeds
// the same report. An *execError means no etcd pod could answer (exec
// refused, no etcdctl, output that cannot be read); the caller then falls
// back to observe.
func (s *Session) observeByExec(ctx context.Context) (*observed, error) {
	o, err := s.listForExec(ctx, nil)
	if err != nil {
		return nil, err
	}
	return s.readEtcdByExec(ctx, o)
}

// listForExec is the API half of observeByExec: the objects, listed in
// parallel, and o.pods in the order the exec path asks them. onPods, when
// set, gets the etcd pods as soon as they are listed, before the other
// lists are in.
func (s *Session) listForExec(ctx context.Context, onPods func([]etcdPod)) (*observed, error) {
	o := &observed{}
	var pods []etcdPod
	var nodesErr, podsErr, apisErr error
	var wg sync.WaitGroup
	wg.Go(func() { o.nodes, nodesErr = s.ControlPlaneNodes(ctx) })
	wg.Go(func() {
		if pods, podsErr = s.listEtcdPods(ctx); podsErr == nil && onPods != nil {
			onPods(slices.Clone(pods))
		}
	})
	wg.Go(func() { o.apis, apisErr = s.APIServerEtcdServers(ctx) })
	wg.Go(func() { o.leases = s.nodeLeases(ctx) })
	wg.Go(func() { o.manifests.cc, o.manifests.ccErr = s.clusterConfiguration(ctx) })
	wg.Wait()
	o.now = time.Now()
	if err := errors.Join(nodesErr, podsErr, apisErr); err != nil {
		return nil, err
	}
	o.manifests.pods = map[string]*corev1.Pod{}
	for i, p := range pods {
		o.etcdPods = append(o.etcdPods, p.node)
		o.manifests.pods[p.node] = p.pod
		// A pod on a host whose kubelet went silent still shows ready for
		// a minute or so. Counted as not ready, it is tried last, and its
		// member is asked by an exec of its own: in the shared `endpoint
		// status`, etcdctl would wait its whole command timeout for it
		// (5 s per such member, one after another) before answering.
		if o.lagging(p.node) {
			pods[i].ready = false
		}
	}
	sort.Strings(o.etcdPods)
	// A stable order, ready pods on Ready nodes first: the first pod that
	// answers is used, and an exec to a host that is down can take the
	// apiserver long to give up on.
	readyNode := map[string]bool{}
	for _, n := range o.nodes {
		readyNode[n.Name] = n.Ready
	}
	first := func(p etcdPod) bool { return p.ready && readyNode[p.node] }
	sort.SliceStable(pods, func(i, j int) bool {
		if first(pods[i]) != first(pods[j]) {
			return first(pods[i])
		}
		return pods[i].node < pods[j].node
	})
	if len(pods) == 0 {
		return nil, errNoEtcdPod
	}
	o.pods = pods
	return o, nil
}

// readEtcdByExec is the etcd half of observeByExec: etcd as etcdctl in the
// first of o.pods that answers sees it.
func (s *Session) readEtcdByExec(ctx context.Context, o *observed) (*observed, error) {
	pods := o.pods
	// The serving certificates are read once, whichever pod answers, and
	// only when asked for: the handshakes through the tunnel cost about as
	// much as the execs (docs/bench/status.json).
	certs := &certProbes{s: s, ctx: ctx, all: !s.SkipCertExpiry, running: map[string]*certProbe{}}
	for _, p := range pods {
		for _, u := range p.clientURLs {
			certs.want(u)
		}
	}
	var errs []error
	var tried []string
	for _, p := range pods {
		run := func(ctx context.Context, argv []string) (*podexec.Result, error) {
			return s.exec.Run(ctx, podexec.Target{Namespace: tunnel.Namespace, Pod: p.name, Container: etcdContainer}, argv...)
		}
		r, err := readByExec(ctx, run, p, pods, o.nodes, certs)
		if err != nil {
			errs, tried = append(errs, err), append(tried, p.name)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		o.members, o.statuses, o.marker = r.members, r.statuses, r.marker
		return o, nil
	}
	return nil, &execError{sameIn(errs, tried)}
}

// sameIn joins the pods' errors, once when they differ only by the pod's
// name (exec forbidden, no etcdctl): the fallback's one line stays short.
func sameIn(errs []error, pods []string) error {
	if len(errs) < 2 {
		return errors.Join(errs...)
	}
	first := strings.ReplaceAll(errs[0].Error(), pods[0], "")
	for i, err := range errs[1:] {
		if strings.ReplaceAll(err.Error(), pods[i+1], "") != first {
			return errors.Join(errs...)
		}
	}
	return fmt.Errorf("%w (the same in %s)", errs[0], strings.Join(pods[1:], ", "))
}

// execError is the exec path failing in every etcd pod: what the host-pod
// path may still get past (exec forbidden by RBAC, no etcdctl in the
// image, output it cannot read, an expired healthcheck-client certificate).
// API errors are not: the other path would meet them too.
type execError struct{ err error }

func (e *execError) Error() string { return e.err.Error() }
func (e *execError) Unwrap() error { return e.err }

var errNoEtcdPod = errors.New("no etcd static pod in kube-system: this is not a kubeadm cluster with stacked etcd, or every member's host is down")

// execRead is what one etcd pod's etcdctl said.
type execRead struct {
	members  []etcdcluster.Member
	statuses []etcdcluster.Status
	marker   *hostapi.RecoveryMarker
}

// readByExec asks etcd through pod p, in as few execs as it can: each exec
// is a process started in the container through apiserver, kubelet and the
// runtime, and costs far more than the etcd call it carries. At once: the
// member list, and one `endpoint status` of every member whose etcd pod is
// ready (the client URLs the pods advertise stand in until the member list
// is there). etcdctl asks those one after another, so a member whose pod is
// not ready, or that has no pod, is asked by an exec of its own. Only when
// something is wrong are more calls made: the alarm list when a member
// reports errors, the recovery marker when a control-plane node has no
// member. Only the members' answers are waited for: an etcd pod whose host
// is no longer a member (cut off by a recovery, gone for good) says
// nothing status shows, and may take etcdctl's whole timeout to say it.
// run execs argv in p's etcd container.
func readByExec(ctx context.Context, run func(context.Context, []string) (*podexec.Result, error), p etcdPod, pods []etcdPod, nodes []Node, certs *certProbes) (*execRead, error) {
	where := tunnel.Namespace + "/" + p.name
	var ready, single []string
	for _, q := range pods {
		if q.ready {
			ready = append(ready, q.clientURLs...)
		} else {
			single = append(single, q.clientURLs...)
		}
	}
	var (
		members    []etcdcluster.Member
		membersErr error
		mu         sync.Mutex
		answers    = map[string]*statusAnswer{}
	)
	askAll := func(urls []string) {
		mu.Lock()
		defer mu.Unlock()
		var todo []string
		for _, u := range urls {
			if _, ok := answers[u]; !ok {
				todo = append(todo, u)
			}
		}
		if len(todo) == 0 {
			return
		}
		a := &statusAnswer{done: make(chan struct{})}
		for _, u := range todo {
			answers[u] = a
		}
		go func() {
			defer close(a.done)
			a.ask(ctx, run, p.access, todo, certs)
		}()
	}
	askAll(ready)
	for _, u := range single {
		askAll([]string{u})
	}
	listed := make(chan struct{})
	go func() {
		defer close(listed)
		lctx, cancel := context.WithTimeout(ctx, execPodTimeout)
		defer cancel()
		res, err := run(lctx, p.access.Command(etcdctl.MemberList...))
		if err == nil {
			err = exitError(res)
		}
		if err == nil {
			members, err = etcdctl.ParseMemberList(res.Stdout)
		}
		if err != nil {
			membersErr = fmt.Errorf("etcdctl member list in %s: %w", where, err)
			return
		}
		for _, m := range members {
			if len(m.ClientURLs) > 0 {
				certs.want(m.ClientURLs[0])
				askAll(m.ClientURLs[:1])
			}
		}
	}()
	<-listed
	if membersErr != nil {
		// The next pod is tried at once; this one's status execs end by
		// themselves, within etcdctl's timeouts.
		return nil, membersErr
	}
	r := &execRead{members: members}
	troubled := false
	for _, m := range members {
		mu.Lock()
		a := answers[firstOr(m.ClientURLs)]
		mu.Unlock()
		if a != nil {
			<-a.done
		}
		st, err := a.status(m, certs)
		if err != nil {
			return nil, fmt.Errorf("etcdctl endpoint status in %s: %w", where, err)
		}
		troubled = troubled || len(st.Errors) > 0
		r.statuses = append(r.statuses, st)
	}
	// Alarms are read through raft: without a quorum they fail, and status
	// shows none (etcd's own words for them stay in the members' errors),
	// as on the tunnel path. Every member lists the alarms in its status
	// errors, so with none there is nothing to ask.
	if troubled {
		actx, cancel := context.WithTimeout(ctx, execPodTimeout)
		defer cancel()
		if res, err := run(actx, p.access.Command(etcdctl.AlarmList...)); err == nil && res.ExitCode == 0 {
			if alarms, err := etcdctl.ParseAlarms(res.Stdout); err == nil {
				for i := range r.statuses {
					r.statuses[i].Alarms = alarms[r.statuses[i].Member.ID]
				}
			}
		}
	}
	// The marker only explains a control-plane node without a member.
	for _, n := range nodes {
		if memberAt(members, n) == nil {
			r.marker = readMarkerByExec(ctx, run, p.access)
			break
		}
	}
	return r, nil
}

// readMarkerByExec is readMarker through etcdctl: nil when there is none or
// it cannot be read.
func readMarkerByExec(ctx context.Context, run func(context.Context, []string) (*podexec.Result, error), access etcdctl.Access) *hostapi.RecoveryMarker {
	ctx, cancel := context.WithTimeout(ctx, execPodTimeout)
	defer cancel()
	res, err := run(ctx, access.Command(etcdctl.Get(hostapi.RecoveryMarkerKey)...))
	if err != nil || res.ExitCode != 0 {
		return nil
	}
	raw, found, err := etcdctl.ParseGet(res.Stdout)
	if err != nil || !found {
		return nil
	}
	return hostapi.ParseRecoveryMarker(raw)
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// exitError turns a non-zero exit of a command that must succeed into an
// error carrying what it said.
func exitError(res *podexec.Result) error {
	if res.ExitCode == 0 {
		return nil
	}
	return fmt.Errorf("exit code %d: %s", res.ExitCode, lastLine(string(res.Stderr)))
}

// statusAnswer is one `etcdctl endpoint status` of one or more client URLs.
type statusAnswer struct {
	// done is closed when the fields below are final.
	done     chan struct{}
	output   etcdctl.Output
	execErr  error
	timedOut time.Duration
	// refused: the only URL asked is one nothing listens on (see ask).
	refused bool
}

// ask runs etcdctl's endpoint status against urls, within etcdctl's own
// timeout per URL. A single URL whose handshake through the tunnel finds
// nothing listening is not waited for (etcd's client would retry until its
// command timeout): the member is down, as the tunnel path says too.
func (a *statusAnswer) ask(ctx context.Context, run func(context.Context, []string) (*podexec.Result, error), access etcdctl.Access, urls []string, certs *certProbes) {
	limit := execPodTimeout + time.Duration(len(urls)-1)*etcdctl.CommandTimeout
	// The exec is left to end by itself (etcdctl's own timeout) rather than
	// cancelled when the handshake settles it: client-go logs a cancelled
	// stream as an error.
	execCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	type execResult struct {
		res *podexec.Result
		err error
	}
	done := make(chan execResult, 1)
	go func() {
		defer cancel()
		res, err := run(execCtx, access.WithEndpoints(urls...).Command(etcdctl.EndpointStatus...))
		done <- execResult{res, err}
	}()
	var refused <-chan struct{}
	if len(urls) == 1 {
		refused = certs.refusedSignal(urls[0])
	}
	var r execResult
	select {
	case r = <-done:
	case <-refused:
		a.refused = true
		return
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	switch {
	case r.err != nil && execCtx.Err() != nil:
		a.timedOut = limit
	case r.err != nil:
		a.execErr = r.err
	default:
		a.output = etcdctl.Output{Stdout: r.res.Stdout, Stderr: r.res.Stderr, ExitCode: r.res.ExitCode}
	}
}

// status is m's status from the answer that asked about it: an error only
// when the exec itself failed or printed what cannot be read (the pod is
// then no good for status); a member that did not answer is a Status with
// Err, the tunnel's reason when it found nothing listening.
func (a *statusAnswer) status(m etcdcluster.Member, certs *certProbes) (etcdcluster.Status, error) {
	if a == nil { // no client URL: never started
		return etcdctl.StatusOf(m, nil)
	}
	u := m.ClientURLs[0]
	down := etcdcluster.Status{Member: m, Endpoint: u}
	var st etcdcluster.Status
	switch {
	case a.refused:
		st = down
	case a.timedOut > 0:
		down.Err = fmt.Errorf("status of member %s at %s: no answer within %s", describeMember(m), u, a.timedOut)
		st = down
	case a.execErr != nil:
		return etcdcluster.Status{}, a.execErr
	default:
		var err error
		if st, err = etcdctl.StatusOf(m, &a.output); err != nil {
			return etcdcluster.Status{}, err
		}
	}
	notAfter, refused := certs.result(u)
	if st.Err == nil && !notAfter.IsZero() {
		st.ServerCertNotAfter = notAfter
	}
	if refused != nil && (st.Err != nil || a.refused) {
		st.Err = fmt.Errorf("status of member %s: %w", describeMember(m), refused)
	}
	return st, nil
}

// describeMember names a member in errors as etcdcluster does.
func describeMember(m etcdcluster.Member) string {
	if m.Started() {
		return fmt.Sprintf("%s (%x)", m.Name, m.ID)
	}
	return fmt.Sprintf("%x (not started, peer URLs %v)", m.ID, m.PeerURLs)
}

// certProbes reads each client URL's serving certificate once, through the
// tunnel, alongside the execs: every member's when all is set, else only
// those of members asked by an exec of their own (likely down: the probe
// then tells at once).
type certProbes struct {
	s       *Session
	ctx     context.Context
	all     bool
	mu      sync.Mutex
	running map[string]*certProbe
}

// want starts u's probe if every member's expiry is wanted.
func (c *certProbes) want(u string) {
	if c.all {
		c.start(u)
	}
}

type certProbe struct {
	done     chan struct{}
	refused  chan struct{} // closed when nothing listens at the URL
	notAfter time.Time
	err      error
}

func (c *certProbes) start(u string) *certProbe {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.running[u]; ok {
		return p
	}
	p := &certProbe{done: make(chan struct{}), refused: make(chan struct{})}
	c.running[u] = p
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(c.ctx, execMemberTimeout)
		defer cancel()
		p.notAfter, p.err = c.s.servingCertNotAfter(ctx, u)
		if p.err != nil {
			close(p.refused)
		}
	}()
	return p
}

func (c *certProbes) refusedSignal(u string) <-chan struct{} { return c.start(u).refused }

// result waits for u's probe; nothing when there is none.
func (c *certProbes) result(u string) (time.Time, error) {
	c.mu.Lock()
	p, ok := c.running[u]
	c.mu.Unlock()
	if !ok {
		return time.Time{}, nil
	}
	<-p.done
	return p.notAfter, p.err
}

// errGotCertificate ends a handshake once the server has shown its
// certificate: nothing more is wanted from it.
var errGotCertificate = errors.New("got the server's certificate")

// servingCertNotAfter reads the expiry of the certificate a member serves
// its client URL with, through the apiserver's port-forward, with no client
// certificate: a TLS server sends its certificate before it asks for the
// client's. The chain is not verified (this process holds no etcd CA on
// this path); the date is shown, never trusted for anything. The member
// logs a rejected connection for each such handshake. The error is a
// handshake that failed after the tunnel opened: nothing listens there.
func (s *Session) servingCertNotAfter(ctx context.Context, clientURL string) (time.Time, error) {
	u, err := url.Parse(clientURL)
	if err != nil || u.Host == "" || u.Scheme != "https" {
		return time.Time{}, nil
	}
	conn, err := s.dialer.DialContext(ctx, u.Host)
	if err != nil {
		return time.Time{}, nil // no tunnel: no expiry shown, etcdctl decides
	}
	defer conn.Close()
	var notAfter time.Time
	tc := tls.Client(conn, &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // read only: see above
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				if c, err := x509.ParseCertificate(raw[0]); err == nil {
					notAfter = c.NotAfter
				}
			}
			return errGotCertificate
		},
	})
	if err := tc.HandshakeContext(ctx); err != nil && !errors.Is(err, errGotCertificate) {
		return time.Time{}, fmt.Errorf("TLS handshake with %s: %w", clientURL, err)
	}
	return notAfter, nil
}
