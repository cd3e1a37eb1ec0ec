package orders

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"piivault/internal/apperr"
	"piivault/vault"
)

var batchItems = promauto.NewHistogram(prometheus.HistogramOpts{
	Name: "piivault_vault_batch_items", Help: "Items per coalesced transit call.",
	Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
})

// Serve's batching unless PIIVAULT_BATCH_SIZE and PIIVAULT_BATCH_WAIT say
// otherwise.
const (
	DefaultBatchItems = 64
	DefaultBatchWait  = 2 * time.Millisecond
)

// BatchConfig tunes the Batcher.
type BatchConfig struct {
	MaxItems  int           // flush when a batch holds this many items (default 64)
	MaxWait   time.Duration // wait at most this long for more items after the first (default 2ms)
	QueueSize int           // pending requests before callers wait (default 4096)
	InFlight  int           // concurrent Vault calls per operation (default 2)
	Timeout   time.Duration // bound on one Vault batch call (default 5s)
}

// Batcher is a Sealer that coalesces concurrent Encrypt and HMAC calls
// into transit batch_input calls: Vault's per-request cost dominates, so 32
// items in one call cost little more than one. Each caller gets exactly its
// own results; a failed batch fails each of its callers; a caller whose
// context ends stops waiting and its items are dropped from batches not yet
// sent, without affecting anyone else.
type Batcher struct {
	enc    *coalescer
	masked *coalescer
	hmac   *coalescer
}

