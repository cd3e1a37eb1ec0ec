package replication

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/internal/devstack"
)

func TestNoWaiterWhenZeroReplicas(t *testing.T) {
	var w *Waiter = New(nil, 0, 0)
	require.Nil(t, w)
	require.NoError(t, w.Wait(context.Background()))
	require.Zero(t, w.Replicas())
}

// TestWaitSeesRealReplicas: a primary with a replica confirms; a Redis
// without one times out as StoreUnavailable (a 503 to the caller).
func TestWaitSeesRealReplicas(t *testing.T) {
	ctx := context.Background()
	s, err := devstack.StartSentinel(1)
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	primary := redis.NewClient(&redis.Options{Addr: s.Primary})
	t.Cleanup(func() { primary.Close() })
	require.NoError(t, primary.Set(ctx, "k", "v", 0).Err())
	require.NoError(t, New(primary, 1, time.Second).Wait(ctx))
	replica := redis.NewClient(&redis.Options{Addr: s.Replica})
	t.Cleanup(func() { replica.Close() })
	require.Equal(t, "v", replica.Get(ctx, "k").Val(), "what Wait confirmed is on the replica")

	err = New(primary, 2, 200*time.Millisecond).Wait(ctx)
	require.True(t, apperr.Is(err, apperr.StoreUnavailable), "%v", err)
	require.Contains(t, err.Error(), "1 of 2")
}

// TestWaitReachesEveryClusterMaster: the barrier goes to a key each master
// serves (no MOVED), and a Cluster without replicas cannot confirm.
func TestWaitReachesEveryClusterMaster(t *testing.T) {
	c, err := devstack.StartRedisCluster(3)
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { cc.Close() })
	w := New(cc, 1, 100*time.Millisecond)
	err = w.Wait(context.Background())
	require.True(t, apperr.Is(err, apperr.StoreUnavailable), "%v", err)
	require.Contains(t, err.Error(), "0 of 1")
	require.NotContains(t, err.Error(), "MOVED")
}
