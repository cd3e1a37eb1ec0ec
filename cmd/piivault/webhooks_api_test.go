package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76/webhook"

	"piivault/audit"
	"piivault/webhooks"
)

// The webhook tests send payloads built in payloads_test.go, in each
// provider's documented shapes, and sign them as each provider signs. The
// providers' own published payloads are replayed by TestProviderConformance
// when PIIVAULT_PROVIDER_FIXTURES names them.

// storeWith stores orderBody(id) with the given payment reference.
func (h *harness) storeWith(id, paymentRef string) response {
	h.t.Helper()
	b := orderBody(id)
	b["payment_ref"] = paymentRef
	return h.call("POST", "/v1/orders", h.apiKey, b)
}

func (h *harness) status(id string) string {
	h.t.Helper()
	s, _ := h.call("GET", "/v1/orders/"+id, h.apiKey, nil).Body["status"].(string)
	return s
}

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
		"X-Shopify-Shop-Domain", testShopDomain, "X-Shopify-API-Version", "2024-01")
}

// shippingMAC is the v1 of X-Piivault-Signature computed here from SPEC.md
// alone (hex HMAC-SHA256 of "<t>.<body>"), not with webhooks.SignShipping:
// a scheme changed on both the signing and the checking side would still
// pass every test that signs with the code's own function.
func shippingMAC(secret string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(t, 10) + "." + string(body)))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *harness) purgeReason(id string) any {
	h.t.Helper()
	return h.call("GET", "/v1/orders/"+id, h.apiKey, nil).Body["purge_reason"]
}

func TestStripeCheckoutInEveryAPIEra(t *testing.T) {
	h := newHarness(t, nil, nil)
	_, tok := h.login("fulfillment")
	tests := []struct {
		name, version, order, email, outcome string
		ship                                 map[string]any
	}{
		// A session that collected no shipping address (and names no order).
		{"2019-05-16 without shipping", stripeVersion2019, "", "", "no_shipping", nil},
		// Before 2022-08-01 the address is `shipping`.
		{"2020-08-27 shipping", stripeVersion2020, "ord-era-2020", "era2020@example.com", "stored", stripeShipping()},
		// From 2022-08-01 it is `shipping_details`.
		{"2022-08-01 shipping_details", stripeVersion2022, "ord-era-2022", "era2022@example.com", "stored", stripeShipping()},
		{"2023-10-16 shipping_details", stripeVersion2023, "ord-era-2023", "era2023@example.com", "stored", stripeShipping()},
		// From 2025-03-31 (basil): collected_information.shipping_details.
		{"2025-03-31.basil collected_information", stripeVersionBasil, "ord-era-basil", "basil@example.com", "stored", stripeShipping()},
	}
	bodies := map[string][]byte{}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			suffix := strings.NewReplacer(".", "_", "-", "_").Replace(tt.version)
			body := stripeEvent("evt_era_"+suffix, "checkout.session.completed", tt.version,
				checkoutSession(tt.version, "cs_test_era_"+suffix, tt.order, "pi_era_"+suffix, tt.email, tt.ship))
			bodies[tt.version] = body
			r := h.stripe(body, testStripeSecret, time.Now())
			require.Equal(t, 200, r.Status, string(r.Raw))
			require.Equal(t, tt.outcome, r.Body["outcome"], "case %d: %s", i, r.Raw)
			if tt.outcome != "stored" {
				return
			}
			ship := h.call("GET", "/v1/orders/"+tt.order+"/shipping?reason=label", tok, nil)
			require.Equal(t, 200, ship.Status, string(ship.Raw))
			require.Equal(t, "Jenny Rosen", ship.Body["name"])
			require.Equal(t, "510 Townsend St", ship.Body["address"].(map[string]any)["line1"])
			require.Equal(t, tt.email, ship.Body["email"])
			require.Equal(t, "pi_era_"+suffix, h.call("GET", "/v1/orders/"+tt.order, h.apiKey, nil).Body["payment_ref"],
				"stored with the session's payment intent")
		})
	}
	require.Equal(t, 4, countAudit(t, h, audit.ActionStore), "orders stored by a webhook are audited too")
	// The same delivery again: 200, nothing done twice.
	r := h.stripe(bodies[stripeVersion2023], testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, true, r.Body["duplicate"])
	require.Equal(t, 4, countAudit(t, h, audit.ActionStore))
	// An event type piivault does not use is acknowledged.
	r = h.stripe(stripeEvent("evt_customer_created", "customer.created", stripeVersion2023, stripeCustomer("cus_era")), testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "ignored", r.Body["outcome"])
}

