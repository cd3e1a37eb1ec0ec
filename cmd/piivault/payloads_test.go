package main

import "encoding/json"

// Provider payloads for the always-run webhook tests, written here so that a
// fresh clone tests its webhooks with nothing beside it. Each builder writes
// only fields the provider documents for that object, in the shape the
// provider sends them, and only the ones a test needs; the providers' own
// published bodies are replayed by the conformance test instead
// (conformance_test.go, PIIVAULT_PROVIDER_FIXTURES).
//
//   - Stripe: Event (docs.stripe.com/api/events/object) around a Checkout
//     Session, Charge, PaymentIntent or Customer (docs.stripe.com/api/…/object).
//   - Shopify: the webhook reference's sample payloads
//     (shopify.dev/docs/api/webhooks, "Sample Payload" per topic) and the
//     mandatory compliance topics
//     (shopify.dev/docs/apps/build/compliance/privacy-law-compliance).
//   - EasyPost: Event (docs.easypost.com/docs/events) with a Tracker
//     (docs/trackers) or Batch (docs/batches) result, and the Shipment that
//     GET /v2/shipments/{id} answers (docs/shipments).

// mustJSON encodes a payload built here; these maps always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// orNull is JSON null for an empty string: providers send null, not "",
// for a reference they do not have.
func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// --- Stripe -----------------------------------------------------------------

// Stripe API versions whose Checkout Session serialises the shipping address
// differently (changelog: 2022-08-01 "renames `shipping` to
// `shipping_details`"; 2025-03-31.basil moves it to
// `collected_information.shipping_details`). stripeVersion2023 is the one
// stripe-go v76 is pinned to.
const (
	stripeVersion2019  = "2019-05-16"
	stripeVersion2020  = "2020-08-27"
	stripeVersion2022  = "2022-08-01"
	stripeVersion2023  = "2023-10-16"
	stripeVersionBasil = "2025-03-31.basil"
)

// stripeEvent is Stripe's Event envelope around one API object, as a
// webhook endpoint receives it.
func stripeEvent(id, typ, apiVersion string, obj map[string]any) []byte {
	return mustJSON(map[string]any{
		"id":               id,
		"object":           "event",
		"api_version":      apiVersion,
		"created":          1735689600,
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             typ,
		"data":             map[string]any{"object": obj},
	})
}

// stripeShipping is a Checkout Session's collected shipping details (name
// and address); Stripe's CLI uses this address for its checkout triggers.
func stripeShipping() map[string]any {
	return map[string]any{
		"name": "Jenny Rosen",
		"address": map[string]any{
			"line1": "510 Townsend St", "line2": nil, "city": "San Francisco",
			"state": "CA", "postal_code": "94103", "country": "US",
		},
	}
}

// checkoutSession is a Checkout Session in payment mode, completed and paid,
// as API version apiVersion serialises it. ship nil: no address collected.
// orderID goes into client_reference_id, paymentIntent into payment_intent
// (empty: null, as from 2022-08-01 until the session is confirmed).
func checkoutSession(apiVersion, id, orderID, paymentIntent, email string, ship map[string]any) map[string]any {
	s := map[string]any{
		"id":                  id,
		"object":              "checkout.session",
		"livemode":            false,
		"mode":                "payment",
		"status":              "complete",
		"payment_status":      "paid",
		"client_reference_id": orNull(orderID),
		"payment_intent":      orNull(paymentIntent),
		"customer_email":      nil,
		"customer_details":    map[string]any{"email": orNull(email), "name": nil, "phone": nil},
		"metadata":            map[string]any{},
		"success_url":         "https://shop.example.com/success",
		"cancel_url":          "https://shop.example.com/cancel",
	}
	if email == "" {
		s["customer_details"] = nil
	}
	// The shipping address is where this API version puts it, and only
	// there (a nil map is JSON null).
	switch v := apiVersion[:10]; {
	case v < "2022-08-01":
		s["shipping"] = ship
	case v < "2025-03-31":
		s["shipping_details"] = ship
	default:
		s["collected_information"] = map[string]any{"shipping_details": ship}
	}
	return s
}

// expiredSession is a Checkout Session that expired unpaid. paymentIntent
// is empty from API 2022-08-01 (a session makes its payment intent only
// when the customer confirms); before, sessions made one up front.
func expiredSession(apiVersion, id, orderID, paymentIntent string) map[string]any {
	s := checkoutSession(apiVersion, id, orderID, paymentIntent, "", nil)
	s["status"], s["payment_status"] = "expired", "unpaid"
	return s
}

