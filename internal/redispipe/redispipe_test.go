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
	freed := hold(t, s, 300*time.Millisecond)

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
	rdb, _ := startRedis(t)
	require.NoError(t, rdb.Set(context.Background(), "word", "not a number", 0).Err())
	s := redispipe.New(rdb, redispipe.Config{InFlight: 1})
	freed := hold(t, s, 200*time.Millisecond)

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
