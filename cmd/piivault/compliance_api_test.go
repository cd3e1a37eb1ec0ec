package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/testenv"
	"piivault/vault"
)

func TestRevealsNeedAReasonThatGoesIntoTheAudit(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-why")
	_, tok := h.login("fulfillment")
	for _, q := range []string{"", "?reason=", "?reason=curiosity", "?reason=label%20and%20more"} {
		r := h.call("GET", "/v1/orders/ord-why/shipping"+q, tok, nil)
		require.Equal(t, 422, r.Status, q)
		require.Equal(t, []any{"reason"}, r.Body["error"].(map[string]any)["fields"], q)
	}
	require.Zero(t, countAudit(t, h, audit.ActionReveal), "a refused reveal reveals nothing")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-why/shipping?reason=delivery_issue", tok, nil).Status)
	page, err := h.app.audit.List(context.Background(), audit.Filter{Action: audit.ActionReveal})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	require.Equal(t, "delivery_issue", page.Entries[0].Detail["reason"])
}

func TestLabelPickListIsOneVaultCallWithPerOrderErrors(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_REVEAL_LIMIT": "60"})
	var ids []string
	for i := 0; i < 50; i++ {
		id := fmt.Sprintf("ord-pick%02d", i)
		h.storeOrder(id)
		ids = append(ids, id)
	}
	sup := h.loginToken("support")
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-pick07/pii", sup, nil).Status)
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-pick31/pii", sup, nil).Status)
	name, tok := h.login("fulfillment")
	batches := h.metric("piivault_label_batch_decrypts_total")

	r := h.call("POST", "/v1/fulfillment/labels", tok, map[string]any{"order_ids": ids, "reason": "label"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, batches+1, h.metric("piivault_label_batch_decrypts_total"), "one batched Vault decrypt")
	labels := r.Body["labels"].([]any)
	require.Len(t, labels, 50)
	blocks, errs := 0, 0
	for _, l := range labels {
		m := l.(map[string]any)
		if s, ok := m["shipping"].(map[string]any); ok {
			blocks++
			require.Equal(t, "Canaryname Zzyzx", s["name"])
			continue
		}
		errs++
		e := m["error"].(map[string]any)
		require.Equal(t, "gone", e["code"])
		require.Equal(t, "customer_request", e["detail"].(map[string]any)["purge_reason"])
		require.Contains(t, []string{"ord-pick07", "ord-pick31"}, m["order_id"])
	}
	require.Equal(t, 48, blocks)
	require.Equal(t, 2, errs)
	require.Equal(t, 48, countAudit(t, h, audit.ActionReveal, name), "one audit entry per revealed order")

	// 48 of this hour's 60 reveals are used: a list of 13 would cross the
	// limit and is refused whole, decrypting nothing.
	r = h.call("POST", "/v1/fulfillment/labels", tok, map[string]any{"order_ids": ids[:13], "reason": "label"})
	require.Equal(t, 429, r.Status, string(r.Raw))
	require.Equal(t, 48, countAudit(t, h, audit.ActionReveal, name))
	// Bad lists are 422, and only fulfillment prints labels.
	require.Equal(t, 422, h.call("POST", "/v1/fulfillment/labels", tok, map[string]any{"order_ids": []string{}, "reason": "label"}).Status)
	require.Equal(t, 422, h.call("POST", "/v1/fulfillment/labels", tok, map[string]any{"order_ids": ids[:2], "reason": "nosy"}).Status)
	require.Equal(t, 403, h.call("POST", "/v1/fulfillment/labels", sup, map[string]any{"order_ids": ids[:2], "reason": "label"}).Status)
}

func TestAccessReportListsEveryOrderOfTheEmailAndStoresNoPII(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, id := range []string{"ord-ar-held", "ord-ar-shipped", "ord-ar-deleted"} {
		h.storeOrder(id)
	}
	other := orderBody("ord-ar-other")
	other["shipping"].(map[string]any)["email"] = "someone.else@example.com"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, other).Status)
	fulName, ful := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-ar-shipped/shipping?reason=label", ful, nil).Status)
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-ar-held/shipping?reason=address_check", ful, nil).Status)
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-ar-shipped/shipped", ful, nil).Status)
	sup := h.loginToken("support")
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-ar-deleted/pii", sup, nil).Status)

	r := h.call("POST", "/v1/access-requests", sup, map[string]any{"email": "Canary.Zzyzx@Example.com"})
	require.Equal(t, 201, r.Status, string(r.Raw))
	byID := map[string]map[string]any{}
	for _, o := range r.Body["orders"].([]any) {
		m := o.(map[string]any)
		byID[m["order_id"].(string)] = m
	}
	require.Len(t, byID, 3, "held, shipped and deleted; not the other customer's")
	require.Equal(t, "held", byID["ord-ar-held"]["status"])
	require.Equal(t, "shipped", byID["ord-ar-shipped"]["purge_reason"])
	require.Equal(t, "customer_request", byID["ord-ar-deleted"]["purge_reason"])
	rv := byID["ord-ar-shipped"]["reveals"].([]any)
	require.Len(t, rv, 1)
	require.Equal(t, "fulfillment", rv[0].(map[string]any)["role"])
	require.Equal(t, "label", rv[0].(map[string]any)["reason"])
	require.NotContains(t, string(r.Raw), fulName, "no staff names")
	require.Equal(t, "address_check", byID["ord-ar-held"]["reveals"].([]any)[0].(map[string]any)["reason"])
	// Support's copy of the held data is the masked one, for this answer only.
	require.Equal(t, "C*** Z***", byID["ord-ar-held"]["copy"].(map[string]any)["name"])
	require.NotEmpty(t, r.Body["retention"])
	require.NotEmpty(t, r.Body["recipients"])

	stored := h.call("GET", "/v1/access-requests/"+r.Body["report_id"].(string), sup, nil)
	require.Equal(t, 200, stored.Status)
	require.NotContains(t, string(stored.Raw), "copy")
	require.NotContains(t, string(stored.Raw), "C***")
	dump := h.redisDump()
	requireNoPII(t, "redis", dump)
	require.NotContains(t, strings.ToLower(dump), "canary.zzyzx")
	require.Equal(t, 1, countAudit(t, h, audit.ActionAccessRequest))
	require.Equal(t, 422, h.call("POST", "/v1/access-requests", sup, map[string]any{"email": "nope"}).Status)
	require.Equal(t, 403, h.call("POST", "/v1/access-requests", ful, map[string]any{"email": "a@example.com"}).Status)
}

