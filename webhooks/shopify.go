package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/orders"
)

// Shopify handles POST /v1/webhooks/shopify. X-Shopify-Hmac-Sha256 is the
// base64 HMAC-SHA256 of the raw body with the app secret. Only the body is
// signed, so the body decides what happens: an order's own state
// (cancelled, fulfilled), a fulfillment, a redact or data-request payload's
// shape. The unsigned X-Shopify-Topic only has to agree with that shape; a
// body posted under a topic it does not fit is ignored, so a body signed for
// some other endpoint cannot be turned into a purge here.
//
// The replay guard keys on the topic and the body's SHA-256: Shopify sends
// one merchant action to several topics (orders/updated and
// orders/fulfilled) with identical bodies and a shared event id, and each
// is a delivery of its own; a captured one replayed is a duplicate, and one
// re-sent under another topic can do no more than its body says. Piivault's
// order id for a Shopify order is Shopify's numeric order id.
func (h *Handler) Shopify(c *gin.Context) {
	body, ok := h.body(c, h.secrets.Shopify)
	if !ok {
		return
	}
	got, err := base64.StdEncoding.DecodeString(c.GetHeader("X-Shopify-Hmac-Sha256"))
	if err != nil || !hmac.Equal(got, hmacSHA256([]byte(h.secrets.Shopify), body)) {
		h.badSignature(c, "shopify")
		return
	}
	topic := c.GetHeader("X-Shopify-Topic")
	if len(topic) > 64 {
		topic = topic[:64]
	}
	sum := sha256.Sum256(append([]byte(topic+"\n"), body...))
	id := hex.EncodeToString(sum[:])
	ip := c.ClientIP()
	shape, err := parseShopify(body)
	if err != nil {
		h.write(c, invalidPayload("Shopify payload"))
		return
	}
	h.run(c, delivery{provider: "shopify", eventID: id, act: func(ctx context.Context) (string, error) {
		return h.shopifyEvent(ctx, ip, topic, shape)
	}})
}

// shopifyID accepts Shopify ids as JSON numbers or strings (order ids pass
// 2^53: they are kept as written, never as floats).
type shopifyID string

func (s *shopifyID) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*s = shopifyID(n.String())
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = shopifyID(str)
	return nil
}

// shopifyPayload holds the fields of every payload piivault acts on; which
// ones are present says what the payload is.
type shopifyPayload struct {
	ID shopifyID `json:"id"`
	// GID is the resource's Admin GraphQL id, gid://shopify/<Type>/<id>:
	// the one field that names what a body is (an Order, a Fulfillment, a
	// FulfillmentEvent, a Refund, an OrderTransaction…). Bodies of other
	// resources carry ids, order ids and statuses too.
	GID string `json:"admin_graphql_api_id"`
	// Order
	LineItems         json.RawMessage `json:"line_items"`
	FinancialStatus   *string         `json:"financial_status"`
	CancelledAt       *string         `json:"cancelled_at"`
	FulfillmentStatus *string         `json:"fulfillment_status"`
	// Fulfillment and FulfillmentEvent
	OrderID shopifyID `json:"order_id"`
	Status  *string   `json:"status"`
	// Privacy payloads
	ShopDomain string `json:"shop_domain"`
	Customer   *struct {
		Email string `json:"email"`
	} `json:"customer"`
	OrdersToRedact  []shopifyID     `json:"orders_to_redact"`
	OrdersRequested []shopifyID     `json:"orders_requested"`
	DataRequest     json.RawMessage `json:"data_request"`
	// fields is how many top-level fields the body has: a deletion
	// payload ({"id": …}) has exactly one.
	fields int
}

func parseShopify(body []byte) (shopifyPayload, error) {
	var p shopifyPayload
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return p, err
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, err
	}
	p.fields = len(top)
	return p, nil
}

// is reports whether the payload is the Shopify resource kind with its own
// id: its admin_graphql_api_id is gid://shopify/<kind>/<id>.
func (p shopifyPayload) is(kind string) bool {
	return p.ID != "" && p.GID == "gid://shopify/"+kind+"/"+string(p.ID)
}

func (p shopifyPayload) isOrder() bool { return p.is("Order") }
func (p shopifyPayload) isFulfillment() bool {
	return p.is("Fulfillment") && p.OrderID != "" && p.Status != nil
}
func (p shopifyPayload) isFulfillmentEvent() bool {
	return p.is("FulfillmentEvent") && p.OrderID != "" && p.Status != nil
}

// isDeletion is the payload of Shopify's */delete topics: the id alone. It
// names no resource type, so the topic decides which deletion it is; see
// the README (a deletion is the one act a topic header chooses).
func (p shopifyPayload) isDeletion() bool { return p.fields == 1 && p.ID != "" }
func (p shopifyPayload) isCustomerRedact() bool {
	return p.Customer != nil && p.OrdersToRedact != nil
}
func (p shopifyPayload) isDataRequest() bool {
	return p.Customer != nil && (p.DataRequest != nil || p.OrdersRequested != nil)
}
func (p shopifyPayload) isShopRedact() bool {
	return p.ShopDomain != "" && p.Customer == nil && p.ID == ""
}

