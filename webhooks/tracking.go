package webhooks

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
)

// linkMemory is how long piivault remembers which order a tracking code,
// shipment or tracker belongs to: longer than the retention, so the
// delivery events of any held order still find it.
const linkMemory = 45 * 24 * time.Hour

var (
	trackingCodePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	carrierPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$`)
	shipmentIDPattern   = regexp.MustCompile(`^shp_[A-Za-z0-9]{1,64}$`)
	trackerIDPattern    = regexp.MustCompile(`^trk_[A-Za-z0-9]{1,64}$`)
)

// trackRefs are the carrier references an event or a link names.
type trackRefs struct {
	code, shipment, tracker string
}

// links keeps the order of each carrier reference in Redis (no PII).
type links struct{ rdb redis.UniversalClient }

func linkKey(kind, id string) string { return "piivault:{wh}:track:" + kind + ":" + id }

// remember links every reference in r to orderID.
func (l links) remember(ctx context.Context, orderID string, r trackRefs) error {
	pipe := l.rdb.Pipeline()
	for kind, id := range map[string]string{"code": strings.ToUpper(r.code), "shipment": r.shipment, "tracker": r.tracker} {
		if id != "" {
			pipe.Set(ctx, linkKey(kind, id), orderID, linkMemory)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return nil
}

// find returns the order linked to the first of r's references that has
// one (tracker, then shipment, then tracking code), or "".
func (l links) find(ctx context.Context, r trackRefs) (string, error) {
	for _, k := range []struct{ kind, id string }{{"tracker", r.tracker}, {"shipment", r.shipment}, {"code", strings.ToUpper(r.code)}} {
		if k.id == "" {
			continue
		}
		id, err := l.rdb.Get(ctx, linkKey(k.kind, k.id)).Result()
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, redis.Nil):
			return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
		}
	}
	return "", nil
}

// LinkTracking handles POST /v1/orders/:id/tracking (storefront):
// {"carrier","tracking_code","easypost_shipment_id","easypost_tracker_id"},
// any subset with at least one code. Later carrier events that name only
// one of these purge the order, with no EasyPost API key needed.
func (h *Handler) LinkTracking(c *gin.Context) {
	var body struct {
		Carrier            string `json:"carrier"`
		TrackingCode       string `json:"tracking_code"`
		EasyPostShipmentID string `json:"easypost_shipment_id"`
		EasyPostTrackerID  string `json:"easypost_tracker_id"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	var bad []string
	for _, f := range []struct {
		name, v string
		re      *regexp.Regexp
	}{
		{"carrier", body.Carrier, carrierPattern}, {"tracking_code", body.TrackingCode, trackingCodePattern},
		{"easypost_shipment_id", body.EasyPostShipmentID, shipmentIDPattern},
		{"easypost_tracker_id", body.EasyPostTrackerID, trackerIDPattern},
	} {
		if f.v != "" && !f.re.MatchString(f.v) {
			bad = append(bad, f.name)
		}
	}
	if body.TrackingCode == "" && body.EasyPostShipmentID == "" && body.EasyPostTrackerID == "" {
		bad = append(bad, "tracking_code")
	}
	if len(bad) > 0 {
		h.write(c, &apperr.Error{Code: apperr.Validation, Fields: bad,
			Message: "invalid fields: " + strings.Join(bad, ", ") + " (at least one of tracking_code, easypost_shipment_id, easypost_tracker_id)"})
		return
	}
	ctx := c.Request.Context()
	id := c.Param("id")
	ref, err := h.orders.Get(ctx, id)
	if err != nil {
		h.write(c, err)
		return
	}
	refs := trackRefs{code: body.TrackingCode, shipment: body.EasyPostShipmentID, tracker: body.EasyPostTrackerID}
	if err := h.links.remember(ctx, id, refs); err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	detail := map[string]string{}
	for k, v := range map[string]string{"carrier": body.Carrier, "tracking_code": body.TrackingCode,
		"easypost_shipment_id": body.EasyPostShipmentID, "easypost_tracker_id": body.EasyPostTrackerID} {
		if v != "" {
			detail[k] = v
		}
	}
	if err := h.audit.Record(ctx, audit.Entry{Actor: p.Actor(), Action: audit.ActionTrackingLink, OrderID: id,
		IP: c.ClientIP(), Detail: detail}); err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"order_id": id, "status": ref.Status, "linked": detail})
}