// stripeCharge is a captured card Charge of 100 of which amountRefunded is
// refunded; `refunded` is true only when all of it is.
func stripeCharge(id, paymentIntent string, amountRefunded int) map[string]any {
	return map[string]any{
		"id":              id,
		"object":          "charge",
		"amount":          100,
		"amount_captured": 100,
		"amount_refunded": amountRefunded,
		"refunded":        amountRefunded == 100,
		"captured":        true,
		"paid":            true,
		"status":          "succeeded",
		"currency":        "usd",
		"created":         1735689500,
		"livemode":        false,
		"payment_intent":  orNull(paymentIntent),
		"metadata":        map[string]any{},
	}
}

// canceledPaymentIntent is a PaymentIntent the customer canceled; metadata
// is the merchant's own (an order_id there is only a claim).
func canceledPaymentIntent(id string, metadata map[string]any) map[string]any {
	if metadata == nil {
		metadata = map[string]any{}
	}
	return map[string]any{
		"id":                  id,
		"object":              "payment_intent",
		"amount":              2000,
		"currency":            "usd",
		"status":              "canceled",
		"canceled_at":         1735689550,
		"cancellation_reason": "requested_by_customer",
		"created":             1735689500,
		"livemode":            false,
		"metadata":            metadata,
	}
}

// stripeCustomer is a Customer, the object of an event piivault does not use.
func stripeCustomer(id string) map[string]any {
	return map[string]any{"id": id, "object": "customer", "created": 1735689500, "livemode": false,
		"email": nil, "name": nil, "shipping": nil, "metadata": map[string]any{}}
}

// --- Shopify ----------------------------------------------------------------

// testShopDomain is the shop the Shopify payloads come from (and the
// X-Shopify-Shop-Domain the harness sends).
const testShopDomain = "piivault-test.myshopify.com"

// Shopify order ids pass 2^53: these two differ by one and are the same
// float64, so a handler that reads them as floats mixes them up.
const (
	shopifyOrderA = "7450000000000000001"
	shopifyOrderB = "7450000000000000002"
)

// orderState is what a Shopify order's own fields say about it.
type orderState int

const (
	orderOpen      orderState = iota // paid, nothing fulfilled
	orderFulfilled                   // fulfillment_status "fulfilled"
	orderCancelled                   // cancelled_at set, payment voided
)

// shopifyOrder is the Order body every orders/* topic sends (orders/create,
// orders/updated, orders/fulfilled, orders/cancelled share one sample),
// identified by its REST id and its GraphQL gid (gid://shopify/Order/<id>).
// Ids are JSON numbers, written exactly.
func shopifyOrder(id string, state orderState) []byte {
	o := map[string]any{
		"id":                   json.Number(id),
		"admin_graphql_api_id": "gid://shopify/Order/" + id,
		"name":                 "#1001",
		"created_at":           "2025-01-01T10:00:00-05:00",
		"updated_at":           "2025-01-02T10:00:00-05:00",
		"currency":             "USD",
		"financial_status":     "paid",
		"fulfillment_status":   nil,
		"cancelled_at":         nil,
		"cancel_reason":        nil,
		"line_items": []any{map[string]any{
			"id":                   json.Number("16600000000000001"),
			"admin_graphql_api_id": "gid://shopify/LineItem/16600000000000001",
			"title":                "Aviator sunglasses",
			"quantity":             1,
			"price":                "89.99",
			"requires_shipping":    true,
			"fulfillment_status":   nil,
		}},
	}
	switch state {
	case orderFulfilled:
		o["fulfillment_status"] = "fulfilled"
		o["line_items"].([]any)[0].(map[string]any)["fulfillment_status"] = "fulfilled"
	case orderCancelled:
		o["cancelled_at"], o["cancel_reason"], o["financial_status"] = "2025-01-02T10:00:00-05:00", "customer", "voided"
	}
	return mustJSON(o)
}

// shopifyFulfillment is the Fulfillment body of fulfillments/create and
// fulfillments/update (gid://shopify/Fulfillment/<id>), naming its order by
// order_id. status is Shopify's: pending, open, success, cancelled, error,
// failure.
func shopifyFulfillment(id, orderID, status string) []byte {
	return mustJSON(map[string]any{
		"id":                   json.Number(id),
		"admin_graphql_api_id": "gid://shopify/Fulfillment/" + id,
		"order_id":             json.Number(orderID),
		"status":               status,
		"name":                 "#1001.1",
		"created_at":           "2025-01-02T10:00:00-05:00",
		"updated_at":           "2025-01-02T10:00:00-05:00",
		"service":              "manual",
		"shipment_status":      nil,
		"tracking_company":     "UPS",
		"tracking_number":      "1Z999AA10123456784",
		"tracking_numbers":     []string{"1Z999AA10123456784"},
	})
}

// shopifyCustomer is the customer of the compliance payloads.
func shopifyCustomer(email string) map[string]any {
	return map[string]any{"id": json.Number("6111111111"), "email": email, "phone": nil}
}

