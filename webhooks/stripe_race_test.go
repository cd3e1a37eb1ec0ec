package webhooks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/testenv"
	"piivault/orders"
	"piivault/purge"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// interleaved is the real order store with one step of the race made to
// happen on cue: just before the webhook's tombstone, another payment's
// order is stored (a second checkout for the same order id landing between
// the event's look-up and its tombstone).
type interleaved struct {
	*orders.Store
	beforeTombstone func()
}

func (s interleaved) Tombstone(ctx context.Context, orderID, reason, paymentRef, actor string) (bool, error) {
	if s.beforeTombstone != nil {
		s.beforeTombstone()
	}
	return s.Store.Tombstone(ctx, orderID, reason, paymentRef, actor)
}

func raceOrder(id, payment string) orders.Request {
	return orders.Request{OrderID: id, PaymentRef: payment, Shipping: orders.Shipping{
		Name: "Jane Doe", Email: "jane@example.com",
		Address: orders.Address{Line1: "1 Main St", City: "Springfield", Country: "US"}}}
}

// Invariant 11: a Stripe event changes only the order its own payment
// belongs to, however a store interleaves with it. The event finds no
// order, the other payment's order is stored before the tombstone, and the
// retried purge must still refuse it: the payment is compared inside the
// purge script, not before it.
func TestStripeEventCannotPurgeAnOrderStoredByAnotherPaymentMidEvent(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	store, err := orders.NewStore(env.Redis, env.Service, env.Service, trail, orders.Config{Retention: time.Hour})
	require.NoError(t, err)
	stored := false
	racing := interleaved{Store: store, beforeTombstone: func() {
		_, _, err := store.StoreAudited(ctx, raceOrder("ord-race", "pi_other"), audit.Entry{Actor: "client:shop"})
		require.NoError(t, err)
		stored = true
	}}
	h := NewHandler(Deps{Orders: racing, Purger: purge.NewPurger(store, trail, testenv.Logger()), Audit: trail,
		Redis: env.Redis, Log: testenv.Logger()})

	outcome, err := h.stripePurge(ctx, "127.0.0.1", "ord-race", []string{"pi_event", "cs_event"}, orders.ReasonCanceled)
	require.NoError(t, err)
	require.True(t, stored, "the interleaving happened")
	require.Equal(t, "other_payment", outcome)
	ref, err := store.Get(ctx, "ord-race")
	require.NoError(t, err)
	require.Equal(t, orders.StatusHeld, ref.Status, "the other payment's order is untouched")
	require.Nil(t, ref.PurgeReason)

	// The same event for an order its own payment stored purges it.
	_, _, err = store.StoreAudited(ctx, raceOrder("ord-own", "pi_event"), audit.Entry{Actor: "client:shop"})
	require.NoError(t, err)
	outcome, err = h.stripePurge(ctx, "127.0.0.1", "ord-own", []string{"pi_event", "cs_event"}, orders.ReasonCanceled)
	require.NoError(t, err)
	require.Equal(t, "purged", outcome)
	ref, err = store.Get(ctx, "ord-own")
	require.NoError(t, err)
	require.Equal(t, orders.StatusPurged, ref.Status)
	require.Equal(t, orders.ReasonCanceled, *ref.PurgeReason)
}

// The store's own check, without the webhook: a purge bound to payments
// leaves an order of another payment exactly as it was.
func TestPurgePaidRefusesAnotherPaymentAndChangesNothing(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	store, err := orders.NewStore(env.Redis, env.Service, env.Service, audit.NewLog(env.Redis, env.Service, env.Service),
		orders.Config{Retention: time.Hour})
	require.NoError(t, err)
	_, _, err = store.StoreAudited(ctx, raceOrder("ord-paid", "pi_a"), audit.Entry{Actor: "client:shop"})
	require.NoError(t, err)
	before := dumpKeys(t, env)
	done, err := store.PurgeAudited(ctx, "ord-paid", orders.ReasonRefunded, []string{"pi_b"}, audit.Entry{Actor: "webhook:stripe"})
	require.ErrorIs(t, err, orders.ErrOtherPayment)
	require.False(t, done)
	require.Equal(t, before, dumpKeys(t, env), "nothing changed in Redis")
	done, err = store.PurgeAudited(ctx, "ord-paid", orders.ReasonRefunded, []string{"pi_b", "pi_a"}, audit.Entry{Actor: "webhook:stripe"})
	require.NoError(t, err)
	require.True(t, done)
}

// dumpKeys is every key with its type and value, read as values.
func dumpKeys(t *testing.T, env *testenv.Env) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	keys, err := env.Redis.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		typ, err := env.Redis.Type(ctx, k).Result()
		require.NoError(t, err)
		var v any
		switch typ {
		case "string":
			v, err = env.Redis.Get(ctx, k).Result()
		case "hash":
			v, err = env.Redis.HGetAll(ctx, k).Result()
		case "set":
			v, err = env.Redis.SMembers(ctx, k).Result()
		case "zset":
			v, err = env.Redis.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "list":
			v, err = env.Redis.LRange(ctx, k, 0, -1).Result()
		case "stream":
			v, err = env.Redis.XRange(ctx, k, "-", "+").Result()
		}
		require.NoError(t, err)
		out[k] = typ + " " + fmt.Sprint(v)
	}
	return out
}