func TestStripeRefundsAndCancellationsTouchOnlyTheirOwnPayment(t *testing.T) {
	h := newHarness(t, nil, nil)
	require.Equal(t, 201, h.storeWith("ord-bystander", "pi_bystander").Status)

	t.Run("full refund purges the order its payment intent paid", func(t *testing.T) {
		require.Equal(t, 201, h.storeWith("ord-refund", "pi_refund_full").Status)
		refund := stripeEvent("evt_refund_full", "charge.refunded", stripeVersion2023, stripeCharge("ch_refund_full", "pi_refund_full", 100))
		r := h.stripe(refund, testStripeSecret, time.Now())
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "refunded", h.purgeReason("ord-refund"))
	})
	t.Run("partial refund keeps the order", func(t *testing.T) {
		require.Equal(t, 201, h.storeWith("ord-partial", "pi_refund_partial").Status)
		partial := stripeEvent("evt_refund_partial", "charge.refunded", stripeVersionBasil, stripeCharge("ch_refund_partial", "pi_refund_partial", 50))
		r := h.stripe(partial, testStripeSecret, time.Now())
		require.Equal(t, "partial_refund", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status("ord-partial"))
	})
	t.Run("payment intent canceled purges its own order only", func(t *testing.T) {
		require.Equal(t, 201, h.storeWith("ord-cancel", "pi_cancel").Status)
		// Named (metadata order_id) an order paid by another payment: refused.
		wrong := stripeEvent("evt_cancel_wrong", "payment_intent.canceled", stripeVersion2023,
			canceledPaymentIntent("pi_attacker", map[string]any{"order_id": "ord-bystander"}))
		r := h.stripe(wrong, testStripeSecret, time.Now())
		require.Equal(t, "other_payment", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status("ord-bystander"))
		canceled := stripeEvent("evt_cancel", "payment_intent.canceled", stripeVersion2023, canceledPaymentIntent("pi_cancel", nil))
		r = h.stripe(canceled, testStripeSecret, time.Now())
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "canceled", h.purgeReason("ord-cancel"))
	})
	t.Run("an abandoned second session does not purge the order another session paid", func(t *testing.T) {
		require.Equal(t, 201, h.storeWith("ord-expired", "pi_paid_by_the_first_session").Status)
		expired := stripeEvent("evt_expired_other", "checkout.session.expired", stripeVersion2023,
			expiredSession(stripeVersion2023, "cs_test_expired_other", "ord-expired", ""))
		r := h.stripe(expired, testStripeSecret, time.Now())
		require.Equal(t, "other_payment", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status("ord-expired"))
	})
	// An expired session's payment is its payment intent where it has one
	// (sessions made one up front before 2022-08-01), else the session.
	for _, tc := range []struct{ version, session, paymentIntent, paidWith string }{
		{stripeVersion2023, "cs_test_expired_own", "", "cs_test_expired_own"},
		{stripeVersion2020, "cs_test_expired_own_pi", "pi_expired_own", "pi_expired_own"},
	} {
		t.Run("an expired session purges the order it was for, API "+tc.version, func(t *testing.T) {
			order := "ord-" + tc.session
			require.Equal(t, 201, h.storeWith(order, tc.paidWith).Status)
			mine := stripeEvent("evt_"+tc.session, "checkout.session.expired", tc.version,
				expiredSession(tc.version, tc.session, order, tc.paymentIntent))
			r := h.stripe(mine, testStripeSecret, time.Now())
			require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
			require.Equal(t, "canceled", h.purgeReason(order))
		})
	}
	t.Run("an expiry before its order is stored refuses that payment's store only", func(t *testing.T) {
		early := stripeEvent("evt_expired_early", "checkout.session.expired", stripeVersion2023,
			expiredSession(stripeVersion2023, "cs_test_expired_early", "ord-expired-early", ""))
		r := h.stripe(early, testStripeSecret, time.Now())
		require.Equal(t, "tombstoned", r.Body["outcome"], string(r.Raw))
		late := h.storeWith("ord-expired-early", "cs_test_expired_early")
		require.Equal(t, 409, late.Status, string(late.Raw))
		require.Equal(t, "canceled", late.Body["error"].(map[string]any)["detail"].(map[string]any)["purge_reason"])
		require.Equal(t, "purged", h.status("ord-expired-early"))
	})
	require.Equal(t, "held", h.status("ord-bystander"), "unrelated orders stay held")
}