// shopifyIDs are order ids as the compliance payloads list them (numbers).
func shopifyIDs(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = json.Number(id)
	}
	return out
}

// shopifyCustomersRedact is the customers/redact body: the customer and the
// orders to redact.
func shopifyCustomersRedact(email string, orders ...string) []byte {
	return mustJSON(map[string]any{
		"shop_id":          json.Number("73000000"),
		"shop_domain":      testShopDomain,
		"customer":         shopifyCustomer(email),
		"orders_to_redact": shopifyIDs(orders),
	})
}

// shopifyDataRequest is the customers/data_request body: the customer, the
// orders requested and the request's own id.
func shopifyDataRequest(requestID, email string, orders ...string) []byte {
	return mustJSON(map[string]any{
		"shop_id":          json.Number("73000000"),
		"shop_domain":      testShopDomain,
		"orders_requested": shopifyIDs(orders),
		"customer":         shopifyCustomer(email),
		"data_request":     map[string]any{"id": json.Number(requestID)},
	})
}

// shopifyShopRedact is the shop/redact body, sent 48 hours after a shop
// uninstalls the app.
func shopifyShopRedact(domain string) []byte {
	return mustJSON(map[string]any{"shop_id": json.Number("73000000"), "shop_domain": domain})
}

// --- EasyPost ---------------------------------------------------------------

// easyPostEvent is the Event EasyPost POSTs to a webhook URL; description
// is "<object>.<change>", result the object the event is about.
func easyPostEvent(id, description string, previous, result map[string]any) []byte {
	if previous == nil {
		previous = map[string]any{}
	}
	return mustJSON(map[string]any{
		"id":                  id,
		"object":              "Event",
		"mode":                "test",
		"description":         description,
		"previous_attributes": previous,
		"result":              result,
		"status":              "pending",
		"pending_urls":        []string{"https://piivault.example.com/v1/webhooks/easypost"},
		"completed_urls":      []string{},
		"created_at":          "2025-01-02T15:00:00Z",
		"updated_at":          "2025-01-02T15:00:00Z",
	})
}

// trackerUpdated is a tracker.updated Event: a Tracker whose status moved
// from pre_transit to status. shipmentID is the EasyPost shipment the
// tracker belongs to ("" for a tracker created from a bare tracking code).
func trackerUpdated(eventID, trackerID, trackingCode, status, shipmentID string) []byte {
	return easyPostEvent(eventID, "tracker.updated", map[string]any{"status": "pre_transit"}, map[string]any{
		"id":            trackerID,
		"object":        "Tracker",
		"mode":          "test",
		"tracking_code": trackingCode,
		"carrier":       "FedEx",
		"status":        status,
		"shipment_id":   orNull(shipmentID),
		"public_url":    "https://track.easypost.com/" + trackerID,
		"created_at":    "2025-01-01T14:45:27Z",
		"updated_at":    "2025-01-02T14:59:00Z",
	})
}

// batchCreated is a batch.created Event: a Batch whose `status` is an
// object of counts by state, not a string like a Tracker's.
func batchCreated(eventID, batchID string, shipmentIDs ...string) []byte {
	shipments := make([]any, len(shipmentIDs))
	for i, id := range shipmentIDs {
		shipments[i] = map[string]any{"id": id, "batch_status": "postage_purchased", "batch_message": nil}
	}
	return easyPostEvent(eventID, "batch.created", nil, map[string]any{
		"id":            batchID,
		"object":        "Batch",
		"mode":          "test",
		"state":         "purchased",
		"reference":     nil,
		"num_shipments": len(shipmentIDs),
		"shipments":     shipments,
		"status": map[string]any{
			"created": 0, "queued_for_purchase": 0, "creation_failed": 0,
			"postage_purchased": len(shipmentIDs), "postage_purchase_failed": 0,
		},
		"label_url":  nil,
		"scan_form":  nil,
		"pickup":     nil,
		"created_at": "2025-01-02T15:00:00Z",
		"updated_at": "2025-01-02T15:00:00Z",
	})
}

// easyPostShipment is the Shipment GET /v2/shipments/{id} answers, with
// the merchant's own reference (piivault's order id) and no addresses:
// piivault reads the reference only.
func easyPostShipment(id, reference string) []byte {
	return mustJSON(map[string]any{
		"id":            id,
		"object":        "Shipment",
		"mode":          "test",
		"reference":     orNull(reference),
		"status":        "in_transit",
		"tracking_code": "9400100000000000000000",
		"is_return":     false,
		"created_at":    "2025-01-01T14:40:07Z",
		"updated_at":    "2025-01-02T14:59:00Z",
	})
}

// easyPostShipmentID is an EasyPost shipment id ("shp_" and 32 hex digits).
const easyPostShipmentID = "shp_0a1b2c3d0a1b2c3d0a1b2c3d0a1b2c3d"
