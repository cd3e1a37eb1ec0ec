package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"piivault/mail"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/clients"
	"piivault/internal/testenv"
	"piivault/purge"
	"piivault/vault"
	"piivault/webhooks"
)

// The SPEC's invariants 1, 3, 4 and 7 proven on every path that carries PII
// or changes an order (issue 28), not only on POST /v1/orders: Stripe and
// Shopify deliveries, the browser checkout, error and outage paths, every
// kind of purge, and the key rotation's own schedule.

// --- Redis, read as its clients read it ----------------------------------------

// redisKey is one key as a reader of Redis sees it: its type, whether it
// expires, and its value read the way its type is read. Never DUMP: its
// encoding may compress a value (listpacks, LZF) and hide a substring.
type redisKey struct {
	Type  string
	TTL   bool
	Value string
}

// redisKeys reads every key in Redis: strings; hash fields and values; list
// items; set members; zset members with their scores; stream entries with
// their fields. A type it cannot read fails the test rather than being
// skipped, so a new kind of key cannot hide PII from it.
func redisKeys(t *testing.T, rdb *redis.Client) map[string]redisKey {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	out := make(map[string]redisKey, len(keys))
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		require.NoError(t, err)
		var lines []string
		switch typ {
		case "none": // expired since KEYS
			continue
		case "string":
			lines = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				lines = append(lines, f+"="+v)
			}
			sort.Strings(lines)
		case "list":
			lines = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			lines = rdb.SMembers(ctx, k).Val()
			sort.Strings(lines)
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				lines = append(lines, fmt.Sprintf("%v %s", z.Member, strconv.FormatFloat(z.Score, 'f', -1, 64)))
			}
		case "stream":
			for _, m := range rdb.XRange(ctx, k, "-", "+").Val() {
				fields := make([]string, 0, len(m.Values))
				for f, v := range m.Values {
					fields = append(fields, fmt.Sprintf("%s=%v", f, v))
				}
				sort.Strings(fields)
				lines = append(lines, m.ID+" "+strings.Join(fields, " "))
			}
		default:
			t.Fatalf("%s is a %s: teach redisKeys to read it", k, typ)
		}
		out[k] = redisKey{Type: typ, TTL: rdb.PTTL(ctx, k).Val() > 0, Value: strings.Join(lines, "\n")}
	}
	return out
}

// redisText is every key's name, type and value as one text to search.
func redisText(keys map[string]redisKey) string {
	var b strings.Builder
	for k, v := range keys {
		fmt.Fprintf(&b, "%s (%s)\n%s\n", k, v.Type, v.Value)
	}
	return b.String()
}

// --- canaries ------------------------------------------------------------------

// canaries are piiCanaries and the PII of the other bodies these tests
// send; each body's own word says which one leaked.
var canaries = append(append([]string{}, piiCanaries...),
	"Conflictcanary", "Invalidcanary", "Forgedcanary", "Shopifycanary", "Stripecanary")

// requireNoCanary fails if text holds any canary, in any letter case (an
// upper-cased name on a label, a lower-cased email).
func requireNoCanary(t *testing.T, where, text string) {
	t.Helper()
	lower := strings.ToLower(text)
	for _, c := range canaries {
		require.NotContains(t, lower, strings.ToLower(c), "PII canary %q found in %s", c, where)
	}
}

// requireNoPIIAnywhere searches Redis (every key, read as values), the
// instance's whole log and /metrics for every canary.
func (h *harness) requireNoPIIAnywhere(t *testing.T) {
	t.Helper()
	requireNoCanary(t, "redis", redisText(redisKeys(t, h.env.Redis)))
	h.requireNoPIIOutsideRedis(t)
}

// requireNoPIIOutsideRedis searches the log and /metrics (Redis is down).
func (h *harness) requireNoPIIOutsideRedis(t *testing.T) {
	t.Helper()
	requireNoCanary(t, "the log", h.logs.String())
	requireNoCanary(t, "/metrics", string(h.call("GET", "/metrics", "", nil).Raw))
}

// canaryAddress is orderBody's address in Stripe's and Shopify's shape.
func canaryAddress() map[string]any {
	return map[string]any{"line1": "742 Canarystreet", "line2": "Apt 9", "city": "Canaryville",
		"state": "CA", "postal_code": "90210", "country": "US"}
}

// canarySession is a completed Checkout Session whose customer is the
// canary customer, with the name and phone Stripe collects as well.
func canarySession(version, sessionID, orderID, paymentIntent string) map[string]any {
	s := checkoutSession(version, sessionID, orderID, paymentIntent, "canary.zzyzx@example.com",
		map[string]any{"name": "Canaryname Zzyzx", "address": canaryAddress()})
	details := s["customer_details"].(map[string]any)
	details["name"], details["phone"] = "Canaryname Zzyzx", "+15550123456"
	return s
}

// shopifyOrderWithPII is an orders/* body as Shopify really sends it: with
// the customer's email, phone, shipping and billing addresses.
func shopifyOrderWithPII(id string, state orderState) []byte {
	var o map[string]any
	mustUnmarshal(shopifyOrder(id, state), &o)
	addr := canaryAddress()
	addr["name"], addr["first_name"], addr["last_name"], addr["phone"] = "Shopifycanary Zzyzx", "Shopifycanary", "Zzyzx", "+15550123456"
	o["email"], o["contact_email"], o["phone"] = "shopifycanary.zzyzx@example.com", "shopifycanary.zzyzx@example.com", "+15550123456"
	o["shipping_address"], o["billing_address"] = addr, addr
	o["customer"] = map[string]any{"id": 6111111111, "email": "shopifycanary.zzyzx@example.com",
		"first_name": "Shopifycanary", "last_name": "Zzyzx", "default_address": addr}
	return mustJSON(o)
}

