package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"piivault/audit"
	"piivault/webhooks"
)

// stripeEvent is a Stripe event of the shape the API (2023-10-16) sends.
func stripeEvent(id, typ, object string) []byte {
	return []byte(fmt.Sprintf(`{
  "id": %q, "object": "event", "api_version": "2023-10-16", "created": %d,
  "livemode": false, "pending_webhooks": 1, "type": %q,
  "request": {"id": null, "idempotency_key": null},
  "data": {"object": %s}
}`, id, time.Now().Unix(), typ, object))
}

const checkoutSession = `{
  "id": "cs_test_a1b2c3", "object": "checkout.session", "mode": "payment", "status": "complete",
  "payment_status": "paid", "client_reference_id": "ord-stripe-1", "metadata": {},
  "payment_intent": "pi_3OstripeTest",
  "customer_details": {"email": "canary.zzyzx@example.com", "name": "Canaryname Zzyzx", "phone": "+15550123456",
    "address": {"city": "Canaryville", "country": "US", "line1": "1 Billing Rd", "line2": null, "postal_code": "90210", "state": "CA"},
    "tax_exempt": "none", "tax_ids": []},
  "shipping_details": {"name": "Canaryname Zzyzx",
    "address": {"city": "Canaryville", "country": "US", "line1": "742 Canarystreet", "line2": "Apt 9", "postal_code": "90210", "state": "CA"}}
}`

func (h *harness) stripe(payload []byte, secret string, at time.Time) response {
	h.t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at})
	return h.call("POST", "/v1/webhooks/stripe", "", payload, "Stripe-Signature", signed.Header)
}

func shopifySign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (h *harness) shopify(topic, eventID string, body []byte, secret string) response {
	h.t.Helper()
	return h.call("POST", "/v1/webhooks/shopify", "", body, "X-Shopify-Topic", topic,
		"X-Shopify-Hmac-Sha256", shopifySign(secret, body), "X-Shopify-Webhook-Id", eventID,
		"X-Shopify-Shop-Domain", "piivault-test.myshopify.com", "X-Shopify-API-Version", "2024-01")
}

