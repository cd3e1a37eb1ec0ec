package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/orders"
)

// storeFor stores an order of email.
func (h *harness) storeFor(id, email string) {
	h.t.Helper()
	b := orderBody(id)
	b["shipping"].(map[string]any)["email"] = email
	r := h.call("POST", "/v1/orders", h.apiKey, b)
	require.Equal(h.t, 201, r.Status, string(r.Raw))
}

// reportOrders indexes an access report's orders by id.
func reportOrders(t *testing.T, r response) map[string]map[string]any {
	t.Helper()
	require.Equal(t, 201, r.Status, string(r.Raw))
	out := map[string]map[string]any{}
	for _, o := range r.Body["orders"].([]any) {
		m := o.(map[string]any)
		out[m["order_id"].(string)] = m
	}
	return out
}

// Invariant 14: the access report's copy of the held data is a reveal in
// every respect: one audit entry per decrypted order with reason
// access_request, in the order's reveal list, counted toward the hourly
// limit, refused in a lockdown.
func TestAccessReportCopyIsARevealInEveryRespect(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_REVEAL_LIMIT": "3"})
	const email = "copy.customer@example.com"
	h.storeFor("ord-cp-1", email)
	h.storeFor("ord-cp-2", email)
	supName, sup := h.login("support")

	first := reportOrders(t, h.call("POST", "/v1/access-requests", sup, map[string]any{"email": email}))
	require.Len(t, first, 2)
	for _, id := range []string{"ord-cp-1", "ord-cp-2"} {
		require.Equal(t, "C*** Z***", first[id]["copy"].(map[string]any)["name"], "support's copy is the masked one")
		page, err := h.app.audit.List(context.Background(), audit.Filter{OrderID: id, Action: audit.ActionReveal})
		require.NoError(t, err)
		require.Len(t, page.Entries, 1, "one reveal entry per decrypted order")
		e := page.Entries[0]
		require.Equal(t, supName, e.Actor)
		require.Equal(t, orders.ReasonAccessRequest, e.Detail["reason"])
		require.Equal(t, "masked", e.Detail["view"])
		require.Equal(t, "127.0.0.1", e.IP)
	}

	// A later report lists that reveal, by role and reason (its own copy,
	// made after the list was read, is the next report's).
	byID := reportOrders(t, h.call("POST", "/v1/access-requests", sup, map[string]any{"order_ids": []string{"ord-cp-1"}}))
	rv := byID["ord-cp-1"]["reveals"].([]any)
	require.Len(t, rv, 1, "the first report's copy")
	require.Equal(t, map[string]any{"role": "support", "reason": orders.ReasonAccessRequest}, map[string]any{
		"role": rv[0].(map[string]any)["role"], "reason": rv[0].(map[string]any)["reason"]})

	// Three reveals in the hour: a copy of two more would cross the limit
	// of three, and the report is refused whole (nothing decrypted).
	r := h.call("POST", "/v1/access-requests", sup, map[string]any{"email": email})
	require.Equal(t, 429, r.Status, string(r.Raw))
	require.Equal(t, 3, countAudit(t, h, audit.ActionReveal))

	// In a lockdown (its flag set on every instance) no copy is made.
	h2 := newHarness(t, h.env, nil)
	sup2 := h2.loginToken("support")
	require.NoError(t, h.env.Redis.Set(context.Background(), "piivault:{lockdown}", `{"on":true}`, 0).Err())
	r = h2.call("POST", "/v1/access-requests", sup2, map[string]any{"email": email})
	require.Equal(t, 423, r.Status, string(r.Raw))
	require.Equal(t, "locked_down", r.errorCode())
	require.Equal(t, 3, countAudit(t, h, audit.ActionReveal))
}

// bidxOf is the email's blind index, as piivault's service identity
// computes it in Vault: what "derived from an email" looks like in Redis.
func bidxOf(t *testing.T, h *harness, email string) string {
	t.Helper()
	res, err := h.env.Service.HMAC(context.Background(), [][]byte{[]byte("email\x00" + orders.NormalizeEmail(email))})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	return res[0].Value
}

