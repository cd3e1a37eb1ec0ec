package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/testenv"
	"piivault/orders"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore is a store on the shared test Vault and Redis, recording in
// trail (the real audit trail when nil).
func newStore(t *testing.T, env *testenv.Env, trail orders.Trail) *orders.Store {
	t.Helper()
	if trail == nil {
		trail = audit.NewLog(env.Redis, env.Service, env.Service)
	}
	store, err := orders.NewStore(env.Redis, env.Service, env.Service, trail, orders.Config{Retention: time.Hour})
	require.NoError(t, err)
	return store
}

func order(id, payment, name string) orders.Request {
	return orders.Request{OrderID: id, PaymentRef: payment, Shipping: orders.Shipping{
		Name: name, Email: "jane@example.com",
		Address: orders.Address{Line1: "1 Main St", City: "Springfield", Country: "US"}}}
}

// Each answer of the store script, from a fresh store.
func TestStoreScriptResults(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	store := newStore(t, env, nil)
	actor := audit.Entry{Actor: "client:shop", IP: "192.0.2.1"}
	tests := []struct {
		name    string
		setup   func(id string)
		req     func(id string) orders.Request
		result  orders.StoreResult
		code    apperr.Code // "" for success
		status  orders.Status
		piiKeys int
	}{
		{"new order: stored", func(string) {}, func(id string) orders.Request { return order(id, "pi_1", "Jane Doe") },
			orders.Created, "", orders.StatusHeld, 1},
		{"same request again: duplicate",
			func(id string) {
				_, _, err := store.StoreAudited(ctx, order(id, "pi_1", "Jane Doe"), actor)
				require.NoError(t, err)
			},
			func(id string) orders.Request { return order(id, "pi_1", "Jane Doe") }, orders.Duplicate, "", orders.StatusHeld, 1},
		{"different request for a held order: conflict",
			func(id string) {
				_, _, err := store.StoreAudited(ctx, order(id, "pi_1", "Jane Doe"), actor)
				require.NoError(t, err)
			},
			func(id string) orders.Request { return order(id, "pi_1", "John Roe") }, 0, apperr.Conflict, orders.StatusHeld, 1},
		{"purged order: its PII never comes back",
			func(id string) {
				_, _, err := store.StoreAudited(ctx, order(id, "pi_1", "Jane Doe"), actor)
				require.NoError(t, err)
				_, err = store.PurgeAudited(ctx, id, orders.ReasonShipped, nil, actor)
				require.NoError(t, err)
			},
			func(id string) orders.Request { return order(id, "pi_1", "Jane Doe") }, 0, apperr.Conflict, orders.StatusShipped, 0},
		{"an event came first: tombstoned, recorded as purged",
			func(id string) {
				ok, err := store.Tombstone(ctx, id, orders.ReasonCanceled, "pi_1", "webhook:stripe")
				require.NoError(t, err)
				require.True(t, ok)
			},
			func(id string) orders.Request { return order(id, "pi_1", "Jane Doe") }, orders.Tombstoned, apperr.Conflict, orders.StatusPurged, 0},
		{"a tombstone of another payment does not apply",
			func(id string) {
				_, err := store.Tombstone(ctx, id, orders.ReasonCanceled, "pi_other", "webhook:stripe")
				require.NoError(t, err)
			},
			func(id string) orders.Request { return order(id, "pi_1", "Jane Doe") }, orders.Created, "", orders.StatusHeld, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "ord-script-" + string(rune('a'+i))
			tt.setup(id)
			_, res, err := store.StoreAudited(ctx, tt.req(id), actor)
			if tt.code == "" {
				require.NoError(t, err)
			} else {
				require.True(t, apperr.Is(err, tt.code), "want %s, got %v", tt.code, err)
			}
			require.Equal(t, tt.result, res)
			ref, err := store.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, tt.status, ref.Status)
			require.Len(t, env.Redis.Keys(ctx, "piivault:*:pii:"+id).Val(), tt.piiKeys)
		})
	}
}

// A store Redis refuses changes nothing and is a StoreUnavailable.
func TestStoreWithRedisDownChangesNothing(t *testing.T) {
	env := testenv.Start(t)
	store := newStore(t, env, nil)
	env.StopRedis(t)
	_, _, err := store.StoreAudited(context.Background(), order("ord-down", "pi_1", "Jane Doe"), audit.Entry{Actor: "client:shop"})
	require.True(t, apperr.Is(err, apperr.StoreUnavailable), "%v", err)
}
