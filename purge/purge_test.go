package purge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/testenv"
	"piivault/orders"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recorderFunc is a Recorder whose behaviour a test sets: a real audit
// trail cannot be made to fail on cue while its Redis keeps serving purges.
type recorderFunc func(context.Context, audit.Entry) error

func (f recorderFunc) Record(ctx context.Context, e audit.Entry) error { return f(ctx, e) }

func (f recorderFunc) RecordAll(ctx context.Context, es []audit.Entry) error {
	for _, e := range es {
		if err := f(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func testOrder(id, paymentRef string) orders.Request {
	return orders.Request{OrderID: id, PaymentRef: paymentRef, Shipping: orders.Shipping{
		Name: "Jane Doe", Email: "jane@example.com",
		Address: orders.Address{Line1: "1 Main St", City: "Springfield", Country: "US"}}}
}

func newStore(t *testing.T, env *testenv.Env, trail orders.Trail) *orders.Store {
	t.Helper()
	store, err := orders.NewStore(env.Redis, env.Service, env.Service, trail, orders.Config{Retention: time.Hour})
	require.NoError(t, err)
	return store
}

// A purge made while the audit trail is down is recorded by the next
// sweep, with its original time, and only once (the protocol itself is
// proven in orders/audited_test.go).
func TestPurgeIsRecordedByTheNextSweepWhenTheTrailFails(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	failing := recorderFunc(func(context.Context, audit.Entry) error {
		return apperr.Wrap(apperr.StoreUnavailable, errors.New("audit down"), "the audit trail is unavailable")
	})
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	down := newStore(t, env, failing)
	_, _, err := newStore(t, env, trail).StoreAudited(ctx, testOrder("ord-outbox", "pi_outbox"), audit.Entry{Actor: "client:shop"})
	require.NoError(t, err)

	p := NewPurger(down, failing, testenv.Logger())
	done, err := p.Purge(ctx, "webhook:shipping", "", "ord-outbox", orders.ReasonShipped)
	require.NoError(t, err, "the PII is purged even though the audit write failed")
	require.True(t, done)

	up := newStore(t, env, trail)
	later := NewPurger(up, trail, testenv.Logger())
	later.now = func() time.Time { return time.Now().Add(time.Minute) } // past the grace period
	_, err = later.Sweep(ctx)
	require.NoError(t, err)
	page, err := trail.List(ctx, audit.Filter{Action: audit.ActionPurge})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	e := page.Entries[0]
	require.Equal(t, "ord-outbox", e.OrderID)
	require.Equal(t, "webhook:shipping", e.Actor)
	require.Equal(t, "shipped", e.Detail["reason"])
	ref, err := up.Get(ctx, "ord-outbox")
	require.NoError(t, err)
	require.WithinDuration(t, *ref.PurgedAt, e.Time, time.Second, "the entry keeps the purge's own time, not the drain's")
	require.Less(t, time.Since(e.Time), 30*time.Second)
	notes, err := up.Notes(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, notes)
	v, err := trail.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact)
}

// stepTrail appends to a real trail, holding its first group until the
// test releases it and slowing the others, and remembers each group's
// orders in the order they were appended.
type stepTrail struct {
	*audit.Log
	held     chan struct{} // closed when the first group is waiting
	firstLen int           // its size, set before held is closed
	release  chan struct{}
	mu       sync.Mutex
	groups   [][]string
	heldOnce sync.Once
}

func (s *stepTrail) RecordAll(ctx context.Context, es []audit.Entry) error {
	first := false
	s.heldOnce.Do(func() { first = true })
	if first {
		s.firstLen = len(es)
		close(s.held)
		<-s.release
	} else {
		time.Sleep(100 * time.Millisecond) // a slow seal: Sweep must still wait for it
	}
	if err := s.Log.RecordAll(ctx, es); err != nil {
		return err
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.OrderID
	}
	s.mu.Lock()
	s.groups = append(s.groups, ids)
	s.mu.Unlock()
	return nil
}

// While one step's entries are being appended, the sweep lists and purges
// the next step's orders; the steps' entries still reach the trail one
// step after another, and Sweep returns only once the last are appended.
func TestASweepPurgesTheNextStepWhileTheLastIsAppended(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	seed := newStore(t, env, trail)
	const n = 40 // more than the 32 shards: some shard holds two
	for i := range n {
		_, _, err := seed.StoreAudited(ctx, testOrder(fmt.Sprintf("ord-step-%02d", i), fmt.Sprintf("pi_step_%02d", i)), audit.Entry{Actor: "client:shop"})
		require.NoError(t, err)
	}

	st := &stepTrail{Log: trail, held: make(chan struct{}), release: make(chan struct{})}
	store := newStore(t, env, st)
	p := NewPurger(store, st, testenv.Logger())
	p.now = func() time.Time { return time.Now().Add(2 * time.Hour) } // past the retention
	p.step = 1                                                        // one order per shard per step: several steps
	swept := make(chan error, 1)
	var total int
	go func() {
		var err error
		total, err = p.Sweep(ctx)
		swept <- err
	}()
	select {
	case <-st.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the first step's entries never reached the trail")
	}
	purgedNow := func() int {
		k := 0
		for i := range n {
			ref, err := store.Get(ctx, fmt.Sprintf("ord-step-%02d", i))
			require.NoError(t, err)
			if ref.PurgedAt != nil {
				k++
			}
		}
		return k
	}
	first := st.firstLen
	require.Less(t, first, n, "the first step takes one order per shard")
	require.Eventually(t, func() bool { return purgedNow() > first }, 20*time.Second, 10*time.Millisecond,
		"the next step purges while the first step's entries wait to be appended")
	select {
	case err := <-swept:
		t.Fatalf("the sweep returned (%v) before its first step's entries were appended", err)
	default:
	}
	close(st.release)
	require.NoError(t, <-swept)
	require.Equal(t, n, total)

	st.mu.Lock()
	groups := st.groups
	st.mu.Unlock()
	require.GreaterOrEqual(t, len(groups), 2, "more than one step")
	require.Len(t, groups[0], first, "the first group appended is the first step's")
	var all []string
	for _, g := range groups {
		all = append(all, g...)
	}
	require.Len(t, all, n, "every purge appended once")
	notes, err := store.Notes(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, notes, "every note removed before Sweep returned")
	page, err := trail.List(ctx, audit.Filter{Action: audit.ActionPurge})
	require.NoError(t, err)
	require.Len(t, page.Entries, n)

	// A sweep of one step (every shard's due orders fit in it) returns only
	// once that step's entries, slow to seal, are appended.
	for i := range 5 {
		_, _, err := seed.StoreAudited(ctx, testOrder(fmt.Sprintf("ord-last-%d", i), fmt.Sprintf("pi_last_%d", i)), audit.Entry{Actor: "client:shop"})
		require.NoError(t, err)
	}
	p.step = SweepBatch
	total, err = p.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, total)
	notes, err = store.Notes(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, notes, "the last step's notes removed before Sweep returned")
	page, err = trail.List(ctx, audit.Filter{Action: audit.ActionPurge})
	require.NoError(t, err)
	require.Len(t, page.Entries, n+5)

	v, err := trail.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact)
}
