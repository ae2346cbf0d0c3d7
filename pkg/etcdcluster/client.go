package etcdcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

const (
	defaultDialTimeout   = 5 * time.Second
	defaultMemberTimeout = 5 * time.Second
	probeTimeout         = time.Second
)

// Config says how to reach the cluster.
type Config struct {
	// Endpoints are client URLs (https://host:2379) of one or more members.
	Endpoints []string
	// TLS is the client TLS configuration (CA and client certificate).
	TLS *tls.Config
	// DialTimeout bounds each attempt to open a connection. Default 5s.
	DialTimeout time.Duration
	// DialContext, if set, opens every connection instead of a direct TCP
	// dial; the workstation plugin tunnels through the API server with it.
	// addr is the host:port of the endpoint being dialled. ctx only bounds
	// the dial: the connection must outlive it.
	DialContext func(ctx context.Context, addr string) (net.Conn, error)
	// MemberTimeout bounds each member's answer in Statuses, so one dead
	// member costs at most this long. Default 5s.
	MemberTimeout time.Duration

	// etcd's client waits for an unreachable cluster indefinitely. With the
	// timeouts below set, every Client method bounds itself, so callers
	// pass their context as it is, and an unreachable cluster is an error
	// naming the call and the endpoints. Each bound starts when the method
	// is called; a caller's earlier deadline still wins. Zero leaves a
	// method bounded by the caller's context alone.

	// CallTimeout bounds one read or write: Members, Get, Put. Statuses and
	// Leader get twice as long: a member list, then every member's answer.
	CallTimeout time.Duration
	// ChangeTimeout bounds a membership change (AddLearner, Remove,
	// MoveLeader) as a whole, its retries included: etcd refuses changes
	// as "unhealthy cluster" for a while after any member (re)starts.
	ChangeTimeout time.Duration
	// PromoteTimeout bounds Promote, which waits for the learner's etcd to
	// start and catch up with the leader.
	PromoteTimeout time.Duration
	// DefragTimeout bounds one member's Defragment; 10 minutes when zero,
	// since etcd rewrites the whole database file at disk speed.
	DefragTimeout time.Duration
}

// bound gives a call its own deadline d from now, when d is set.
// context.WithTimeout keeps the parent's deadline when it is earlier.
func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Cluster is what kubectl-etcd's decisions read from an etcd cluster: the
// membership and every member's own status, from which the checks in this
// package (CheckAdd, CheckRemove, PickLeaderTarget, Votes) decide. *Client is
// the real one; etcdfake.Cluster answers from memory, so the code that waits
// on those answers can be tested without etcd (cluster-api's control plane
// keeps its etcd client behind such an interface too).
type Cluster interface {
	// Members is the membership as a quorum agrees on it.
	Members(ctx context.Context) ([]Member, error)
	// Statuses is every member's own answer, or why it gave none.
	Statuses(ctx context.Context) ([]Status, error)
}

var _ Cluster = (*Client)(nil)

// Client talks to one etcd cluster. Operations take a context, and bound
// themselves by the Config's timeouts; without either, a call to an
// unreachable cluster waits for it indefinitely (etcd's client waits for a
// connection rather than failing fast).
type Client struct {
	cfg Config
	cli *clientv3.Client
}

// New returns a client for the cluster. It does not contact the cluster:
// connections are made by the first call.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints given")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.MemberTimeout <= 0 {
		cfg.MemberTimeout = defaultMemberTimeout
	}
	cfg.Endpoints = slices.Clone(cfg.Endpoints)
	cli, err := newEtcdClient(cfg, cfg.Endpoints)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, cli: cli}, nil
}

func newEtcdClient(cfg Config, endpoints []string) (*clientv3.Client, error) {
	ccfg := clientv3.Config{
		Endpoints:   endpoints,
		TLS:         cfg.TLS,
		DialTimeout: cfg.DialTimeout,
		// The client logs every retry against a dead member; callers report
		// what matters through the errors returned.
		Logger: zap.NewNop(),
	}
	ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithContextDialer(cfg.dial))
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("creating etcd client for %s: %w", strings.Join(endpoints, ", "), err)
	}
	return cli, nil
}

// dial opens a connection to addr (host:port) within DialTimeout, through
// DialContext if set. etcd's client would otherwise let gRPC try for 20s.
func (cfg Config) dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if cfg.DialContext != nil {
		return cfg.DialContext(ctx, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.cli.Close() }

// via names the endpoints in errors, so a failure says which address was tried.
func (c *Client) via() string { return strings.Join(c.cfg.Endpoints, ", ") }

// Members lists the members with a linearizable read, so the answer reflects
// every change committed so far; it needs a quorum. CallTimeout bounds it.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	ctx, cancel := bound(ctx, c.cfg.CallTimeout)
	defer cancel()
	return c.members(ctx)
}

// members is Members within the caller's bound: the steps of a change or a
// promotion share the bound of the whole.
func (c *Client) members(ctx context.Context) ([]Member, error) {
	resp, err := c.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing etcd members via %s: %w", c.via(), c.explain(err))
	}
	return fromPBs(resp.Members), nil
}

// Statuses asks every member, in parallel, for its status at its own client
// URL. The member list is a serializable read, answered by whichever member
// is reachable even without a quorum: status matters most when things are
// broken. A member that does not answer within MemberTimeout is a Status
// with Err set; only failing to list the members at all is an error.
// Twice CallTimeout bounds it.
func (c *Client) Statuses(ctx context.Context) ([]Status, error) {
	ctx, cancel := bound(ctx, 2*c.cfg.CallTimeout)
	defer cancel()
	return c.statuses(ctx)
}

