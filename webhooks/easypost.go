package webhooks

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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
			var err error
			if orderID, err = h.shipmentOrder(ctx, shipment); err != nil {
				return "", err
			}
		}
		return h.purge(ctx, "easypost", ip, orderID, orders.ReasonShipped)
	}})
}

// shipmentOrder finds the order of an EasyPost shipment: first from what
// piivault remembered, then (with an API key) from the shipment's
// reference, read from EasyPost's API and remembered. "" when unknown.
func (h *Handler) shipmentOrder(ctx context.Context, shipment string) (string, error) {
	key := "piivault:{wh}:easypost-shipment:" + shipment
	id, err := h.rdb.Get(ctx, key).Result()
	switch {
	case err == nil:
		return id, nil
	case !errors.Is(err, redis.Nil):
		return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	case h.easypost == nil:
		return "", nil
	}
	ref, err := h.easypost.ShipmentReference(ctx, shipment)
	if err != nil {
		// EasyPost retries the event later; answer so that it does.
		return "", apperr.Wrap(apperr.Internal, err, "easypost shipment lookup failed")
	}
	if ref != "" {
		h.rdb.Set(ctx, key, ref, shipmentMemory)
	}
	return ref, nil
}

// EasyPostAPI reads shipments from EasyPost's API.
type EasyPostAPI struct {
	base string
	key  string
	http *http.Client
}

// NewEasyPostAPI builds a client for base (e.g. https://api.easypost.com/v2)
// authenticating with an API key, as EasyPost documents (HTTP Basic, key as user).
func NewEasyPostAPI(base, key string) *EasyPostAPI {
	return &EasyPostAPI{base: strings.TrimRight(base, "/"), key: key, http: &http.Client{Timeout: 5 * time.Second}}
}

// ShipmentReference returns the reference of a shipment ("" when it has none).
func (e *EasyPostAPI) ShipmentReference(ctx context.Context, shipmentID string) (string, error) {
	if !strings.HasPrefix(shipmentID, "shp_") || len(shipmentID) > 64 {
		return "", nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/shipments/"+url.PathEscape(shipmentID), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(e.key, "")
	resp, err := e.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("easypost: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", nil
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("easypost: shipment lookup answered %d", resp.StatusCode)
	}
	var shp struct {
		Reference string `json:"reference"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&shp); err != nil {
		return "", fmt.Errorf("easypost: shipment: %w", err)
	}
	return shp.Reference, nil
}
