package etcdcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EndpointStatus is one member's own answer to a status request: its
// identity (Header.MemberId, Header.ClusterId), leader, raft index and term,
// revision (Header.Revision).
type EndpointStatus = clientv3.StatusResponse

// One-endpoint calls: a host asking its own member, or a survey asking each
// member on its own, where no quorum can be assumed. Each dials just that
// endpoint (2 s) and gives the call its own timeout.
const (
	endpointDialTimeout = 2 * time.Second
)

// onEndpoint runs call with a client of endpoint alone and a context of
// timeout.
func onEndpoint(ctx context.Context, tlsCfg *tls.Config, endpoint string, timeout time.Duration, call func(context.Context, *clientv3.Client) error) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: endpointDialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return call(cctx, c)
}

// PortProbe is nil when endpoint's host:port accepts a plain TCP
// connection within timeout, else why not. A refused connection
// (errors.Is syscall.ECONNREFUSED) means nothing listens there: etcd's
// client would only retry that dial until its call's timeout.
func PortProbe(ctx context.Context, endpoint string, timeout time.Duration) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("no host:port in %q", endpoint)
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// StatusOf asks endpoint for its own status within timeout; it needs no
// quorum. A member answers in milliseconds; a powered-off host costs the
// whole timeout, so callers that ask many keep it short.
func StatusOf(ctx context.Context, tlsCfg *tls.Config, endpoint string, timeout time.Duration) (*EndpointStatus, error) {
	var st *EndpointStatus
	err := onEndpoint(ctx, tlsCfg, endpoint, timeout, func(ctx context.Context, c *clientv3.Client) (err error) {
		st, err = c.Status(ctx, endpoint)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	return st, nil
}

// MembersAt is a serializable member list from endpoint alone, sorted by ID:
// it needs no quorum (the member answers from its own state).
func MembersAt(ctx context.Context, tlsCfg *tls.Config, endpoint string, timeout time.Duration) ([]Member, error) {
	var resp *clientv3.MemberListResponse
	err := onEndpoint(ctx, tlsCfg, endpoint, timeout, func(ctx context.Context, c *clientv3.Client) (err error) {
		resp, err = c.MemberList(ctx, clientv3.WithSerializable())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing members at %s: %w", endpoint, err)
	}
	var out []Member
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