// mustUnmarshal decodes a payload built here, numbers kept exact (Shopify
// ids pass 2^53).
func mustUnmarshal(b []byte, v any) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		panic(err)
	}
}

// --- Invariant 1: no plaintext PII anywhere, whichever way it came in -------------

// TestNoPlaintextPIIOnAnyIngestOrErrorPath sends PII through every way in
// and every way of being refused, and after each one searches all of
// Redis, the whole log and /metrics for it. Where the PII is stored, a
// reveal shows it came in, so its absence elsewhere means something.
func TestNoPlaintextPIIOnAnyIngestOrErrorPath(t *testing.T) {
	// Each case gets an instance and a flushed Redis of its own, so a leak
	// fails the case that made it, not every case after it too.
	const origin = "https://shop.example.com"
	var (
		h    *harness
		keys clients.Keys
		ful  string
	)
	revealed := func(t *testing.T, id string) {
		t.Helper()
		r := h.call("GET", "/v1/orders/"+id+"/shipping?reason=label", ful, nil)
		require.Equal(t, 200, r.Status, string(r.Raw))
		require.Equal(t, "Canaryname Zzyzx", r.Body["name"], "the canary PII went in")
	}
	shipping := func(secret string, ship any) response {
		return h.call("POST", "/v1/checkout/shipping?key="+keys.PublishableKey, "",
			map[string]any{"client_secret": secret, "shipping": ship}, "Origin", origin)
	}
	openSession := func(t *testing.T, id string) string {
		t.Helper()
		s := h.call("POST", "/v1/checkout/sessions", keys.APIKey, map[string]any{"order_id": id, "payment_ref": "pay_" + id})
		require.Equal(t, 201, s.Status, string(s.Raw))
		return s.Body["client_secret"].(string)
	}
	named := func(id, name string) map[string]any {
		b := orderBody(id)
		b["shipping"].(map[string]any)["name"] = name
		return b
	}

	tests := []struct {
		name string
		run  func(t *testing.T) []response // the answers, searched too
	}{
		{"storefront order", func(t *testing.T) []response {
			h.storeOrder("ord-inv1-api")
			revealed(t, "ord-inv1-api")
			return nil
		}},
		{"stripe checkout.session.completed in every API era", func(t *testing.T) []response {
			var out []response
			for i, v := range []string{stripeVersion2020, stripeVersion2023, stripeVersionBasil} {
				id := fmt.Sprintf("ord-inv1-stripe-%d", i)
				r := h.stripe(stripeEvent(fmt.Sprintf("evt_inv1_%d", i), "checkout.session.completed", v,
					canarySession(v, fmt.Sprintf("cs_inv1_%d", i), id, fmt.Sprintf("pi_inv1_%d", i))), testStripeSecret, time.Now())
				require.Equal(t, 200, r.Status, string(r.Raw))
				require.Equal(t, "stored", r.Body["outcome"], string(r.Raw))
				revealed(t, id)
				out = append(out, r)
			}
			return out
		}},
		{"browser checkout: session, then shipping with the publishable key", func(t *testing.T) []response {
			r := shipping(openSession(t, "ord-inv1-browser"), orderBody("x")["shipping"])
			require.Equal(t, 201, r.Status, string(r.Raw))
			revealed(t, "ord-inv1-browser")
			return []response{r}
		}},
		{"browser checkout: invalid shipping is 422", func(t *testing.T) []response {
			bad := named("x", "Invalidcanary Zzyzx")["shipping"].(map[string]any)
			bad["address"].(map[string]any)["country"] = "XX"
			r := shipping(openSession(t, "ord-inv1-browser-bad"), bad)
			require.Equal(t, 422, r.Status, string(r.Raw))
			return []response{r}
		}},
		{"409: the same order again with other PII", func(t *testing.T) []response {
			h.storeOrder("ord-inv1-conflict")
			r := h.call("POST", "/v1/orders", h.apiKey, named("ord-inv1-conflict", "Conflictcanary Zzyzx"))
			require.Equal(t, 409, r.Status, string(r.Raw))
			return []response{r}
		}},
		{"422: an invalid order carrying PII", func(t *testing.T) []response {
			b := named("ord-inv1-invalid", "Invalidcanary Zzyzx")
			b["shipping"].(map[string]any)["address"].(map[string]any)["country"] = "XX"
			r := h.call("POST", "/v1/orders", h.apiKey, b)
			require.Equal(t, 422, r.Status, string(r.Raw))
			return []response{r}
		}},
		{"stripe: a signed session whose shipping fails validation", func(t *testing.T) []response {
			s := canarySession(stripeVersion2023, "cs_inv1_bad", "ord-inv1-stripe-bad", "pi_inv1_bad")
			s["shipping_details"].(map[string]any)["name"] = "Stripecanary Zzyzx"
			s["shipping_details"].(map[string]any)["address"].(map[string]any)["country"] = "XX"
			r := h.stripe(stripeEvent("evt_inv1_bad", "checkout.session.completed", stripeVersion2023, s), testStripeSecret, time.Now())
			require.Equal(t, 200, r.Status, string(r.Raw))
			require.Equal(t, "invalid_order", r.Body["outcome"], string(r.Raw))
			return []response{r}
		}},
		{"shopify deliveries that carry the customer", func(t *testing.T) []response {
			var out []response
			for _, d := range []struct {
				topic, outcome string
				body           []byte
			}{
				// An order not stored here: the event waits for it (a tombstone, no PII).
				{"orders/fulfilled", "tombstoned", shopifyOrderWithPII("7460000000000000001", orderFulfilled)},
				{"orders/updated", "not_shipped", shopifyOrderWithPII("7460000000000000002", orderOpen)},
				{"customers/redact", "redacted", shopifyCustomersRedact("shopifycanary.zzyzx@example.com", "7460000000000000001")},
				// The access report is stored in Redis: it must keep no email.
				{"customers/data_request", "report_created", shopifyDataRequest("9101", "shopifycanary.zzyzx@example.com", "7460000000000000001")},
			} {
				r := h.shopify(d.topic, "wh-inv1-"+d.topic, d.body, testShopifySecret)
				require.Equal(t, 200, r.Status, "%s: %s", d.topic, r.Raw)
				require.Equal(t, d.outcome, r.Body["outcome"], "%s: %s", d.topic, r.Raw)
				out = append(out, r)
			}
			return out
		}},
		{"forged webhooks carrying PII", func(t *testing.T) []response {
			s := canarySession(stripeVersion2023, "cs_inv1_forged", "ord-inv1-forged", "pi_inv1_forged")
			s["shipping_details"].(map[string]any)["name"] = "Forgedcanary Zzyzx"
			stripe := h.stripe(stripeEvent("evt_inv1_forged", "checkout.session.completed", stripeVersion2023, s), "whsec_wrong", time.Now())
			shop := h.shopify("orders/fulfilled", "wh-inv1-forged", shopifyOrderWithPII("7460000000000000003", orderFulfilled), "wrong")
			body := []byte(`{"event_id":"evt-inv1-forged","order_id":"ord-inv1-api","status":"shipped","name":"Forgedcanary Zzyzx"}`)
			ship := h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature", webhooks.SignShipping("wrong", time.Now(), body))
			for _, r := range []response{stripe, shop, ship} {
				require.Contains(t, []int{400, 401}, r.Status, string(r.Raw))
			}
			require.Equal(t, 404, h.call("GET", "/v1/orders/ord-inv1-forged", h.apiKey, nil).Status)
			return []response{stripe, shop, ship}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h = newHarness(t, nil, nil)
			var err error
			keys, err = h.app.clients.AddWithOrigins(context.Background(), "inv1-browser-shop", []string{origin})
			require.NoError(t, err)
			ful = h.loginToken("fulfillment")
			for _, r := range tt.run(t) {
				requireNoCanary(t, "an answer", string(r.Raw))
			}
			h.requireNoPIIAnywhere(t)
		})
	}
}