func TestStripeSessionForAnOrderPaidByAnotherIsAConflict(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL})
	const order = "ord-paid-once"
	first := stripeEvent("evt_conflict_first", "checkout.session.completed", stripeVersion2023,
		checkoutSession(stripeVersion2023, "cs_test_conflict_first", order, "pi_conflict_first", "first@example.com", stripeShipping()))
	require.Equal(t, "stored", h.stripe(first, testStripeSecret, time.Now()).Body["outcome"])
	// A second session, completed for the same order id (a Payment Link whose
	// client_reference_id the customer controls): nothing changes.
	second := stripeEvent("evt_conflict_second", "checkout.session.completed", stripeVersionBasil,
		checkoutSession(stripeVersionBasil, "cs_test_conflict_second", order, "pi_conflict_second", "second@example.com", stripeShipping()))
	r := h.stripe(second, testStripeSecret, time.Now())
	require.Equal(t, 200, r.Status)
	require.Equal(t, "conflict", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "pi_conflict_first", h.call("GET", "/v1/orders/"+order, h.apiKey, nil).Body["payment_ref"],
		"still the first payment's order")
	require.Equal(t, 1, countAudit(t, h, audit.ActionWebhookConflict))
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), order) }, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, h.logs.String(), "webhook event conflicts")
}

func TestForgedStaleAndUnsignedWebhooksChangeNothing(t *testing.T) {
	h := newHarness(t, nil, nil)
	// Each forged event names an order that a genuine one would purge.
	h.storeOrder("ord-f")
	shipped := []byte(`{"event_id":"evt-f1","order_id":"ord-f","status":"shipped"}`)
	require.Equal(t, 201, h.storeWith("ord-f2", "pi_forged").Status)
	pi := stripeEvent("evt_forged", "payment_intent.canceled", stripeVersion2023, canceledPaymentIntent("pi_forged", nil))
	h.storeOrder(shopifyOrderA)
	fulfil := shopifyFulfillment("5550000000001", shopifyOrderA, "success")
	h.storeOrder("ord-f3")
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-f3/tracking", h.apiKey, map[string]any{"carrier": "USPS", "tracking_code": "EZ2000000002"}).Status)
	tracker := trackerUpdated("evt_forged_tracker", "trk_forged", "EZ2000000002", "in_transit", "")
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
		{"easypost unsigned", func() response { return h.call("POST", "/v1/webhooks/easypost", "", tracker) }, 401},
		{"shipping wrong secret", func() response {
			return h.call("POST", "/v1/webhooks/shipping", "", shipped, "X-Piivault-Signature", webhooks.SignShipping("wrong", time.Now(), shipped))
		}, 401},
		{"shipping stale", func() response {
			return h.call("POST", "/v1/webhooks/shipping", "", shipped, "X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now().Add(-6*time.Minute), shipped))
		}, 400},
		{"shipping unsigned", func() response { return h.call("POST", "/v1/webhooks/shipping", "", shipped) }, 401},
		// The v1 of a delivery signed ten minutes ago (valid then: "shipping
		// stale" above is its 400), replayed under a fresh t: the timestamp
		// is signed, so moving it forward breaks the signature.
		{"shipping old signature under a fresh timestamp", func() response {
			old := webhooks.SignShipping(testShippingSecret, time.Now().Add(-10*time.Minute), shipped)
			_, v1, ok := strings.Cut(old, ",v1=")
			require.True(t, ok, old)
			header := fmt.Sprintf("t=%d,v1=%s", time.Now().Unix(), v1)
			return h.call("POST", "/v1/webhooks/shipping", "", shipped, "X-Piivault-Signature", header)
		}, 401},
		{"shipping signature of the body alone", func() response {
			m := hmac.New(sha256.New, []byte(testShippingSecret))
			m.Write(shipped)
			header := fmt.Sprintf("t=%d,v1=%s", time.Now().Unix(), hex.EncodeToString(m.Sum(nil)))
			return h.call("POST", "/v1/webhooks/shipping", "", shipped, "X-Piivault-Signature", header)
		}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.send()
			require.Equal(t, tt.status, r.Status, string(r.Raw))
			for _, id := range []string{"ord-f", "ord-f2", shopifyOrderA, "ord-f3"} {
				require.Equal(t, "held", h.status(id), id)
			}
		})
	}
}