// statuses is Statuses within the caller's bound.
func (c *Client) statuses(ctx context.Context) ([]Status, error) {
	resp, err := c.cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("listing etcd members via %s: %w", c.via(), c.explain(err))
	}
	members := fromPBs(resp.Members)

	var alarms map[uint64][]string
	out := make([]Status, len(members))
	var wg sync.WaitGroup
	wg.Go(func() { alarms = c.alarms(ctx) })
	for i, m := range members {
		wg.Go(func() { out[i] = c.status(ctx, m) })
	}
	wg.Wait()
	for i := range out {
		out[i].Alarms = alarms[out[i].Member.ID]
	}
	return out, nil
}

func (c *Client) status(ctx context.Context, m Member) Status {
	s := Status{Member: m}
	if len(m.ClientURLs) == 0 {
		s.Err = fmt.Errorf("member %s has no client URL: it has not started", describe(m))
		return s
	}
	s.Endpoint = m.ClientURLs[0]
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MemberTimeout)
	defer cancel()
	// A connection and TLS handshake of our own first: a dead member then
	// fails at once and with the reason (connection refused, or through the
	// apiserver tunnel, a closed stream), where etcd's client would wait for
	// MemberTimeout and report only that time ran out. The handshake also
	// shows the member's serving certificate.
	notAfter, err := c.probe(ctx, s.Endpoint)
	if err != nil {
		s.Err = fmt.Errorf("status of member %s: %w", describe(m), err)
		return s
	}
	s.ServerCertNotAfter = notAfter
	resp, err := c.cli.Status(ctx, s.Endpoint)
	if err != nil {
		s.Err = fmt.Errorf("status of member %s at %s: %w", describe(m), s.Endpoint, err)
		return s
	}
	// A client URL that answers for another member (a port reused after a
	// rebuild) must not be mistaken for this member being alive.
	if got := resp.Header.GetMemberId(); got != m.ID {
		s.Err = fmt.Errorf("status of member %s at %s: the endpoint answered as member %x", describe(m), s.Endpoint, got)
		return s
	}
	s.ClusterID = resp.Header.GetClusterId()
	s.Leader = resp.Leader
	s.IsLeader = resp.Leader != 0 && resp.Leader == m.ID
	s.RaftIndex = resp.RaftIndex
	s.RaftAppliedIndex = resp.RaftAppliedIndex
	s.RaftTerm = resp.RaftTerm
	s.Revision = resp.Header.GetRevision()
	s.DBSize = resp.DbSize
	s.DBSizeInUse = resp.DbSizeInUse
	s.Version = resp.Version
	s.Errors = slices.Clone(resp.Errors)
	s.Healthy = s.Leader != 0
	return s
}

// probe opens a connection to endpoint's host:port the way the client does
// and, with TLS configured, completes a handshake (a tunnelled dial succeeds
// even when nothing listens behind it; the handshake does not). It returns
// the expiry of the member's serving certificate.
func (c *Client) probe(ctx context.Context, endpoint string) (time.Time, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return time.Time{}, nil // not a URL we can dial by hand; leave it to the client
	}
	conn, err := c.cfg.dial(ctx, u.Host)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot connect to %s: %w", endpoint, err)
	}
	defer conn.Close()
	if c.cfg.TLS == nil || u.Scheme != "https" {
		return time.Time{}, nil
	}
	cfg := c.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return time.Time{}, fmt.Errorf("TLS handshake with %s: %w", endpoint, err)
	}
	var notAfter time.Time
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		notAfter = certs[0].NotAfter
	}
	_ = tc.Close()
	return notAfter, nil
}

// explain adds to a timeout why the endpoints could not be reached, when a
// plain connection attempt tells (connection refused, no route to host):
// etcd's client waits for a connection and then reports only that time ran
// out. The probes get a moment of their own, as the caller's time is up.
func (c *Client) explain(err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	why := make([]error, len(c.cfg.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range c.cfg.Endpoints {
		wg.Go(func() { _, why[i] = c.probe(ctx, ep) })
	}
	wg.Wait()
	if joined := errors.Join(why...); joined != nil {
		return fmt.Errorf("%w (%s)", err, strings.ReplaceAll(joined.Error(), "\n", "; "))
	}
	return err
}

// alarms maps member IDs to their alarm names; nil when the list cannot be
// read (no quorum), which Status documents.
func (c *Client) alarms(ctx context.Context) map[uint64][]string {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.MemberTimeout)
	defer cancel()
	resp, err := c.cli.AlarmList(ctx)
	if err != nil {
		return nil
	}
	out := map[uint64][]string{}
	for _, a := range resp.Alarms {
		if a.Alarm != etcdserverpb.AlarmType_NONE {
			out[a.MemberID] = append(out[a.MemberID], a.Alarm.String())
		}
	}
	return out
}

// Leader returns the status of the member that reports itself leader. During
// a partition an old leader may still think it leads; the highest term wins.
// It is bounded as Statuses is.
func (c *Client) Leader(ctx context.Context) (Status, error) {
	statuses, err := c.Statuses(ctx)
	if err != nil {
		return Status{}, err
	}
	return leaderOf(statuses)
}

func leaderOf(statuses []Status) (Status, error) {
	var best *Status
	for i, s := range statuses {
		if s.IsLeader && (best == nil || s.RaftTerm > best.RaftTerm) {
			best = &statuses[i]
		}
	}
	if best == nil {
		return Status{}, fmt.Errorf("no etcd member reports being the leader: %s", summary(statuses))
	}
	return *best, nil
}

// summary lists every member with its state, for errors.
func summary(statuses []Status) string {
	var parts []string
	for _, s := range statuses {
		parts = append(parts, fmt.Sprintf("%s: %s", s.Member, s.Reason()))
	}
	if len(parts) == 0 {
		return "no members"
	}
	return strings.Join(parts, "; ")
}