// TestNoPlaintextPIIWhenVaultOrRedisIsDownDuringIngest sends PII through
// each way in while Vault, then Redis, is down: 503 with its code, and the
// PII is in no answer, log line or metric, nor in Redis when it answers.
func TestNoPlaintextPIIWhenVaultOrRedisIsDownDuringIngest(t *testing.T) {
	for _, down := range []struct {
		name, code string
		stop       func(*testenv.Env, testing.TB)
	}{
		{"vault", "vault_unavailable", (*testenv.Env).StopVault},
		{"redis", "store_unavailable", (*testenv.Env).StopRedis},
	} {
		t.Run(down.name+" down", func(t *testing.T) {
			env := testenv.Start(t)
			h := newHarness(t, env, nil)
			const origin = "https://shop.example.com"
			keys, err := h.app.clients.AddWithOrigins(context.Background(), "inv1-outage-shop", []string{origin})
			require.NoError(t, err)
			sess := h.call("POST", "/v1/checkout/sessions", keys.APIKey, map[string]any{"order_id": "ord-out-browser", "payment_ref": "pay_out"})
			require.Equal(t, 201, sess.Status, string(sess.Raw))
			down.stop(env, t)

			answers := map[string]response{
				"storefront order": h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-out-api")),
				"stripe checkout": h.stripe(stripeEvent("evt_out", "checkout.session.completed", stripeVersion2023,
					canarySession(stripeVersion2023, "cs_out", "ord-out-stripe", "pi_out")), testStripeSecret, time.Now()),
				"browser checkout": h.call("POST", "/v1/checkout/shipping?key="+keys.PublishableKey, "",
					map[string]any{"client_secret": sess.Body["client_secret"], "shipping": orderBody("x")["shipping"]}, "Origin", origin),
			}
			for what, r := range answers {
				require.Equal(t, 503, r.Status, "%s: %s", what, r.Raw)
				require.Equal(t, down.code, r.errorCode(), "%s: %s", what, r.Raw)
				requireNoCanary(t, what+"'s answer", string(r.Raw))
			}
			if down.name == "vault" {
				h.requireNoPIIAnywhere(t)
				require.Empty(t, env.Redis.Keys(context.Background(), "*ord-out-*").Val(), "nothing stored without Vault")
			} else {
				h.requireNoPIIOutsideRedis(t)
			}
		})
	}
}

// --- Invariant 1: the configuration's secrets (TestWholeConfigNeverPrintsASecret) ---

