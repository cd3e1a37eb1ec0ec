package webhooks

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/text/unicode/norm"

	"piivault/internal/apperr"
	"piivault/orders"
	"piivault/tracking"
)

// easyPostShipped are the tracker statuses that mean the parcel has left.
var easyPostShipped = map[string]bool{"in_transit": true, "out_for_delivery": true, "delivered": true}

// SignEasyPost returns the X-Hmac-Signature header EasyPost sends for body:
// "hmac-sha256-hex=" + hex HMAC-SHA256 of the body with the NFKD-normalised secret.
func SignEasyPost(secret string, body []byte) string {
	return "hmac-sha256-hex=" + hex.EncodeToString(hmacSHA256([]byte(norm.NFKD.String(secret)), body))
}

// EasyPost handles POST /v1/webhooks/easypost. EasyPost signs the body but
// sends no timestamp: replays are stopped by the event id. Every event type
// EasyPost sends (batch, tracker, scan_form, refund, insurance, claim,
// payment, report, shipment.invoice) is answered 200: only a Tracker or
// Shipment that says the parcel left purges, and anything else is counted
// and ignored, so EasyPost never disables the endpoint over an event
// piivault does not use.
func (h *Handler) EasyPost(c *gin.Context) {
	body, ok := h.body(c, h.secrets.EasyPost)
	if !ok {
		return
	}
	want := SignEasyPost(h.secrets.EasyPost, body)
	if !hmac.Equal([]byte(strings.ToLower(c.GetHeader("X-Hmac-Signature"))), []byte(want)) {
		h.badSignature(c, "easypost")
		return
	}
	var ev struct {
		ID          string          `json:"id"`
		Description string          `json:"description"`
		Result      json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || len(ev.ID) > 128 {
		h.write(c, invalidPayload("EasyPost event"))
		return
	}
	// The result's shape depends on its object (a Batch's status is an
	// object of counts): read only what a Tracker or Shipment carries.
	var r struct {
		Object       string          `json:"object"`
		ID           string          `json:"id"`
		Status       json.RawMessage `json:"status"`
		Reference    *string         `json:"reference"`
		ShipmentID   *string         `json:"shipment_id"`
		TrackingCode *string         `json:"tracking_code"`
		Tracker      *struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"tracker"`
	}
	_ = json.Unmarshal(ev.Result, &r)
	ip := c.ClientIP()
	h.run(c, delivery{provider: "easypost", eventID: ev.ID, act: func(ctx context.Context) (string, error) {
		var status string
		_ = json.Unmarshal(r.Status, &status) // a string for Trackers and Shipments
		refs := tracking.Refs{Code: deref(r.TrackingCode)}
		orderID := ""
		switch r.Object {
		case "Shipment":
			refs.Shipment, orderID = r.ID, deref(r.Reference)
			if r.Tracker != nil {
				refs.Tracker = r.Tracker.ID
				if r.Tracker.Status != "" {
					status = r.Tracker.Status
				}
			}
			if orderID != "" && orders.ValidOrderID(orderID) {
				if err := h.links.Remember(ctx, orderID, refs); err != nil {
					return "", err
				}
			}
		case "Tracker":
			refs.Tracker, refs.Shipment = r.ID, deref(r.ShipmentID)
		default:
			return "ignored", nil
		}
		if !easyPostShipped[status] {
			return "not_shipped", nil
		}
		if orderID == "" {
			var err error
			if orderID, err = h.links.Find(ctx, refs); err != nil {
				return "", err
			}
		}
		if orderID == "" && refs.Shipment != "" {
			var err error
			if orderID, err = h.shipmentOrder(ctx, refs.Shipment); err != nil {
				return "", err
			}
		}
		return h.purge(ctx, "easypost", ip, orderID, orders.ReasonShipped)
	}})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// shipmentOrder finds the order of an EasyPost shipment nothing linked,
// through EasyPost's API (with an API key): the shipment's reference,
// remembered for the tracker events to come. "" when unknown.
func (h *Handler) shipmentOrder(ctx context.Context, shipment string) (string, error) {
	if h.easypost == nil {
		return "", nil
	}
	ref, err := h.easypost.ShipmentReference(ctx, shipment)
	if err != nil {
		// EasyPost retries the event later; answer so that it does.
		return "", apperr.Wrap(apperr.Internal, err, "easypost shipment lookup failed")
	}
	if ref != "" && orders.ValidOrderID(ref) {
		if err := h.links.Remember(ctx, ref, tracking.Refs{Shipment: shipment}); err != nil {
			h.log.Warn("easypost shipment not remembered", "err", err)
		}
	}
	return ref, nil
}
