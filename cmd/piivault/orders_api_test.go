package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
	"piivault/orders"
)

func TestHealthReadyMetricsAndJSONErrors(t *testing.T) {
	h := newHarness(t, nil, nil)
	require.Equal(t, 200, h.call("GET", "/healthz", "", nil).Status)
	r := h.call("GET", "/readyz", "", nil)
	require.Equal(t, 200, r.Status, string(r.Raw))

	r = h.call("GET", "/nope", "", nil)
	require.Equal(t, 404, r.Status)
	require.Equal(t, "not_found", r.errorCode())
	r = h.call("PUT", "/v1/orders", "", nil)
	require.Equal(t, 405, r.Status)
	require.Equal(t, "method_not_allowed", r.errorCode())

	m := h.call("GET", "/metrics", "", nil)
	require.Equal(t, 200, m.Status)
	require.Contains(t, string(m.Raw), "piivault_http_requests_total")
	require.Contains(t, string(m.Raw), `route="/readyz"`)
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
}

func TestReadyzFollowsRedis(t *testing.T) {
	env := testenv.Start(t)
	h := newHarness(t, env, nil)
	require.Equal(t, 200, h.call("GET", "/readyz", "", nil).Status)
	env.StopRedis(t)
	r := h.call("GET", "/readyz", "", nil)
	require.Equal(t, 503, r.Status)
	require.Contains(t, string(r.Raw), "redis unavailable")
	env.RestartRedis(t)
	pollUntil(t, 10*time.Second, 100*time.Millisecond, func() bool { return h.call("GET", "/readyz", "", nil).Status == 200 })
}

func TestStoreOrderIsEncryptedExpiringAndIdempotent(t *testing.T) {
	h := newHarness(t, nil, nil)
	before := time.Now()
	r := h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-1"))
	require.Equal(t, 201, r.Status, string(r.Raw))
	require.Equal(t, "held", r.Body["status"])
	require.Equal(t, "ord-1", r.Body["order_id"])
	exp, err := time.Parse(time.RFC3339Nano, r.Body["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(720*time.Hour), exp, 5*time.Second)

	// No PII anywhere in Redis, under any key.
	requireNoPII(t, "redis", h.redisDump())

	// The ciphertext key has a TTL no longer than the retention.
	ctx := context.Background()
	keys, err := h.env.Redis.Keys(ctx, "piivault:*:pii:ord-1").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	ttl := h.env.Redis.PTTL(ctx, keys[0]).Val()
	require.Greater(t, ttl, 719*time.Hour)
	require.LessOrEqual(t, ttl, 720*time.Hour)
	ct := h.env.Redis.HGet(ctx, keys[0], "ct").Val()
	require.True(t, strings.HasPrefix(ct, "vault:v1:"), "stored value is transit ciphertext")

	// Same order, same body → 200 with the same record; different body → 409.
	again := h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-1"))
	require.Equal(t, 200, again.Status)
	require.Equal(t, r.Body["expires_at"], again.Body["expires_at"])
	other := orderBody("ord-1")
	other["payment_ref"] = "pi_other"
	conflict := h.call("POST", "/v1/orders", h.apiKey, other)
	require.Equal(t, 409, conflict.Status)
	require.Equal(t, "conflict", conflict.errorCode())

	ref := h.call("GET", "/v1/orders/ord-1", h.apiKey, nil)
	require.Equal(t, 200, ref.Status)
	require.Equal(t, "pi_ord-1", ref.Body["payment_ref"])
	require.Nil(t, ref.Body["purged_at"])
	require.Nil(t, ref.Body["purge_reason"])
	for _, f := range []string{"order_id", "payment_ref", "status", "created_at", "expires_at", "purged_at", "purge_reason"} {
		require.Contains(t, ref.Body, f)
	}
	requireNoPII(t, "reference", string(ref.Raw))
	require.Equal(t, 404, h.call("GET", "/v1/orders/nope", h.apiKey, nil).Status)
}

func TestBadOrderInputChangesNothing(t *testing.T) {
	h := newHarness(t, nil, nil)
	withShipping := func(f func(map[string]any)) map[string]any {
		b := orderBody("ord-bad")
		f(b["shipping"].(map[string]any))
		return b
	}
	tests := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"malformed json", []byte(`{"order_id":`), 400, ""},
		{"unknown field", map[string]any{"order_id": "x", "coupon": "FREE"}, 400, ""},
		{"trailing data", []byte(`{"order_id":"a"} {}`), 400, ""},
		{"wrong type", map[string]any{"order_id": 7}, 400, ""},
		{"bad email", withShipping(func(s map[string]any) { s["email"] = "not-an-email" }), 422, "shipping.email"},
		{"bad country", withShipping(func(s map[string]any) {
			s["address"].(map[string]any)["country"] = "XX"
		}), 422, "shipping.address.country"},
		{"control chars", withShipping(func(s map[string]any) { s["name"] = "Jane\u0007" }), 422, "shipping.name"},
		{"too large", []byte(`{"order_id":"` + strings.Repeat("a", 17<<10) + `"}`), 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orderKeys := func() []string { return h.env.Redis.Keys(context.Background(), "piivault:{s*").Val() }
			before := orderKeys()
			r := h.call("POST", "/v1/orders", h.apiKey, tt.body)
			require.Equal(t, tt.status, r.Status, string(r.Raw))
			if tt.field != "" {
				require.Contains(t, r.Body["error"].(map[string]any)["fields"], tt.field)
			}
			requireNoPII(t, "error", string(r.Raw))
			require.NotContains(t, string(r.Raw), "not-an-email")
			require.ElementsMatch(t, before, orderKeys(), "a refused request wrote order data")
		})
	}
}