// configRenderings are the ways a config can reach a log line or an error:
// fmt's verbs (the struct and its pointer), JSON, and slog's two handlers
// with the config as an attribute.
func configRenderings(t *testing.T, cfg *config) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		out[verb] = fmt.Sprintf(verb, *cfg)
		out[verb+" of the pointer"] = fmt.Sprintf(verb, cfg)
	}
	for name, v := range map[string]any{"json.Marshal": cfg, "json.Marshal of the struct": *cfg} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out[name] = string(b)
	}
	for name, handler := range map[string]func(io.Writer) slog.Handler{
		"slog JSON": func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
		"slog text": func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
	} {
		var buf bytes.Buffer
		slog.New(handler(&buf)).Info("starting", "config", cfg, slog.Any("token", cfg.VaultToken), slog.Any("stripe", cfg.StripeSecrets))
		out[name] = buf.String()
	}
	return out
}

// configSecrets returns the values of cfg's secret fields by field name.
func configSecrets(cfg *config) map[string][]string {
	out := map[string][]string{}
	v := reflect.ValueOf(*cfg)
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch f.Type() {
		case reflect.TypeOf(secret("")):
			out[name] = []string{f.String()}
		case reflect.TypeOf([]secret(nil)):
			for j := 0; j < f.Len(); j++ {
				out[name] = append(out[name], f.Index(j).String())
			}
		case reflect.TypeOf((*mail.Config)(nil)):
			if !f.IsNil() {
				out[name] = []string{cfg.Mail.Password}
			}
		}
	}
	return out
}

// --- Invariant 3: a purge leaves the reference and nothing else ------------------

// requireOnlyReferenceLeft scans every key in Redis after id was purged.
// Only three keys may be named after it: its purchase reference, its
// reveal list and, until the order's own expires_at, mailof:<id>. No hash
// field or value, set or zset member or list item may name it, save its
// member of the email's mail:<bidx> zset, scored by that same expires_at
// (invariant 13 keeps it findable by email until then, not longer).
// Strings and streams are records, not indexes (receipts, tracking links,
// the audit trail), and are not searched; nor is the outbox, whose notes
// are audit entries on their way to the trail (see outboxNotes).
func requireOnlyReferenceLeft(t *testing.T, h *harness, id string) {
	t.Helper()
	ctx := context.Background()
	rdb := h.env.Redis
	ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	require.NotEqual(t, "held", ref.Body["status"], string(ref.Raw))
	require.NotNil(t, ref.Body["purged_at"], string(ref.Raw))
	require.NotNil(t, ref.Body["purge_reason"], string(ref.Raw))
	exp, err := time.Parse(time.RFC3339Nano, ref.Body["expires_at"].(string))
	require.NoError(t, err)
	expMS := exp.UnixMilli()

	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		if strings.Contains(k, ":outbox:") {
			continue // audit notes, not an index: see outboxNotes
		}
		if names(k, id) {
			switch {
			case strings.HasSuffix(k, ":ref:"+id), strings.HasSuffix(k, ":reveals:"+id):
			case strings.HasSuffix(k, ":mailof:"+id):
				at, err := rdb.Do(ctx, "PEXPIRETIME", k).Int64()
				require.NoError(t, err)
				require.Equal(t, expMS, at, "%s must expire with the order's expires_at", k)
				require.Greater(t, expMS, time.Now().UnixMilli(), "%s outlived the order's expires_at", k)
			default:
				t.Fatalf("%s is still named after purged order %s", k, id)
			}
			continue
		}
		var items []string
		switch rdb.Type(ctx, k).Val() {
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				items = append(items, f, v)
			}
		case "set":
			items = rdb.SMembers(ctx, k).Val()
		case "list":
			items = rdb.LRange(ctx, k, 0, -1).Val()
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				m := z.Member.(string)
				if m == id && strings.Contains(k, ":mail:") {
					require.Equal(t, expMS, int64(z.Score), "%s: the email's link lasts exactly until the order's expires_at", k)
					continue
				}
				items = append(items, m)
			}
		}
		for _, it := range items {
			require.False(t, names(it, id), "%s still names purged order %s: %q", k, id, it)
		}
	}
}

// names reports whether s names order id: id stands in s on its own, not
// as part of a longer id (ord-a-1 does not name ord-a). A colon separates,
// as in a key name.
func names(s, id string) bool {
	idChar := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	for from := 0; ; {
		i := strings.Index(s[from:], id)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(id)
		if (start == 0 || !idChar(s[start-1])) && (end == len(s) || !idChar(s[end])) {
			return true
		}
		from = start + 1
	}
}

// outboxEntries returns the audit entries waiting in the outbox: changes
// whose entry the trail has not taken yet, recorded by the next sweep.
func outboxEntries(t *testing.T, rdb *redis.Client) []audit.Entry {
	t.Helper()
	ctx := context.Background()
	var out []audit.Entry
	for _, k := range rdb.Keys(ctx, "piivault:*:outbox:notes").Val() {
		for _, n := range rdb.LRange(ctx, k, 0, -1).Val() {
			var e audit.Entry
			require.NoError(t, json.Unmarshal([]byte(n), &e), "%s: %q", k, n)
			out = append(out, e)
		}
	}
	return out
}

// outboxNotes returns the outbox's entries for order id.
func outboxNotes(t *testing.T, rdb *redis.Client, id string) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for _, e := range outboxEntries(t, rdb) {
		if e.OrderID == id {
			out = append(out, e)
		}
	}
	return out
}

