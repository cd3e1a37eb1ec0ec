package main

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/orders"
)

// newShipping is a corrected address: other canaries than orderBody's.
func newShipping() map[string]any {
	return map[string]any{
		"name": "Correctname Qwxyv", "email": "corrected.qwxyv@example.org", "phone": "+15550199999",
		"address": map[string]any{"line1": "12 Fixedstreet", "line2": "", "city": "Newtown", "state": "NY",
			"postal_code": "10001", "country": "US"},
	}
}

func TestACorrectionReplacesTheAddressWithoutReadingIt(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	id := orderIDs("fix", 1)[0]
	h.storeOrder(id)
	before := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
	oldCT := h.env.Redis.HGet(ctx, piiKey(id), "ct").Val()
	require.NotEmpty(t, oldCT)

	r := h.call("PUT", "/v1/orders/"+id+"/shipping", h.apiKey, map[string]any{"shipping": newShipping()})
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, id, r.Body["order_id"])
	assert.Equal(t, "held", r.Body["status"])
	assert.Equal(t, before.Body["expires_at"], r.Body["expires_at"], "a correction never extends retention")
	assert.NotContains(t, string(r.Raw), "Fixedstreet", "nothing of the new address comes back")
	requireNoPII(t, "the answer", string(r.Raw))

	// Reveals show the new address: full for fulfillment, masked for support.
	_, ful := h.login("fulfillment")
	full := h.call("GET", "/v1/orders/"+id+"/shipping?reason=address_check", ful, nil)
	require.Equal(t, 200, full.Status, string(full.Raw))
	assert.Equal(t, "Correctname Qwxyv", full.Body["name"])
	assert.Equal(t, "12 Fixedstreet", full.Body["address"].(map[string]any)["line1"])
	_, sup := h.login("support")
	masked := h.call("GET", "/v1/orders/"+id+"/shipping?reason=customer_contact", sup, nil)
	require.Equal(t, 200, masked.Status, string(masked.Raw))
	assert.Equal(t, "Newtown", masked.Body["address"].(map[string]any)["city"])
	assert.NotContains(t, string(masked.Raw), "Correctname")
	assert.NotContains(t, string(masked.Raw), "Fixedstreet")

	// The old ciphertext is gone, the email index follows the new email,
	// the PII key keeps its expiry.
	dump := h.redisDump()
	assert.NotContains(t, dump, oldCT)
	requireNoPII(t, "Redis", dump)
	assert.NotContains(t, dump, "Fixedstreet")
	found, err := h.app.store.History(ctx, "corrected.qwxyv@example.org")
	require.NoError(t, err)
	assert.Contains(t, found, id)
	found, err = h.app.store.History(ctx, "canary.zzyzx@example.com")
	require.NoError(t, err)
	assert.NotContains(t, found, id)
	ttl := h.env.Redis.PTTL(ctx, piiKey(id)).Val()
	assert.Positive(t, ttl)

	// Audited with actor, channel and IP.
	entries := auditWith(t, h, audit.ActionRectify, id)
	require.Len(t, entries, 1)
	assert.Equal(t, "storefront", entries[0].Detail["channel"])
	assert.Equal(t, "127.0.0.1", entries[0].IP)
	assert.NotEmpty(t, entries[0].Actor)

	// Support may correct too (from a customer's email); fulfillment may not.
	r = h.call("PUT", "/v1/orders/"+id+"/shipping", sup, map[string]any{"shipping": orderBody(id)["shipping"]})
	require.Equal(t, 200, r.Status, string(r.Raw))
	entries = auditWith(t, h, audit.ActionRectify, id)
	require.Len(t, entries, 2)
	assert.Equal(t, "staff", entries[1].Detail["channel"], "the trail lists oldest first")
	assert.Equal(t, 403, h.call("PUT", "/v1/orders/"+id+"/shipping", ful, map[string]any{"shipping": newShipping()}).Status)
	requireNoPII(t, "serve's log", h.logs.String())
}

func piiKey(id string) string { return fmt.Sprintf("piivault:{s%02d}:pii:%s", orders.ShardOf(id), id) }

func TestCorrectionsAreRefusedWhenTheyCannotHold(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	ids := orderIDs("nofix", 3)
	for _, id := range ids {
		h.storeOrder(id)
	}
	_, ful := h.login("fulfillment")
	put := func(id string, body any) response {
		return h.call("PUT", "/v1/orders/"+id+"/shipping", h.apiKey, body)
	}
	// Shipped: 410 with the reason.
	require.Equal(t, 200, h.call("POST", "/v1/orders/"+ids[0]+"/shipped", ful, nil).Status)
	r := put(ids[0], map[string]any{"shipping": newShipping()})
	assert.Equal(t, 410, r.Status, string(r.Raw))
	assert.Equal(t, "shipped", r.Body["error"].(map[string]any)["detail"].(map[string]any)["purge_reason"])
	// A label bought: the old address is printed on it.
	s := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", ful, shipmentsBody([]string{ids[1]})))[ids[1]]
	require.Nil(t, s["error"])
	r = put(ids[1], map[string]any{"shipping": newShipping()})
	assert.Equal(t, 409, r.Status, string(r.Raw))
	assert.Equal(t, "label_bought", r.errorCode())
	// Bad input changes nothing.
	bad := newShipping()
	bad["address"].(map[string]any)["country"] = "Narnia"
	r = put(ids[2], map[string]any{"shipping": bad})
	assert.Equal(t, 422, r.Status)
	assert.Contains(t, r.Body["error"].(map[string]any)["fields"], "shipping.address.country")
	assert.Equal(t, 400, put(ids[2], []byte(`{"shipping":{},"extra":1}`)).Status)
	assert.Equal(t, 422, put(ids[2], map[string]any{}).Status)
	assert.Equal(t, 404, put("no-such-order", map[string]any{"shipping": newShipping()}).Status)
	assert.Empty(t, auditWith(t, h, audit.ActionRectify, ids[2]))
	full := h.call("GET", "/v1/orders/"+ids[2]+"/shipping?reason=address_check", ful, nil)
	assert.Equal(t, "742 Canarystreet", full.Body["address"].(map[string]any)["line1"])
}

// A correction racing a purge never resurrects PII: whichever lands
// first, the order ends purged with nothing left of either address.
func TestACorrectionRacingAPurgeNeverResurrectsPII(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	_, ful := h.login("fulfillment")
	for i, id := range orderIDs("race-fix", 8) {
		h.storeOrder(id)
		var wg sync.WaitGroup
		var fix, ship response
		var fixErr, shipErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			fix, fixErr = h.do("PUT", "/v1/orders/"+id+"/shipping", h.apiKey, map[string]any{"shipping": newShipping()})
		}()
		go func() { defer wg.Done(); ship, shipErr = h.post("/v1/orders/"+id+"/shipped", ful, nil) }()
		wg.Wait()
		require.NoError(t, fixErr)
		require.NoError(t, shipErr)
		require.Equal(t, 200, ship.Status, string(ship.Raw))
		require.Contains(t, []int{200, 410}, fix.Status, "round %d: %s", i, fix.Raw)
		assert.Equal(t, int64(0), h.env.Redis.Exists(ctx, piiKey(id)).Val(), "round %d: no PII key after the purge", i)
		assert.Equal(t, "shipped", h.status(id))
	}
}