func TestClientKeys(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	key, err := h.app.clients.Add(ctx, "revokable")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(key, "pvk_"))
	require.Equal(t, 201, h.call("POST", "/v1/orders", key, orderBody("ord-k1")).Status)
	// Redis holds only a hash of the key.
	require.NotContains(t, h.redisDump(), key)

	require.NoError(t, h.app.clients.Revoke(ctx, "revokable"))
	revoked := h.call("POST", "/v1/orders", key, orderBody("ord-k2"))
	missing := h.call("POST", "/v1/orders", "", orderBody("ord-k2"))
	unknown := h.call("POST", "/v1/orders", "pvk_unknown", orderBody("ord-k2"))
	for _, r := range []response{revoked, missing, unknown} {
		require.Equal(t, 401, r.Status)
	}
	require.Equal(t, string(revoked.Raw), string(unknown.Raw), "401s must not say which check failed")
}

func TestCiphertextMovedToAnotherOrderDoesNotDecrypt(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-a")
	other := orderBody("ord-b")
	other["shipping"].(map[string]any)["name"] = "Other Person"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, other).Status)
	_, tok := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-b/shipping?reason=label", tok, nil).Status)

	ctx := context.Background()
	ka := h.env.Redis.Keys(ctx, "piivault:*:pii:ord-a").Val()[0]
	kb := h.env.Redis.Keys(ctx, "piivault:*:pii:ord-b").Val()[0]
	h.env.Redis.HSet(ctx, kb, "ct", h.env.Redis.HGet(ctx, ka, "ct").Val())

	// The ciphertext is bound to ord-a as associated data, so Vault will not
	// open it as ord-b's: that is Vault's "cannot be decrypted any more",
	// answered as for a trimmed key version (410, retention_expired). The
	// order itself is untouched and the refused reveal is not audited.
	r := h.call("GET", "/v1/orders/ord-b/shipping?reason=label", tok, nil)
	require.Equal(t, 410, r.Status, string(r.Raw))
	require.Equal(t, "gone", r.errorCode())
	require.Equal(t, "retention_expired", r.Body["error"].(map[string]any)["detail"].(map[string]any)["purge_reason"])
	requireNoPII(t, "moved ciphertext answer", string(r.Raw))
	require.Equal(t, "held", h.status("ord-b"))
	require.Equal(t, 1, countAudit(t, h, "order.reveal"), "only the genuine reveal")
}

func TestVaultDownMeans503AndNothingWritten(t *testing.T) {
	env := testenv.Start(t)
	h := newHarness(t, env, nil)
	h.storeOrder("ord-before")
	env.StopVault(t)
	start := time.Now()
	r := h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-during"))
	require.Equal(t, 503, r.Status, string(r.Raw))
	require.Equal(t, "vault_unavailable", r.errorCode())
	require.Less(t, time.Since(start), 15*time.Second)
	keys := env.Redis.Keys(context.Background(), "*ord-during*").Val()
	require.Empty(t, keys, "nothing may be written when Vault is down")
	require.Equal(t, 503, h.call("GET", "/readyz", "", nil).Status)
	// The purchase reference of an earlier order is still readable.
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-before", h.apiKey, nil).Status)
}

func TestRedisDownMeans503(t *testing.T) {
	env := testenv.Start(t)
	h := newHarness(t, env, nil)
	env.StopRedis(t)
	r := h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-x"))
	require.Equal(t, 503, r.Status, string(r.Raw))
	require.Equal(t, "store_unavailable", r.errorCode())
}

func TestPurchaseReferenceSurvivesPurge(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-p")
	done, err := h.app.purger.Purge(context.Background(), "system", "", "ord-p", orders.ReasonShipped)
	require.NoError(t, err)
	require.True(t, done)
	again, err := h.app.purger.Purge(context.Background(), "system", "", "ord-p", orders.ReasonShipped)
	require.NoError(t, err)
	require.False(t, again, "purge is idempotent")
	ref := h.call("GET", "/v1/orders/ord-p", h.apiKey, nil)
	require.Equal(t, "shipped", ref.Body["status"])
	require.Equal(t, "shipped", ref.Body["purge_reason"])
	require.NotNil(t, ref.Body["purged_at"])
	require.Empty(t, h.env.Redis.Keys(context.Background(), "piivault:*:pii:ord-p").Val())
	// A purged order's PII cannot be stored again.
	require.Equal(t, 409, h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-p")).Status)
}