func TestShopifyDataRequestCreatesTheAccessReport(t *testing.T) {
	h := newHarness(t, nil, nil)
	b := orderBody("ord-john-dr")
	b["shipping"].(map[string]any)["email"] = "john@example.com"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, b).Status)
	r := h.shopify("customers/data_request", "wh-dr", shopifyDataRequest("9002", "john@example.com", shopifyOrderA), testShopifySecret)
	require.Equal(t, "report_created", r.Body["outcome"], string(r.Raw))
	page, err := h.app.audit.List(context.Background(), audit.Filter{Action: audit.ActionDataRequest})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	id := page.Entries[0].Detail["report"]
	rep := h.call("GET", "/v1/access-requests/"+id, h.loginToken("support"), nil)
	require.Equal(t, 200, rep.Status, string(rep.Raw))
	require.Contains(t, string(rep.Raw), "ord-john-dr")
	require.NotContains(t, string(rep.Raw), "john@example.com")
}

func TestBreachScopeOfAPastWindowMatchesAHandCount(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-sc-before") // held across the whole window
	time.Sleep(20 * time.Millisecond)
	from := time.Now()
	time.Sleep(20 * time.Millisecond)
	h.storeOrder("ord-sc-in1")
	two := orderBody("ord-sc-in2")
	two["shipping"].(map[string]any)["email"] = "second.customer@example.com"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, two).Status)
	_, ful := h.login("fulfillment")
	sup := h.loginToken("support")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-sc-in1/shipping?reason=label", ful, nil).Status)
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-sc-in1/shipping?reason=customer_contact", sup, nil).Status)
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-sc-before/shipping?reason=label", ful, nil).Status)
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-sc-in2/shipped", ful, nil).Status)
	time.Sleep(20 * time.Millisecond)
	to := time.Now()
	time.Sleep(20 * time.Millisecond)
	h.storeOrder("ord-sc-after") // after the window
	// Everything is gone by the time the incident is looked into.
	for _, id := range []string{"ord-sc-before", "ord-sc-in1", "ord-sc-after"} {
		require.Equal(t, 200, h.call("DELETE", "/v1/orders/"+id+"/pii", sup, nil).Status)
	}
	aud := h.loginToken("auditor")
	r := h.call("GET", "/v1/incidents/scope?from="+from.UTC().Format(time.RFC3339Nano)+"&to="+to.UTC().Format(time.RFC3339Nano), aud, nil)
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.EqualValues(t, 3, r.Body["orders_held"], "before, in1 and in2")
	require.EqualValues(t, 2, r.Body["orders_revealed"])
	require.EqualValues(t, 3, r.Body["reveals"])
	require.Equal(t, map[string]any{"fulfillment": 2.0, "support": 1.0}, r.Body["reveals_by_role"])
	require.EqualValues(t, 2, r.Body["distinct_emails"], "purged orders' customers stay countable until their expiry")
	require.EqualValues(t, 0, r.Body["orders_without_email_link"])
	require.EqualValues(t, 1, r.Body["orders_purged"])
	require.Equal(t, 422, h.call("GET", "/v1/incidents/scope?from=yesterday", aud, nil).Status)
	require.Equal(t, 403, h.call("GET", "/v1/incidents/scope?from="+from.UTC().Format(time.RFC3339), ful, nil).Status)
}

