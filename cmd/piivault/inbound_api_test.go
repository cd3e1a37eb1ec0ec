package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testInboundSecret = "inbound-test-secret"

// inboundHarness is an instance that takes emailed requests, verifies
// DKIM against the given sender domains and sends mail to box.
func inboundHarness(t *testing.T, box *mailbox, domains ...*senderDomain) *harness {
	t.Helper()
	extra := box.env()
	extra["PIIVAULT_INBOUND_SECRET"] = testInboundSecret
	extra["PIIVAULT_PUBLIC_URL"] = "https://vault.shop.example"
	extra["PIIVAULT_INBOUND_ADDRESS"] = "privacy@shop.example"
	return newHarnessTweaked(t, nil, extra, func(c *config) { c.dkimLookup = lookup(domains...) })
}

// postmark delivers raw as Postmark's inbound webhook does, with "Include
// raw email content" on.
func (h *harness) postmark(from, subject, text, raw string) response {
	h.t.Helper()
	body, err := json.Marshal(map[string]any{
		"From": from, "FromFull": map[string]string{"Email": from, "Name": ""}, "To": "privacy@shop.example",
		"Subject": subject, "MessageID": "pm-" + subject, "Date": time.Now().UTC().Format(time.RFC1123Z),
		"TextBody": text, "MessageStream": "inbound", "Headers": []map[string]string{}, "RawEmail": raw,
	})
	require.NoError(h.t, err)
	return h.call("POST", "/v1/inbound/postmark", "", body, "Authorization", basicAuth("postmark", testInboundSecret))
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

func TestADKIMSignedDeletionEmailPurgesEveryOrderOfItsSender(t *testing.T) {
	box := newMailbox(t)
	customer := newSenderDomain(t, "example.com") // orderBody's email is canary.zzyzx@example.com
	forger := newSenderDomain(t, "attacker.example")
	h := inboundHarness(t, box, customer, forger)
	ids := orderIDs("mailed", 3)
	for _, id := range ids {
		h.storeOrder(id)
	}
	other := orderIDs("other", 1)[0]
	body := orderBody(other)
	body["shipping"].(map[string]any)["email"] = "someone.else@example.net"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, body).Status)

	// A forged From: (signed by another domain) and an unsigned one purge
	// nothing and wait for support.
	forged := email(t, forger, "canary.zzyzx@example.com", "Delete my data", "Please delete everything.", "forged-1@attacker.example")
	r := h.postmark("canary.zzyzx@example.com", "Delete my data", "Please delete everything.", forged)
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "pending", r.Body["outcome"])
	unsigned := email(t, nil, "canary.zzyzx@example.com", "Bitte löschen", "Löschen Sie meine Daten.", "unsigned-1@example.com")
	r = h.postmark("canary.zzyzx@example.com", "Bitte löschen", "Löschen Sie meine Daten.", unsigned)
	assert.Equal(t, "pending", r.Body["outcome"])
	for _, id := range ids {
		assert.Equal(t, "held", h.status(id), "a sender who is not proven purges nothing")
	}
	_, sup := h.login("support")
	pending := h.call("GET", "/v1/deletion-requests?status=pending", sup, nil)
	require.Equal(t, 200, pending.Status, string(pending.Raw))
	list := pending.Body["requests"].([]any)
	require.Len(t, list, 2)
	verdicts := map[string]bool{}
	for _, p := range list {
		m := p.(map[string]any)
		verdicts[m["dkim"].(string)] = true
		assert.NotContains(t, m["sender"], "canary.zzyzx", "the sender is masked")
		assert.Contains(t, m["sender"], "example.com")
	}
	assert.Equal(t, map[string]bool{"fail": true, "none": true}, verdicts)

	// The real customer's signed email purges all three at once, and one
	// receipt reaches them.
	signed := email(t, customer, "Canary Zzyzx <canary.zzyzx@example.com>", "Please delete my data", "Delete all my personal data.", "real-1@example.com")
	r = h.postmark("canary.zzyzx@example.com", "Please delete my data", "Delete all my personal data.", signed)
	require.Equal(t, 200, r.Status, string(r.Raw))
	assert.Equal(t, "deleted", r.Body["outcome"])
	for _, id := range ids {
		assert.Equal(t, "purged", h.status(id))
		assert.Equal(t, "customer_request", h.purgeReason(id))
	}
	assert.Equal(t, "held", h.status(other), "another customer's order stays")
	pollUntil(t, 10*time.Second, 100*time.Millisecond, func() bool { return len(box.to("canary.zzyzx@example.com")) >= 1 },
		"the receipt is mailed from the outbox")
	receipts := box.to("canary.zzyzx@example.com")
	require.Len(t, receipts, 1)
	for _, id := range ids {
		assert.Contains(t, receipts[0].Body, id, "the receipt names each order")
	}
	requireNoPII(t, "the receipt", receipts[0].Body)
	assert.NotContains(t, receipts[0].Body, "Canarystreet")

	// The same webhook again (Postmark retries) does nothing twice.
	r = h.postmark("canary.zzyzx@example.com", "Please delete my data", "Delete all my personal data.", signed)
	assert.Equal(t, "duplicate", r.Body["outcome"])
	time.Sleep(2 * mailEvery)
	assert.Len(t, box.to("canary.zzyzx@example.com"), 1, "one receipt")

	// Wrong or missing credentials.
	assert.Equal(t, 401, h.call("POST", "/v1/inbound/postmark", "", []byte(`{}`), "Authorization", basicAuth("postmark", "wrong")).Status)
	assert.Equal(t, 401, h.call("POST", "/v1/inbound/postmark", "", []byte(`{}`)).Status)

	// Nothing of any email in Redis, the log or the metrics.
	dump := h.redisDump()
	for _, s := range []string{"canary.zzyzx", "Delete all my personal data", "Please delete my data", "Löschen Sie"} {
		assert.NotContains(t, dump, s)
		assert.NotContains(t, h.logs.String(), s)
	}
	metrics := string(h.call("GET", "/metrics", "", nil).Raw)
	assert.NotContains(t, metrics, "canary")
	requireNoPII(t, "serve's log", h.logs.String())
	assert.True(t, strings.Contains(metrics, "piivault_inbound_requests_total"))
}

