package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/webhooks"
)

// Provider conformance: the providers' own published payloads, replayed
// byte for byte through the real server. They live outside the repository
// (shared/fixtures/providers beside the clone; its SOURCES.md names each
// file's origin: Stripe's CLI captures and OpenAPI fixtures, Shopify's
// webhook reference samples, EasyPost's client-library fixtures), so this
// test runs only when PIIVAULT_PROVIDER_FIXTURES names that fixtures folder
// (the one holding providers/); .ci/run sets it. The always-run webhook
// tests use the payloads of payloads_test.go instead.

// providerFixturesVar names the fixtures folder.
const providerFixturesVar = "PIIVAULT_PROVIDER_FIXTURES"

// conformanceFixtures is every provider payload the conformance test
// replays, relative to providers/. The folder must hold exactly these (its
// SOURCES.md aside): a file missing fails the test, and so does a new one
// no test replays, so a published payload is never silently left out.
var conformanceFixtures = []string{
	"easypost/api.shipments.retrieve.json",
	"easypost/batch.created.json",
	"easypost/tracker.updated.json",
	"easypost/tracker.updated.with-shipment.json",
	"shopify/customers-data-request.json",
	"shopify/customers-redact.json",
	"shopify/fulfillments-create.json",
	"shopify/orders-cancelled.json",
	"shopify/orders-fulfilled.json",
	"shopify/orders-updated.json",
	"shopify/shop-redact.json",
	"stripe/charge.refunded.json",
	"stripe/charge.refunded.partial.2026-07-29.dahlia.json",
	"stripe/checkout.session.completed.2019-05-16.json",
	"stripe/checkout.session.completed.2020-08-27.json",
	"stripe/checkout.session.completed.2023-10-16.json",
	"stripe/checkout.session.completed.2026-07-29.dahlia.json",
	"stripe/checkout.session.expired.json",
	"stripe/customer.created.json",
	"stripe/payment_intent.canceled.json",
}

// fixturesRead records which conformance fixtures the subtests read.
var fixturesRead = struct {
	sync.Mutex
	names map[string]bool
}{names: map[string]bool{}}

// providersDir is $PIIVAULT_PROVIDER_FIXTURES/providers.
func providersDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(providerFixturesVar)
	require.NotEmpty(t, dir, "%s is not set", providerFixturesVar)
	return filepath.Join(dir, "providers")
}

// fixture reads a provider payload, byte for byte, from
// $PIIVAULT_PROVIDER_FIXTURES/providers: one conformanceFixtures names.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	require.Contains(t, conformanceFixtures, name, "a fixture the conformance test replays is listed in conformanceFixtures")
	b, err := os.ReadFile(filepath.Join(providersDir(t), filepath.FromSlash(name)))
	require.NoError(t, err, "provider fixture %s (%s)", name, providerFixturesVar)
	fixturesRead.Lock()
	fixturesRead.names[name] = true
	fixturesRead.Unlock()
	return b
}

// withValues returns a fixture with some of its values set: only to point
// an event at a test order or payment, never to add a field.
func withValues(t *testing.T, body []byte, set func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	set(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// valueAt reads the string at a dotted path of a fixture's JSON
// ("data.object.client_reference_id"): tests name the fixtures' own ids
// through it rather than repeating them.
func valueAt(t *testing.T, body []byte, path string) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(body, &v))
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		require.True(t, ok, "%s: %s is not an object", path, k)
		v = m[k]
	}
	str, ok := v.(string)
	require.True(t, ok, "%s is not a string", path)
	return str
}

// object is a Stripe event's data.object, to set values in.
func object(m map[string]any) map[string]any {
	return m["data"].(map[string]any)["object"].(map[string]any)
}