func TestLockdownEndsSessionsRefusesRevealsAndLoginsAndKeepsIngest(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL})
	h.storeOrder("ord-ld")
	_, ful := h.login("fulfillment")
	name, pw, key := h.staffMember("fulfillment")
	admin := h.loginToken("admin")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-ld/shipping?reason=label", ful, nil).Status)

	r := h.call("POST", "/v1/admin/lockdown", admin, map[string]any{"on": true})
	require.Equal(t, 200, r.Status, string(r.Raw))
	// The reveal route remembers a token Vault accepted for 30 s and checks
	// the lockdown before it decrypts: the session's next reveal is 423.
	next := h.call("GET", "/v1/orders/ord-ld/shipping?reason=label", ful, nil)
	require.Equal(t, 423, next.Status, string(next.Raw))
	require.Equal(t, "locked_down", next.errorCode())
	// Every other route looks the token up in Vault: it was revoked, so
	// 401, for the admin who turned the lockdown on as well. The 423 above
	// comes from the Redis flag; only these, and Vault itself, show that
	// the tokens are gone.
	for _, c := range []struct{ path, tok string }{{"/v1/fulfillment/queue", ful}, {"/v1/admin/lockdown", admin}} {
		r := h.call("GET", c.path, c.tok, nil)
		require.Equal(t, 401, r.Status, "%s: %s", c.path, r.Raw)
		require.Equal(t, "unauthorized", r.errorCode())
	}
	requireRevokedInVault(t, h, ful)
	requireRevokedInVault(t, h, admin)
	l := h.loginAs(name, pw, key, time.Now())
	require.Equal(t, 423, l.Status, string(l.Raw))
	require.Equal(t, "locked_down", l.errorCode())
	// Ingest and purges go on; readyz says so.
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-ld2")).Status)
	require.Equal(t, "on", h.call("GET", "/readyz", "", nil).Body["lockdown"])
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), "lockdown ON") }, 5*time.Second, 50*time.Millisecond)

	// Lifted by the operator (no one can log in meanwhile).
	var out bytes.Buffer
	vars := baseEnv(h.env)
	require.NoError(t, realMain(context.Background(), []string{"lockdown", "status"}, nil, &out, io.Discard, envOf(vars)))
	require.Contains(t, out.String(), "ON since")
	require.NoError(t, realMain(context.Background(), []string{"lockdown", "off"}, nil, io.Discard, io.Discard, envOf(vars)))
	// Lifting it brings no revoked session back: the old token's reveal now
	// reaches Vault, which refuses it.
	old := h.call("GET", "/v1/orders/ord-ld/shipping?reason=label", ful, nil)
	require.Equal(t, 401, old.Status, string(old.Raw))
	l = h.loginAs(name, pw, key, time.Now().Add(30*time.Second))
	require.Equal(t, 200, l.Status, string(l.Raw))
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-ld/shipping?reason=label", l.Body["token"].(string), nil).Status)
	require.Equal(t, "off", h.call("GET", "/readyz", "", nil).Body["lockdown"])
	page, err := h.app.audit.List(context.Background(), audit.Filter{Action: audit.ActionLockdown})
	require.NoError(t, err)
	require.Len(t, page.Entries, 2)
	require.Equal(t, "true", page.Entries[0].Detail["on"])
	require.NotEqual(t, "operator", page.Entries[0].Actor, "who turned it on is recorded")
	require.Equal(t, "operator", page.Entries[1].Actor)
}