func TestStripeCheckoutStoresPIIAndRefundPurges(t *testing.T) {
	h := newHarness(t, nil, nil)
	r := h.stripe(stripeEvent("evt_checkout_1", "checkout.session.completed", checkoutSession), testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "stored", r.Body["outcome"])

	ref := h.call("GET", "/v1/orders/ord-stripe-1", h.apiKey, nil)
	require.Equal(t, 200, ref.Status)
	require.Equal(t, "pi_3OstripeTest", ref.Body["payment_ref"])
	require.Equal(t, 1, countAudit(t, h, audit.ActionStore), "orders stored by a webhook are audited too")
	_, tok := h.login("fulfillment")
	ship := h.call("GET", "/v1/orders/ord-stripe-1/shipping", tok, nil)
	require.Equal(t, 200, ship.Status)
	s := ship.Body
	require.Equal(t, "Canaryname Zzyzx", s["name"])
	require.Equal(t, "742 Canarystreet", s["address"].(map[string]any)["line1"], "the shipping address wins over billing")
	require.Equal(t, "canary.zzyzx@example.com", s["email"])

	// A partial refund does not end the order's purpose; a full one does.
	partial := `{"id": "ch_1", "object": "charge", "refunded": false, "amount_refunded": 100, "payment_intent": "pi_3OstripeTest", "metadata": {}}`
	r = h.stripe(stripeEvent("evt_refund_0", "charge.refunded", partial), testStripeSecret, time.Now())
	require.Equal(t, "partial_refund", r.Body["outcome"])
	require.Equal(t, "held", h.call("GET", "/v1/orders/ord-stripe-1", h.apiKey, nil).Body["status"])

	full := `{"id": "ch_1", "object": "charge", "refunded": true, "amount_refunded": 5000, "payment_intent": "pi_3OstripeTest", "metadata": {}}`
	refund := stripeEvent("evt_refund_1", "charge.refunded", full)
	r = h.stripe(refund, testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"])
	ref = h.call("GET", "/v1/orders/ord-stripe-1", h.apiKey, nil)
	require.Equal(t, "refunded", ref.Body["purge_reason"])
	require.Equal(t, 410, h.call("GET", "/v1/orders/ord-stripe-1/shipping", tok, nil).Status)

	// The same event again: 200, nothing done twice.
	r = h.stripe(refund, testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.Body["duplicate"])
	require.Equal(t, 1, countAudit(t, h, audit.ActionPurge))
}

func TestStripeCheckoutShapes(t *testing.T) {
	h := newHarness(t, nil, nil)
	// API versions from 2025-03-31 put shipping_details under collected_information.
	basil := `{"id": "cs_b", "object": "checkout.session", "metadata": {"order_id": "ord-basil"}, "client_reference_id": "ignored",
	  "payment_intent": "pi_basil", "customer_details": {"email": "canary.zzyzx@example.com", "name": "Billing Name",
	    "address": {"line1": "9 Billing Rd", "city": "Billtown", "country": "US"}},
	  "collected_information": {"shipping_details": {"name": "Canaryname Zzyzx",
	    "address": {"line1": "742 Canarystreet", "city": "Canaryville", "country": "US", "postal_code": "90210", "state": "CA"}}}}`
	ev := []byte(`{"id":"evt_basil","object":"event","api_version":"2025-03-31.basil","type":"checkout.session.completed","data":{"object":` + basil + `}}`)
	r := h.stripe(ev, testStripeSecret, time.Now())
	require.Equal(t, "stored", r.Body["outcome"], string(r.Raw))
	_, tok := h.login("fulfillment")
	ship := h.call("GET", "/v1/orders/ord-basil/shipping", tok, nil)
	require.Equal(t, "742 Canarystreet", ship.Body["address"].(map[string]any)["line1"], "metadata order_id wins; shipping, never billing")

	// No shipping address: nothing to ship, nothing stored (never the billing address).
	digital := `{"id": "cs_d", "object": "checkout.session", "client_reference_id": "ord-digital",
	  "customer_details": {"email": "a@example.com", "name": "A B", "address": {"line1": "1 Billing", "city": "X", "country": "US"}}}`
	r = h.stripe(stripeEvent("evt_digital", "checkout.session.completed", digital), testStripeSecret, time.Now())
	require.Equal(t, "no_shipping", r.Body["outcome"])
	require.Equal(t, 404, h.call("GET", "/v1/orders/ord-digital", h.apiKey, nil).Status)

	// A session that can never become a valid order is answered 200, not retried for days.
	bad := `{"id": "cs_x", "object": "checkout.session", "client_reference_id": "ord-bad",
	  "customer_details": {"email": "not-an-email", "name": "A B"},
	  "shipping_details": {"name": "A B", "address": {"line1": "1 Main", "city": "X", "country": "US"}}}`
	r = h.stripe(stripeEvent("evt_bad", "checkout.session.completed", bad), testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "invalid_order", r.Body["outcome"])
	require.NotContains(t, h.logs.String(), "not-an-email")
}

func TestStripeCancellationAndOtherEvents(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-pi")
	pi := `{"id": "pi_other", "object": "payment_intent", "status": "canceled", "metadata": {"order_id": "ord-pi"}}`
	r := h.stripe(stripeEvent("evt_cancel", "payment_intent.canceled", pi), testStripeSecret, time.Now())
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "canceled", h.call("GET", "/v1/orders/ord-pi", h.apiKey, nil).Body["purge_reason"])

	r = h.stripe(stripeEvent("evt_other", "customer.created", `{"id":"cus_1","object":"customer"}`), testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "ignored", r.Body["outcome"])
	expired := `{"id": "cs_2", "object": "checkout.session", "client_reference_id": "ord-never-stored", "metadata": {}}`
	r = h.stripe(stripeEvent("evt_expired", "checkout.session.expired", expired), testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "unknown_order", r.Body["outcome"])

	// Another API version is accepted, not fatal.
	other := []byte(`{"id":"evt_v","object":"event","api_version":"2020-08-27","type":"customer.created","data":{"object":{"id":"cus_2"}}}`)
	require.Equal(t, 200, h.stripe(other, testStripeSecret, time.Now()).Status)
}

func TestForgedStaleAndUnsignedWebhooksChangeNothing(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-f")
	shipped := []byte(`{"event_id":"evt-f1","order_id":"ord-f","status":"shipped"}`)
	pi := stripeEvent("evt_forged", "payment_intent.canceled", `{"id":"pi_x","object":"payment_intent","metadata":{"order_id":"ord-f"}}`)
	fulfil := []byte(`{"id": 1, "order_id": "ord-f", "status": "success"}`)
	tracker := []byte(`{"id":"evt_ep1","object":"Event","description":"tracker.updated","result":{"object":"Shipment","id":"shp_1","reference":"ord-f","tracker":{"status":"delivered"}}}`)
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
		{"shipping wrong secret", func() response {
			return h.call("POST", "/v1/webhooks/shipping", "", shipped, "X-Piivault-Signature", webhooks.SignShipping("wrong", time.Now(), shipped))
		}, 401},
		{"shipping stale", func() response {
			return h.call("POST", "/v1/webhooks/shipping", "", shipped, "X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now().Add(-6*time.Minute), shipped))
		}, 400},
		{"shipping unsigned", func() response { return h.call("POST", "/v1/webhooks/shipping", "", shipped) }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send()
			require.Equal(t, tt.status, r.Status, string(r.Raw))
			require.Equal(t, "held", h.call("GET", "/v1/orders/ord-f", h.apiKey, nil).Body["status"])
		})
	}
}