// Invariant 13: nothing derived from an email outlives the order's
// retention. A shipped order stays findable by its email until its own
// expires_at (a customer asking soon after still sees it); after, the
// email finds nothing, no key or value in Redis holds the email's HMAC,
// and the access report is asked for by order id.
func TestNothingDerivedFromAnEmailOutlivesTheRetention(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_RETENTION": "6s"})
	const email = "Retention.Canary@Example.com"
	bidx := bidxOf(t, h, email)
	ids := []string{"ord-em-shipped", "ord-em-deleted", "ord-em-held"}
	for _, id := range ids {
		h.storeFor(id, email)
	}
	_, ful := h.login("fulfillment")
	sup := h.loginToken("support")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-em-shipped/shipping?reason=label", ful, nil).Status)
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-em-shipped/shipped", ful, nil).Status)
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-em-deleted/pii", sup, nil).Status)

	// Within the retention the email still finds all three, purged or not.
	byEmail := reportOrders(t, h.call("POST", "/v1/access-requests", sup, map[string]any{"email": email}))
	require.Len(t, byEmail, 3)
	require.Contains(t, h.redisDump(), bidx, "the email's link exists while its orders are within their retention")

	deadline := time.Now().Add(6 * time.Second)
	for _, id := range ids {
		ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
		exp, err := time.Parse(time.RFC3339Nano, ref.Body["expires_at"].(string))
		require.NoError(t, err)
		if exp.After(deadline) {
			deadline = exp
		}
	}
	time.Sleep(time.Until(deadline) + 100*time.Millisecond)
	_, err := h.app.purger.Sweep(context.Background())
	require.NoError(t, err)

	dump := h.redisDump()
	require.NotContains(t, dump, bidx, "a key or value derived from the email outlived the retention")
	require.NotContains(t, strings.ToLower(dump), "retention.canary")
	requireNoPII(t, "redis", dump)

	// The email finds nothing now; the order ids still find every reference
	// and reveal list, and the report holds no email.
	require.Empty(t, reportOrders(t, h.call("POST", "/v1/access-requests", sup, map[string]any{"email": email})))
	r := h.call("POST", "/v1/access-requests", sup, map[string]any{"order_ids": ids})
	byID := reportOrders(t, r)
	require.Len(t, byID, 3)
	require.Equal(t, "shipped", byID["ord-em-shipped"]["purge_reason"])
	require.Equal(t, "customer_request", byID["ord-em-deleted"]["purge_reason"])
	require.Equal(t, orders.ReasonRetention, byID["ord-em-held"]["purge_reason"])
	require.Equal(t, "label", byID["ord-em-shipped"]["reveals"].([]any)[0].(map[string]any)["reason"])
	require.NotContains(t, strings.ToLower(string(r.Raw)), "canary")

	for _, bad := range []map[string]any{
		{"order_ids": []string{}},
		{"order_ids": []string{"bad id!"}},
		{"email": email, "order_ids": []string{"ord-em-held"}},
	} {
		require.Equal(t, 422, h.call("POST", "/v1/access-requests", sup, bad).Status, "%v", bad)
	}
}

// An earlier version kept the email's order history for 13 months and its
// HMAC on every reference; start-up forgets both.
func TestLegacyEmailLinksAreForgottenAtStartUp(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-legacy")
	ctx := context.Background()
	rdb := h.env.Redis
	ref := "piivault:{s" + fmt.Sprintf("%02d", orders.ShardOf("ord-legacy")) + "}:ref:ord-legacy"
	require.NoError(t, rdb.HSet(ctx, ref, "bidx", "vault:v1:legacy").Err())
	hist := "piivault:{s" + fmt.Sprintf("%02d", orders.ShardOf("ord-legacy")) + "}:emailhist:vault:v1:legacy"
	require.NoError(t, rdb.SAdd(ctx, hist, "ord-legacy").Err())
	require.NoError(t, rdb.Expire(ctx, hist, 396*24*time.Hour).Err())

	n, err := h.app.store.ForgetLegacyEmailLinks(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NotContains(t, h.redisDump(), "vault:v1:legacy")
	require.Equal(t, "held", h.status("ord-legacy"))
}

// The audit cursor is validated once, in the trail, for the API and the
// console alike: a malformed one is 422, never a 503 from Redis.
func TestAMalformedAuditCursorIs422ForTheAPIAndTheConsole(t *testing.T) {
	h := newHarness(t, nil, nil)
	tok := h.loginToken("auditor")
	for _, after := range []string{"a-b", "1-", "-1", "12"} {
		r := h.call("GET", "/v1/audit?after="+url.QueryEscape(after), tok, nil)
		require.Equal(t, 422, r.Status, "%s: %s", after, r.Raw)
		require.Equal(t, "validation_failed", r.errorCode(), string(r.Raw))
	}
	signIn := h.console("/console/login", h.signInForm("auditor"), nil, "Origin", h.url)
	require.NotNil(t, signIn.Cookie, "signed in: %d %s", signIn.Status, signIn.Body)
	page := h.console("/console/audit?after=a-b", nil, signIn.Cookie)
	require.Equal(t, 422, page.Status, page.Body)
	require.Equal(t, 200, h.console("/console/audit", nil, signIn.Cookie).Status)
}

// A lockdown whose audit entry cannot be written still alerts, answers
// that the entry is pending, and leaves it in the outbox for the sweep:
// the admin who turned it on has just lost their own session.
func TestLockdownAlertsFirstAndDefersItsAuditEntry(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL})
	admin := h.loginToken("admin")
	ctx := context.Background()
	// The trail's stream made unwritable (a wrong type at its key): every
	// append fails while the rest of Redis works.
	logKey := "piivault:{audit}:log"
	saved, err := h.env.Redis.Dump(ctx, logKey).Result()
	require.NoError(t, err)
	require.NoError(t, h.env.Redis.Del(ctx, logKey).Err())
	require.NoError(t, h.env.Redis.Set(ctx, logKey, "not a stream", 0).Err())

	r := h.call("POST", "/v1/admin/lockdown", admin, map[string]any{"on": true})
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, true, r.Body["on"])
	require.Equal(t, true, r.Body["audit_pending"], string(r.Raw))
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), "lockdown ON") }, 5*time.Second, 50*time.Millisecond)
	notes, err := h.app.store.Notes(ctx, 100)
	require.NoError(t, err)
	var deferred []audit.Entry
	for _, n := range notes {
		var e audit.Entry
		require.NoError(t, json.Unmarshal(n.Body, &e))
		if e.Action == audit.ActionLockdown {
			deferred = append(deferred, e)
		}
	}
	require.Len(t, deferred, 1, "the entry waits in the outbox")
	require.Equal(t, "true", deferred[0].Detail["on"])
	require.NotEmpty(t, deferred[0].Event, "an event id keeps the drain from writing it twice")

	require.NoError(t, h.env.Redis.Del(ctx, logKey).Err())
	require.NoError(t, h.env.Redis.Restore(ctx, logKey, 0, saved).Err())
	require.Equal(t, "on", h.call("GET", "/readyz", "", nil).Body["lockdown"])
}