// fulfillmentFailed are fulfillment statuses that mean nothing left.
var fulfillmentFailed = map[string]bool{"cancelled": true, "error": true, "failure": true}

// parcelMoving are the fulfillment event statuses that say the carrier has
// the parcel (Shopify's FulfillmentEventStatus, lower-cased as the REST
// webhooks send it): the address has done its work. Label, confirmation and
// failure events, and a parcel on its way back, do not: it may be re-sent.
var parcelMoving = map[string]bool{
	"carrier_picked_up": true, "in_transit": true, "out_for_delivery": true, "attempted_delivery": true,
	"delayed": true, "delivered": true, "ready_for_pickup": true, "picked_up": true,
	"ready_for_recipient_pickup": true,
}

func (h *Handler) shopifyEvent(ctx context.Context, ip, topic string, p shopifyPayload) (string, error) {
	switch {
	case topic == "orders/delete":
		if !p.isDeletion() {
			return h.mismatch(topic)
		}
		return h.purge(ctx, "shopify", ip, string(p.ID), orders.ReasonOrderDeleted, "")
	case strings.HasPrefix(topic, "orders/"):
		if !p.isOrder() {
			return h.mismatch(topic)
		}
		// The order's own signed state decides, whatever the topic says.
		switch {
		case p.CancelledAt != nil && *p.CancelledAt != "":
			return h.purge(ctx, "shopify", ip, string(p.ID), orders.ReasonCanceled, "")
		case p.FulfillmentStatus != nil && *p.FulfillmentStatus == "fulfilled":
			return h.purge(ctx, "shopify", ip, string(p.ID), orders.ReasonShipped, "")
		case p.FinancialStatus != nil && *p.FinancialStatus == "refunded":
			// Every line refunded: nothing (more) will ship. Shopify's
			// refunds/create names only the refunded lines, so the order's
			// own state, sent with each refund, is what can tell "all".
			return h.purge(ctx, "shopify", ip, string(p.ID), orders.ReasonRefunded, "")
		}
		return "not_shipped", nil
	case strings.HasPrefix(topic, "fulfillment_events/"):
		if !p.isFulfillmentEvent() {
			return h.mismatch(topic)
		}
		if topic != "fulfillment_events/create" || !parcelMoving[*p.Status] {
			return "not_shipped", nil
		}
		return h.purge(ctx, "shopify", ip, string(p.OrderID), orders.ReasonShipped, "")
	case strings.HasPrefix(topic, "fulfillments/"):
		if !p.isFulfillment() {
			return h.mismatch(topic)
		}
		if fulfillmentFailed[*p.Status] {
			return "not_shipped", nil
		}
		return h.purge(ctx, "shopify", ip, string(p.OrderID), orders.ReasonShipped, "")
	case topic == "customers/redact":
		if !p.isCustomerRedact() {
			return h.mismatch(topic)
		}
		ids := make([]string, 0, len(p.OrdersToRedact))
		for _, o := range p.OrdersToRedact {
			if orders.ValidOrderID(string(o)) {
				ids = append(ids, string(o))
			}
		}
		if p.Customer.Email != "" {
			more, err := h.orders.FindByEmail(ctx, p.Customer.Email)
			if err != nil {
				return "", err
			}
			ids = append(ids, more...)
		}
		if _, err := h.bulk.PurgeOrders(ctx, "webhook:shopify", ip, dedupe(ids), orders.ReasonCustomerRequest); err != nil {
			return "", err
		}
		return "redacted", nil
	case topic == "shop/redact":
		if !p.isShopRedact() {
			return h.mismatch(topic)
		}
		ids, err := h.orders.FindByShop(ctx, p.ShopDomain)
		if err != nil {
			return "", err
		}
		if _, err := h.bulk.PurgeOrders(ctx, "webhook:shopify", ip, ids, orders.ReasonShopRedact); err != nil {
			return "", err
		}
		return "redacted", nil
	case topic == "customers/data_request":
		if !p.isDataRequest() {
			return h.mismatch(topic)
		}
		if p.Customer.Email == "" || h.reports == nil {
			// Nothing piivault holds can be found without the email.
			if err := h.audit.Record(ctx, audit.Entry{Actor: "webhook:shopify", Action: audit.ActionDataRequest, IP: ip,
				Detail: map[string]string{"report": "none: the request names no email"}}); err != nil {
				return "", err
			}
			return "recorded", nil
		}
		id, err := h.reports.AccessReport(ctx, "webhook:shopify", ip, p.Customer.Email)
		if err != nil {
			return "", err
		}
		if err := h.audit.Record(ctx, audit.Entry{Actor: "webhook:shopify", Action: audit.ActionDataRequest, IP: ip,
			Detail: map[string]string{"report": id}}); err != nil {
			return "", err
		}
		return "report_created", nil
	}
	return "ignored", nil
}

// mismatch answers a body that does not fit its (unsigned) topic: ignored,
// so the topic header alone can never make a body purge anything.
func (h *Handler) mismatch(topic string) (string, error) {
	h.log.Warn("shopify body does not fit its topic; ignored", "topic", topic)
	return "topic_mismatch", nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