func TestShopifyWebhooks(t *testing.T) {
	h := newHarness(t, nil, nil)
	for _, id := range []string{"450789469", "450789470", "450789471", "450789472"} {
		h.storeOrder(id)
	}
	_, tok := h.login("fulfillment")

	// Shopify sends ids as JSON numbers.
	fulfil := []byte(`{"id": 255858046, "order_id": 450789469, "status": "success", "tracking_company": "UPS", "tracking_number": "1Z2345"}`)
	r := h.shopify("fulfillments/create", "wh-1", fulfil, testShopifySecret)
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"])
	gone := h.call("GET", "/v1/orders/450789469/shipping", tok, nil)
	require.Equal(t, 410, gone.Status, "PII is gone in the same request cycle")

	order := []byte(`{"id": 450789470, "name": "#1002", "fulfillment_status": "fulfilled"}`)
	require.Equal(t, "purged", h.shopify("orders/fulfilled", "wh-2", order, testShopifySecret).Body["outcome"])
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/450789470", h.apiKey, nil).Body["purge_reason"])

	// customers/redact: the listed orders and every order of the email.
	redact := []byte(`{"shop_id": 954889, "shop_domain": "piivault-test.myshopify.com",
	  "customer": {"id": 191167, "email": "canary.zzyzx@example.com", "phone": "555-625-1199"},
	  "orders_to_redact": [450789471]}`)
	r = h.shopify("customers/redact", "wh-3", redact, testShopifySecret)
	require.Equal(t, 200, r.Status, string(r.Raw))
	for _, id := range []string{"450789471", "450789472"} {
		ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
		require.Equal(t, "customer_request", ref.Body["purge_reason"], id)
	}

	dr := []byte(`{"shop_id": 954889, "shop_domain": "piivault-test.myshopify.com", "orders_requested": [299938], "customer": {"id": 191167}, "data_request": {"id": 9999}}`)
	r = h.shopify("customers/data_request", "wh-4", dr, testShopifySecret)
	require.Equal(t, 200, r.Status)
	require.Equal(t, 1, countAudit(t, h, audit.ActionDataRequest))

	// Replays: 200, nothing twice.
	r = h.shopify("customers/data_request", "wh-4", dr, testShopifySecret)
	require.Equal(t, true, r.Body["duplicate"])
	require.Equal(t, 1, countAudit(t, h, audit.ActionDataRequest))
	// A captured delivery re-sent under another topic and a fresh id is
	// still a duplicate: only the body is signed, so the guard keys on it.
	h.storeOrder("450789473")
	fulfilled := []byte(`{"id": 450789473, "name": "#1004", "fulfillment_status": null,
	  "customer": {"id": 7, "email": "canary.zzyzx@example.com"}}`)
	require.Equal(t, "ignored", h.shopify("orders/updated", "wh-6", fulfilled, testShopifySecret).Body["outcome"])
	r = h.shopify("customers/redact", "wh-7-fresh", fulfilled, testShopifySecret)
	require.Equal(t, true, r.Body["duplicate"], string(r.Raw))
	require.Equal(t, "held", h.call("GET", "/v1/orders/450789473", h.apiKey, nil).Body["status"])

	// Unknown orders are fine.
	unknown := []byte(`{"id": 1, "order_id": 999999999}`)
	require.Equal(t, "unknown_order", h.shopify("fulfillments/create", "wh-5", unknown, testShopifySecret).Body["outcome"])
}

