package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

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
		s, ship, err := decodeSession(ev.Data.Raw)
		if err != nil {
			return "", err
		}
		return h.storeCheckout(ctx, ip, s, ship)
	case "checkout.session.expired":
		s, _, err := decodeSession(ev.Data.Raw)
		if err != nil {
			return "", err
		}
		return h.stripePurge(ctx, ip, checkoutOrderID(s), sessionPayments(s), orders.ReasonCanceled)
	case "checkout.session.async_payment_failed":
		// A delayed payment method (a bank debit, a voucher) failed after the
		// session completed and stored the order: it will never ship.
		s, _, err := decodeSession(ev.Data.Raw)
		if err != nil {
			return "", err
		}
		return h.stripePurge(ctx, ip, checkoutOrderID(s), sessionPayments(s), orders.ReasonPaymentFailed)
	case "charge.refunded":
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil {
			return "", invalidPayload("Charge")
		}
		if !ch.Refunded {
			return "partial_refund", nil // the order still ships
		}
		return h.stripePaymentPurge(ctx, ip, ch.Metadata["order_id"], ch.PaymentIntent, orders.ReasonRefunded)
	case "payment_intent.canceled":
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil {
			return "", invalidPayload("PaymentIntent")
		}
		return h.stripePaymentPurge(ctx, ip, pi.Metadata["order_id"], &pi, orders.ReasonCanceled)
	}
	return "ignored", nil
}

// sessionShipping is a Checkout Session's shipping address in each API
// era: `shipping` before 2022-08-01, `shipping_details` from then, and
// `collected_information.shipping_details` from 2025-03-31 (basil).
// stripe.CheckoutSession (API 2023-10-16) knows only the middle one.
type sessionShipping struct {
	Shipping             *stripe.ShippingDetails `json:"shipping"`
	ShippingDetails      *stripe.ShippingDetails `json:"shipping_details"`
	CollectedInformation *struct {
		ShippingDetails *stripe.ShippingDetails `json:"shipping_details"`
	} `json:"collected_information"`
}

func (s sessionShipping) address() *stripe.ShippingDetails {
	switch {
	case s.CollectedInformation != nil && s.CollectedInformation.ShippingDetails != nil:
		return s.CollectedInformation.ShippingDetails
	case s.ShippingDetails != nil:
		return s.ShippingDetails
	}
	return s.Shipping
}

func decodeSession(raw []byte) (stripe.CheckoutSession, *stripe.ShippingDetails, error) {
	var s stripe.CheckoutSession
	var ship sessionShipping
	if json.Unmarshal(raw, &s) != nil || json.Unmarshal(raw, &ship) != nil || s.ID == "" {
		return s, nil, invalidPayload("Checkout Session")
	}
	return s, ship.address(), nil
}

// sessionPayments are the payment references a session can have stored its
// order under: its payment intent, else the session itself.
func sessionPayments(s stripe.CheckoutSession) []string {
	out := []string{s.ID}
	if s.PaymentIntent != nil && s.PaymentIntent.ID != "" {
		out = append([]string{s.PaymentIntent.ID}, out...)
	}
	return out
}

// storeCheckout stores a completed Checkout Session's shipping and customer
// details as a held order, so the storefront never sees them. Only the
// shipping address is used, never the billing address; a session without
// one has nothing to ship. A session that cannot become a valid order is
// answered 200 (Stripe would retry it for days to no avail) and logged. A
// session whose order is already stored by another payment (or otherwise)
// changes nothing and is a conflict: logged, alerted and audited.
func (h *Handler) storeCheckout(ctx context.Context, ip string, s stripe.CheckoutSession, ship *stripe.ShippingDetails) (string, error) {
	if ship == nil || ship.Address == nil {
		return "no_shipping", nil
	}
	req := orders.Request{OrderID: checkoutOrderID(s), PaymentRef: sessionPayments(s)[0]}
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
	_, res, err := h.orders.StoreAudited(ctx, req, audit.Entry{Actor: "webhook:stripe", IP: ip})
	err = orders.LogDeferred(h.log, req.OrderID, err)
	switch {
	case apperr.Is(err, apperr.Validation):
		h.log.Warn("stripe checkout session not stored: invalid order", "fields", apperr.Fields(err))
		return "invalid_order", nil
	case res == orders.Tombstoned:
		return "already_purged", nil // its cancellation came first
	case apperr.Is(err, apperr.Conflict):
		what := "the order is already stored by another payment"
		if ref, gerr := h.orders.Get(ctx, req.OrderID); gerr == nil && ref.PaymentRef == req.PaymentRef {
			what = "the order is already stored with other data for this payment"
		}
		return h.conflict(ctx, "stripe", ip, req.OrderID, what)
	case err != nil:
		return "", err
	case res == orders.Duplicate:
		return "duplicate", nil
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

// stripePurge purges orderID only if it was stored with one of payments
// (the event's own session or payment intent), checked in the purge's
// atomic step. An order paid some other way is left alone: an abandoned
// second session for the same order must not destroy the paid one's
// address. An order not stored yet gets a tombstone bound to the event's
// payment.
func (h *Handler) stripePurge(ctx context.Context, ip, orderID string, payments []string, reason string) (string, error) {
	return h.purge(ctx, "stripe", ip, orderID, reason, payments...)
}

// stripePaymentPurge purges the orders a charge's or payment intent's
// payment belongs to: every order stored with that payment intent, and the
// metadata's order_id if (and only if) it was paid by it.
func (h *Handler) stripePaymentPurge(ctx context.Context, ip, metaOrder string, pi *stripe.PaymentIntent, reason string) (string, error) {
	if pi == nil || pi.ID == "" {
		return "unknown_order", nil
	}
	ids, err := h.orders.FindByPaymentRef(ctx, pi.ID)
	if err != nil {
		return "", err
	}
	if metaOrder != "" && !slices.Contains(ids, metaOrder) {
		o, err := h.stripePurge(ctx, ip, metaOrder, []string{pi.ID}, reason)
		if err != nil || len(ids) == 0 {
			return o, err
		}
	}
	if len(ids) == 0 {
		return "unknown_order", nil
	}
	return h.purgeAll(ctx, "stripe", ip, ids, reason, pi.ID)
}

// purgeAll purges several orders of one payment for one event and sums up
// the outcome.
func (h *Handler) purgeAll(ctx context.Context, provider, ip string, ids []string, reason, payment string) (string, error) {
	if len(ids) == 0 {
		return "unknown_order", nil
	}
	outcome := ""
	for _, id := range ids {
		o, err := h.purge(ctx, provider, ip, id, reason, payment)
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
