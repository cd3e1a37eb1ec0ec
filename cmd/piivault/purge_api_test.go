package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/testenv"
	"piivault/purge"
	"piivault/vault"
)

type vaultKeyInfo = vault.KeyInfo

// countAudit counts the trail's entries of action (by actor, when given).
func countAudit(t *testing.T, h *harness, action string, actor ...string) int {
	t.Helper()
	f := audit.Filter{Action: action, Limit: 500}
	if len(actor) > 0 {
		f.Actor = actor[0]
	}
	page, err := h.app.audit.List(context.Background(), f)
	require.NoError(t, err)
	return len(page.Entries)
}

// pollUntil checks cond on the test's own goroutine every tick until it
// holds, failing the test when wait has passed. Unlike require.Eventually,
// whose condition runs on a goroutine of its own, cond may assert (h.call
// does).
func pollUntil(t *testing.T, wait, tick time.Duration, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			require.Fail(t, "condition never satisfied", msgAndArgs...)
		}
		time.Sleep(tick)
	}
}

// sleepPastExpiry waits until the order's own expires_at has passed: the
// wait is what its retention leaves, however long storing it took.
func sleepPastExpiry(t *testing.T, h *harness, id string) {
	t.Helper()
	ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	exp, err := time.Parse(time.RFC3339Nano, ref.Body["expires_at"].(string))
	require.NoError(t, err)
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
}

func TestSweepPurgesOrdersPastRetention(t *testing.T) {
	// Seconds of retention: each "not due yet" below holds for one store
	// and one sweep, however loaded the machine.
	h := newHarness(t, nil, map[string]string{"PIIVAULT_RETENTION": "3s"})
	h.storeOrder("ord-old")
	n, err := h.app.purger.Sweep(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due yet")

	sleepPastExpiry(t, h, "ord-old")
	h.storeOrder("ord-new")
	n, err = h.app.purger.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)

	ref := h.call("GET", "/v1/orders/ord-old", h.apiKey, nil)
	require.Equal(t, "purged", ref.Body["status"])
	require.Equal(t, "retention_expired", ref.Body["purge_reason"])
	require.NotNil(t, ref.Body["purged_at"])
	require.Equal(t, "held", h.call("GET", "/v1/orders/ord-new", h.apiKey, nil).Body["status"])
	require.Empty(t, h.env.Redis.Keys(context.Background(), "piivault:*:pii:ord-old").Val())
}

func TestSweepStampsOrdersRedisAlreadyExpired(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_RETENTION": "1s"})
	h.storeOrder("ord-ttl")
	// No sweeper runs: Redis's own TTL removes the ciphertext.
	require.Eventually(t, func() bool {
		return len(h.env.Redis.Keys(context.Background(), "piivault:*:pii:ord-ttl").Val()) == 0
	}, 15*time.Second, 50*time.Millisecond)
	_, tok := h.login("fulfillment")
	gone := h.call("GET", "/v1/orders/ord-ttl/shipping?reason=label", tok, nil)
	require.Equal(t, 410, gone.Status, "expired PII is gone even before the sweep")

	n, err := h.app.purger.Sweep(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ref := h.call("GET", "/v1/orders/ord-ttl", h.apiKey, nil)
	require.Equal(t, "purged", ref.Body["status"])
	require.Equal(t, "retention_expired", ref.Body["purge_reason"])
}

func TestConcurrentSweepersNeverDoublePurge(t *testing.T) {
	h1 := newHarness(t, nil, map[string]string{"PIIVAULT_RETENTION": "1s"})
	h2 := newHarness(t, h1.env, map[string]string{"PIIVAULT_RETENTION": "1s"})
	const n = 60
	for i := 0; i < n; i++ {
		h1.storeOrder(fmt.Sprintf("ord-c%02d", i))
	}
	sleepPastExpiry(t, h1, fmt.Sprintf("ord-c%02d", n-1))
	var wg sync.WaitGroup
	counts := make([]int, 4)
	errs := make([]error, len(counts)) // asserted below, on the test's own goroutine
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := h1.app
			if i%2 == 1 {
				a = h2.app
			}
			counts[i], errs[i] = a.purger.Sweep(context.Background())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "sweeper %d", i)
	}
	require.Equal(t, n, counts[0]+counts[1]+counts[2]+counts[3], "each order purged exactly once: %v", counts)
	require.Equal(t, n, countAudit(t, h1, audit.ActionPurge))
}