// NewBatcher wraps next (normally *vault.Client).
func NewBatcher(next Sealer, cfg BatchConfig) *Batcher {
	if cfg.MaxItems <= 0 {
		cfg.MaxItems = DefaultBatchItems
	}
	if cfg.MaxWait < 0 {
		cfg.MaxWait = 0
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	encrypter := func(encrypt func(context.Context, []vault.Plaintext) ([]vault.Result, error)) *coalescer {
		return newCoalescer(cfg, func(ctx context.Context, items []any) ([]vault.Result, error) {
			in := make([]vault.Plaintext, len(items))
			for i, it := range items {
				in[i] = it.(vault.Plaintext)
			}
			return encrypt(ctx, in)
		})
	}
	return &Batcher{
		enc:    encrypter(next.Encrypt),
		masked: encrypter(next.EncryptMasked),
		hmac: newCoalescer(cfg, func(ctx context.Context, items []any) ([]vault.Result, error) {
			in := make([][]byte, len(items))
			for i, it := range items {
				in[i] = it.([]byte)
			}
			return next.HMAC(ctx, in)
		}),
	}
}

// Encrypt queues items for the next encrypt batch.
func (b *Batcher) Encrypt(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	return b.enc.do(ctx, anys(items))
}

// EncryptMasked queues items for the next batch under the masked-copy key.
func (b *Batcher) EncryptMasked(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error) {
	return b.masked.do(ctx, anys(items))
}

func anys[T any](items []T) []any {
	in := make([]any, len(items))
	for i, it := range items {
		in[i] = it
	}
	return in
}

// HMAC queues inputs for the next HMAC batch.
func (b *Batcher) HMAC(ctx context.Context, inputs [][]byte) ([]vault.Result, error) {
	return b.hmac.do(ctx, anys(inputs))
}

// Close stops the batcher; pending callers get VaultUnavailable.
func (b *Batcher) Close() {
	b.enc.close()
	b.masked.close()
	b.hmac.close()
}

type call struct {
	ctx   context.Context
	items []any
	done  chan callResult // buffered: the flusher never blocks on a caller
}

type callResult struct {
	res []vault.Result
	err error
}

type coalescer struct {
	cfg   BatchConfig
	flush func(context.Context, []any) ([]vault.Result, error)
	queue chan *call
	slots chan struct{}
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	// holding: the loop holds callers and waits for a free Vault call
	holding atomic.Bool
}

var errBatcherClosed = apperr.New(apperr.VaultUnavailable, "the encryption queue is shut down")

func newCoalescer(cfg BatchConfig, flush func(context.Context, []any) ([]vault.Result, error)) *coalescer {
	c := &coalescer{cfg: cfg, flush: flush, queue: make(chan *call, cfg.QueueSize),
		slots: make(chan struct{}, cfg.InFlight), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.loop()
	return c
}

func (c *coalescer) do(ctx context.Context, items []any) ([]vault.Result, error) {
	if len(items) == 0 {
		return nil, nil
	}
	select {
	case <-c.stop:
		return nil, errBatcherClosed
	default:
	}
	// An idle batcher (nothing waiting, no call in flight): make the call
	// here, at once, with no hand-off to the batching loop (the common
	// case at low load). While a call is in flight, even with the other
	// free, a caller queues and shares the next batch: taking the free
	// call alone made every other call under load a one-item call.
	if len(c.queue) == 0 && !c.holding.Load() && len(c.slots) == 0 {
		select {
		case c.slots <- struct{}{}:
			defer func() { <-c.slots }()
			return c.direct(ctx, items)
		default:
		}
	}
	cl := &call{ctx: ctx, items: items, done: make(chan callResult, 1)}
	select {
	case c.queue <- cl:
	case <-ctx.Done():
		return nil, apperr.Wrap(apperr.VaultUnavailable, ctx.Err(), "the encryption queue is full")
	case <-c.stop:
		return nil, errBatcherClosed
	}
	select {
	case r := <-cl.done:
		return r.res, r.err
	case <-ctx.Done():
		return nil, apperr.Wrap(apperr.VaultUnavailable, ctx.Err(), "vault did not answer in time")
	case <-c.stop:
		c.wg.Wait() // a batch already sent still answers
		select {
		case r := <-cl.done:
			return r.res, r.err
		default:
			return nil, errBatcherClosed
		}
	}
}

func (c *coalescer) loop() {
	defer c.wg.Done()
	for {
		var first *call
		select {
		case first = <-c.queue:
		case <-c.stop:
			c.drain()
			return
		}
		// Wait for a free Vault call first: while every call is busy, new
		// requests pile up in the queue and all go into this batch (and
		// no caller takes the freed call for itself ahead of them).
		c.holding.Store(true)
		c.slots <- struct{}{}
		c.holding.Store(false)
		batch, n := []*call{first}, len(first.items)
		// Take what is waiting. Give stragglers up to MaxWait only while
		// another batch is in flight: an idle Vault is better used at once.
		var timer *time.Timer
	collect:
		for n < c.cfg.MaxItems {
			select {
			case cl := <-c.queue:
				batch, n = append(batch, cl), n+len(cl.items)
				continue
			default:
			}
			if c.cfg.MaxWait == 0 || len(c.slots) < 2 {
				break
			}
			if timer == nil {
				timer = time.NewTimer(c.cfg.MaxWait)
			}
			select {
			case cl := <-c.queue:
				batch, n = append(batch, cl), n+len(cl.items)
			case <-timer.C:
				break collect
			}
		}
		if timer != nil {
			timer.Stop()
		}
		c.wg.Add(1)
		go func() {
			defer func() { <-c.slots; c.wg.Done() }()
			c.run(batch)
		}()
	}
}

// direct sends one caller's items as a batch of their own, bound by the
// caller's context and the batcher's timeout.
func (c *coalescer) direct(ctx context.Context, items []any) ([]vault.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return c.send(ctx, items)
}

// send makes one Vault call for items and checks it answered each of them.
func (c *coalescer) send(ctx context.Context, items []any) ([]vault.Result, error) {
	batchItems.Observe(float64(len(items)))
	res, err := c.flush(ctx, items)
	if err == nil && len(res) != len(items) {
		err = errors.New("vault returned a different number of results than items")
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// run sends one batch, leaving out callers that already gave up, and hands
// each caller its own slice of the results.
func (c *coalescer) run(batch []*call) {
	live := batch[:0]
	var items []any
	for _, cl := range batch {
		if cl.ctx.Err() != nil {
			continue
		}
		live = append(live, cl)
		items = append(items, cl.items...)
	}
	if len(live) == 0 {
		return
	}
	// The call is bound by the batcher's timeout, not by any one caller:
	// one caller's cancellation must not fail the others.
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	res, err := c.send(ctx, items)
	off := 0
	for _, cl := range live {
		if err != nil {
			cl.done <- callResult{err: err}
			continue
		}
		cl.done <- callResult{res: res[off : off+len(cl.items) : off+len(cl.items)]}
		off += len(cl.items)
	}
}

func (c *coalescer) drain() {
	for {
		select {
		case cl := <-c.queue:
			cl.done <- callResult{err: errBatcherClosed}
		default:
			return
		}
	}
}

func (c *coalescer) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}
