package postage

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/EasyPost/easypost-go/v5"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/tracking"
)

// Quote is one carrier's price for one order's parcel.
type Quote struct {
	Carrier      string `json:"carrier"`
	Service      string `json:"service"`
	Amount       string `json:"amount"`
	Currency     string `json:"currency"`
	DeliveryDays int    `json:"delivery_days,omitempty"`
}

// Rates is one order's answer to a rates look-up.
type Rates struct {
	OrderID string           `json:"order_id"`
	Rates   []Quote          `json:"rates,omitempty"`
	Status  int              `json:"status,omitempty"`
	Error   *web.ErrorDetail `json:"error,omitempty"`
}

// Rates asks EasyPost for the carriers' rates of each order without buying:
// the address is decrypted and sent exactly as for a purchase (audited,
// disclosed to EasyPost). The shipments it creates carry no reference, so
// a purchase never mistakes one for its own.
func (s *Service) Rates(ctx context.Context, p web.Principal, ip string, req Request) ([]Rates, error) {
	if err := req.validate(true); err != nil {
		return nil, err
	}
	if err := s.lockdown.Check(ctx); err != nil {
		return nil, err
	}
	blocks, err := s.reveal.ForCarrier(ctx, p, ip, req.OrderIDs, "rates")
	if err != nil {
		return nil, err
	}
	byID := make(map[string]orders.LabelResult, len(blocks))
	for _, b := range blocks {
		byID[b.OrderID] = b
	}
	out := make([]Rates, len(req.OrderIDs))
	each := make([]*Rates, len(out))
	for i, id := range req.OrderIDs {
		out[i].OrderID, each[i] = id, &out[i]
	}
	inParallel(s.parallel, each, func(r *Rates) {
		b := byID[r.OrderID]
		if b.Error != nil || b.Shipping == nil {
			r.fail(b.Error)
			return
		}
		created, err := s.ep.CreateShipmentWithContext(ctx, s.shipment(req, "", *b.Shipping))
		if err != nil {
			d := web.DetailOf(carrierError(err))
			r.fail(&d)
			return
		}
		if r.Rates = quotes(created.Rates, req.Service); len(r.Rates) == 0 {
			d := web.DetailOf(apperr.New(apperr.NoRate, "no carrier offers the requested service for this parcel and address"))
			r.fail(&d)
		}
	})
	return out, nil
}

// fail makes r the order's error d (internal when nil).
func (r *Rates) fail(d *web.ErrorDetail) {
	if d == nil {
		d = &web.ErrorDetail{Code: apperr.Internal, Message: "internal error"}
	}
	r.Rates, r.Status, r.Error = nil, web.Status(d.Code), d
}

// quotes lists rates cheapest first (those of one carrier and service only
// when service names one).
func quotes(rates []*easypost.Rate, service string) []Quote {
	var out []Quote
	for _, r := range rates {
		if service != "cheapest" {
			if _, ok := pickRate([]*easypost.Rate{r}, service); !ok {
				continue
			}
		}
		out = append(out, Quote{Carrier: r.Carrier, Service: r.Service, Amount: r.Rate, Currency: r.Currency, DeliveryDays: r.DeliveryDays})
	}
	sort.SliceStable(out, func(i, j int) bool { return amount(out[i].Amount) < amount(out[j].Amount) })
	return out
}

// Refunded is the answer to a refund.
type Refunded struct {
	OrderID      string `json:"order_id"`
	ShipmentID   string `json:"shipment_id"`
	TrackingCode string `json:"tracking_code"`
	RefundStatus string `json:"refund_status"`
}

// Refund asks EasyPost to refund the unused label of orderID and unlinks
// it: the order stays as it is (held stays held) and no PII is read.
func (s *Service) Refund(ctx context.Context, p web.Principal, ip, orderID string) (Refunded, error) {
	rec, err := s.store.LabelOf(ctx, orderID)
	if err != nil {
		return Refunded{}, err
	}
	if rec.State != "bought" {
		return Refunded{}, apperr.New(apperr.NoLabel, "no label was bought through piivault for this order")
	}
	shp, err := s.ep.RefundShipmentWithContext(ctx, rec.ShipmentID)
	if err != nil {
		return Refunded{}, carrierError(err)
	}
	if shp.RefundStatus != "submitted" && shp.RefundStatus != "refunded" {
		// Still a valid label (rejected, or not applicable): it stays
		// linked and recorded, and the address stays uncorrectable.
		return Refunded{}, &apperr.Error{Code: apperr.CarrierRefused, Detail: map[string]any{"refund_status": shp.RefundStatus},
			Message: "EasyPost did not accept the refund; the label stays valid and linked"}
	}
	if err := s.links.Forget(ctx, orderID, tracking.Refs{Code: rec.Code, Shipment: rec.ShipmentID, Tracker: rec.TrackerID}); err != nil {
		return Refunded{}, err
	}
	if _, err := s.store.LabelRefundedAudited(ctx, orderID, rec.ShipmentID, audit.Entry{Actor: p.Actor(), IP: ip}); err != nil {
		if err = orders.LogDeferred(s.log, orderID, err); err != nil {
			return Refunded{}, err
		}
	}
	return Refunded{OrderID: orderID, ShipmentID: rec.ShipmentID, TrackingCode: rec.Code, RefundStatus: shp.RefundStatus}, nil
}

// MaxLabelFile bounds a label image piivault passes on.
const MaxLabelFile = 4 << 20

// LabelImage fetches the PNG label of a held order's bought label, for the
// console's printable sheet: the image shows the address, so it is served
// only while the order is held, to the member who asks, as an audited
// reveal.
func (s *Service) LabelImage(ctx context.Context, p web.Principal, ip, orderID string) ([]byte, error) {
	ref, err := s.store.Get(ctx, orderID)
	if err != nil {
		return nil, err
	}
	if ref.Status != orders.StatusHeld {
		return nil, apperr.New(apperr.Gone, "this order's personal data was destroyed: its label is no longer shown")
	}
	rec, err := s.store.LabelOf(ctx, orderID)
	if err != nil {
		return nil, err
	}
	if rec.State != "bought" {
		return nil, apperr.New(apperr.NoLabel, "no label was bought through piivault for this order")
	}
	if err := s.reveal.LabelShown(ctx, p, ip, orderID); err != nil {
		return nil, err
	}
	shp, err := s.ep.GetShipmentWithContext(ctx, rec.ShipmentID)
	if err != nil {
		return nil, carrierError(err)
	}
	u, err := url.Parse(labelURL(shp, "PNG"))
	if err != nil || !(u.Scheme == "https" || (u.Scheme == "http" && loopback(u.Hostname()))) {
		// EasyPost serves its files over HTTPS; plain HTTP only from a
		// stand-in on this machine.
		return nil, apperr.New(apperr.CarrierRefused, "EasyPost gave no label image for this shipment")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, carrierError(err)
	}
	resp, err := s.files.Do(req)
	if err != nil {
		return nil, carrierError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apperr.New(apperr.CarrierUnavailable, "the label file answered %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxLabelFile+1))
	if err != nil {
		return nil, carrierError(err)
	}
	if len(b) > MaxLabelFile || http.DetectContentType(b) != "image/png" {
		return nil, apperr.New(apperr.CarrierRefused, "the label file is not a PNG image")
	}
	return b, nil
}

// loopback reports whether host is a loopback name or address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
