package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Shopify and Stripe events that settle an order's fate, and bodies of
// other Shopify resources that must not pass for them. Each body is built
// from the topic's sample payload in Shopify's webhook reference
// (shopify.dev/docs/api/webhooks, "Sample Payload"), with only the fields
// named there.

// shopifyTransaction is the OrderTransaction body of
// order_transactions/create: an id, an order_id and a status, like a
// fulfillment, but gid://shopify/OrderTransaction/<id>.
func shopifyTransaction(id, orderID string) []byte {
	return mustJSON(map[string]any{
		"id":                   json.Number(id),
		"admin_graphql_api_id": "gid://shopify/OrderTransaction/" + id,
		"order_id":             json.Number(orderID),
		"kind":                 "sale",
		"gateway":              "bogus",
		"status":               "success",
		"message":              nil,
		"created_at":           "2025-01-02T10:00:00-05:00",
		"test":                 false,
		"parent_id":            nil,
		"amount":               "89.99",
		"currency":             "USD",
	})
}

// shopifyDispute is the dispute body of disputes/create: id, order_id and
// status, and no GraphQL gid at all.
func shopifyDispute(id, orderID string) []byte {
	return mustJSON(map[string]any{
		"id":                  json.Number(id),
		"order_id":            json.Number(orderID),
		"type":                "chargeback",
		"amount":              "89.99",
		"currency":            "USD",
		"reason":              "fraudulent",
		"network_reason_code": "4837",
		"status":              "under_review",
		"evidence_due_by":     "2025-01-20T19:00:00-05:00",
		"evidence_sent_on":    nil,
		"finalized_on":        nil,
		"initiated_at":        "2025-01-03T19:00:00-05:00",
	})
}

// shopifyFulfillmentEvent is the FulfillmentEvent body of
// fulfillment_events/create (gid://shopify/FulfillmentEvent/<id>): a
// carrier's update about one fulfillment of an order.
func shopifyFulfillmentEvent(id, fulfillmentID, orderID, status string) []byte {
	return mustJSON(map[string]any{
		"id":                    json.Number(id),
		"admin_graphql_api_id":  "gid://shopify/FulfillmentEvent/" + id,
		"fulfillment_id":        json.Number(fulfillmentID),
		"order_id":              json.Number(orderID),
		"shop_id":               json.Number("73000000"),
		"status":                status,
		"message":               "Item is now in transit",
		"happened_at":           "2025-01-03T10:00:00-05:00",
		"city":                  nil,
		"province":              nil,
		"country":               "US",
		"zip":                   nil,
		"address1":              nil,
		"latitude":              nil,
		"longitude":             nil,
		"estimated_delivery_at": nil,
		"created_at":            "2025-01-03T10:00:00-05:00",
		"updated_at":            "2025-01-03T10:00:00-05:00",
	})
}

// shopifyRefundedOrder is the Order body Shopify sends (orders/updated)
// once every line of it is refunded: financial_status "refunded".
func shopifyRefundedOrder(id string) []byte {
	var o map[string]any
	d := json.NewDecoder(bytes.NewReader(shopifyOrder(id, orderOpen)))
	d.UseNumber() // ids pass 2^53
	if err := d.Decode(&o); err != nil {
		panic(err)
	}
	o["financial_status"] = "refunded"
	return mustJSON(o)
}

func TestShopifyBodiesOfOtherResourcesCannotPurge(t *testing.T) {
	h := newHarness(t, nil, nil)
	const order = "7450000000000000101"
	h.storeOrder(order)
	tests := []struct {
		name, topic string
		body        []byte
	}{
		{"a transaction under fulfillments/create", "fulfillments/create", shopifyTransaction("120560818172775265", order)},
		{"a dispute under fulfillments/create", "fulfillments/create", shopifyDispute("285332461850802063", order)},
		{"a transaction under fulfillment_events/create", "fulfillment_events/create", shopifyTransaction("120560818172775266", order)},
		{"a fulfillment under fulfillment_events/create", "fulfillment_events/create", shopifyFulfillment("255858046", order, "success")},
		{"a dispute under orders/cancelled", "orders/cancelled", shopifyDispute("285332461850802064", order)},
		{"a fulfillment event under orders/fulfilled", "orders/fulfilled",
			shopifyFulfillmentEvent("944956395", "255858046", order, "delivered")},
		{"an order under orders/delete", "orders/delete", shopifyOrder(order, orderCancelled)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.shopify(tt.topic, "wh-other-"+tt.name, tt.body, testShopifySecret)
			require.Equal(t, 200, r.Status, string(r.Raw))
			require.Equal(t, "topic_mismatch", r.Body["outcome"], string(r.Raw))
			require.Equal(t, "held", h.status(order))
		})
	}
}

