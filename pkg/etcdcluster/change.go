package etcdcluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// retryPoll is how often a waiting change is tried again (a learner that
// has not started or caught up, a cluster etcd calls unhealthy for now). A
// learner catches up in seconds on a small cluster; polling faster would only
// add load on the leader.
const retryPoll = 500 * time.Millisecond

// retryUnhealthy repeats a membership change while etcd refuses it as
// "unhealthy cluster". With its default strict reconfiguration check, etcd
// refuses adds and removes until the member handling the request has been
// connected to a quorum of peers for 5 seconds, which is the case for a while
// after any member (re)starts: a wait, not a failure.
func retryUnhealthy(ctx context.Context, op func() error) error {
	for {
		err := op()
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (etcd refuses membership changes until the member asked has been connected "+
				"to a quorum of peers for 5s; gave up waiting: %v)", err, ctx.Err())
		case <-time.After(retryPoll):
		}
	}
}

// AddLearner adds a learner with peerURL and returns it along with the whole
// membership. It is idempotent: if a member with that peer URL exists already
// (learner or voter, e.g. from an interrupted earlier run) it is returned and
// nothing is added. ChangeTimeout bounds it.
func (c *Client) AddLearner(ctx context.Context, peerURL string) (self Member, all []Member, err error) {
	if peerURL == "" {
		return Member{}, nil, errors.New("adding a learner: empty peer URL")
	}
	ctx, cancel := bound(ctx, c.cfg.ChangeTimeout)
	defer cancel()
	all, err = c.members(ctx)
	if err != nil {
		return Member{}, nil, fmt.Errorf("adding learner %s: %w", peerURL, err)
	}
	if m, ok := FindByPeerURL(all, peerURL); ok {
		return m, all, nil
	}
	var resp *clientv3.MemberAddResponse
	err = retryUnhealthy(ctx, func() (err error) {
		resp, err = c.cli.MemberAddAsLearner(ctx, []string{peerURL})
		return err
	})
	switch {
	case err == nil:
		return fromPB(resp.Member), fromPBs(resp.Members), nil
	case errors.Is(err, rpctypes.ErrPeerURLExist):
		// Someone (a retry racing us, another host) added it between our
		// list and our add: then it is ours to return.
		all, lerr := c.members(ctx)
		if lerr != nil {
			return Member{}, nil, fmt.Errorf("adding learner %s: it exists already, but listing it: %w", peerURL, lerr)
		}
		if m, ok := FindByPeerURL(all, peerURL); ok {
			return m, all, nil
		}
		return Member{}, nil, fmt.Errorf("adding learner %s: etcd says the peer URL exists, yet no member has it: %w", peerURL, err)
	case errors.Is(err, rpctypes.ErrTooManyLearners):
		if all, lerr := c.members(ctx); lerr == nil {
			for _, m := range all {
				if m.IsLearner {
					return Member{}, nil, fmt.Errorf("adding learner %s: member %s is still a learner and etcd allows only one at a time; "+
						"promote it (its etcd must be running and caught up) or remove it first: %w", peerURL, describe(m), err)
				}
			}
		}
		return Member{}, nil, fmt.Errorf("adding learner %s: another learner is pending and etcd allows only one at a time; "+
			"promote or remove it first: %w", peerURL, err)
	default:
		return Member{}, nil, fmt.Errorf("adding learner %s via %s: %w", peerURL, c.via(), err)
	}
}