func TestProviderConformance(t *testing.T) {
	if os.Getenv(providerFixturesVar) == "" {
		t.Skip("PIIVAULT_PROVIDER_FIXTURES is not set: provider conformance not run")
	}
	// Set, it is required: the folder holds exactly the listed payloads.
	dir := providersDir(t)
	info, err := os.Stat(dir)
	require.NoError(t, err, "%s must name the fixtures folder that holds providers/", providerFixturesVar)
	require.True(t, info.IsDir(), "%s is not a folder", dir)
	var found []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "SOURCES.md" {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		found = append(found, filepath.ToSlash(rel))
		return err
	}))
	var missing, unreplayed []string
	for _, name := range conformanceFixtures {
		if !slices.Contains(found, name) {
			missing = append(missing, name)
		}
	}
	for _, name := range found {
		if !slices.Contains(conformanceFixtures, name) {
			unreplayed = append(unreplayed, name)
		}
	}
	require.Empty(t, missing, "provider payloads missing from %s", dir)
	require.Empty(t, unreplayed, "%s holds provider payloads the conformance test does not replay: replay each in a subtest and list it in conformanceFixtures", dir)

	subtests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"stripe checkout in every API era", conformStripeCheckoutInEveryAPIEra},
		{"stripe refunds and cancellations touch only their own payment", conformStripeRefundsAndCancellations},
		{"stripe session for an order paid by another is a conflict", conformStripeSessionConflict},
		{"forged, stale and unsigned webhooks change nothing", conformForgedStaleAndUnsigned},
		{"shopify deliveries as Shopify sends them", conformShopifyDeliveries},
		{"shopify data request creates the access report", conformShopifyDataRequest},
		{"easypost deliveries as EasyPost sends them", conformEasyPostDeliveries},
		{"easypost tracker linked by shipment id", conformEasyPostTrackerLinkedByShipmentID},
		{"easypost tracker looks up the shipment reference", conformEasyPostTrackerLooksUpTheShipmentReference},
	}
	ran := 0
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) { ran++; st.run(t) })
	}
	// With every subtest run (no -run filter) and passed, every listed
	// payload has been replayed.
	if ran == len(subtests) && !t.Failed() {
		fixturesRead.Lock()
		defer fixturesRead.Unlock()
		for _, name := range conformanceFixtures {
			require.True(t, fixturesRead.names[name], "%s is listed but no subtest replays it", name)
		}
	}
}

func conformStripeCheckoutInEveryAPIEra(t *testing.T) {
	h := newHarness(t, nil, nil)
	_, tok := h.login("fulfillment")
	tests := []struct {
		file, email, outcome string
	}{
		// 2019: a session with no shipping address and no order reference.
		{"stripe/checkout.session.completed.2019-05-16.json", "", "no_shipping"},
		// Before 2022-08-01 the address is `shipping`.
		{"stripe/checkout.session.completed.2020-08-27.json", "stripe@example.com", "stored"},
		{"stripe/checkout.session.completed.2023-10-16.json", "example@example.com", "stored"},
		// From 2025-03-31: collected_information.shipping_details.
		{"stripe/checkout.session.completed.2026-07-29.dahlia.json", "example@example.com", "stored"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := fixture(t, tt.file)
			r := h.stripe(body, testStripeSecret, time.Now())
			require.Equal(t, 200, r.Status, string(r.Raw))
			require.Equal(t, tt.outcome, r.Body["outcome"], string(r.Raw))
			if tt.outcome != "stored" {
				return
			}
			order := valueAt(t, body, "data.object.client_reference_id")
			ship := h.call("GET", "/v1/orders/"+order+"/shipping?reason=label", tok, nil)
			require.Equal(t, 200, ship.Status, string(ship.Raw))
			require.Equal(t, "Jenny Rosen", ship.Body["name"])
			require.Equal(t, "510 Townsend St", ship.Body["address"].(map[string]any)["line1"])
			require.Equal(t, tt.email, ship.Body["email"])
		})
	}
	era2020 := fixture(t, "stripe/checkout.session.completed.2020-08-27.json")
	require.Equal(t, valueAt(t, era2020, "data.object.payment_intent"),
		h.call("GET", "/v1/orders/"+valueAt(t, era2020, "data.object.client_reference_id"), h.apiKey, nil).Body["payment_ref"],
		"stored with the session's payment intent")
	require.Equal(t, 3, countAudit(t, h, audit.ActionStore), "orders stored by a webhook are audited too")
	// The same delivery again: 200, nothing done twice.
	r := h.stripe(fixture(t, "stripe/checkout.session.completed.2023-10-16.json"), testStripeSecret, time.Now())
	require.Equal(t, true, r.Body["duplicate"])
	require.Equal(t, 3, countAudit(t, h, audit.ActionStore))
	// An event type piivault does not use is acknowledged.
	r = h.stripe(fixture(t, "stripe/customer.created.json"), testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "ignored", r.Body["outcome"])
}

