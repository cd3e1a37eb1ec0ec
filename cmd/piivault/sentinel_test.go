package main

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
)

// TestFollowsASentinelFailover runs piivault on REDIS_URL=redis+sentinel://
// against a real primary, replica and three Sentinels, kills the primary,
// and shows piivault working on the promoted replica without a restart.
func TestFollowsASentinelFailover(t *testing.T) {
	s, err := devstack.StartSentinel(1)
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	h := newHarness(t, nil, map[string]string{"REDIS_URL": s.URL})
	h.storeOrder("ord-sen1")
	_, ful := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-sen1/shipping?reason=label", ful, nil).Status)

	// Replication is asynchronous: let the replica catch up before the crash,
	// so this test is about following the failover, not about losing writes.
	primary := redis.NewClient(&redis.Options{Addr: s.Primary})
	require.NoError(t, primary.Do(context.Background(), "WAIT", 1, 5000).Err())
	primary.Close()
	s.StopPrimary()

	// Requests answer 503 while the Sentinels elect; then they work again.
	start := time.Now()
	pollUntil(t, 45*time.Second, 250*time.Millisecond, func() bool {
		return h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-sen2")).Status == 201
	}, "piivault follows the promoted replica")
	t.Logf("writes resumed %s after the primary died", time.Since(start).Round(100*time.Millisecond))
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-sen1/shipping?reason=label", ful, nil).Status,
		"an order stored before the failover is still there")
	v, err := h.app.audit.Verify(context.Background())
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
}