func TestShopifyDeliveriesAsShopifySendsThem(t *testing.T) {
	h := newHarness(t, nil, nil)
	// Shopify order ids pass 2^53, and all of these are one float64: a
	// handler that reads them as floats purges the wrong one. twin stays
	// held throughout.
	const (
		updated   = "7450000000000000011"
		fulfilled = "7450000000000000012"
		fulfil    = shopifyOrderB
		cancelled = "7450000000000000013"
		redact    = "7450000000000000014"
		twin      = shopifyOrderA
	)
	for _, id := range []string{updated, fulfilled, fulfil, cancelled, redact, twin, "ord-bystander"} {
		h.storeOrder(id)
	}
	t.Run("orders/fulfilled after an identical orders/updated is not dropped", func(t *testing.T) {
		// Shopify sends one change to several topics with the same body.
		body := shopifyOrder(updated, orderFulfilled)
		r := h.shopify("orders/updated", "wh-u1", body, testShopifySecret)
		require.Equal(t, 200, r.Status, string(r.Raw))
		// The order's own signed state decides, whatever the topic.
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		r = h.shopify("orders/fulfilled", "wh-u2", body, testShopifySecret)
		require.Nil(t, r.Body["duplicate"], string(r.Raw))
		require.Equal(t, "already_purged", r.Body["outcome"])
		require.Equal(t, "shipped", h.purgeReason(updated))
	})
	t.Run("an open order changes nothing", func(t *testing.T) {
		r := h.shopify("orders/updated", "wh-o1", shopifyOrder(twin, orderOpen), testShopifySecret)
		require.Equal(t, "not_shipped", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "held", h.status(twin))
	})
	t.Run("orders/fulfilled", func(t *testing.T) {
		r := h.shopify("orders/fulfilled", "wh-f1", shopifyOrder(fulfilled, orderFulfilled), testShopifySecret)
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "shipped", h.purgeReason(fulfilled))
	})
	t.Run("fulfillments/create", func(t *testing.T) {
		r := h.shopify("fulfillments/create", "wh-c0", shopifyFulfillment("5550000000010", twin, "cancelled"), testShopifySecret)
		require.Equal(t, "not_shipped", r.Body["outcome"], "a cancelled fulfillment ships nothing: %s", r.Raw)
		r = h.shopify("fulfillments/create", "wh-c1", shopifyFulfillment("5550000000011", fulfil, "success"), testShopifySecret)
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "shipped", h.purgeReason(fulfil))
	})
	t.Run("orders/cancelled", func(t *testing.T) {
		r := h.shopify("orders/cancelled", "wh-x1", shopifyOrder(cancelled, orderCancelled), testShopifySecret)
		require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "canceled", h.purgeReason(cancelled))
	})
	t.Run("a signed body under a topic it does not fit changes nothing", func(t *testing.T) {
		for _, c := range []struct {
			topic, what string
			body        []byte
		}{
			{"customers/redact", "a data request", shopifyDataRequest("9001", "john@example.com", redact)},
			{"customers/redact", "an order", shopifyOrder(twin, orderFulfilled)},
			{"shop/redact", "a customer redaction", shopifyCustomersRedact("john@example.com", redact)},
			{"fulfillments/create", "an order", shopifyOrder(twin, orderFulfilled)},
			{"orders/fulfilled", "a fulfillment", shopifyFulfillment("5550000000012", twin, "success")},
		} {
			r := h.shopify(c.topic, "wh-m-"+c.topic+c.what, c.body, testShopifySecret)
			require.Equal(t, 200, r.Status)
			require.Equal(t, "topic_mismatch", r.Body["outcome"], "%s under %s", c.what, c.topic)
		}
		require.Equal(t, "held", h.status(redact))
		require.Equal(t, "held", h.status(twin))
	})
	t.Run("customers/redact", func(t *testing.T) {
		b := orderBody("ord-john")
		b["shipping"].(map[string]any)["email"] = "john@example.com"
		require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, b).Status)
		r := h.shopify("customers/redact", "wh-r1", shopifyCustomersRedact("john@example.com", redact), testShopifySecret)
		require.Equal(t, "redacted", r.Body["outcome"], string(r.Raw))
		// The listed order, and every order of the customer's email.
		for _, id := range []string{redact, "ord-john"} {
			require.Equal(t, "customer_request", h.purgeReason(id), id)
		}
	})
	t.Run("customers/data_request", func(t *testing.T) {
		body := shopifyDataRequest("9001", "john@example.com", redact)
		r := h.shopify("customers/data_request", "wh-d1", body, testShopifySecret)
		require.Equal(t, 200, r.Status, string(r.Raw))
		require.Equal(t, "report_created", r.Body["outcome"], string(r.Raw))
		require.Equal(t, 1, countAudit(t, h, audit.ActionDataRequest))
		r = h.shopify("customers/data_request", "wh-d1", body, testShopifySecret)
		require.Equal(t, true, r.Body["duplicate"], "a retry of the same delivery is done once")
		require.Equal(t, 1, countAudit(t, h, audit.ActionDataRequest))
	})
	t.Run("shop/redact purges everything stored for that shop", func(t *testing.T) {
		mine, other := orderBody("ord-shop1"), orderBody("ord-shop2")
		mine["shop_domain"] = testShopDomain
		other["shop_domain"] = "another-shop.myshopify.com"
		require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, mine).Status)
		require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, other).Status)
		r := h.shopify("shop/redact", "wh-s1", shopifyShopRedact(testShopDomain), testShopifySecret)
		require.Equal(t, "redacted", r.Body["outcome"], string(r.Raw))
		require.Equal(t, "shop_redact", h.purgeReason("ord-shop1"))
		require.Equal(t, "held", h.status("ord-shop2"))
	})
	t.Run("a fulfillment before its order is stored refuses the store", func(t *testing.T) {
		r := h.shopify("fulfillments/create", "wh-e1", shopifyFulfillment("5550000000013", "4401", "success"), testShopifySecret)
		require.Equal(t, "tombstoned", r.Body["outcome"], string(r.Raw))
		late := h.call("POST", "/v1/orders", h.apiKey, orderBody("4401"))
		require.Equal(t, 409, late.Status, string(late.Raw))
		require.Equal(t, "shipped", h.status("4401"))
	})
	require.Equal(t, "held", h.status("ord-bystander"), "unrelated orders stay held")
	require.Equal(t, "held", h.status(twin), "its float64 twins' events did not touch it")
}

