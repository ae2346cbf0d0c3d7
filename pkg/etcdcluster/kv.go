package etcdcluster

import (
	"context"
	"fmt"
)

// Get reads one key linearizably (it needs a quorum); found is false when
// the key does not exist. CallTimeout bounds it.
func (c *Client) Get(ctx context.Context, key string) (value []byte, found bool, err error) {
	ctx, cancel := bound(ctx, c.cfg.CallTimeout)
	defer cancel()
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s via %s: %w", key, c.via(), c.explain(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

// Put writes one key (it needs a quorum). CallTimeout bounds it.
func (c *Client) Put(ctx context.Context, key, value string) error {
	ctx, cancel := bound(ctx, c.cfg.CallTimeout)
	defer cancel()
	if _, err := c.cli.Put(ctx, key, value); err != nil {
		return fmt.Errorf("writing %s via %s: %w", key, c.via(), c.explain(err))
	}
	return nil
}