func TestRedisLockerHasOneHolderAndALease(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	// Leases of seconds: the steps that must fall inside one are a Redis
	// call or two apart, however loaded the machine.
	const lease = 2 * time.Second
	l := purge.NewRedisLocker(env.Redis, lease, 0)
	lock, err := l.Lock(ctx, "retention-sweep")
	require.NoError(t, err)
	ttl := env.Redis.PTTL(ctx, "piivault:{lock}:retention-sweep").Val()
	require.True(t, ttl > 0 && ttl <= lease, "the lock is a lease of %s: %s left", lease, ttl)
	_, err = l.Lock(ctx, "retention-sweep")
	require.Error(t, err, "a second instance must not take a held lock")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, lock.Unlock(cancelled), "unlock works with the job's cancelled context")
	again, err := l.Lock(ctx, "retention-sweep")
	require.NoError(t, err)
	_ = again // its holder "dies": never unlocked
	require.Eventually(t, func() bool {
		_, err := l.Lock(ctx, "retention-sweep")
		return err == nil
	}, 5*lease, 50*time.Millisecond, "the lease must free itself")

	// With a minimum hold, an early unlock keeps the lease until then.
	const minHold = 2 * time.Second
	held := purge.NewRedisLocker(env.Redis, time.Minute, minHold)
	lk, err := held.Lock(ctx, "key-shred")
	require.NoError(t, err)
	require.NoError(t, lk.Unlock(ctx))
	_, err = held.Lock(ctx, "key-shred")
	require.Error(t, err, "a fast run still holds the lease for minHold")
	ttl = env.Redis.PTTL(ctx, "piivault:{lock}:key-shred").Val()
	require.True(t, ttl > 0 && ttl <= minHold, "an early unlock shortens the lease to what is left of minHold: %s left", ttl)
	require.Eventually(t, func() bool {
		_, err := held.Lock(ctx, "key-shred")
		return err == nil
	}, 5*minHold, 50*time.Millisecond)
}

func TestDeletionRequestPurgesExactlyThatEmailsOrders(t *testing.T) {
	h := newHarness(t, nil, nil)
	withEmail := func(id, email string) {
		b := orderBody(id)
		b["shipping"].(map[string]any)["email"] = email
		r := h.call("POST", "/v1/orders", h.apiKey, b)
		require.Equal(t, 201, r.Status, string(r.Raw))
	}
	withEmail("ord-d1", "Mixed.Case@Example.com")
	withEmail("ord-d2", "mixed.case@example.com")
	withEmail("ord-d3", "someone.else@example.com")
	_, sup := h.login("support")

	r := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": "  MIXED.case@example.COM "})
	require.Equal(t, 201, r.Status, string(r.Raw))
	require.ElementsMatch(t, []any{"ord-d1", "ord-d2"}, r.Body["orders"])
	require.NotEmpty(t, r.Body["completed_at"])
	require.NotContains(t, string(r.Raw), "mixed")
	id := r.Body["request_id"].(string)

	for _, o := range []string{"ord-d1", "ord-d2"} {
		ref := h.call("GET", "/v1/orders/"+o, h.apiKey, nil)
		require.Equal(t, "customer_request", ref.Body["purge_reason"])
	}
	require.Equal(t, "held", h.call("GET", "/v1/orders/ord-d3", h.apiKey, nil).Body["status"])

	later := h.call("GET", "/v1/deletion-requests/"+id, sup, nil)
	require.Equal(t, 200, later.Status)
	require.Equal(t, r.Body["orders"], later.Body["orders"])
	require.NotContains(t, h.redisDump(), "mixed.case", "neither the receipt nor anything else keeps the email")

	none := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": "never.ordered@example.com"})
	require.Equal(t, 201, none.Status)
	require.Empty(t, none.Body["orders"])
	bad := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": "not an email"})
	require.Equal(t, 422, bad.Status)
}

func TestPurgeIsIdempotentAndAuditedOnce(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-i")
	_, tok := h.login("fulfillment")
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-i/shipped", tok, nil).Status)
	second := h.call("POST", "/v1/orders/ord-i/shipped", tok, nil)
	require.Equal(t, 200, second.Status)
	require.Equal(t, "shipped", second.Body["status"])
	require.Equal(t, 1, countAudit(t, h, audit.ActionPurge))
	require.Equal(t, 404, h.call("POST", "/v1/orders/ord-none/shipped", tok, nil).Status)
}

