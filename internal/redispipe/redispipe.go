// Package redispipe lets concurrent requests share Redis pipelines, the way
// transit calls share batches: a request's reads and writes go out in one
// round trip with whatever other requests queued meanwhile.
//
// On loopback most of a round trip's cost is the two system calls on each
// side, not Redis's work, so sixteen requests in one pipeline cost little
// more than one. Nothing waits while idle: with a pipeline free and nobody
// queued, a request sends its own at once.
package redispipe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

var callers = promauto.NewHistogram(prometheus.HistogramOpts{
	Name: "piivault_redis_pipeline_callers", Help: "Requests whose Redis commands went out in one shared pipeline.",
	Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
})

// Shared sends callers' commands together. The zero value is not usable;
// build one with New.
type Shared struct {
	rdb      redis.UniversalClient
	timeout  time.Duration
	inFlight int
	// alone: every caller sends its own pipeline. A Cluster client sends
	// a node's share of a pipeline again, whole, after some errors (up
	// to MaxRedirects times): other callers' writes, already answered,
	// would run twice.
	alone bool

	mu      sync.Mutex
	busy    int    // pipelines being sent
	waiting []*job // callers queued for the next pipeline
}

// Config tunes a Shared.
type Config struct {
	InFlight int // pipelines sent at once (default 2)
	// Timeout bounds the wait for a connection (default 3s); the client's
	// read and write timeouts bound the round trip itself.
	Timeout time.Duration
}

// New shares rdb's pipelines.
func New(rdb redis.UniversalClient, cfg Config) *Shared {
	if cfg.InFlight <= 0 {
		cfg.InFlight = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	_, cluster := rdb.(*redis.ClusterClient)
	return &Shared{rdb: rdb, timeout: cfg.Timeout, inFlight: cfg.InFlight, alone: cluster}
}

// A job's states: queued, taken into a pipeline, or given up by its caller.
const (
	queued int32 = iota
	taken
	abandoned
)

type job struct {
	fill     func(redis.Pipeliner)
	state    atomic.Int32
	done     chan struct{}
	panicked any // what fill panicked with, raised again in the caller
}

// Do queues fill's commands and returns once they were answered. A nil
// error means they were sent: each command then carries its own result or
// error (one caller's failed command is not another's). An error means
// nothing was sent: ctx ended while the commands waited for a pipeline.
//
// fill runs once, on whichever goroutine sends the pipeline; it must only
// queue commands. Results are read after Do returns.
func (s *Shared) Do(ctx context.Context, fill func(redis.Pipeliner)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.alone {
		s.own(ctx, fill)
		return nil
	}
	s.mu.Lock()
	if s.busy < s.inFlight && len(s.waiting) == 0 {
		s.busy++
		s.mu.Unlock()
		defer s.next()
		s.own(ctx, fill)
		return nil
	}
	j := &job{fill: fill, done: make(chan struct{})}
	s.waiting = append(s.waiting, j)
	s.mu.Unlock()
	select {
	case <-j.done:
	case <-ctx.Done():
		if j.state.CompareAndSwap(queued, abandoned) {
			return ctx.Err()
		}
		// Already in a pipeline on its way: its answer comes within the
		// client's timeouts, and the caller must see it.
		<-j.done
	}
	if j.panicked != nil {
		panic(j.panicked)
	}
	return nil
}

// own sends the caller's commands alone, on its own goroutine.
func (s *Shared) own(ctx context.Context, fill func(redis.Pipeliner)) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	fill(pipe)
	callers.Observe(1)
	exec(ctx, pipe)
}

// exec sends pipe. A pipeline can fail before any command is sent (a new
// connection's AUTH refused, say) with its commands untouched: each then
// carries that error, so that no caller reads a command never sent as an
// empty answer (a block check must not pass as "not blocked").
func exec(ctx context.Context, pipe redis.Pipeliner) {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return // the error is a command's own: the pipeline was answered
		}
	}
	for _, c := range cmds {
		c.SetErr(err)
	}
}

// next hands the queued callers to a new pipeline, or frees the slot.
func (s *Shared) next() {
	s.mu.Lock()
	if len(s.waiting) == 0 {
		s.busy--
		s.mu.Unlock()
		return
	}
	batch := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	go s.send(batch)
}

// send sends one pipeline for batch, leaving out callers that gave up,
// bound by its own timeout rather than any one caller's context.
func (s *Shared) send(batch []*job) {
	defer s.next()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	live := batch[:0]
	for _, j := range batch {
		if j.state.CompareAndSwap(queued, taken) {
			j.fillIn(pipe)
			live = append(live, j)
		}
	}
	if len(live) > 0 {
		callers.Observe(float64(len(live)))
		exec(ctx, pipe)
	}
	for _, j := range live {
		close(j.done)
	}
}

// fillIn queues j's commands on pipe. A panic is the caller's, raised
// again on its own goroutine (where the server's recovery answers 500),
// not this one's, which would end the process; what it queued before the
// panic is still sent, as it would be on the caller's own pipeline.
func (j *job) fillIn(pipe redis.Pipeliner) {
	defer func() { j.panicked = recover() }()
	j.fill(pipe)
}