func TestPendingEmailedRequestsAreConfirmedOrRejectedBySupport(t *testing.T) {
	box := newMailbox(t)
	h := inboundHarness(t, box) // no domain publishes a key: nothing verifies
	ids := orderIDs("pend", 2)
	for _, id := range ids {
		h.storeOrder(id)
	}
	raw := email(t, nil, "canary.zzyzx@example.com", "Delete my data", "Please delete my data. My order was "+ids[0], "pend-1@example.com")
	require.Equal(t, "pending", h.postmark("canary.zzyzx@example.com", "Delete my data", "x", raw).Body["outcome"])
	raw2 := email(t, nil, "canary.zzyzx@example.com", "Wrong address", "My address is wrong", "pend-2@example.com")
	r := h.postmark("canary.zzyzx@example.com", "Wrong address", "x", raw2)
	require.Equal(t, "pending", r.Body["outcome"])

	_, sup := h.login("support")
	list := h.call("GET", "/v1/deletion-requests?status=pending", sup, nil).Body["requests"].([]any)
	require.Len(t, list, 2)
	var deletion, correction map[string]any
	for _, p := range list {
		m := p.(map[string]any)
		switch m["kind"] {
		case "deletion":
			deletion = m
		case "correction":
			correction = m
		}
	}
	require.NotNil(t, deletion)
	require.NotNil(t, correction)
	assert.Contains(t, deletion["excerpt"], ids[0], "support reads the excerpt, decrypted with their own token")
	_, ful := h.login("fulfillment")
	assert.Equal(t, 403, h.call("GET", "/v1/deletion-requests?status=pending", ful, nil).Status)
	assert.Equal(t, 422, h.call("GET", "/v1/deletion-requests?status=done", sup, nil).Status)

	c := h.call("POST", "/v1/deletion-requests/"+deletion["id"].(string)+"/confirm", sup, nil)
	require.Equal(t, 200, c.Status, string(c.Raw))
	for _, id := range ids {
		assert.Equal(t, "purged", h.status(id))
	}
	pollUntil(t, 10*time.Second, 100*time.Millisecond, func() bool { return len(box.to("canary.zzyzx@example.com")) == 1 })
	rj := h.call("POST", "/v1/deletion-requests/"+correction["id"].(string)+"/reject", sup, nil)
	require.Equal(t, 200, rj.Status, string(rj.Raw))
	assert.Empty(t, h.call("GET", "/v1/deletion-requests?status=pending", sup, nil).Body["requests"])
	assert.Equal(t, 404, h.call("POST", "/v1/deletion-requests/"+deletion["id"].(string)+"/confirm", sup, nil).Status)
}

func TestConsoleShowsEmailedRequestsToSupport(t *testing.T) {
	box := newMailbox(t)
	extra := box.env()
	extra["PIIVAULT_INBOUND_SECRET"] = testInboundSecret
	// No https public URL: the browser signs in to the test server itself.
	h := newHarnessTweaked(t, nil, extra, func(c *config) { c.dkimLookup = lookup() })
	id := orderIDs("console-pend", 1)[0]
	h.storeOrder(id)
	raw := email(t, nil, "canary.zzyzx@example.com", "Delete my data", "Hello, please delete my data for order "+id+". Thanks!", "console-1@example.com")
	require.Equal(t, "pending", h.postmark("canary.zzyzx@example.com", "Delete my data", "x", raw).Body["outcome"])
	fix := email(t, nil, "canary.zzyzx@example.com", "Wrong address", "I typed the wrong street.", "console-2@example.com")
	require.Equal(t, "pending", h.postmark("canary.zzyzx@example.com", "Wrong address", "x", fix).Body["outcome"])

	name, pw, key := h.staffMember("support")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/deletions"),
		chromedp.WaitVisible("article.request", chromedp.ByQuery),
	))
	page := text(t, ctx, "section.pending")
	assert.Contains(t, page, "****@example.com")
	assert.NotContains(t, page, "canary.zzyzx")
	assert.Contains(t, page, "please delete my data for order "+id, "the excerpt, decrypted with support's token")
	assert.Contains(t, strings.ToLower(page), "dkim none")
	shot(t, ctx, "support-pending-requests")
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`form[action$="/confirm"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
	))
	assert.Contains(t, text(t, ctx, ".flash"), "1 order deleted")
	assert.Equal(t, "purged", h.status(id))
	shot(t, ctx, "support-pending-confirmed")
	pollUntil(t, 10*time.Second, 100*time.Millisecond, func() bool { return len(box.to("canary.zzyzx@example.com")) == 1 })
}
