package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/orders"
)

// Stripe handles POST /v1/webhooks/stripe. The signature is checked first
// with every configured secret (two during a roll); only a validly signed
// event is then held to the 5-minute tolerance, so a forged request is a
// 401 and a stale genuine one a 400. API-version mismatches are accepted:
// the fields piivault reads are stable across versions.
func (h *Handler) Stripe(c *gin.Context) {
	body, ok := h.body(c, firstNonEmpty(h.secrets.Stripe))
	if !ok {
		return
	}
	header := c.GetHeader("Stripe-Signature")
	secret := ""
	for _, s := range h.secrets.Stripe {
		if s != "" && webhook.ValidatePayloadIgnoringTolerance(body, header, s) == nil {
			secret = s
			break
		}
	}
	if secret == "" {
		h.badSignature(c, "stripe")
		return
	}
	ev, err := webhook.ConstructEventWithOptions(body, header, secret, webhook.ConstructEventOptions{
		Tolerance: h.tolerance, IgnoreAPIVersionMismatch: true,
	})
	if errors.Is(err, webhook.ErrTooOld) {
		h.write(c, errStale)
		return
	}
	if err != nil || ev.ID == "" || ev.Data == nil {
		h.write(c, invalidPayload("Stripe event"))
		return
	}
	ip := c.ClientIP()
	h.run(c, delivery{provider: "stripe", eventID: ev.ID, act: func(ctx context.Context) (string, error) {
		return h.stripeEvent(ctx, ip, ev)
	}})
}

func (h *Handler) stripeEvent(ctx context.Context, ip string, ev stripe.Event) (string, error) {
	switch ev.Type {
	case "checkout.session.completed":
		var s stripe.CheckoutSession
		var ci collectedInformation
		if json.Unmarshal(ev.Data.Raw, &s) != nil || json.Unmarshal(ev.Data.Raw, &ci) != nil {
			return "", invalidPayload("Checkout Session")
		}
		return h.storeCheckout(ctx, ip, s, ci)
	case "checkout.session.expired":
		var s stripe.CheckoutSession
		if err := json.Unmarshal(ev.Data.Raw, &s); err != nil {
			return "", invalidPayload("Checkout Session")
		}
		return h.purge(ctx, "stripe", ip, checkoutOrderID(s), orders.ReasonCanceled)
	case "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return "", invalidPayload("Charge")
		}
		if !ch.Refunded {
			return "partial_refund", nil // the order still ships
		}
		ids, err := h.stripeOrderIDs(ctx, ch.Metadata, ch.PaymentIntent)
		if err != nil {
			return "", err
		}
		return h.purgeAll(ctx, "stripe", ip, ids, orders.ReasonRefunded)
	case "payment_intent.canceled":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return "", invalidPayload("PaymentIntent")
		}
		ids, err := h.stripeOrderIDs(ctx, pi.Metadata, &pi)
		if err != nil {
			return "", err
		}
		return h.purgeAll(ctx, "stripe", ip, ids, orders.ReasonCanceled)
	}
	return "ignored", nil
}

// collectedInformation is where API versions from 2025-03-31 on put a
// Checkout Session's shipping_details. It is decoded on its own because
// stripe.CheckoutSession has its own UnmarshalJSON.
type collectedInformation struct {
	CollectedInformation *struct {
		ShippingDetails *stripe.ShippingDetails `json:"shipping_details"`
	} `json:"collected_information"`
}

// storeCheckout stores a completed Checkout Session's shipping and customer
// details as a held order, so the storefront never sees them. Only the
// shipping address is used, never the billing address; a session without
// one has nothing to ship. A session that cannot become a valid order is
// answered 200 (Stripe would retry it for days to no avail) and logged.
func (h *Handler) storeCheckout(ctx context.Context, ip string, s stripe.CheckoutSession, ci collectedInformation) (string, error) {
	ship := s.ShippingDetails
	if ship == nil && ci.CollectedInformation != nil {
		ship = ci.CollectedInformation.ShippingDetails
	}
	if ship == nil || ship.Address == nil {
		return "no_shipping", nil
	}
	req := orders.Request{OrderID: checkoutOrderID(s), PaymentRef: s.ID}
	if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
		req.PaymentRef = s.PaymentIntent.ID
	}
	if cd := s.CustomerDetails; cd != nil {
		req.Shipping.Name, req.Shipping.Email, req.Shipping.Phone = cd.Name, cd.Email, cd.Phone
	}
	if req.Shipping.Email == "" {
		req.Shipping.Email = s.CustomerEmail
	}
	if ship.Name != "" {
		req.Shipping.Name = ship.Name
	}
	if ship.Phone != "" {
		req.Shipping.Phone = ship.Phone
	}
	a := ship.Address
	req.Shipping.Address = orders.Address{Line1: a.Line1, Line2: a.Line2, City: a.City,
		State: a.State, PostalCode: a.PostalCode, Country: a.Country}
	e := audit.Entry{Time: time.Now().UTC(), Actor: "webhook:stripe", Action: audit.ActionStore, OrderID: req.OrderID, IP: ip}
	note, _ := json.Marshal(e)
	_, res, err := h.orders.StoreNoting(ctx, req, note)
	switch {
	case apperr.Is(err, apperr.Validation):
		h.log.Warn("stripe checkout session not stored: invalid order", "fields", apperr.Fields(err))
		return "invalid_order", nil
	case apperr.Is(err, apperr.Conflict):
		return "conflict", nil // already stored differently or purged: never overwrite
	case err != nil:
		return "", err
	case res == orders.Duplicate:
		return "duplicate", nil
	}
	if err := h.orders.RecordNoted(ctx, h.audit, req.OrderID, e, note); err != nil {
		h.log.Warn("stripe order store audit", "order_id", req.OrderID, "err", err)
	}
	return "stored", nil
}

// checkoutOrderID is the storefront's order id: metadata order_id, else
// client_reference_id (the same precedence as every other Stripe event).
func checkoutOrderID(s stripe.CheckoutSession) string {
	if id := s.Metadata["order_id"]; id != "" {
		return id
	}
	return s.ClientReferenceID
}

// stripeOrderIDs finds the orders of a charge or payment intent: metadata
// order_id, else every order stored with that payment intent.
func (h *Handler) stripeOrderIDs(ctx context.Context, md map[string]string, pi *stripe.PaymentIntent) ([]string, error) {
	if id := md["order_id"]; id != "" {
		return []string{id}, nil
	}
	if pi == nil || pi.ID == "" {
		return nil, nil
	}
	return h.orders.FindByPaymentRef(ctx, pi.ID)
}

// purgeAll purges several orders for one event and sums up the outcome.
func (h *Handler) purgeAll(ctx context.Context, provider, ip string, ids []string, reason string) (string, error) {
	if len(ids) == 0 {
		return "unknown_order", nil
	}
	outcome := ""
	for _, id := range ids {
		o, err := h.purge(ctx, provider, ip, id, reason)
		if err != nil {
			return "", err
		}
		if outcome == "" || o == "purged" {
			outcome = o
		}
	}
	return outcome, nil
}

func firstNonEmpty(ss []string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
