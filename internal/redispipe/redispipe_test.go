package redispipe_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
	"piivault/internal/redispipe"
)

// pipelines counts the pipelines a client sends.
type pipelines struct{ n atomic.Int64 }

func (h *pipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

var _ redis.Hook = (*pipelines)(nil)

func startRedis(t *testing.T) (*redis.Client, *pipelines) {
	t.Helper()
	stack, err := devstack.StartRedis()
	require.NoError(t, err)
	t.Cleanup(stack.Stop)
	// DisableIdentity: a new connection sends no CLIENT SETINFO pipeline of its own.
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr, MaxRetries: -1, DisableIdentity: true})
	t.Cleanup(func() { _ = rdb.Close() })
	h := &pipelines{}
	rdb.AddHook(h)
	return rdb, h
}

// hold keeps the only pipeline slot busy for d (a BLPOP on an empty list),
// so that callers arriving meanwhile queue; it returns once the slot is
// taken, and the returned channel closes when it is free again.
func hold(t *testing.T, s *redispipe.Shared, d time.Duration) <-chan struct{} {
	t.Helper()
	taken, freed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(freed)
		assert.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) {
			close(taken)
			// Redis takes fractions of a second; go-redis's BLPop rounds up to one.
			p.Do(context.Background(), "BLPOP", "nothing", strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
		}))
	}()
	<-taken
	return freed
}

func TestCallersQueuedBehindABusyPipelineShareTheNextOne(t *testing.T) {
	rdb, sent := startRedis(t)
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})
	freed := hold(t, s, time.Second)

	const callers = 12
	var wg sync.WaitGroup
	got := make([]string, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k%d", i)
			var get *redis.StringCmd
			assert.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) {
				p.Set(context.Background(), key, i, 0)
				get = p.Get(context.Background(), key)
			}))
			got[i] = get.Val()
		}()
	}
	wg.Wait()
	<-freed
	for i := range callers {
		assert.Equal(t, fmt.Sprint(i), got[i], "each caller reads its own answer")
	}
	assert.EqualValues(t, 2, sent.n.Load(), "the held pipeline, then one for all twelve callers")
}

func TestOneCallersFailedCommandIsNotAnothers(t *testing.T) {
	rdb, sent := startRedis(t)
	require.NoError(t, rdb.Set(context.Background(), "word", "not a number", 0).Err())
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})
	freed := hold(t, s, 300*time.Millisecond)

	var incr *redis.IntCmd
	var get *redis.StringCmd
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		assert.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) { incr = p.Incr(context.Background(), "word") }))
	}()
	go func() {
		defer wg.Done()
		assert.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) { get = p.Get(context.Background(), "word") }))
	}()
	wg.Wait()
	<-freed
	require.EqualValues(t, 2, sent.n.Load(), "the held pipeline, then one for both callers")
	require.Error(t, incr.Err(), "INCR of a word fails")
	assert.NoError(t, get.Err(), "the other caller's read, in the same pipeline, does not")
	assert.Equal(t, "not a number", get.Val())
}

func TestACallerThatGivesUpWhileQueuedSendsNothing(t *testing.T) {
	rdb, _ := startRedis(t)
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})
	freed := hold(t, s, 300*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	filled := false
	err := s.Do(ctx, func(p redis.Pipeliner) {
		filled = true
		p.Set(context.Background(), "late", "written", 0)
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	<-freed
	// The next caller's pipeline is sent: the one that gave up is not in it.
	require.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) { p.Ping(context.Background()) }))
	assert.False(t, filled, "its commands were never queued")
	assert.ErrorIs(t, rdb.Get(context.Background(), "late").Err(), redis.Nil, "nothing was written")
}

func TestARedisThatIsDownFailsEachCommandNotTheCall(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s := redispipe.New(rdb, redispipe.Config{})

	var get *redis.StringCmd
	require.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) { get = p.Get(context.Background(), "k") }))
	require.Error(t, get.Err())
	assert.NotErrorIs(t, get.Err(), redis.Nil, "a refused connection is not an absent key")
}

// A pipeline can fail before a single command is sent: a new connection's
// AUTH refused (a rotated password). No command may then read as an empty
// answer: a block check would pass as "not blocked".
func TestAPipelineThatWasNeverSentFailsEveryCommand(t *testing.T) {
	stack, err := devstack.StartRedis()
	require.NoError(t, err)
	t.Cleanup(stack.Stop)
	admin := redis.NewClient(&redis.Options{Addr: stack.RedisAddr})
	require.NoError(t, admin.ConfigSet(context.Background(), "requirepass", "the-new-password").Err())
	require.NoError(t, admin.Close())
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr, MaxRetries: -1, Password: "the-old-password"})
	t.Cleanup(func() { _ = rdb.Close() })
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})

	check := func(t *testing.T) {
		var score *redis.FloatCmd
		var get *redis.StringCmd
		require.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) {
			score = p.ZScore(context.Background(), "blocks", "192.0.2.1")
			get = p.Get(context.Background(), "k")
		}))
		for _, err := range []error{score.Err(), get.Err()} {
			require.Error(t, err)
			assert.NotErrorIs(t, err, redis.Nil, "an unsent command is not an absent key")
		}
	}
	t.Run("sent on its own", check)
	t.Run("sent with others", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); check(t) }()
		}
		wg.Wait()
	})
}

func TestAPanicWhileQueuingIsTheCallersAndFreesThePipeline(t *testing.T) {
	rdb, _ := startRedis(t)
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})
	freed := hold(t, s, 300*time.Millisecond)

	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_ = s.Do(context.Background(), func(redis.Pipeliner) { panic("a bug in a caller") })
	}()
	assert.Equal(t, "a bug in a caller", <-panicked, "raised again on the caller's goroutine")
	<-freed
	var get *redis.StringCmd
	require.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) { get = p.Get(context.Background(), "k") }))
	assert.ErrorIs(t, get.Err(), redis.Nil, "the next caller is answered")
}

// A Cluster client sends a node's share of a pipeline again, whole, after
// some errors: there, callers never share one, so another caller's write
// cannot run twice.
func TestOnAClusterEachCallerSendsItsOwn(t *testing.T) {
	cluster, err := devstack.StartRedisCluster(3)
	require.NoError(t, err)
	t.Cleanup(cluster.Stop)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs, MaxRetries: -1, DisableIdentity: true})
	t.Cleanup(func() { _ = rdb.Close() })
	sent := &pipelines{}
	rdb.AddHook(sent)
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})
	freed := hold(t, s, 300*time.Millisecond)

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var set *redis.StatusCmd
			assert.NoError(t, s.Do(context.Background(), func(p redis.Pipeliner) {
				set = p.Set(context.Background(), fmt.Sprintf("k%d", i), i, 0)
			}))
			assert.NoError(t, set.Err())
		}()
	}
	wg.Wait()
	<-freed
	assert.EqualValues(t, 9, sent.n.Load(), "the held pipeline, and one for each caller")
}
