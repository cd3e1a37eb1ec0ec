// Package postage buys carrier labels through EasyPost for held orders, so
// that nobody reads or retypes an address: the staff member's own Vault
// token decrypts the shipping block server-side, the address goes to
// EasyPost only, and the tracker of the label is linked to the order in
// the same step, so the carrier's "in transit" event purges it.
//
// A purchase happens at most once per order. Each order's attempt first
// takes a lease on the order's label record in Redis; the shipment it
// creates is written there before it is bought, and a bought label is
// recorded with its audit entry. An attempt that lost EasyPost's answer
// leaves the record "uncertain", and the next one finds that shipment
// again (by its id, or by EasyPost's reference, the order id) and buys or
// reads that one, never a new one: EasyPost itself refuses to buy a
// shipment twice.
package postage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/EasyPost/easypost-go/v5"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/tracking"
)

// MaxOrders is the most orders one purchase may name.
const MaxOrders = 50

// Label formats EasyPost produces and piivault passes on.
var labelFormats = []string{"PDF", "PNG", "ZPL"}

var (
	servicePattern    = regexp.MustCompile(`^[A-Za-z0-9_]{1,40}:[A-Za-z0-9_]{1,60}$`)
	predefinedPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,60}$`)
)

// Parcel is the package's size and weight, in EasyPost's units (inches,
// ounces): dimensions or a carrier's predefined package.
type Parcel struct {
	Length            float64 `json:"length,omitempty"`
	Width             float64 `json:"width,omitempty"`
	Height            float64 `json:"height,omitempty"`
	Weight            float64 `json:"weight"`
	PredefinedPackage string  `json:"predefined_package,omitempty"`
}

// Request is a purchase (or a rates look-up) for several orders.
type Request struct {
	OrderIDs    []string `json:"order_ids"`
	Parcel      Parcel   `json:"parcel"`
	Service     string   `json:"service"` // "cheapest" or "<carrier>:<service>"
	Reason      string   `json:"reason"`
	LabelFormat string   `json:"label_format"`
}

// Rate is a price.
type Rate struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Shipment is one order's answer to a purchase: its label or its error.
type Shipment struct {
	OrderID      string           `json:"order_id"`
	ShipmentID   string           `json:"shipment_id,omitempty"`
	TrackingCode string           `json:"tracking_code,omitempty"`
	Carrier      string           `json:"carrier,omitempty"`
	Service      string           `json:"service,omitempty"`
	Rate         *Rate            `json:"rate,omitempty"`
	LabelURL     string           `json:"label_url,omitempty"`
	LabelFormat  string           `json:"label_format,omitempty"`
	Status       int              `json:"status,omitempty"` // the HTTP status of Error
	Error        *web.ErrorDetail `json:"error,omitempty"`
}

// Revealer decrypts held orders for EasyPost, as a pick-list reveals them
// (orders.Revealer.ForCarrier).
type Revealer interface {
	ForCarrier(ctx context.Context, p web.Principal, ip string, ids []string, via string) ([]orders.LabelResult, error)
	LabelShown(ctx context.Context, p web.Principal, ip, id string) error
}

// Verify looks a staff token up in Vault (staff.Service.Authenticate).
type Verify func(ctx context.Context, token string) (web.Principal, error)

// Lockdown says whether reveals are refused for an incident.
type Lockdown interface {
	Check(ctx context.Context) error
}

// Service buys labels.
type Service struct {
	ep       EasyPost
	store    *orders.Store
	reveal   Revealer
	lockdown Lockdown
	verify   Verify
	links    tracking.Links
	from     easypost.Address
	log      *slog.Logger
	// lease is how long an attempt holds an order's purchase: longer than
	// its EasyPost calls can take (three, each bounded by the client's
	// timeout), so a slow attempt is never taken over while it may still buy.
	lease time.Duration
	// wait is how long a request waits for another one buying the same
	// label before it answers label_in_progress.
	wait time.Duration
	// parallel bounds concurrent EasyPost calls of one request.
	parallel int
	// files fetches label images for the console's printable sheet.
	files *http.Client
}

// Config holds a Service's settings.
type Config struct {
	From     easypost.Address // the warehouse's return address (PIIVAULT_SHIP_FROM)
	Verify   Verify           // checks a token the route did not look up
	Timeout  time.Duration    // EasyPost client timeout, for the lease
	Wait     time.Duration    // default 15s
	Parallel int              // default 8
}

// New returns a Service.
func New(ep EasyPost, store *orders.Store, reveal Revealer, lockdown Lockdown, links tracking.Links, cfg Config, log *slog.Logger) *Service {
	s := &Service{ep: ep, store: store, reveal: reveal, lockdown: lockdown, verify: cfg.Verify, links: links, from: cfg.From, log: log,
		lease: 4*cfg.Timeout + 10*time.Second, wait: cfg.Wait, parallel: cfg.Parallel,
		// A label file is fetched where EasyPost says, never further.
		files: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}}
	if s.wait <= 0 {
		s.wait = 15 * time.Second
	}
	if s.parallel <= 0 {
		s.parallel = 8
	}
	return s
}

func (r *Request) validate(rates bool) error {
	var bad []string
	ids := r.OrderIDs
	if len(ids) == 0 || len(ids) > MaxOrders || slices.ContainsFunc(ids, func(id string) bool { return !orders.ValidOrderID(id) }) {
		bad = append(bad, "order_ids")
	}
	if !r.Parcel.valid() {
		bad = append(bad, "parcel")
	}
	if r.Service == "" && rates {
		r.Service = "cheapest"
	}
	if r.Service != "cheapest" && !servicePattern.MatchString(r.Service) {
		bad = append(bad, "service")
	}
	if r.Reason != "label" {
		bad = append(bad, "reason")
	}
	if r.LabelFormat == "" {
		r.LabelFormat = "PDF"
	}
	r.LabelFormat = strings.ToUpper(r.LabelFormat)
	if !slices.Contains(labelFormats, r.LabelFormat) {
		bad = append(bad, "label_format")
	}
	if len(bad) > 0 {
		return &apperr.Error{Code: apperr.Validation, Fields: bad, Message: fmt.Sprintf("invalid fields: %s "+
			"(order_ids: 1 to %d order ids; parcel: weight in ounces with length, width and height in inches, or a predefined_package; "+
			`service: "cheapest" or "<carrier>:<service>"; reason: "label"; label_format: PDF, PNG or ZPL)`, strings.Join(bad, ", "), MaxOrders)}
	}
	seen := map[string]bool{}
	r.OrderIDs = slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		dup := seen[id]
		seen[id] = true
		return dup
	})
	return nil
}

func (p Parcel) valid() bool {
	ok := func(v float64) bool { return v > 0 && v < 10000 && !math.IsInf(v, 0) }
	if !ok(p.Weight) {
		return false
	}
	if p.PredefinedPackage != "" {
		return predefinedPattern.MatchString(p.PredefinedPackage) && p.Length == 0 && p.Width == 0 && p.Height == 0
	}
	return ok(p.Length) && ok(p.Width) && ok(p.Height)
}

// attempt is one order's purchase in one request.
type attempt struct {
	out   *Shipment
	owner string
	p     web.Principal
	ip    string
	rec   orders.LabelRecord
	// fresh: nothing was sent to EasyPost for this order yet.
	fresh bool
}

// Buy buys a label for each order of req (in the request's order, each its
// label or its error). Orders whose label was bought already answer that
// label, without decrypting anything; the rest are decrypted in one batch
// with p's token (audited, disclosed to EasyPost) and bought.
func (s *Service) Buy(ctx context.Context, p web.Principal, ip string, req Request) ([]Shipment, error) {
	if err := req.validate(false); err != nil {
		return nil, err
	}
	if err := s.lockdown.Check(ctx); err != nil {
		return nil, err
	}
	out := make([]Shipment, len(req.OrderIDs))
	owner := newOwner()
	var fresh, recover, busy, bought []*attempt
	for i, id := range req.OrderIDs {
		out[i].OrderID = id
		a := &attempt{out: &out[i], owner: owner, p: p, ip: ip}
		outcome, rec, err := s.store.ClaimLabel(ctx, id, owner, s.lease)
		switch {
		case err != nil:
			setErr(a.out, err)
		case outcome == orders.LabelBought:
			a.rec = rec
			bought = append(bought, a)
		case outcome == orders.LabelBusy:
			busy = append(busy, a)
		case outcome == orders.LabelRecover:
			a.rec = rec
			recover = append(recover, a)
		default:
			a.fresh = true
			fresh = append(fresh, a)
		}
	}
	if len(bought)+len(recover)+len(busy) > 0 && p.Unverified {
		// No decrypt will ask Vault about this token for these orders: ask
		// now, so a removed member gets no label either.
		if _, err := s.verify(ctx, p.Token.Reveal()); err != nil {
			for _, a := range append(fresh, recover...) { // busy ones hold no lease of ours
				_ = s.store.ReleaseLabel(context.WithoutCancel(ctx), a.out.OrderID, a.owner)
			}
			return nil, err
		}
	}
	s.each(bought, func(a *attempt) { s.answer(ctx, a, a.rec) })
	// An earlier attempt that lost its answer: find its shipment first.
	s.each(recover, func(a *attempt) {
		if !s.recoverShipment(ctx, req, a) {
			a.fresh = true
		}
	})
	var create []*attempt
	for _, a := range append(fresh, recover...) {
		if a.fresh {
			create = append(create, a)
		}
	}
	if err := s.createAndBuy(ctx, p, ip, req, create); err != nil {
		for _, a := range create {
			_ = s.store.ReleaseLabel(context.WithoutCancel(ctx), a.out.OrderID, a.owner)
		}
		return nil, err
	}
	s.each(busy, func(a *attempt) { s.awaitOther(ctx, a) })
	return out, nil
}

// createAndBuy decrypts the orders of as in one batch and buys each one.
func (s *Service) createAndBuy(ctx context.Context, p web.Principal, ip string, req Request, as []*attempt) error {
	if len(as) == 0 {
		return nil
	}
	ids := make([]string, len(as))
	for i, a := range as {
		ids[i] = a.out.OrderID
	}
	blocks, err := s.reveal.ForCarrier(ctx, p, ip, ids, "shipments")
	if err != nil {
		return err
	}
	byID := make(map[string]orders.LabelResult, len(blocks))
	for _, b := range blocks {
		byID[b.OrderID] = b
	}
	s.each(as, func(a *attempt) {
		b := byID[a.out.OrderID]
		if b.Error != nil || b.Shipping == nil {
			_ = s.store.ReleaseLabel(context.WithoutCancel(ctx), a.out.OrderID, a.owner)
			setDetail(a.out, b.Error)
			return
		}
		s.create(ctx, req, a, *b.Shipping)
	})
	return nil
}

// create creates the order's shipment at EasyPost, notes it, and buys it.
func (s *Service) create(ctx context.Context, req Request, a *attempt, ship orders.Shipping) {
	id := a.out.OrderID
	shp, err := s.ep.CreateShipmentWithContext(ctx, s.shipment(req, id, ship))
	if err != nil {
		s.failed(ctx, a, err, !definite(err))
		return
	}
	if err := s.store.NoteShipment(ctx, id, a.owner, shp.ID); err != nil {
		// Not bought, and nothing will be: the next attempt finds this
		// shipment by its reference, or creates another (unbought
		// shipments cost nothing).
		s.failed(ctx, a, err, true)
		return
	}
	a.rec.ShipmentID = shp.ID
	s.buy(ctx, req, a, shp)
}

// buy buys shp at the rate req asks for and records the label.
func (s *Service) buy(ctx context.Context, req Request, a *attempt, shp *easypost.Shipment) {
	rate, ok := pickRate(shp.Rates, req.Service)
	if !ok {
		// Nothing was bought: forget the shipment, so another service, a
		// corrected address or another parcel starts afresh.
		s.forget(ctx, a)
		setErr(a.out, &apperr.Error{Code: apperr.NoRate, Detail: map[string]any{"service": req.Service},
			Message: "no carrier offers the requested service for this parcel and address"})
		return
	}
	bought, err := s.ep.BuyShipmentWithContext(ctx, shp.ID, &easypost.Rate{ID: rate.ID}, "")
	if err != nil {
		// It may have been bought before (an earlier attempt's call that
		// arrived late): EasyPost refuses a second purchase, so look.
		got, gerr := s.ep.GetShipmentWithContext(ctx, shp.ID)
		switch {
		case gerr == nil && isBought(got):
			bought, err = got, nil
		case gerr == nil && definite(err):
			// EasyPost refused it (the carrier rejected the address, say)
			// and holds no label: nothing to find again later.
			s.forget(ctx, a)
			setErr(a.out, carrierError(err))
			return
		}
	}
	if err != nil {
		s.failed(ctx, a, err, true)
		return
	}
	s.record(ctx, req.LabelFormat, a, bought)
}

// forget drops the attempt's record of a shipment EasyPost did not buy.
func (s *Service) forget(ctx context.Context, a *attempt) {
	if err := s.store.ForgetLabel(context.WithoutCancel(ctx), a.out.OrderID, a.owner); err != nil {
		s.log.Warn("refused shipment not forgotten; the next attempt looks at it again", "order_id", a.out.OrderID, "err", err)
	}
}

// record converts the label to the asked format, links its tracker and
// records it (with its audit entry), then answers it.
func (s *Service) record(ctx context.Context, format string, a *attempt, shp *easypost.Shipment) {
	id := a.out.OrderID
	if format != "PNG" && labelURL(shp, format) == "" {
		if conv, err := s.ep.GetShipmentLabelWithContext(ctx, shp.ID, format); err == nil {
			shp = conv
		} else {
			s.log.Warn("easypost label format not converted", "order_id", id, "format", format, "err", carrierError(err).Code)
			format = "PNG"
		}
	}
	rec := recordOf(shp, format)
	if err := s.links.Remember(ctx, id, tracking.Refs{Code: rec.Code, Shipment: rec.ShipmentID, Tracker: rec.TrackerID}); err != nil {
		s.failed(ctx, a, err, true)
		return
	}
	if _, err := s.store.LabelBoughtAudited(ctx, id, rec, a.entry()); err != nil {
		if err = orders.LogDeferred(s.log, id, err); err != nil {
			s.failed(ctx, a, err, true)
			return
		}
	}
	fill(a.out, rec, shp)
}

// recoverShipment finds the shipment of an attempt that lost its answer and
// finishes it: true when the order is answered (bought now or before, or an
// error), false when no shipment exists and a new one must be created.
func (s *Service) recoverShipment(ctx context.Context, req Request, a *attempt) bool {
	var shp *easypost.Shipment
	var err error
	if a.rec.ShipmentID != "" {
		shp, err = s.ep.GetShipmentWithContext(ctx, a.rec.ShipmentID)
	} else {
		shp, err = s.byReference(ctx, a.out.OrderID, a.rec.Started)
	}
	switch {
	case err != nil:
		s.failed(ctx, a, err, true)
		return true
	case shp == nil:
		return false
	case isBought(shp):
		// An earlier attempt bought it: its link is shown to this member.
		if err := s.reveal.LabelShown(ctx, a.p, a.ip, a.out.OrderID); err != nil {
			setErr(a.out, err)
			return true
		}
		s.record(ctx, req.LabelFormat, a, shp)
		return true
	}
	if a.rec.ShipmentID == "" {
		if err := s.store.NoteShipment(ctx, a.out.OrderID, a.owner, shp.ID); err != nil {
			s.failed(ctx, a, err, true)
			return true
		}
	}
	s.buy(ctx, req, a, shp)
	return true
}

// byReference looks for the shipment an earlier attempt created for
// orderID (its reference) since it started: a bought one first.
func (s *Service) byReference(ctx context.Context, orderID string, since time.Time) (*easypost.Shipment, error) {
	start := easypost.DateTime(since.Add(-time.Minute).UTC())
	all := false // EasyPost lists bought shipments only, unless told otherwise
	page, err := list(func() (*easypost.ListShipmentsResult, error) {
		return s.ep.ListShipmentsWithContext(ctx, &easypost.ListShipmentsOptions{PageSize: 100, StartDateTime: &start, Purchased: &all})
	})
	var found *easypost.Shipment
	for pages := 0; err == nil && pages < 10; pages++ {
		for _, shp := range page.Shipments {
			if shp.Reference != orderID {
				continue
			}
			if isBought(shp) {
				return shp, nil
			}
			if found == nil {
				found = shp
			}
		}
		if !page.HasMore {
			return found, nil
		}
		prev := page
		page, err = list(func() (*easypost.ListShipmentsResult, error) { return s.ep.GetNextShipmentPageWithContext(ctx, prev) })
	}
	var end *easypost.EndOfPaginationError
	if errors.As(err, &end) {
		return found, nil
	}
	if err != nil {
		return nil, err
	}
	return found, nil
}

// list calls a listing of the official client, which (v5.4.0) panics on a
// failed request instead of returning its error.
func list(call func() (*easypost.ListShipmentsResult, error)) (out *easypost.ListShipmentsResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("easypost: listing shipments failed: %v", r)
		}
	}()
	out, err = call()
	if err == nil && out == nil {
		err = errors.New("easypost: empty shipment list")
	}
	return out, err
}

// awaitOther waits for another request buying the same order's label and
// answers its label, or label_in_progress.
func (s *Service) awaitOther(ctx context.Context, a *attempt) {
	out := a.out
	deadline := time.Now().Add(s.wait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			setErr(out, apperr.Wrap(apperr.LabelInProgress, ctx.Err(), "another request is buying this label"))
			return
		case <-time.After(100 * time.Millisecond):
		}
		rec, err := s.store.LabelOf(ctx, out.OrderID)
		if err != nil {
			setErr(out, err)
			return
		}
		if rec.State == "bought" {
			s.answer(ctx, a, rec)
			return
		}
		if rec.State != "pending" {
			break
		}
	}
	setErr(out, apperr.New(apperr.LabelInProgress, "another request is buying this order's label; ask again in a moment: it will answer that label"))
}

// answer answers a label bought earlier: its record, and its label's URL
// as EasyPost has it now (the URL is not kept in Redis: it leads to an
// image of the address, so handing it out is a reveal, audited and
// counted like the console's label image).
func (s *Service) answer(ctx context.Context, a *attempt, rec orders.LabelRecord) {
	out := a.out
	if err := s.reveal.LabelShown(ctx, a.p, a.ip, out.OrderID); err != nil {
		setErr(out, err)
		return
	}
	shp, err := s.ep.GetShipmentWithContext(ctx, rec.ShipmentID)
	if err != nil {
		setErr(out, carrierError(err))
		return
	}
	if rec.Format != "PNG" && labelURL(shp, rec.Format) == "" {
		if conv, err := s.ep.GetShipmentLabelWithContext(ctx, shp.ID, rec.Format); err == nil {
			shp = conv
		}
	}
	fill(out, rec, shp)
}

// failed answers an order's error and, when EasyPost may have acted
// (uncertain), hands the next attempt the job of finding out.
func (s *Service) failed(ctx context.Context, a *attempt, err error, uncertain bool) {
	bg := context.WithoutCancel(ctx)
	if uncertain || a.rec.ShipmentID != "" {
		if uerr := s.store.LabelUncertain(bg, a.out.OrderID, a.owner); uerr != nil {
			s.log.Warn("label lease not handed on; the next attempt waits for it to end", "order_id", a.out.OrderID, "err", uerr)
		}
	} else {
		_ = s.store.ReleaseLabel(bg, a.out.OrderID, a.owner)
	}
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		ae = carrierError(err)
	}
	if ae.Code == apperr.CarrierUnavailable || ae.Code == apperr.CarrierTimeout || ae.Code == apperr.CarrierRefused {
		s.log.Warn("easypost call failed", "order_id", a.out.OrderID, "code", string(ae.Code), "easypost_code", ae.Detail["easypost_code"])
	}
	setErr(a.out, ae)
}

func (a *attempt) entry() audit.Entry { return audit.Entry{Actor: a.p.Actor(), IP: a.ip} }

// each runs fn for every attempt, s.parallel at a time.
func (s *Service) each(as []*attempt, fn func(*attempt)) { inParallel(s.parallel, as, fn) }

// inParallel runs fn for every item, n at a time, and waits for them all.
func inParallel[T any](n int, items []T, fn func(T)) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(it)
		}()
	}
	wg.Wait()
}

// shipment is what EasyPost is sent: the only place the address leaves.
func (s *Service) shipment(req Request, orderID string, ship orders.Shipping) *easypost.Shipment {
	from := s.from
	return &easypost.Shipment{
		Reference: orderID,
		ToAddress: &easypost.Address{Name: ship.Name, Street1: ship.Address.Line1, Street2: ship.Address.Line2,
			City: ship.Address.City, State: ship.Address.State, Zip: ship.Address.PostalCode,
			Country: ship.Address.Country, Phone: ship.Phone, Email: ship.Email},
		FromAddress: &from,
		Parcel: &easypost.Parcel{Length: req.Parcel.Length, Width: req.Parcel.Width, Height: req.Parcel.Height,
			Weight: req.Parcel.Weight, PredefinedPackage: req.Parcel.PredefinedPackage},
	}
}

// pickRate chooses the rate service asks for: the lowest, or the one of a
// carrier and service (case-insensitive).
func pickRate(rates []*easypost.Rate, service string) (*easypost.Rate, bool) {
	var best *easypost.Rate
	carrier, svc, _ := strings.Cut(service, ":")
	for _, r := range rates {
		if service != "cheapest" && (!strings.EqualFold(r.Carrier, carrier) || !strings.EqualFold(r.Service, svc)) {
			continue
		}
		if best == nil || amount(r.Rate) < amount(best.Rate) {
			best = r
		}
	}
	return best, best != nil
}

func amount(v string) float64 {
	var f float64
	if _, err := fmt.Sscan(v, &f); err != nil {
		return math.Inf(1)
	}
	return f
}

func isBought(shp *easypost.Shipment) bool {
	return shp != nil && shp.PostageLabel != nil && shp.TrackingCode != ""
}

func labelURL(shp *easypost.Shipment, format string) string {
	if shp.PostageLabel == nil {
		return ""
	}
	switch format {
	case "PDF":
		return shp.PostageLabel.LabelPDFURL
	case "ZPL":
		return shp.PostageLabel.LabelZPLURL
	}
	return shp.PostageLabel.LabelURL
}

func recordOf(shp *easypost.Shipment, format string) orders.LabelRecord {
	rec := orders.LabelRecord{ShipmentID: shp.ID, Code: shp.TrackingCode, Format: format}
	if shp.Tracker != nil {
		rec.TrackerID = shp.Tracker.ID
	}
	if r := shp.SelectedRate; r != nil {
		rec.Carrier, rec.Service, rec.Amount, rec.Currency = r.Carrier, r.Service, r.Rate, r.Currency
	}
	if shp.PostageLabel != nil && shp.PostageLabel.CreatedAt != nil {
		rec.BoughtAt = time.Time(*shp.PostageLabel.CreatedAt)
	}
	return rec
}

func fill(out *Shipment, rec orders.LabelRecord, shp *easypost.Shipment) {
	out.ShipmentID, out.TrackingCode, out.Carrier, out.Service = rec.ShipmentID, rec.Code, rec.Carrier, rec.Service
	out.Rate = &Rate{Amount: rec.Amount, Currency: rec.Currency}
	out.LabelFormat = rec.Format
	out.LabelURL = labelURL(shp, rec.Format)
	if out.LabelURL == "" {
		out.LabelFormat, out.LabelURL = "PNG", labelURL(shp, "PNG")
	}
}

func setErr(out *Shipment, err error) {
	d := web.DetailOf(err)
	setDetail(out, &d)
}

func setDetail(out *Shipment, d *web.ErrorDetail) {
	if d == nil {
		d = &web.ErrorDetail{Code: apperr.Internal, Message: "internal error"}
	}
	*out = Shipment{OrderID: out.OrderID, Status: web.Status(d.Code), Error: d}
}

func newOwner() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
