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

func newStore(t *testing.T, env *testenv.Env) *orders.Store {
	t.Helper()
	store, err := orders.NewStore(env.Redis, env.Service, env.Service, orders.Config{Retention: time.Hour})
	require.NoError(t, err)
	return store
}

func testOrder(id, paymentRef string) orders.Request {
	return orders.Request{OrderID: id, PaymentRef: paymentRef, Shipping: orders.Shipping{
		Name: "Jane Doe", Email: "jane@example.com",
		Address: orders.Address{Line1: "1 Main St", City: "Springfield", Country: "US"}}}
}

func TestPurgeIsRecordedEvenWhenTheAuditTrailFails(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	store := newStore(t, env)
	req := testOrder("ord-outbox", "pi_outbox")
	_, _, err := store.Store(ctx, req)
	require.NoError(t, err)

	failing := recorderFunc(func(context.Context, audit.Entry) error {
		return apperr.Wrap(apperr.StoreUnavailable, errors.New("audit down"), "the audit trail is unavailable")
	})
	p := NewPurger(store, failing, testenv.Logger())
	done, err := p.Purge(ctx, "webhook:shipping", "", "ord-outbox", orders.ReasonShipped)
	require.NoError(t, err, "the PII is purged even though the audit write failed")
	require.True(t, done)
	notes, err := store.Notes(ctx, 10)
	require.NoError(t, err)
	require.Len(t, notes, 1, "the purge's audit record waits in the outbox")

	// The next sweep, with the trail back, records it with its original time.
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	later := NewPurger(store, trail, testenv.Logger())
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
	require.WithinDuration(t, time.Now(), e.Time, 10*time.Second, "the entry keeps the purge's own time")
	notes, err = store.Notes(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, notes)

	// A purge whose audit write succeeds leaves no note behind.
	req.OrderID, req.PaymentRef = "ord-ok", "pi_ok"
	_, _, err = store.Store(ctx, req)
	require.NoError(t, err)
	_, err = later.Purge(ctx, "system", "", "ord-ok", orders.ReasonRetention)
	require.NoError(t, err)
	notes, err = store.Notes(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, notes)
	v, err := trail.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact)
}

func TestStoreIsRecordedEvenWhenTheAuditTrailFails(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	store := newStore(t, env)
	req := testOrder("ord-stored", "pi_stored")
	e := audit.Entry{Time: time.Now().UTC(), Actor: "client:shop", Action: audit.ActionStore, OrderID: req.OrderID, IP: "192.0.2.5"}
	note := []byte(`{"seq":0,"time":"` + e.Time.Format(time.RFC3339Nano) + `","actor":"client:shop","action":"order.store","order_id":"ord-stored","ip":"192.0.2.5","prev":"","hash":""}`)
	_, res, err := store.StoreNoting(ctx, req, note)
	require.NoError(t, err)
	require.Equal(t, orders.Created, res)
	failing := recorderFunc(func(context.Context, audit.Entry) error { return errors.New("audit down") })
	require.Error(t, store.RecordNoted(ctx, failing, req.OrderID, e, note))

	// A repeat of the same request is a duplicate and notes nothing more.
	_, res, err = store.StoreNoting(ctx, req, []byte(`{"other":"note"}`))
	require.NoError(t, err)
	require.Equal(t, orders.Duplicate, res)
	notes, err := store.Notes(ctx, 10)
	require.NoError(t, err)
	require.Len(t, notes, 1)

	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	p := NewPurger(store, trail, testenv.Logger())
	p.now = func() time.Time { return time.Now().Add(time.Minute) }
	n, err := p.DrainOutbox(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	page, err := trail.List(ctx, audit.Filter{Action: audit.ActionStore})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	require.Equal(t, "192.0.2.5", page.Entries[0].IP)
}