func conformStripeRefundsAndCancellations(t *testing.T) {
	h := newHarness(t, nil, nil)
	require.Equal(t, 201, h.storeWith("ord-bystander", "pi_bystander").Status)

	t.Run("full refund purges the order its payment intent paid", func(t *testing.T) {
		refund := fixture(t, "stripe/charge.refunded.json")
		require.Equal(t, 201, h.storeWith("ord-refund", valueAt(t, refund, "data.object.payment_intent")).Status)
		r := h.stripe(refund, testStripeSecret, time.Now())
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "refunded", h.call("GET", "/v1/orders/ord-refund", h.apiKey, nil).Body["purge_reason"])
	})
	t.Run("partial refund keeps the order", func(t *testing.T) {
		partial := fixture(t, "stripe/charge.refunded.partial.2026-07-29.dahlia.json")
		require.Equal(t, 201, h.storeWith("ord-partial", valueAt(t, partial, "data.object.payment_intent")).Status)
		r := h.stripe(partial, testStripeSecret, time.Now())
		require.Equal(t, "partial_refund", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status("ord-partial"))
	})
	t.Run("payment intent canceled purges its own order only", func(t *testing.T) {
		canceled := fixture(t, "stripe/payment_intent.canceled.json")
		require.Equal(t, 201, h.storeWith("ord-cancel", valueAt(t, canceled, "data.object.id")).Status)
		// Named (metadata order_id) an order paid by another payment: refused.
		wrong := withValues(t, fixture(t, "stripe/payment_intent.canceled.json"), func(m map[string]any) {
			m["id"] = "evt_test_cancel_wrong"
			object(m)["id"] = "pi_attacker"
			object(m)["metadata"] = map[string]any{"order_id": "ord-bystander"}
		})
		r := h.stripe(wrong, testStripeSecret, time.Now())
		require.Equal(t, "other_payment", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status("ord-bystander"))
		r = h.stripe(fixture(t, "stripe/payment_intent.canceled.json"), testStripeSecret, time.Now())
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "canceled", h.call("GET", "/v1/orders/ord-cancel", h.apiKey, nil).Body["purge_reason"])
	})
	expired := fixture(t, "stripe/checkout.session.expired.json")
	expiredPI := valueAt(t, expired, "data.object.payment_intent")
	expiredOrder := valueAt(t, expired, "data.object.client_reference_id")
	t.Run("an abandoned second session does not purge the order another session paid", func(t *testing.T) {
		require.Equal(t, 201, h.storeWith(expiredOrder, "pi_paid_by_the_first_session").Status)
		r := h.stripe(expired, testStripeSecret, time.Now())
		require.Equal(t, "other_payment", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status(expiredOrder))
	})
	t.Run("an expired session purges the order it was for", func(t *testing.T) {
		mine := withValues(t, expired, func(m map[string]any) {
			m["id"] = "evt_test_expired_own"
			object(m)["client_reference_id"] = "ord-expired-own"
		})
		require.Equal(t, 201, h.storeWith("ord-expired-own", expiredPI).Status)
		r := h.stripe(mine, testStripeSecret, time.Now())
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "canceled", h.call("GET", "/v1/orders/ord-expired-own", h.apiKey, nil).Body["purge_reason"])
	})
	t.Run("an expiry before its order is stored refuses that payment's store only", func(t *testing.T) {
		early := withValues(t, expired, func(m map[string]any) {
			m["id"] = "evt_test_expired_early"
			object(m)["client_reference_id"] = "ord-expired-early"
		})
		r := h.stripe(early, testStripeSecret, time.Now())
		require.Equal(t, "tombstoned", r.Body["outcome"], string(r.Raw))
		late := h.storeWith("ord-expired-early", expiredPI)
		require.Equal(t, 409, late.Status, string(late.Raw))
		require.Equal(t, "canceled", late.Body["error"].(map[string]any)["detail"].(map[string]any)["purge_reason"])
		require.Equal(t, "purged", h.status("ord-expired-early"))
	})
	require.Equal(t, "held", h.status("ord-bystander"), "unrelated orders stay held")
}