func TestEasyPostDeliveriesAsEasyPostSendsThem(t *testing.T) {
	// EasyPost signs with the NFKD form of the secret: a composed é (U+00E9)
	// configured here is e + U+0301 in the HMAC key. The signature is
	// computed here, not with webhooks.SignEasyPost, so this checks the
	// scheme itself. (EasyPost's published test vector is checked by
	// TestProviderConformance: it signs EasyPost's own fixture body.)
	const secret = "s\u00e9cret"
	sign := func(body []byte) string {
		m := hmac.New(sha256.New, []byte("se\u0301cret"))
		m.Write(body)
		return "hmac-sha256-hex=" + hex.EncodeToString(m.Sum(nil))
	}
	h := newHarness(t, nil, map[string]string{"EASYPOST_WEBHOOK_SECRET": secret})
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", sign(body))
	}
	h.storeOrder("ord-ep-code")
	h.storeOrder("ord-bystander")
	// The storefront links the carrier's tracking code (no PII, no API key).
	r := h.call("POST", "/v1/orders/ord-ep-code/tracking", h.apiKey, map[string]any{"carrier": "USPS", "tracking_code": "EZ2000000002"})
	require.Equal(t, 200, r.Status, string(r.Raw))
	// A tracker that has not left yet changes nothing.
	r = send(trackerUpdated("evt_ep_pre", "trk_ep_code", "EZ2000000002", "pre_transit", ""))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "not_shipped", r.Body["outcome"])
	require.Equal(t, "held", h.status("ord-ep-code"))

	r = send(trackerUpdated("evt_ep_code", "trk_ep_code", "EZ2000000002", "in_transit", ""))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"], "matched through the linked tracking code")
	require.Equal(t, "shipped", h.purgeReason("ord-ep-code"))

	r = send(batchCreated("evt_ep_batch", "batch_0a1b2c3d0a1b2c3d0a1b2c3d0a1b2c3d", easyPostShipmentID))
	require.Equal(t, 200, r.Status, "a Batch's status is an object: still a 200: %s", r.Raw)
	require.Equal(t, "ignored", r.Body["outcome"])
	require.Equal(t, "held", h.status("ord-bystander"))

	// Linking is the storefront's, with its own key, for an order that exists.
	require.Equal(t, 404, h.call("POST", "/v1/orders/ord-none/tracking", h.apiKey, map[string]any{"tracking_code": "EZ1"}).Status)
	require.Equal(t, 422, h.call("POST", "/v1/orders/ord-bystander/tracking", h.apiKey, map[string]any{"carrier": "UPS"}).Status)
	require.Equal(t, 403, h.call("POST", "/v1/orders/ord-bystander/tracking", h.loginToken("fulfillment"), map[string]any{"tracking_code": "EZ1"}).Status)
}