// TestEveryKindOfPurgeLeavesOnlyTheReference purges an order each way an
// order can be purged and scans all of Redis afterwards. Each order is
// stored with every index an order can have (email, payment reference,
// Shopify shop) and revealed once (its reveal list), beside a bystander of
// the same email, payment and shop. Where the bystander stays held, the
// indexes outlive the purge and must be cleaned of the order, not merely
// expire; where the purge takes both (a deletion by email, a refund of the
// shared payment, shop/redact), both are scanned.
func TestEveryKindOfPurgeLeavesOnlyTheReference(t *testing.T) {
	h := newHarness(t, nil, nil)
	ful, sup := h.loginToken("fulfillment"), h.loginToken("support")
	// store stores id (and a held bystander sharing its indexes) and reveals it.
	store := func(t *testing.T, h *harness, id, tag string) {
		t.Helper()
		for _, o := range []string{id, "ord-bystander-" + tag} {
			b := orderBody(o)
			b["payment_ref"] = "pi_" + tag
			b["shop_domain"] = tag + ".myshopify.com"
			b["shipping"].(map[string]any)["email"] = tag + "@example.com"
			r := h.call("POST", "/v1/orders", h.apiKey, b)
			require.Equal(t, 201, r.Status, string(r.Raw))
		}
		r := h.call("GET", "/v1/orders/"+id+"/shipping?reason=label", ful, nil)
		require.Equal(t, 200, r.Status, string(r.Raw))
	}
	ok := func(t *testing.T, r response, outcome string) {
		t.Helper()
		require.Equal(t, 200, r.Status, string(r.Raw))
		if outcome != "" {
			require.Equal(t, outcome, r.Body["outcome"], string(r.Raw))
		}
	}
	tests := []struct {
		name, id, tag string
		purge         func(t *testing.T, id, tag string)
	}{
		{"shipping webhook", "ord-inv3-ship", "inv3-ship", func(t *testing.T, id, _ string) {
			body := []byte(`{"event_id":"evt-inv3-ship","order_id":"` + id + `","status":"shipped"}`)
			ok(t, h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature",
				webhooks.SignShipping(testShippingSecret, time.Now(), body)), "purged")
		}},
		{"stripe refund", "ord-inv3-refund", "inv3-refund", func(t *testing.T, _, tag string) {
			ok(t, h.stripe(stripeEvent("evt_inv3_refund", "charge.refunded", stripeVersion2023,
				stripeCharge("ch_inv3", "pi_"+tag, 100)), testStripeSecret, time.Now()), "purged")
		}},
		{"shopify fulfillment", "7460000000000000031", "inv3-shopify", func(t *testing.T, id, _ string) {
			ok(t, h.shopify("fulfillments/create", "wh-inv3-fulfil",
				shopifyFulfillment("5550000000031", id, "success"), testShopifySecret), "purged")
		}},
		{"deletion request by email", "ord-inv3-deletion", "inv3-deletion", func(t *testing.T, id, tag string) {
			// The bystander shares the email: it goes too, and is checked too.
			r := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": tag + "@example.com"})
			require.Equal(t, 201, r.Status, string(r.Raw))
			require.ElementsMatch(t, []any{id, "ord-bystander-" + tag}, r.Body["orders"])
		}},
		{"DELETE /v1/orders/{id}/pii", "ord-inv3-delete", "inv3-delete", func(t *testing.T, id, _ string) {
			ok(t, h.call("DELETE", "/v1/orders/"+id+"/pii", sup, nil), "")
		}},
		{"POST /v1/orders/{id}/shipped", "ord-inv3-shipped", "inv3-shipped", func(t *testing.T, id, _ string) {
			ok(t, h.call("POST", "/v1/orders/"+id+"/shipped", ful, nil), "")
		}},
		{"shop/redact", "ord-inv3-shop", "inv3-shop", func(t *testing.T, _, tag string) {
			ok(t, h.shopify("shop/redact", "wh-inv3-shop", shopifyShopRedact(tag+".myshopify.com"), testShopifySecret), "redacted")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store(t, h, tt.id, tt.tag)
			tt.purge(t, tt.id, tt.tag)
			for _, id := range []string{tt.id, "ord-bystander-" + tt.tag} {
				if id == tt.id || h.status(id) != "held" {
					requireOnlyReferenceLeft(t, h, id)
					require.Empty(t, outboxNotes(t, h.env.Redis, id), "the purge's audit entry is in the trail, not waiting")
				}
			}
		})
	}
	t.Run("retention sweep", func(t *testing.T) {
		const retention = 2 * time.Second
		short := newHarness(t, h.env, map[string]string{"PIIVAULT_RETENTION": retention.String()})
		store(t, short, "ord-inv3-sweep", "inv3-sweep")
		// Past the later of the two expiries: the bystander is stored second.
		var last time.Time
		for _, id := range []string{"ord-inv3-sweep", "ord-bystander-inv3-sweep"} {
			exp, err := time.Parse(time.RFC3339Nano, h.call("GET", "/v1/orders/"+id, h.apiKey, nil).Body["expires_at"].(string))
			require.NoError(t, err)
			if exp.After(last) {
				last = exp
			}
		}
		time.Sleep(time.Until(last) + 50*time.Millisecond)
		n, err := short.app.purger.Sweep(context.Background())
		require.NoError(t, err)
		require.Equal(t, 2, n, "the order and its bystander")
		for _, id := range []string{"ord-inv3-sweep", "ord-bystander-inv3-sweep"} {
			require.Equal(t, "retention_expired", h.purgeReason(id))
			requireOnlyReferenceLeft(t, h, id)
			require.Empty(t, outboxNotes(t, h.env.Redis, id), "the purge's audit entry is in the trail, not waiting")
		}
	})
}

// --- Invariant 4: nothing outlives the retention ------------------------------------