// Promote makes learner id a voting member. It waits, until ctx ends, for the
// learner's etcd to start and to catch up with the leader, since etcd refuses
// to promote a learner that lags. A member that is already a voter is success.
// PromoteTimeout bounds it.
func (c *Client) Promote(ctx context.Context, id uint64) error {
	ctx, cancel := bound(ctx, c.cfg.PromoteTimeout)
	defer cancel()
	var waitingFor string // why the last attempt did not promote, for the timeout error
	for {
		members, err := c.members(ctx)
		if err != nil {
			if waitingFor != "" && ctx.Err() != nil {
				return fmt.Errorf("promoting member %x: gave up while %s: %w", id, waitingFor, err)
			}
			return fmt.Errorf("promoting member %x: %w", id, err)
		}
		m, ok := Find(members, id)
		if !ok {
			return fmt.Errorf("promoting member %x: no such member", id)
		}
		if !m.IsLearner {
			return nil
		}
		if !m.Started() {
			waitingFor = "waiting for the learner's etcd to start and join"
		} else {
			_, err := c.cli.MemberPromote(ctx, id)
			switch {
			case err == nil, errors.Is(err, rpctypes.ErrMemberNotLearner):
				return nil
			case errors.Is(err, rpctypes.ErrMemberLearnerNotReady):
				waitingFor = "waiting for the learner to catch up with the leader"
			case ctx.Err() != nil && waitingFor != "":
				return fmt.Errorf("promoting member %s: gave up while %s: %w", describe(m), waitingFor, err)
			default:
				return fmt.Errorf("promoting member %s: %w", describe(m), err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promoting member %s: gave up while %s: %w", describe(m), waitingFor, ctx.Err())
		case <-time.After(retryPoll):
		}
	}
}

// Remove removes member id. A member that is not (or no longer) in the
// cluster is success. Whether removing it is safe is CheckRemove's question.
// ChangeTimeout bounds it.
func (c *Client) Remove(ctx context.Context, id uint64) error {
	ctx, cancel := bound(ctx, c.cfg.ChangeTimeout)
	defer cancel()
	members, err := c.members(ctx)
	if err != nil {
		return fmt.Errorf("removing member %x: %w", id, err)
	}
	m, ok := Find(members, id)
	if !ok {
		return nil
	}
	err = retryUnhealthy(ctx, func() error {
		_, err := c.cli.MemberRemove(ctx, id)
		return err
	})
	// etcd answers "member not found" also for an ID removed meanwhile.
	if err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
		// The member that answered may be the one removed: it stops as
		// soon as the removal applies, and its answer is then "server
		// stopped". Ask again (through another member) whether it is gone.
		if c.gone(ctx, id, members) {
			return nil
		}
		return fmt.Errorf("removing member %s: %w", describe(m), err)
	}
	return nil
}

// gone reports whether the member list, read for up to 15 seconds, no
// longer has id. It asks the other members, through a client of its own:
// the removed member stops as the removal applies, and a client whose
// connection is on it can spend its whole deadline on that connection
// (seen in session 10: "server stopped", then 10 s of nothing).
func (c *Client) gone(ctx context.Context, id uint64, members []Member) bool {
	check := c.cli
	var others []string
	for _, m := range members {
		if m.ID != id {
			others = append(others, m.ClientURLs...)
		}
	}
	if len(others) > 0 {
		if cli, err := newEtcdClient(c.cfg, others); err == nil {
			defer cli.Close()
			check = cli
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := check.MemberList(actx)
		acancel()
		if err == nil {
			_, found := Find(fromPBs(resp.Members), id)
			return !found
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// MoveLeader hands leadership to member to. etcd accepts the request only at
// the current leader, so the leader is found and dialled directly. If to
// already leads, nothing is done. ChangeTimeout bounds it.
func (c *Client) MoveLeader(ctx context.Context, to uint64) error {
	ctx, cancel := bound(ctx, c.cfg.ChangeTimeout)
	defer cancel()
	statuses, err := c.statuses(ctx)
	if err != nil {
		return fmt.Errorf("moving leadership to %x: %w", to, err)
	}
	leader, err := leaderOf(statuses)
	if err != nil {
		return fmt.Errorf("moving leadership to %x: %w", to, err)
	}
	var target *Status
	for i := range statuses {
		if statuses[i].Member.ID == to {
			target = &statuses[i]
		}
	}
	switch {
	case target == nil:
		return fmt.Errorf("moving leadership to %x: no such member", to)
	case leader.Member.ID == to:
		return nil
	case target.Member.IsLearner:
		return fmt.Errorf("moving leadership to %s: it is a learner, and only voting members can lead", describe(target.Member))
	}
	cli, err := newEtcdClient(c.cfg, []string{leader.Endpoint})
	if err != nil {
		return fmt.Errorf("moving leadership from %s to %s: %w", describe(leader.Member), describe(target.Member), err)
	}
	defer cli.Close()
	if _, err := cli.MoveLeader(ctx, to); err != nil {
		return fmt.Errorf("moving leadership from %s to %s (asking %s): %w",
			describe(leader.Member), describe(target.Member), leader.Endpoint, err)
	}
	return nil
}