func conformStripeSessionConflict(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL})
	first := fixture(t, "stripe/checkout.session.completed.2023-10-16.json")
	order := valueAt(t, first, "data.object.client_reference_id")
	require.Equal(t, "stored", h.stripe(first, testStripeSecret, time.Now()).Body["outcome"])
	// A second session, completed for the same order id (a Payment Link whose
	// client_reference_id the customer controls): nothing changes.
	second := withValues(t, fixture(t, "stripe/checkout.session.completed.2026-07-29.dahlia.json"), func(m map[string]any) {
		object(m)["client_reference_id"] = order
	})
	r := h.stripe(second, testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "conflict", r.Body["outcome"], string(r.Raw))
	require.Equal(t, valueAt(t, first, "data.object.payment_intent"), h.call("GET", "/v1/orders/"+order, h.apiKey, nil).Body["payment_ref"],
		"still the first payment's order")
	require.Equal(t, 1, countAudit(t, h, audit.ActionWebhookConflict))
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), order) }, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, h.logs.String(), "webhook event conflicts")
}

func conformForgedStaleAndUnsigned(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-f")
	pi := fixture(t, "stripe/payment_intent.canceled.json")
	require.Equal(t, 201, h.storeWith("ord-f2", valueAt(t, pi, "data.object.id")).Status)
	fulfil := fixture(t, "shopify/fulfillments-create.json")
	tracker := fixture(t, "easypost/tracker.updated.json")
	tests := []struct {
		name   string
		send   func() response
		status int
	}{
		{"stripe wrong secret", func() response { return h.stripe(pi, "whsec_wrong", time.Now()) }, 401},
		{"stripe unsigned", func() response { return h.call("POST", "/v1/webhooks/stripe", "", pi) }, 401},
		{"stripe stale", func() response { return h.stripe(pi, testStripeSecret, time.Now().Add(-10*time.Minute)) }, 400},
		{"stripe forged and stale", func() response { return h.stripe(pi, "whsec_wrong", time.Now().Add(-10*time.Minute)) }, 401},
		{"shopify wrong secret", func() response { return h.shopify("fulfillments/create", "w1", fulfil, "wrong") }, 401},
		{"shopify unsigned", func() response {
			return h.call("POST", "/v1/webhooks/shopify", "", fulfil, "X-Shopify-Topic", "fulfillments/create", "X-Shopify-Webhook-Id", "w2")
		}, 401},
		{"easypost wrong secret", func() response {
			return h.call("POST", "/v1/webhooks/easypost", "", tracker, "X-Hmac-Signature", webhooks.SignEasyPost("wrong", tracker))
		}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send()
			require.Equal(t, tt.status, r.Status, string(r.Raw))
			require.Equal(t, "held", h.status("ord-f"))
			require.Equal(t, "held", h.status("ord-f2"))
		})
	}
}