func TestEasyPostTrackerLinkedByShipmentID(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-ep-shp")
	r := h.call("POST", "/v1/orders/ord-ep-shp/tracking", h.apiKey, map[string]any{"easypost_shipment_id": easyPostShipmentID})
	require.Equal(t, 200, r.Status, string(r.Raw))
	body := trackerUpdated("evt_ep_shp", "trk_ep_shp", "EZ2000000002", "in_transit", easyPostShipmentID)
	r = h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "shipped", h.purgeReason("ord-ep-shp"))
}

// TestShippingSignatureIsTheSpecsScheme signs as SPEC.md tells an
// integrator to, without webhooks.SignShipping, and holds SignShipping (which
// integrators may copy) to a vector computed outside Go.
func TestShippingSignatureIsTheSpecsScheme(t *testing.T) {
	// printf '1700000000.{"event_id":"evt-kat","order_id":"ord-kat","status":"shipped"}' |
	//   openssl dgst -sha256 -hmac whsec-shipping-test
	kat := []byte(`{"event_id":"evt-kat","order_id":"ord-kat","status":"shipped"}`)
	const want = "t=1700000000,v1=5a2b271dba8eee8daf91dce8b8be36e2918227d211c95db5af8c61bf93270bc9"
	require.Equal(t, want, "t=1700000000,v1="+shippingMAC(testShippingSecret, 1700000000, kat))
	require.Equal(t, want, webhooks.SignShipping(testShippingSecret, time.Unix(1700000000, 0), kat))

	h := newHarness(t, nil, nil)
	h.storeOrder("ord-hand")
	body := []byte(`{"event_id":"evt-hand","order_id":"ord-hand","status":"shipped"}`)
	now := time.Now().Unix()
	r := h.call("POST", "/v1/webhooks/shipping", "", body,
		"X-Piivault-Signature", fmt.Sprintf("t=%d,v1=%s", now, shippingMAC(testShippingSecret, now, body)))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"])
	require.Equal(t, "shipped", h.purgeReason("ord-hand"))
}

