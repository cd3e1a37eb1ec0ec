package purge

import (
	"context"
	"errors"
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