func conformShopifyDeliveries(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, id := range []string{"820982911946154508", "820982911946154509", "820982911946154510", "820982911946154511", "299938", "ord-bystander"} {
		h.storeOrder(id)
	}
	t.Run("orders/fulfilled after an identical orders/updated is not dropped", func(t *testing.T) {
		body := fixture(t, "shopify/orders-updated.json")
		r := h.shopify("orders/updated", "wh-u1", body, testShopifySecret)
		require.Equal(t, 200, r.Status, string(r.Raw))
		// Shopify's sample order is cancelled: its own signed state decides.
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		r = h.shopify("orders/fulfilled", "wh-u2", body, testShopifySecret)
		require.Nil(t, r.Body["duplicate"], string(r.Raw))
		require.Equal(t, "already_purged", r.Body["outcome"])
		require.Equal(t, "purged", h.status("820982911946154511"))
		require.Equal(t, "canceled", h.purgeReason("820982911946154511"))
	})
	t.Run("orders/fulfilled", func(t *testing.T) {
		r := h.shopify("orders/fulfilled", "wh-f1", fixture(t, "shopify/orders-fulfilled.json"), testShopifySecret)
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		// Shopify's published sample is cancelled (cancelled_at set): its
		// own signed state decides, whatever the topic says.
		require.Equal(t, "purged", h.status("820982911946154508"))
		require.Equal(t, "canceled", h.purgeReason("820982911946154508"))
	})
	t.Run("fulfillments/create", func(t *testing.T) {
		r := h.shopify("fulfillments/create", "wh-c1", fixture(t, "shopify/fulfillments-create.json"), testShopifySecret)
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "shipped", h.call("GET", "/v1/orders/820982911946154509", h.apiKey, nil).Body["purge_reason"])
	})
	t.Run("orders/cancelled", func(t *testing.T) {
		r := h.shopify("orders/cancelled", "wh-x1", fixture(t, "shopify/orders-cancelled.json"), testShopifySecret)
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "canceled", h.call("GET", "/v1/orders/820982911946154510", h.apiKey, nil).Body["purge_reason"])
	})
	t.Run("a signed body under a topic it does not fit changes nothing", func(t *testing.T) {
		h.storeOrder("820982911946154599")
		for _, c := range []struct{ topic, file string }{
			{"customers/redact", "shopify/customers-data-request.json"},
			{"customers/redact", "shopify/orders-fulfilled.json"},
			{"shop/redact", "shopify/customers-redact.json"},
			{"fulfillments/create", "shopify/orders-updated.json"},
		} {
			r := h.shopify(c.topic, "wh-m-"+c.topic+c.file, fixture(t, c.file), testShopifySecret)
			require.Equal(t, 200, r.Status)
			require.Equal(t, "topic_mismatch", r.Body["outcome"], "%s under %s", c.file, c.topic)
		}
		require.Equal(t, "held", h.status("299938"))
		require.Equal(t, "held", h.status("820982911946154599"))
	})
	t.Run("customers/redact", func(t *testing.T) {
		b := orderBody("ord-john")
		b["shipping"].(map[string]any)["email"] = "john@example.com"
		require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, b).Status)
		r := h.shopify("customers/redact", "wh-r1", fixture(t, "shopify/customers-redact.json"), testShopifySecret)
		require.Equal(t, "redacted", r.Body["outcome"], string(r.Raw))
		for _, id := range []string{"299938", "ord-john"} {
			require.Equal(t, "customer_request", h.call("GET", "/v1/orders/"+id, h.apiKey, nil).Body["purge_reason"], id)
		}
	})
	t.Run("customers/data_request", func(t *testing.T) {
		r := h.shopify("customers/data_request", "wh-d1", fixture(t, "shopify/customers-data-request.json"), testShopifySecret)
		require.Equal(t, 200, r.Status, string(r.Raw))
		require.Equal(t, 1, countAudit(t, h, audit.ActionDataRequest))
		r = h.shopify("customers/data_request", "wh-d1", fixture(t, "shopify/customers-data-request.json"), testShopifySecret)
		require.Equal(t, true, r.Body["duplicate"], "a retry of the same delivery is done once")
		require.Equal(t, 1, countAudit(t, h, audit.ActionDataRequest))
	})
	t.Run("shop/redact purges everything stored for that shop", func(t *testing.T) {
		mine, other := orderBody("ord-shop1"), orderBody("ord-shop2")
		mine["shop_domain"] = "{shop}.myshopify.com" // the sample's shop
		other["shop_domain"] = "another-shop.myshopify.com"
		require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, mine).Status)
		require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, other).Status)
		r := h.shopify("shop/redact", "wh-s1", fixture(t, "shopify/shop-redact.json"), testShopifySecret)
		require.Equal(t, "redacted", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "shop_redact", h.call("GET", "/v1/orders/ord-shop1", h.apiKey, nil).Body["purge_reason"])
		require.Equal(t, "held", h.status("ord-shop2"))
	})
	t.Run("a fulfillment before its order is stored refuses the store", func(t *testing.T) {
		early := withValues(t, fixture(t, "shopify/fulfillments-create.json"), func(m map[string]any) { m["order_id"] = 4401 })
		r := h.shopify("fulfillments/create", "wh-e1", early, testShopifySecret)
		require.Equal(t, "tombstoned", r.Body["outcome"], string(r.Raw))
		late := h.call("POST", "/v1/orders", h.apiKey, orderBody("4401"))
		require.Equal(t, 409, late.Status, string(late.Raw))
		require.Equal(t, "shipped", h.status("4401"))
	})
	require.Equal(t, "held", h.status("ord-bystander"), "unrelated orders stay held")
}