// TestEveryPIIKeyExpiresWithinTheRetention stores orders every way in, with
// a retention of one hour, purges one (its mailof: key), and then checks
// every PII key in Redis: it has a TTL, no longer than the retention, and a
// PII hash expires exactly at its order's expires_at. The retention is
// short so a TTL taken from the 720h maximum instead would be caught.
func TestEveryPIIKeyExpiresWithinTheRetention(t *testing.T) {
	const retention = time.Hour
	h := newHarness(t, nil, map[string]string{"PIIVAULT_RETENTION": retention.String()})
	ctx := context.Background()
	const origin = "https://shop.example.com"
	keys, err := h.app.clients.AddWithOrigins(ctx, "inv4-browser-shop", []string{origin})
	require.NoError(t, err)

	b := orderBody("ord-inv4-api")
	b["shop_domain"] = "inv4.myshopify.com"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, b).Status)
	h.storeOrder("ord-inv4-purged")
	r := h.stripe(stripeEvent("evt_inv4", "checkout.session.completed", stripeVersionBasil,
		canarySession(stripeVersionBasil, "cs_inv4", "ord-inv4-stripe", "pi_inv4")), testStripeSecret, time.Now())
	require.Equal(t, "stored", r.Body["outcome"], string(r.Raw))
	sess := h.call("POST", "/v1/checkout/sessions", keys.APIKey, map[string]any{"order_id": "ord-inv4-browser", "payment_ref": "pay_inv4"})
	require.Equal(t, 201, sess.Status, string(sess.Raw))
	r = h.call("POST", "/v1/checkout/shipping?key="+keys.PublishableKey, "",
		map[string]any{"client_secret": sess.Body["client_secret"], "shipping": orderBody("x")["shipping"]}, "Origin", origin)
	require.Equal(t, 201, r.Status, string(r.Raw))
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-inv4-purged/pii", h.loginToken("support"), nil).Status)

	seen := map[string]int{}
	for k := range redisKeys(t, h.env.Redis) {
		var kind string
		for _, pii := range []string{":pii:", ":mail:", ":mailof:", ":email:", ":payref:", ":shop:"} {
			if strings.Contains(k, pii) {
				kind = pii
			}
		}
		if kind == "" {
			continue
		}
		seen[kind]++
		ttl := h.env.Redis.PTTL(ctx, k).Val()
		require.Greater(t, ttl, time.Duration(0), "%s has no TTL: it would outlive the retention while piivault is down", k)
		require.LessOrEqual(t, ttl, retention, "%s outlives the retention", k)
		if kind == ":pii:" {
			id := k[strings.LastIndex(k, ":pii:")+len(":pii:"):]
			exp, err := time.Parse(time.RFC3339Nano, h.call("GET", "/v1/orders/"+id, h.apiKey, nil).Body["expires_at"].(string))
			require.NoError(t, err)
			at, err := h.env.Redis.Do(ctx, "PEXPIRETIME", k).Int64()
			require.NoError(t, err)
			require.Equal(t, exp.UnixMilli(), at, "%s expires with its order", k)
		}
	}
	// Every kind was there to check (email: is only left by earlier versions).
	require.Equal(t, 3, seen[":pii:"], "the three held orders: %v", seen)
	for _, kind := range []string{":mail:", ":mailof:", ":payref:", ":shop:"} {
		require.NotZero(t, seen[kind], "no %s key was checked: %v", kind, seen)
	}
}

// TestKeyRotatesWhenDueWithoutBeingForced runs the shredder as its hourly
// schedule does (not forced): a key whose newest version is younger than
// PIIVAULT_KEY_ROTATION is left alone; one older is rotated, with its audit
// entry; and the scheduler's own run rotates a due key. The env is private:
// rotating the shared one would change other tests' ciphertext versions.
func TestKeyRotatesWhenDueWithoutBeingForced(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	const every = 2 * time.Second
	fresh := newHarness(t, env, nil) // the default period, a day: the key made at setup is fresh
	due := newHarness(t, env, map[string]string{"PIIVAULT_KEY_ROTATION": every.String()})
	latest := func() map[string]int {
		out := map[string]int{}
		for _, k := range []*vault.TransitKey{due.app.vault.Key(), due.app.vault.MaskedKey()} {
			info, err := k.ReadKey(ctx)
			require.NoError(t, err)
			out[k.Name()] = info.LatestVersion
		}
		return out
	}
	// waitUntilDue sleeps until both keys' newest versions are older than every.
	waitUntilDue := func() {
		for _, k := range []*vault.TransitKey{due.app.vault.Key(), due.app.vault.MaskedKey()} {
			info, err := k.ReadKey(ctx)
			require.NoError(t, err)
			time.Sleep(time.Until(info.Created[info.LatestVersion].Add(every + 50*time.Millisecond)))
		}
	}

	t.Run("fresh key: not rotated", func(t *testing.T) {
		before := latest()
		rs, err := fresh.app.shredder.Run(ctx, false)
		require.NoError(t, err)
		require.Len(t, rs, 2)
		for _, r := range rs {
			require.False(t, r.Rotated, r.Key)
		}
		require.Equal(t, before, latest())
	})
	t.Run("due key: rotated once, audited", func(t *testing.T) {
		waitUntilDue()
		before := latest()
		rs, err := due.app.shredder.Run(ctx, false)
		require.NoError(t, err)
		for _, r := range rs {
			require.True(t, r.Rotated, r.Key)
			require.Equal(t, before[r.Key]+1, r.Latest, r.Key)
		}
		require.Equal(t, 2, countAudit(t, due, audit.ActionKeyRotate))
		// Just rotated: the next run finds it fresh.
		rs, err = due.app.shredder.Run(ctx, false)
		require.NoError(t, err)
		for _, r := range rs {
			require.False(t, r.Rotated, "%s rotated again within the period", r.Key)
		}
	})
	t.Run("the scheduler rotates a due key", func(t *testing.T) {
		waitUntilDue()
		before := latest()
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- purge.Schedule(sctx, due.app.purger, due.app.shredder,
				purge.NewRedisLocker(env.Redis, time.Minute, 0), time.Hour, discardLogger())
		}()
		defer func() { stop(); require.NoError(t, <-done) }()
		require.Eventually(t, func() bool {
			now := latest()
			for k, v := range before {
				if now[k] != v+1 {
					return false
				}
			}
			return true
		}, 10*time.Second, 50*time.Millisecond, "the scheduled shredder run did not rotate the due keys")
	})
}