func TestGenericShippingWebhook(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-g")
	h.storeOrder("ord-gt")
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now(), body))
	}
	r := send([]byte(`{"event_id":"evt-g1","order_id":"ord-g","status":"shipped"}`))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"])
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/ord-g", h.apiKey, nil).Body["purge_reason"])
	// A tracking code the storefront linked stands in for the order id.
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-gt/tracking", h.apiKey, map[string]any{"tracking_code": "1Z999AA10123456784"}).Status)
	r = send([]byte(`{"event_id":"evt-g5","tracking_code":"1Z999AA10123456784","status":"shipped"}`))
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "unknown_order", send([]byte(`{"event_id":"evt-g6","tracking_code":"NOPE123","status":"shipped"}`)).Body["outcome"])
	// A shipment before its order: the store that follows is refused.
	require.Equal(t, "tombstoned", send([]byte(`{"event_id":"evt-g2","order_id":"ord-early","status":"shipped"}`)).Body["outcome"])
	late := h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-early"))
	require.Equal(t, 409, late.Status, string(late.Raw))
	require.Equal(t, "shipped", h.status("ord-early"))
	page, err := h.app.audit.List(context.Background(), audit.Filter{OrderID: "ord-early", Action: audit.ActionPurge})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1, "the purge is audited once, as the event's")
	require.Equal(t, "webhook:shipping", page.Entries[0].Actor)
	require.Equal(t, "shipped", page.Entries[0].Detail["reason"])
	require.Equal(t, 422, send([]byte(`{"event_id":"evt-g3","order_id":"ord-g","status":"lost"}`)).Status)
	require.Equal(t, 422, send([]byte(`{"event_id":"evt-g7","order_id":"ord-g","tracking_code":"X1234","status":"shipped"}`)).Status)
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
	// GET /v2/shipments/{id} as EasyPost documents it (HTTP Basic, key as
	// user; the Shipment object, its reference being the order).
	const shipped = "ord-ep-ref"
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		user, _, ok := r.BasicAuth()
		if !ok || user != "EZTK_test_key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/v2/shipments/"+easyPostShipmentID {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(easyPostShipment(easyPostShipmentID, shipped))
	}))
	defer api.Close()
	h := newHarness(t, nil, map[string]string{"EASYPOST_API_KEY": "EZTK_test_key", "EASYPOST_API_URL": api.URL + "/v2"})
	h.storeOrder(shipped)
	send := func(body []byte) response {
		return h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	}
	r := send(trackerUpdated("evt_ep_ref", "trk_ep_ref", "EZ2000000002", "in_transit", easyPostShipmentID))
	require.Equal(t, "purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, "shipped", h.purgeReason(shipped))
	require.Equal(t, int64(1), calls.Load())

	// The mapping is remembered: a later event for that shipment asks EasyPost no more.
	r = send(trackerUpdated("evt_ep_ref_delivered", "trk_ep_ref", "EZ2000000002", "delivered", easyPostShipmentID))
	require.Equal(t, "already_purged", r.Body["outcome"], string(r.Raw))
	require.Equal(t, int64(1), calls.Load())
	// A tracker with no shipment and no linked code belongs to no order.
	require.Equal(t, "unknown_order", send(trackerUpdated("evt_ep_none", "trk_ep_none", "EZ4000000004", "delivered", "")).Body["outcome"])
}