func TestEasyPostWebhooks(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-ep1")
	h.storeOrder("ord-ep2")
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	}
	// A shipment not yet moving: remembered, nothing purged.
	pre := []byte(`{"id":"evt_1","object":"Event","mode":"test","description":"shipment.updated",
	  "result":{"object":"Shipment","id":"shp_ep2","reference":"ord-ep2","status":"pre_transit","tracker":{"object":"Tracker","status":"pre_transit"}}}`)
	r := send(pre)
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "not_shipped", r.Body["outcome"])
	require.Equal(t, "held", h.call("GET", "/v1/orders/ord-ep2", h.apiKey, nil).Body["status"])

	// A tracker event names only the shipment: piivault maps it to the order.
	tr := []byte(`{"id":"evt_2","object":"Event","mode":"test","description":"tracker.updated",
	  "result":{"object":"Tracker","id":"trk_1","status":"in_transit","shipment_id":"shp_ep2","tracking_code":"EZ1000000001","carrier":"USPS"}}`)
	r = send(tr)
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/ord-ep2", h.apiKey, nil).Body["purge_reason"])

	// A shipment event that is already delivered purges directly.
	del := []byte(`{"id":"evt_3","object":"Event","description":"shipment.updated",
	  "result":{"object":"Shipment","id":"shp_ep1","reference":"ord-ep1","tracker":{"status":"delivered"}}}`)
	require.Equal(t, "purged", send(del).Body["outcome"])
	require.Equal(t, true, send(del).Body["duplicate"])
}

func TestGenericShippingWebhook(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-g")
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now(), body))
	}
	r := send([]byte(`{"event_id":"evt-g1","order_id":"ord-g","status":"shipped"}`))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"])
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/ord-g", h.apiKey, nil).Body["purge_reason"])
	require.Equal(t, "unknown_order", send([]byte(`{"event_id":"evt-g2","order_id":"ord-nope","status":"shipped"}`)).Body["outcome"])
	require.Equal(t, 422, send([]byte(`{"event_id":"evt-g3","order_id":"ord-g","status":"lost"}`)).Status)
	require.Equal(t, 400, send([]byte(`{"event_id":"evt-g4","order_id":"ord-g","status":"shipped","x":1}`)).Status)
	requireNoPII(t, "logs", h.logs.String())
	require.NotContains(t, h.logs.String(), "evt-g1", "webhook bodies are never logged")
}

func TestWebhookWithoutSecretIs404(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_WEBHOOK_SECRET": "", "SHOPIFY_WEBHOOK_SECRET": "", "STRIPE_WEBHOOK_SECRET": "", "EASYPOST_WEBHOOK_SECRET": ""})
	for _, p := range []string{"stripe", "shopify", "easypost", "shipping"} {
		r := h.call("POST", "/v1/webhooks/"+p, "", []byte(`{}`))
		require.Equal(t, 404, r.Status, p)
	}
	_ = context.Background()
}

func TestEasyPostTrackerLooksUpTheShipmentReference(t *testing.T) {
	// EasyPost's API is out of reach here: a loopback stand-in answers
	// GET /shipments/{id} as EasyPost documents it (HTTP Basic, key as user).
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		user, _, ok := r.BasicAuth()
		if !ok || user != "EZTK_test_key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v2/shipments/shp_known":
			fmt.Fprint(w, `{"id":"shp_known","object":"Shipment","reference":"ord-ep3","status":"in_transit"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer api.Close()
	h := newHarness(t, nil, map[string]string{"EASYPOST_API_KEY": "EZTK_test_key", "EASYPOST_API_URL": api.URL + "/v2"})
	h.storeOrder("ord-ep3")
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	}
	tr := []byte(`{"id":"evt_t1","object":"Event","description":"tracker.updated",
	  "result":{"object":"Tracker","id":"trk_9","status":"out_for_delivery","shipment_id":"shp_known","tracking_code":"EZ2"}}`)
	r := send(tr)
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/ord-ep3", h.apiKey, nil).Body["purge_reason"])

	// The mapping is remembered: a later tracker event asks EasyPost no more.
	before := calls.Load()
	tr2 := []byte(`{"id":"evt_t2","object":"Event","description":"tracker.updated",
	  "result":{"object":"Tracker","id":"trk_9","status":"delivered","shipment_id":"shp_known"}}`)
	require.Equal(t, "already_purged", send(tr2).Body["outcome"])
	require.Equal(t, before, calls.Load())

	unknown := []byte(`{"id":"evt_t3","object":"Event","description":"tracker.updated",
	  "result":{"object":"Tracker","id":"trk_8","status":"delivered","shipment_id":"shp_unknown"}}`)
	require.Equal(t, "unknown_order", send(unknown).Body["outcome"])
	noShipment := []byte(`{"id":"evt_t4","object":"Event","description":"tracker.updated",
	  "result":{"object":"Tracker","id":"trk_7","status":"delivered","shipment_id":null}}`)
	require.Equal(t, "unknown_order", send(noShipment).Body["outcome"])
}
