package webhooks

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gin-gonic/gin"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

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
		if err := json.Unmarshal(ev.Data.Raw, &s); err != nil {
			return "", invalidPayload("Checkout Session")
		}
		return h.storeCheckout(ctx, s)
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
		id, err := h.stripeOrderID(ctx, ch.Metadata, ch.PaymentIntent)
		if err != nil {
			return "", err
		}
		return h.purge(ctx, "stripe", ip, id, orders.ReasonRefunded)
	case "payment_intent.canceled":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return "", invalidPayload("PaymentIntent")
		}
		id, err := h.stripeOrderID(ctx, pi.Metadata, &pi)
		if err != nil {
			return "", err
		}
		return h.purge(ctx, "stripe", ip, id, orders.ReasonCanceled)
	}
	return "ignored", nil
}

// storeCheckout stores a completed Checkout Session's shipping and customer
// details as a held order, so the storefront never sees them.
func (h *Handler) storeCheckout(ctx context.Context, s stripe.CheckoutSession) (string, error) {
	req := orders.Request{OrderID: checkoutOrderID(s), PaymentRef: s.ID}
	if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
		req.PaymentRef = s.PaymentIntent.ID
	}
	var addr *stripe.Address
	if cd := s.CustomerDetails; cd != nil {
		req.Shipping.Name, req.Shipping.Email, req.Shipping.Phone = cd.Name, cd.Email, cd.Phone
		addr = cd.Address
	}
	if req.Shipping.Email == "" {
		req.Shipping.Email = s.CustomerEmail
	}
	if sd := s.ShippingDetails; sd != nil {
		if sd.Name != "" {
			req.Shipping.Name = sd.Name
		}
		if sd.Phone != "" {
			req.Shipping.Phone = sd.Phone
		}
		if sd.Address != nil {
			addr = sd.Address
		}
	}
	if addr != nil {
		req.Shipping.Address = orders.Address{Line1: addr.Line1, Line2: addr.Line2, City: addr.City,
			State: addr.State, PostalCode: addr.PostalCode, Country: addr.Country}
	}
	_, res, err := h.orders.Store(ctx, req)
	switch {
	case apperr.Is(err, apperr.Conflict):
		return "conflict", nil // already stored differently or purged: never overwrite
	case err != nil:
		return "", err
	case res == orders.Duplicate:
		return "duplicate", nil
	}
	return "stored", nil
}

// checkoutOrderID is the storefront's order id: client_reference_id, else
// metadata order_id.
func checkoutOrderID(s stripe.CheckoutSession) string {
	if s.ClientReferenceID != "" {
		return s.ClientReferenceID
	}
	return s.Metadata["order_id"]
}

// stripeOrderID finds the order of a charge or payment intent: metadata
// order_id, else the order stored with that payment intent.
func (h *Handler) stripeOrderID(ctx context.Context, md map[string]string, pi *stripe.PaymentIntent) (string, error) {
	if id := md["order_id"]; id != "" {
		return id, nil
	}
	if pi == nil || pi.ID == "" {
		return "", nil
	}
	id, err := h.orders.FindByPaymentRef(ctx, pi.ID)
	if apperr.Is(err, apperr.NotFound) {
		return "", nil
	}
	return id, err
}

func firstNonEmpty(ss []string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