// --- Invariant 7: an outage is a 503, and nothing half-written ---------------------

// redisState is every key with its type, value and whether it expires, the
// picture "nothing half-written" is compared against. Left out: the access
// log stream and the rate-limit counters, which record that a request came
// (off the response path, and before it is answered) and are no part of
// any change.
func redisState(t *testing.T, rdb *redis.Client) map[string]redisKey {
	t.Helper()
	keys := redisKeys(t, rdb)
	for k := range keys {
		if k == "piivault:{access}:log" || strings.HasPrefix(k, "piivault:{rl}:") {
			delete(keys, k)
		}
	}
	return keys
}

func auditLength(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	n, err := rdb.XLen(context.Background(), "piivault:{audit}:log").Result()
	require.NoError(t, err)
	return n
}

// outageCall is one request made during an outage.
type outageCall struct {
	name string
	call func(h *harness, id string) response
}

// outageCalls are the requests that reveal or purge: each gets an order of
// its own (stored, with its indexes, before the outage). ful and sup are
// fulfillment and support tokens Vault has not been asked about yet; warm
// is a fulfillment token a reveal checked just before the outage, so the
// next reveal skips its lookup (staff.AuthenticateForDecrypt) and meets the
// outage at its decrypt instead.
func outageCalls(ful, warm, sup string) []outageCall {
	return []outageCall{
		{"reveal", func(h *harness, id string) response {
			return h.call("GET", "/v1/orders/"+id+"/shipping?reason=label", ful, nil)
		}},
		{"reveal, token checked seconds before", func(h *harness, id string) response {
			return h.call("GET", "/v1/orders/"+id+"/shipping?reason=label", warm, nil)
		}},
		{"shipped", func(h *harness, id string) response {
			return h.call("POST", "/v1/orders/"+id+"/shipped", ful, nil)
		}},
		{"delete pii", func(h *harness, id string) response {
			return h.call("DELETE", "/v1/orders/"+id+"/pii", sup, nil)
		}},
		{"shipping webhook", func(h *harness, id string) response {
			body := []byte(`{"event_id":"evt-` + id + `","order_id":"` + id + `","status":"shipped"}`)
			return h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature",
				webhooks.SignShipping(testShippingSecret, time.Now(), body))
		}},
		{"deletion request", func(h *harness, id string) response {
			return h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": id + "@example.com"})
		}},
	}
}

// prepareOutage stores an order for each call, named by prefix and the
// call, and returns the calls and the order id of each.
func prepareOutage(t *testing.T, h *harness, prefix string) ([]outageCall, func(outageCall) string) {
	t.Helper()
	warm := h.loginToken("fulfillment")
	storeOutageOrder(t, h, prefix+"warm-up")
	r := h.call("GET", "/v1/orders/"+prefix+"warm-up/shipping?reason=label", warm, nil)
	require.Equal(t, 200, r.Status, string(r.Raw))
	calls := outageCalls(h.loginToken("fulfillment"), warm, h.loginToken("support"))
	id := func(c outageCall) string {
		return prefix + strings.NewReplacer(" ", "-", ",", "").Replace(c.name)
	}
	for _, c := range calls {
		storeOutageOrder(t, h, id(c))
	}
	return calls, id
}

// storeOutageOrder stores id with its own email (the deletion request's).
func storeOutageOrder(t *testing.T, h *harness, id string) {
	t.Helper()
	b := orderBody(id)
	b["shipping"].(map[string]any)["email"] = id + "@example.com"
	r := h.call("POST", "/v1/orders", h.apiKey, b)
	require.Equal(t, 201, r.Status, string(r.Raw))
}