func TestKeyTrimmingShredsOldCiphertextButNeverAHeldOrders(t *testing.T) {
	env := testenv.Start(t) // rotates and trims the transit key: keep it private
	ctx := context.Background()
	// An order stored while the retention was 1h is still held (and its
	// ciphertext alive) after the retention is shortened to 2s: the trim
	// rule alone would retire its key version; the held-order cap must not.
	long := newHarness(t, env, map[string]string{"PIIVAULT_RETENTION": "1h"})
	h := newHarness(t, env, map[string]string{"PIIVAULT_RETENTION": "2s"})
	long.storeOrder("ord-v1")
	piiKey := env.Redis.Keys(ctx, "piivault:*:pii:ord-v1").Val()[0]
	oldCT := env.Redis.HGet(ctx, piiKey, "ct").Val()
	oldMasked := env.Redis.HGet(ctx, piiKey, "mct").Val()
	require.Contains(t, oldCT, "vault:v1:")
	require.Contains(t, oldMasked, "vault:v1:")

	rs, err := h.app.shredder.Run(ctx, true)
	require.NoError(t, err)
	require.Len(t, rs, 2, "the full blocks' key and the masked copies' key")
	r := rs[0]
	require.Equal(t, 2, r.Latest)
	require.Zero(t, r.Retired, "v2 is younger than the retention: v1 may still be in use")

	// Wait until v2 of both keys is past the 2s retention, counted from
	// Vault's own creation times.
	for _, k := range []*vault.TransitKey{env.Root.Client().Key(), env.Root.Client().MaskedKey()} {
		info, err := k.ReadKey(ctx)
		require.NoError(t, err)
		time.Sleep(time.Until(info.Created[2].Add(2*time.Second)) + 10*time.Millisecond)
	}
	long.storeOrder("ord-v2")
	rs, err = h.app.shredder.Run(ctx, true)
	require.NoError(t, err)
	r = rs[0]
	require.Equal(t, 3, r.Latest)
	require.Zero(t, r.Retired, "ord-v1 is held and needs v1: it must stay")
	_, err = env.Root.Client().Decrypt(ctx, env.RootToken, oldCT, []byte("ord-v1"))
	require.NoError(t, err)

	_, err = h.app.purger.Purge(ctx, "system", "", "ord-v1", "shipped")
	require.NoError(t, err)
	rs, err = h.app.shredder.Run(ctx, false)
	require.NoError(t, err)
	for _, r := range rs {
		require.Equal(t, 1, r.Retired, r.Key)
		require.Equal(t, 2, r.MinVersion, r.Key)
	}

	// A saved copy of the old ciphertext, and of its masked copy, is now
	// undecryptable, even for root.
	_, err = env.Root.Client().Decrypt(ctx, env.RootToken, oldCT, []byte("ord-v1"))
	require.Equal(t, apperr.Gone, apperr.CodeOf(err), "%v", err)
	_, err = env.Root.Client().DecryptMasked(ctx, env.RootToken, oldMasked, []byte("ord-v1"))
	require.Equal(t, apperr.Gone, apperr.CodeOf(err), "%v", err)
	// The held order made with v2 still reveals.
	_, tok := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-v2/shipping?reason=label", tok, nil).Status)
}

func TestRetirableBelow(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	created := func(ages ...time.Duration) map[int]time.Time {
		m := map[int]time.Time{}
		for i, a := range ages {
			m[i+1] = now.Add(-a)
		}
		return m
	}
	tests := []struct {
		name string
		key  vaultKey
		want int
	}{
		{"one version", vaultKey{1, 1, created(40 * day)}, 1},
		{"next is young", vaultKey{2, 1, created(40*day, 10*day)}, 1},
		{"next is past retention", vaultKey{3, 1, created(40*day, 31*day, 1*day)}, 2},
		{"several can go", vaultKey{4, 1, created(60*day, 50*day, 40*day, 31*day)}, 4},
		{"already trimmed", vaultKey{3, 2, created(0, 31*day, 1*day)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, purge.RetirableBelow(tt.key.info(), now, 30*day))
		})
	}
}

type vaultKey struct {
	latest, min int
	created     map[int]time.Time
}

func (k vaultKey) info() vaultKeyInfo {
	return vaultKeyInfo{LatestVersion: k.latest, MinDecryptionVersion: k.min, Created: k.created}
}
