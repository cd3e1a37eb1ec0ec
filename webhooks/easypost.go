package webhooks

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/text/unicode/norm"

	"piivault/internal/apperr"
	"piivault/orders"
)

// easyPostShipped are the tracker statuses that mean the parcel has left.
var easyPostShipped = map[string]bool{"in_transit": true, "out_for_delivery": true, "delivered": true}

// shipmentMemory is how long piivault remembers which order a shipment
// belongs to, for tracker events that name only the shipment.
const shipmentMemory = 45 * 24 * time.Hour

// SignEasyPost returns the X-Hmac-Signature header EasyPost sends for body:
// "hmac-sha256-hex=" + hex HMAC-SHA256 of the body with the NFKD-normalised secret.
func SignEasyPost(secret string, body []byte) string {
	return "hmac-sha256-hex=" + hex.EncodeToString(hmacSHA256([]byte(norm.NFKD.String(secret)), body))
}

// EasyPost handles POST /v1/webhooks/easypost. EasyPost signs the body but
// sends no timestamp: replays are stopped by the event id.
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
		ID          string `json:"id"`
		Description string `json:"description"`
		Result      struct {
			Object     string `json:"object"`
			ID         string `json:"id"`
			Status     string `json:"status"`
			Reference  string `json:"reference"`
			ShipmentID string `json:"shipment_id"`
			Tracker    *struct {
				Status string `json:"status"`
			} `json:"tracker"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || len(ev.ID) > 128 {
		h.write(c, invalidPayload("EasyPost event"))
		return
	}
	ip := c.ClientIP()
	h.run(c, delivery{provider: "easypost", eventID: ev.ID, act: func(ctx context.Context) (string, error) {
		r := ev.Result
		status, shipment, orderID := r.Status, r.ShipmentID, r.Reference
		switch r.Object {
		case "Shipment":
			shipment = r.ID
			if r.Tracker != nil && r.Tracker.Status != "" {
				status = r.Tracker.Status
			}
			if orderID != "" && shipment != "" {
				if err := h.rdb.Set(ctx, "piivault:{wh}:easypost-shipment:"+shipment, orderID, shipmentMemory).Err(); err != nil {
					return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
				}
			}
		case "Tracker":
		default:
			return "ignored", nil
		}
		if !easyPostShipped[status] {
			return "not_shipped", nil
		}
		if orderID == "" && shipment != "" {
			orderID, _ = h.rdb.Get(ctx, "piivault:{wh}:easypost-shipment:"+shipment).Result()
		}
		return h.purge(ctx, "easypost", ip, orderID, orders.ReasonShipped)
	}})
}
