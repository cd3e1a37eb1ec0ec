package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/orders"
)

// Shopify handles POST /v1/webhooks/shopify. X-Shopify-Hmac-Sha256 is the
// base64 HMAC-SHA256 of the raw body with the app secret. Only the body is
// signed: the topic and event-id headers are not, so the replay guard is
// keyed on the SHA-256 of the body itself. A captured delivery re-sent with
// a fresh id or under another topic (say customers/redact) is a duplicate.
// Piivault's order id for a Shopify order is Shopify's numeric order id.
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
	sum := sha256.Sum256(body)
	id := hex.EncodeToString(sum[:])
	topic := c.GetHeader("X-Shopify-Topic")
	ip := c.ClientIP()
	if !json.Valid(body) {
		h.write(c, invalidPayload("Shopify payload"))
		return
	}
	h.run(c, delivery{provider: "shopify", eventID: id, act: func(ctx context.Context) (string, error) {
		return h.shopifyEvent(ctx, ip, topic, body)
	}})
}

// shopifyID accepts Shopify ids as JSON numbers or strings.
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

func (h *Handler) shopifyEvent(ctx context.Context, ip, topic string, body []byte) (string, error) {
	switch topic {
	case "fulfillments/create":
		var f struct {
			OrderID shopifyID `json:"order_id"`
		}
		if err := json.Unmarshal(body, &f); err != nil {
			return "", invalidPayload("fulfillment")
		}
		return h.purge(ctx, "shopify", ip, string(f.OrderID), orders.ReasonShipped)
	case "orders/fulfilled":
		var o struct {
			ID shopifyID `json:"id"`
		}
		if err := json.Unmarshal(body, &o); err != nil {
			return "", invalidPayload("order")
		}
		return h.purge(ctx, "shopify", ip, string(o.ID), orders.ReasonShipped)
	case "customers/redact":
		var r struct {
			Customer struct {
				Email string `json:"email"`
			} `json:"customer"`
			OrdersToRedact []shopifyID `json:"orders_to_redact"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return "", invalidPayload("customers/redact payload")
		}
		ids := make([]string, 0, len(r.OrdersToRedact))
		for _, o := range r.OrdersToRedact {
			if orders.ValidOrderID(string(o)) {
				ids = append(ids, string(o))
			}
		}
		if r.Customer.Email != "" {
			more, err := h.orders.FindByEmail(ctx, r.Customer.Email)
			if err != nil {
				return "", err
			}
			ids = append(ids, more...)
		}
		_, err := h.bulk.PurgeOrders(ctx, "webhook:shopify", ip, dedupe(ids), orders.ReasonCustomerRequest)
		if err != nil {
			return "", err
		}
		return "redacted", nil
	case "customers/data_request":
		// piivault holds shipping PII only until shipment; the operator answers
		// the request from the storefront. The request itself is recorded.
		if err := h.audit.Record(ctx, audit.Entry{Actor: "webhook:shopify", Action: audit.ActionDataRequest, IP: ip}); err != nil {
			return "", err
		}
		return "recorded", nil
	}
	return "ignored", nil
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