func TestEventsThatSettleAnOrdersFatePurgeIt(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-bystander")
	tests := []struct {
		name    string
		order   string
		payment string // stored with this payment reference
		send    func(order string) response
		outcome string
		reason  any // purge_reason afterwards (nil: still held)
	}{
		{"Stripe: the delayed payment of the session that stored it failed", "ord-async-fail", "pi_async_fail",
			func(order string) response {
				s := checkoutSession(stripeVersion2023, "cs_test_async_fail", order, "pi_async_fail", "", nil)
				s["payment_status"] = "unpaid"
				return h.stripe(stripeEvent("evt_async_fail", "checkout.session.async_payment_failed", stripeVersion2023, s),
					testStripeSecret, time.Now())
			}, "purged", "payment_failed"},
		{"Stripe: another session's failed payment for the same order changes nothing", "ord-async-other", "pi_paid",
			func(order string) response {
				s := checkoutSession(stripeVersion2023, "cs_test_async_other", order, "pi_abandoned", "", nil)
				s["payment_status"] = "unpaid"
				return h.stripe(stripeEvent("evt_async_other", "checkout.session.async_payment_failed", stripeVersion2023, s),
					testStripeSecret, time.Now())
			}, "other_payment", nil},
		{"Shopify: the order was deleted", "7450000000000000201", "pay-201",
			func(order string) response {
				return h.shopify("orders/delete", "wh-del", mustJSON(map[string]any{"id": json.Number(order)}), testShopifySecret)
			}, "purged", "order_deleted"},
		{"Shopify: every line of an unshipped order refunded", "7450000000000000202", "pay-202",
			func(order string) response {
				return h.shopify("orders/updated", "wh-refund", shopifyRefundedOrder(order), testShopifySecret)
			}, "purged", "refunded"},
		{"Shopify: a paid order that has not shipped stays", "7450000000000000203", "pay-203",
			func(order string) response {
				return h.shopify("orders/updated", "wh-open", shopifyOrder(order, orderOpen), testShopifySecret)
			}, "not_shipped", nil},
		{"Shopify: the carrier reports the parcel in transit", "7450000000000000204", "pay-204",
			func(order string) response {
				return h.shopify("fulfillment_events/create", "wh-transit",
					shopifyFulfillmentEvent("944956391", "255858041", order, "in_transit"), testShopifySecret)
			}, "purged", "shipped"},
		{"Shopify: the carrier reports the parcel delivered", "7450000000000000205", "pay-205",
			func(order string) response {
				return h.shopify("fulfillment_events/create", "wh-delivered",
					shopifyFulfillmentEvent("944956392", "255858042", order, "delivered"), testShopifySecret)
			}, "purged", "shipped"},
		{"Shopify: a label printed is not a parcel on its way", "7450000000000000206", "pay-206",
			func(order string) response {
				return h.shopify("fulfillment_events/create", "wh-label",
					shopifyFulfillmentEvent("944956393", "255858043", order, "label_printed"), testShopifySecret)
			}, "not_shipped", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, 201, h.storeWith(tt.order, tt.payment).Status)
			r := tt.send(tt.order)
			require.Equal(t, 200, r.Status, string(r.Raw))
			require.Equal(t, tt.outcome, r.Body["outcome"], string(r.Raw))
			ref := h.call("GET", "/v1/orders/"+tt.order, h.apiKey, nil)
			require.Equal(t, tt.reason, ref.Body["purge_reason"], string(ref.Raw))
			if tt.reason == nil {
				require.Equal(t, "held", ref.Body["status"])
			}
		})
	}
	require.Equal(t, "held", h.status("ord-bystander"))
}
