package webhooks

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/tracking"
)

var (
	trackingCodePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	carrierPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$`)
	shipmentIDPattern   = regexp.MustCompile(`^shp_[A-Za-z0-9]{1,64}$`)
	trackerIDPattern    = regexp.MustCompile(`^trk_[A-Za-z0-9]{1,64}$`)
)

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
	refs := tracking.Refs{Code: body.TrackingCode, Shipment: body.EasyPostShipmentID, Tracker: body.EasyPostTrackerID}
	if err := h.links.Remember(ctx, id, refs); err != nil {
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
