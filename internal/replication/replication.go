// Package replication makes an acknowledged change wait until Redis
// replicas hold it (PIIVAULT_REDIS_WAIT), so that a failover after the
// answer cannot take the change away.
//
// Redis's WAIT counts replica acknowledgements of the replication offset of
// the last write made on the same connection. A request's writes go out on
// whatever pooled connections were free, so the Waiter writes a barrier key
// and sends WAIT right behind it in one pipeline (one connection): the
// replication stream is ordered, so a replica that has the barrier has
// every write the request finished before it.
//
//	piivault:{wait}:barrier      string  the barrier written before WAIT on a single Redis (or Sentinel's primary)
//	piivault:{w<i>}:wait         string  the same on a Cluster, one per master: <i> is found so that the key's
//	                                     slot is served by that master (no MOVED)
package replication

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

// DefaultTimeout bounds one WAIT; it stays under the clients' 2 s read
// timeout so a missing replica is a 503, not a dropped connection.
const DefaultTimeout = time.Second

// Waiter waits for replicas. A nil Waiter (PIIVAULT_REDIS_WAIT=0) never waits.
type Waiter struct {
	rdb      redis.UniversalClient
	replicas int
	timeout  time.Duration

	mu       sync.Mutex
	barriers map[string]string // Cluster: master address -> a key in one of its slots
}

// New returns a Waiter for replicas replicas, or nil when replicas is 0.
func New(rdb redis.UniversalClient, replicas int, timeout time.Duration) *Waiter {
	if replicas <= 0 {
		return nil
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Waiter{rdb: rdb, replicas: replicas, timeout: timeout, barriers: map[string]string{}}
}

// Replicas is how many replicas each acknowledged change waits for.
func (w *Waiter) Replicas() int {
	if w == nil {
		return 0
	}
	return w.replicas
}

// Wait returns once every write this process finished before the call is
// held by the configured number of replicas (on every master of a
// Cluster). A timeout is StoreUnavailable: the change stays on the primary,
// and the caller's retry is safe because every acknowledged change is
// idempotent.
func (w *Waiter) Wait(ctx context.Context) error {
	if w == nil {
		return nil
	}
	timeout := w.timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout < time.Millisecond {
		return apperr.New(apperr.StoreUnavailable, "no time left to wait for Redis replicas")
	}
	if cc, ok := w.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			key, err := w.barrierFor(ctx, cc, c.Options().Addr)
			if err != nil {
				return apperr.Wrap(apperr.StoreUnavailable, err, "Redis is unavailable")
			}
			err = w.waitOn(ctx, c, key, timeout)
			if err != nil {
				// The slot may have moved: find the master's barrier afresh next time.
				w.mu.Lock()
				delete(w.barriers, c.Options().Addr)
				w.mu.Unlock()
			}
			return err
		})
	}
	return w.waitOn(ctx, w.rdb, "piivault:{wait}:barrier", timeout)
}

func (w *Waiter) waitOn(ctx context.Context, c redis.Cmdable, key string, timeout time.Duration) error {
	var acks *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, "1", time.Minute)
		acks = p.Do(ctx, "WAIT", w.replicas, max(timeout.Milliseconds(), 1))
		return nil
	})
	if err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "Redis is unavailable")
	}
	if n, _ := acks.Int64(); n < int64(w.replicas) {
		return apperr.New(apperr.StoreUnavailable,
			"the change reached %d of %d Redis replicas in time; retry", n, w.replicas)
	}
	return nil
}

// barrierFor finds a key that the master at addr serves, asking the
// Cluster client itself (so addresses compare as go-redis writes them),
// and remembers it.
func (w *Waiter) barrierFor(ctx context.Context, cc *redis.ClusterClient, addr string) (string, error) {
	w.mu.Lock()
	key, ok := w.barriers[addr]
	w.mu.Unlock()
	if ok {
		return key, nil
	}
	// 16,384 slots over a handful of masters: a few tags find each one.
	for i := 0; i < 10_000; i++ {
		key = "piivault:{w" + strconv.Itoa(i) + "}:wait"
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return "", fmt.Errorf("cluster slots: %w", err)
		}
		if m.Options().Addr == addr {
			w.mu.Lock()
			w.barriers[addr] = key
			w.mu.Unlock()
			return key, nil
		}
	}
	return "", fmt.Errorf("no slots for master %s", addr)
}
