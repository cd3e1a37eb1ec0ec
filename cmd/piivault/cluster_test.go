package main

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	h := newHarness(t, nil, map[string]string{"REDIS_URL": cluster.URL, "PIIVAULT_RETENTION": "2s"})
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

	time.Sleep(2100 * time.Millisecond)
	h.storeOrder("ord-late")
	_, err = h.app.purger.Sweep(ctx)
	require.NoError(t, err)

	v, err := h.app.audit.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact)
	require.Equal(t, 200, h.call("GET", "/readyz", "", nil).Status)
}
