package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
)

// TestWorksOnRedisCluster runs the whole order life cycle against a real
// three-node Redis Cluster: every script's keys share a hash tag, and the
// cross-shard reads (sweep, queue, deletion look-ups) reach every node.
func TestWorksOnRedisCluster(t *testing.T) {
	cluster, err := devstack.StartRedisCluster(3)
	require.NoError(t, err)
	t.Cleanup(cluster.Stop)
	// The walk-through's orders are kept for an hour: none of its steps
	// races their retention, however long 40 orders take. The sweep has
	// orders of its own, stored through an instance keeping them seconds.
	h := newHarness(t, nil, map[string]string{"REDIS_URL": cluster.URL, "PIIVAULT_RETENTION": "1h"})
	ctx := context.Background()

	for i := 0; i < 40; i++ { // 40 ids land on many shards, so on every node
		h.storeOrder(fmt.Sprintf("ord-cl%02d", i))
	}
	require.Equal(t, 200, h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-cl00")).Status, "idempotent on a cluster too")
	n, err := h.app.store.HeldCount(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 40, n)

	_, ful := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-cl07/shipping?reason=label", ful, nil).Status)
	q := h.call("GET", "/v1/fulfillment/queue?limit=500", ful, nil)
	require.Len(t, q.Body["orders"], 40)
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-cl07/shipped", ful, nil).Status)

	_, sup := h.login("support")
	r := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": "Canary.Zzyzx@example.com"})
	require.Equal(t, 201, r.Status, string(r.Raw))
	require.Len(t, r.Body["orders"], 39, "every held order of that email, on every node")

	// The sweep reaches every node: due orders on each of them, all
	// purged by one sweep, each once.
	short := newHarness(t, h.env, map[string]string{"REDIS_URL": cluster.URL, "PIIVAULT_RETENTION": "2s"})
	const swept = 40
	for i := 0; i < swept; i++ {
		short.storeOrder(fmt.Sprintf("ord-sw%02d", i))
	}
	h.storeOrder("ord-late") // kept for an hour: not due
	sleepPastExpiry(t, short, fmt.Sprintf("ord-sw%02d", swept-1))
	due := dueOnEachNode(t, h.app.redis)
	require.Len(t, due, 3, "every node holds due orders: %v", due)
	total := 0
	for node, n := range due {
		require.Positive(t, n, "node %s", node)
		total += n
	}
	require.Equal(t, swept, total)
	purged, err := h.app.purger.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, swept, purged, "the sweep purges the due orders of every node: %v", due)
	for i := 0; i < swept; i++ {
		ref := h.call("GET", fmt.Sprintf("/v1/orders/ord-sw%02d", i), h.apiKey, nil)
		require.Equal(t, "purged", ref.Body["status"], ref.Body["order_id"])
		require.Equal(t, "retention_expired", ref.Body["purge_reason"])
	}
	require.Equal(t, "held", h.call("GET", "/v1/orders/ord-late", h.apiKey, nil).Body["status"])
	purged, err = h.app.purger.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, purged, "each order is purged once")

	v, err := h.app.audit.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact)
	require.Equal(t, 200, h.call("GET", "/readyz", "", nil).Status)
}

// dueOnEachNode counts, on each master of the cluster, the held orders
// whose expires_at has passed, by reading every shard's expiry index there.
func dueOnEachNode(t *testing.T, rdb redis.UniversalClient) map[string]int {
	t.Helper()
	cc, ok := rdb.(*redis.ClusterClient)
	require.True(t, ok, "a cluster client, not %T", rdb)
	ctx := context.Background()
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	var mu sync.Mutex
	due := map[string]int{}
	// ForEachMaster calls fn on goroutines of its own: fn returns errors,
	// the test goroutine asserts.
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		keys, err := node.Keys(ctx, "piivault:*:expiry").Result()
		if err != nil {
			return err
		}
		n := 0
		for _, k := range keys {
			c, err := node.ZCount(ctx, k, "-inf", now).Result()
			if err != nil {
				return err
			}
			n += int(c)
		}
		mu.Lock()
		due[node.Options().Addr] = n
		mu.Unlock()
		return nil
	})
	require.NoError(t, err)
	return due
}
