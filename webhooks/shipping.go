package webhooks

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/tracking"
)

// SignShipping returns the X-Piivault-Signature header for body at t: the
// scheme a carrier integration or the storefront uses to call the generic
// shipping webhook (t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">).
func SignShipping(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(hmacSHA256([]byte(secret), []byte(ts+"."+string(body))))
}

// verifyShipping checks the header: errBadSignature unless one v1 matches;
// errStale when a valid signature's timestamp is outside the tolerance.
func verifyShipping(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errBadSignature
	}
	want := hmacSHA256([]byte(secret), []byte(ts+"."+string(body)))
	valid := false
	for _, s := range sigs {
		valid = valid || hmac.Equal(want, s)
	}
	if !valid {
		return errBadSignature
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return errStale
	}
	return nil
}

// Shipping handles POST /v1/webhooks/shipping:
// {"event_id","order_id","status":"shipped"}, or with "tracking_code" (one
// the storefront linked) in place of "order_id".
func (h *Handler) Shipping(c *gin.Context) {
	body, ok := h.body(c, h.secrets.Shipping)
	if !ok {
		return
	}
	if err := verifyShipping(h.secrets.Shipping, c.GetHeader("X-Piivault-Signature"), body, h.now(), h.tolerance); err != nil {
		if err == errBadSignature {
			h.badSignature(c, "shipping")
			return
		}
		h.write(c, err)
		return
	}
	var ev struct {
		EventID      string `json:"event_id"`
		OrderID      string `json:"order_id"`
		TrackingCode string `json:"tracking_code"`
		Status       string `json:"status"`
	}
	if err := web.DecodeStrict(body, &ev); err != nil {
		h.write(c, err)
		return
	}
	var bad []string
	if !orders.ValidOrderID(ev.EventID) {
		bad = append(bad, "event_id")
	}
	switch {
	case ev.OrderID != "" && ev.TrackingCode != "":
		bad = append(bad, "order_id", "tracking_code")
	case ev.TrackingCode != "" && !trackingCodePattern.MatchString(ev.TrackingCode):
		bad = append(bad, "tracking_code")
	case ev.TrackingCode == "" && !orders.ValidOrderID(ev.OrderID):
		bad = append(bad, "order_id")
	}
	if ev.Status != "shipped" {
		bad = append(bad, "status")
	}
	if len(bad) > 0 {
		h.write(c, &apperr.Error{Code: apperr.Validation, Message: "invalid fields: " + strings.Join(bad, ", ") +
			" (one of order_id or tracking_code; status must be \"shipped\")", Fields: bad})
		return
	}
	ip := c.ClientIP()
	h.run(c, delivery{provider: "shipping", eventID: ev.EventID, act: func(ctx context.Context) (string, error) {
		id := ev.OrderID
		if ev.TrackingCode != "" {
			var err error
			if id, err = h.links.Find(ctx, tracking.Refs{Code: ev.TrackingCode}); err != nil {
				return "", err
			}
		}
		return h.purge(ctx, "shipping", ip, id, orders.ReasonShipped)
	}})
}