func conformShopifyDataRequest(t *testing.T) {
	h := newHarness(t, nil, nil)
	b := orderBody("ord-john-dr")
	b["shipping"].(map[string]any)["email"] = "john@example.com"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, b).Status)
	r := h.shopify("customers/data_request", "wh-dr", fixture(t, "shopify/customers-data-request.json"), testShopifySecret)
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

func conformEasyPostDeliveries(t *testing.T) {
	// EasyPost's own signed test vector: secret "sécret" and the signature
	// of official/fixtures/event-body.json (EasyPost/examples,
	// official/fixtures/client-library-fixtures.json webhooks.hmac_signature).
	const vector = "hmac-sha256-hex=38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db"
	h := newHarness(t, nil, map[string]string{"EASYPOST_WEBHOOK_SECRET": "sécret"})
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost("sécret", body))
	}
	h.storeOrder("ord-ep-code")
	h.storeOrder("ord-bystander")
	// The storefront links the carrier's tracking code (no PII, no API key).
	r := h.call("POST", "/v1/orders/ord-ep-code/tracking", h.apiKey, map[string]any{"carrier": "FedEx", "tracking_code": "1"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	tracker := fixture(t, "easypost/tracker.updated.json")
	require.Equal(t, webhooks.SignEasyPost("sécret", tracker), vector, "EasyPost's vector: NFKD secret, hex HMAC")
	r = h.call("POST", "/v1/webhooks/easypost", "", tracker, "X-Hmac-Signature", vector)
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"], "matched through the linked tracking code")
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/ord-ep-code", h.apiKey, nil).Body["purge_reason"])

	r = send(fixture(t, "easypost/batch.created.json"))
	require.Equal(t, 200, r.Status, "a Batch's status is an object: still a 200: %s", r.Raw)
	require.Equal(t, "ignored", r.Body["outcome"])
	require.Equal(t, "held", h.status("ord-bystander"))
}

func conformEasyPostTrackerLinkedByShipmentID(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-ep-shp")
	body := fixture(t, "easypost/tracker.updated.with-shipment.json")
	r := h.call("POST", "/v1/orders/ord-ep-shp/tracking", h.apiKey, map[string]any{"easypost_shipment_id": valueAt(t, body, "result.shipment_id")})
	require.Equal(t, 200, r.Status, string(r.Raw))
	r = h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
}

func conformEasyPostTrackerLooksUpTheShipmentReference(t *testing.T) {
	// EasyPost's API is out of reach here: a loopback stand-in answers
	// GET /shipments/{id} with EasyPost's published response (SOURCES.md).
	apiShipment := fixture(t, "easypost/api.shipments.retrieve.json")
	shipmentID := valueAt(t, apiShipment, "id")
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		user, _, ok := r.BasicAuth()
		if !ok || user != "EZTK_test_key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/v2/shipments/"+shipmentID {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write(apiShipment)
	}))
	defer api.Close()
	h := newHarness(t, nil, map[string]string{"EASYPOST_API_KEY": "EZTK_test_key", "EASYPOST_API_URL": api.URL + "/v2"})
	shipped := valueAt(t, apiShipment, "reference") // the order EasyPost's shipment names
	h.storeOrder(shipped)
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	}
	withShipment := fixture(t, "easypost/tracker.updated.with-shipment.json")
	require.Equal(t, shipmentID, valueAt(t, withShipment, "result.shipment_id"))
	r := send(withShipment)
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/"+shipped, h.apiKey, nil).Body["purge_reason"])

	// The mapping is remembered: a later event for that shipment asks EasyPost no more.
	before := calls.Load()
	again := withValues(t, withShipment, func(m map[string]any) {
		m["id"] = "evt_test_delivered_again"
		m["result"].(map[string]any)["status"] = "delivered"
	})
	require.Equal(t, "already_purged", send(again).Body["outcome"])
	require.Equal(t, before, calls.Load())
	// The official fixture's tracker has no shipment and no linked code.
	require.Equal(t, "unknown_order", send(fixture(t, "easypost/tracker.updated.json")).Body["outcome"])
}