// TestVaultDownMeans503AndNothingHalfWritten: with Vault down, a reveal and
// every purge a person asks for answer 503 vault_unavailable (a token
// cannot be checked, a decrypt cannot be made, an email cannot be
// blind-indexed), and Redis (every key, type, value and TTL) and the audit
// trail are exactly as before. Staff log in first: logging in needs Vault.
//
// A signed shipping event needs no Vault to destroy PII, and is not made to
// wait for it: the purge is made whole (orders/audited.go), and its audit
// entry, which Vault must seal, waits in the outbox for the next sweep
// instead of being lost.
func TestVaultDownMeans503AndNothingHalfWritten(t *testing.T) {
	env := testenv.Start(t)
	h := newHarness(t, env, nil)
	calls, id := prepareOutage(t, h, "ord-vdown-")
	env.StopVault(t)
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			before, trail := redisState(t, env.Redis), auditLength(t, env.Redis)
			r := c.call(h, id(c))
			require.Equal(t, trail, auditLength(t, env.Redis), "nothing reaches the trail unsealed")
			if c.name == "shipping webhook" {
				require.Equal(t, 200, r.Status, string(r.Raw))
				require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
				requireOnlyReferenceLeft(t, h, id(c))
				notes := outboxNotes(t, env.Redis, id(c))
				require.Len(t, notes, 1, "the purge's audit entry waits in the outbox")
				require.Equal(t, audit.ActionPurge, notes[0].Action)
				require.Equal(t, "webhook:shipping", notes[0].Actor)
				require.Equal(t, "shipped", notes[0].Detail["reason"])
				return
			}
			require.Equal(t, 503, r.Status, string(r.Raw))
			require.Equal(t, "vault_unavailable", r.errorCode(), string(r.Raw))
			require.Equal(t, before, redisState(t, env.Redis), "Redis changed")
			require.Equal(t, "held", h.status(id(c)))
		})
	}
}

// vaultGate passes every call through to a real Vault, except those to
// the paths it is told to drop: their connection closes with no answer, as
// when Vault dies in the middle of a request. A stopped Vault shows little
// of that: a staff request's token is checked with Vault first, so only a
// reveal whose token was checked seconds before gets as far as its
// decrypt, and no request as far as its blind index or its audit seal.
type vaultGate struct {
	url  string
	drop atomic.Value // string: the path prefix whose calls are dropped; "" drops none
}

func newVaultGate(t *testing.T, vaultAddr string) *vaultGate {
	t.Helper()
	target, err := url.Parse(vaultAddr)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &vaultGate{}
	g.drop.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := g.drop.Load().(string); p != "" && strings.HasPrefix(r.URL.Path, p) {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// TestVaultFailingMidRequestHalfWritesNothing lets each request get past
// its token check and then loses Vault at its next call: the decrypt, the
// email's blind index or the audit seal. A refused request leaves Redis
// and the trail exactly as they were (no reveal listed or counted, nothing
// purged, and no PII in the answer though the decrypt had worked); a purge,
// which needs no Vault, is made whole and its audit entry waits in the
// outbox, as does the deletion request's own entry.
func TestVaultFailingMidRequestHalfWritesNothing(t *testing.T) {
	env := testenv.Start(t)
	gate := newVaultGate(t, env.VaultAddr)
	h := newHarness(t, env, map[string]string{"VAULT_ADDR": gate.url})
	ful, sup := h.loginToken("fulfillment"), h.loginToken("support")
	const (
		decrypt    = "/v1/transit/decrypt/"
		blindIndex = "/v1/transit/hmac/order-pii-index/"
		auditSeal  = "/v1/transit/hmac/order-pii-audit/"
	)
	reveal := func(id string) response {
		return h.call("GET", "/v1/orders/"+id+"/shipping?reason=label", ful, nil)
	}
	deletion := func(id string) response {
		return h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": id + "@example.com"})
	}
	tests := []struct {
		name, drop string
		call       func(id string) response
		status     int // 503: refused, nothing written; else the purge goes on
		waiting    int // audit entries the request leaves in the outbox
	}{
		{"reveal, decrypt lost", decrypt, reveal, 503, 0},
		{"reveal, audit seal lost after the decrypt", auditSeal, reveal, 503, 0},
		{"deletion request, blind index lost", blindIndex, deletion, 503, 0},
		{"shipped, audit seal lost", auditSeal, func(id string) response {
			return h.call("POST", "/v1/orders/"+id+"/shipped", ful, nil)
		}, 200, 1},
		// The purge's entry and the deletion request's own.
		{"deletion request, audit seal lost", auditSeal, deletion, 201, 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("ord-vmid-%d", i)
			storeOutageOrder(t, h, id)
			before, trail := redisState(t, env.Redis), auditLength(t, env.Redis)
			waiting := len(outboxEntries(t, env.Redis))
			gate.drop.Store(tt.drop)
			r := tt.call(id)
			gate.drop.Store("")
			requireNoCanary(t, "the answer", string(r.Raw))
			require.Equal(t, trail, auditLength(t, env.Redis), "nothing reaches the trail unsealed")
			require.Equal(t, tt.status, r.Status, string(r.Raw))
			if tt.status == 503 {
				require.Equal(t, "vault_unavailable", r.errorCode(), string(r.Raw))
				require.Equal(t, before, redisState(t, env.Redis), "Redis changed")
				require.Equal(t, "held", h.status(id))
				return
			}
			requireOnlyReferenceLeft(t, h, id)
			notes := outboxNotes(t, env.Redis, id)
			require.Len(t, notes, 1, "the purge's audit entry waits in the outbox")
			require.Equal(t, audit.ActionPurge, notes[0].Action)
			require.Len(t, outboxEntries(t, env.Redis), waiting+tt.waiting, "every entry the request writes waits, none is lost")
		})
	}
}

// TestRedisDownMeans503OnEveryRoute: with Redis down, every reveal and
// purge route answers 503 store_unavailable (Vault answers, so this is
// Redis's code, not Vault's).
func TestRedisDownMeans503OnEveryRoute(t *testing.T) {
	env := testenv.Start(t)
	h := newHarness(t, env, nil)
	calls, id := prepareOutage(t, h, "ord-rdown-")
	env.StopRedis(t)
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			r := c.call(h, id(c))
			require.Equal(t, 503, r.Status, string(r.Raw))
			require.Equal(t, "store_unavailable", r.errorCode(), string(r.Raw))
		})
	}
}