func TestRetentionReportCountsWhatOutlivedItsDeadline(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-rr1")
	h.storeOrder("ord-rr2")
	sup := h.loginToken("support")
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-rr2/pii", sup, nil).Status)
	aud := h.loginToken("auditor")
	r := h.call("GET", "/v1/reports/retention", aud, nil)
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.EqualValues(t, 1, r.Body["held"])
	require.EqualValues(t, 0, r.Body["outlived"])
	require.Equal(t, true, r.Body["audit_chain"].(map[string]any)["intact"])
	require.Len(t, r.Body["age_histogram"], 30)
	require.EqualValues(t, 1, r.Body["age_histogram"].([]any)[0].(map[string]any)["orders"], "held for less than a day")
	require.Contains(t, string(r.Raw), `"customer_request":1`)
	require.Len(t, r.Body["keys"], 2)

	// An order planted past its deadline straight into Redis, as if the
	// sweep had stopped: the report counts it, it does not assume zero.
	ctx := context.Background()
	past := time.Now().Add(-2 * time.Hour).UnixMilli()
	shard := h.env.Redis.Keys(ctx, "piivault:*:ref:ord-rr1").Val()[0]
	tag := strings.TrimSuffix(shard, "ref:ord-rr1")
	h.env.Redis.HSet(ctx, tag+"ref:ord-planted", "order_id", "ord-planted", "payment_ref", "pi_x", "status", "held",
		"created_at", past-int64(720*time.Hour/time.Millisecond), "expires_at", past)
	h.env.Redis.ZAdd(ctx, tag+"expiry", redis.Z{Score: float64(past), Member: "ord-planted"})
	r = h.call("GET", "/v1/reports/retention", aud, nil)
	require.EqualValues(t, 1, r.Body["outlived"], string(r.Raw))

	var out bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"report", "retention"}, nil, &out, io.Discard, envOf(baseEnv(h.env))))
	require.Contains(t, out.String(), "outlived their deadline:  1")
}

func TestExportOfReferencesHoldsNoPIIOrCiphertext(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-ex1")
	h.storeOrder("ord-ex2")
	_, ful := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-ex1/shipping?reason=label", ful, nil).Status)
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-ex1/shipped", ful, nil).Status)
	ctx := context.Background()
	ct := h.env.Redis.HGet(ctx, h.env.Redis.Keys(ctx, "piivault:*:pii:ord-ex2").Val()[0], "ct").Val()
	require.NotEmpty(t, ct)
	var out bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"export", "refs"}, nil, &out, io.Discard, envOf(baseEnv(h.env))))
	text := out.String()
	require.Equal(t, 2, strings.Count(text, `"type":"reference"`))
	require.Contains(t, text, `"order_id":"ord-ex1"`)
	require.Contains(t, text, `"action":"order.reveal"`)
	requireNoPII(t, "export", text)
	require.NotContains(t, text, ct, "no ciphertext")
	require.NotContains(t, text, `"ct"`)
	require.NotContains(t, strings.ToLower(text), "canary.zzyzx")
	require.Equal(t, 1, countAudit(t, h, audit.ActionExport))
}

func TestVaultsOwnAuditDeviceNamesTheRevealer(t *testing.T) {
	env := testenv.Start(t) // its own Vault: the file device slows every request
	path := filepath.Join(t.TempDir(), "vault-audit.log")
	_, err := env.Root.Setup(context.Background(), vault.SetupOptions{AuditFile: path})
	require.NoError(t, err)
	h := newHarness(t, env, nil)
	h.storeOrder("ord-va")
	name, tok := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-va/shipping?reason=label", tok, nil).Status)
	info, err := env.Service.LookupToken(context.Background(), tok)
	require.NoError(t, err)

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	log := string(raw)
	require.Contains(t, log, "transit/decrypt/order-pii")
	var decrypt string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"type":"response"`) && strings.Contains(line, "transit/decrypt/order-pii") {
			decrypt = line
		}
	}
	require.Contains(t, decrypt, info.EntityID, "Vault names the entity that decrypted")
	require.Contains(t, decrypt, name)
	requireNoPII(t, "vault's audit log", log)
}

// metric reads an unlabelled sample from /metrics, as Prometheus scrapes it.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	for _, line := range strings.Split(string(h.call("GET", "/metrics", "", nil).Raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(h.t, err)
			return f
		}
	}
	return 0
}
