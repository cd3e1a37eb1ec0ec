package orders_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/testenv"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/vault"
)

// countingSeals is the test Vault's audit sealer, counting its calls.
type countingSeals struct {
	audit.Sealer
	calls atomic.Int64
}

func (c *countingSeals) Seal(ctx context.Context, in [][]byte) ([]vault.Result, error) {
	c.calls.Add(1)
	return c.Sealer.Seal(ctx, in)
}

// gates answers the Revealer's IP block and lockdown checks.
type gates struct{ blocked, locked bool }

func (g gates) NotBlockedIn(context.Context, redis.Pipeliner, string) func() error {
	return func() error {
		if g.blocked {
			return apperr.New(apperr.Blocked, "blocked")
		}
		return nil
	}
}

func (g gates) Check(context.Context) error { return g.CheckIn(nil, nil)() }

func (g gates) CheckIn(context.Context, redis.Pipeliner) func() error {
	return func() error {
		if g.locked {
			return apperr.New(apperr.LockedDown, "locked down")
		}
		return nil
	}
}

// noWatch is a reveal watcher that counts nothing.
type noWatch struct{}

func (noWatch) RevealedIn(context.Context, redis.Pipeliner, string, string) func() { return func() {} }
func (noWatch) ReserveReveals(context.Context, string, int) error                  { return nil }
func (noWatch) ReleaseReveals(context.Context, string, int)                        {}

// A reveal its gate refuses (a blocked IP, a lockdown) reaches Vault not
// at all: not the decrypt, not even the early seal of its audit entry;
// whatever else is wrong with the request, the gate answers first.
func TestARevealItsGateRefusesMakesNoVaultCall(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	seals := &countingSeals{Sealer: env.Service}
	store := newStore(t, env, audit.NewLog(env.Redis, seals, env.Service))
	_, _, err := store.StoreAudited(ctx, order("ord-gated", "pi_gated", "Jane Doe"), audit.Entry{Actor: "client:shop"})
	require.NoError(t, err)
	p := web.Principal{Kind: web.KindStaff, Name: "alice", Role: web.RoleFulfillment, Token: web.Secret("hvs.remembered"), Unverified: true}
	for name, tt := range map[string]struct {
		g          gates
		id, reason string
		code       apperr.Code
	}{
		"blocked":                   {gates{blocked: true}, "ord-gated", "label", apperr.Blocked},
		"blocked, without a reason": {gates{blocked: true}, "ord-gated", "", apperr.Blocked},
		"blocked, a malformed id":   {gates{blocked: true}, "ord gated", "label", apperr.Blocked},
		"locked down":               {gates{locked: true}, "ord-gated", "label", apperr.LockedDown},
	} {
		time.Sleep(150 * time.Millisecond) // past the trail's pause between guesses
		before := seals.calls.Load()
		r := orders.NewRevealer(store, noWatch{}, tt.g, tt.g, testenv.Logger())
		_, _, err := r.Reveal(ctx, p, "192.0.2.9", tt.id, tt.reason)
		require.True(t, apperr.Is(err, tt.code), "%s: %v", name, err)
		time.Sleep(50 * time.Millisecond) // an early seal would have been sent by now
		require.Equal(t, before, seals.calls.Load(), "%s: no seal was started", name)
	}
}
