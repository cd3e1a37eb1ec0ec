package easypoststandin

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/EasyPost/easypost-go/v5"
)

// UndeliverableStreetWord, as a word of a to_address's street1 (any case,
// e.g. "1 Undeliverable St"), makes the carrier refuse the address.
//
// It is refused where a carrier refuses an address in EasyPost: at purchase,
// answered 422 SHIPMENT.POSTAGE.FAILURE (EasyPost/easypost-csharp#80). The
// shipment itself is created, with rates, as EasyPost creates shipments
// without verifying their addresses unless asked to. So piivault meets the
// refusal where it really happens, after it has a shipment id, and nothing
// is bought. The word is the one EasyPost's own examples use for an address
// that cannot be delivered ("UNDELIVERABLE ST", EasyPost/examples
// official/docs/node/v5/addresses/verify-failure.js).
const UndeliverableStreetWord = "UNDELIVERABLE"

// shipment is one shipment's state; render turns it into EasyPost's body.
type shipment struct {
	id, ref          string
	created, updated time.Time
	to, from         address
	parcel           parcel
	options          map[string]any
	rates            []rate

	bought        bool
	boughtAt      time.Time
	selected      int // index into rates
	insurance     string
	tracking      string
	labelID       string
	trackerID     string
	trackerStatus string // "" until bought
	trackerSet    bool   // TrackerEvent changed the status
	fileBase      string // where label files are served from
	formats       map[string]bool
	refundStatus  string
}

type address struct {
	id      string
	created time.Time
	in      addressIn
}

type parcel struct {
	id      string
	created time.Time
	in      parcelIn
}

type rate struct {
	id, carrier, service string
	amount, retail, list string
	days                 int
	account              string
}

type addressIn struct {
	Name            string `json:"name"`
	Company         string `json:"company"`
	Street1         string `json:"street1"`
	Street2         string `json:"street2"`
	City            string `json:"city"`
	State           string `json:"state"`
	Zip             string `json:"zip"`
	Country         string `json:"country"`
	Phone           string `json:"phone"`
	Email           string `json:"email"`
	Residential     *bool  `json:"residential"`
	CarrierFacility string `json:"carrier_facility"`
	FederalTaxID    string `json:"federal_tax_id"`
	StateTaxID      string `json:"state_tax_id"`
}

type parcelIn struct {
	Length            *float64 `json:"length"`
	Width             *float64 `json:"width"`
	Height            *float64 `json:"height"`
	Weight            *float64 `json:"weight"`
	PredefinedPackage string   `json:"predefined_package"`
}

// flexString reads a JSON string or number (the official client sends
// insurance as a string, hand-written requests often as a number).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

// rateSpec is one rate the default mode offers: USPS's are the amounts
// EasyPost's published test shipments show; UPS Ground's are made up, so
// that piivault sees rates of more than one carrier.
type rateSpec struct {
	carrier, service     string
	amount, retail, list string
	days                 int
}

var defaultRates = []rateSpec{
	{"USPS", "Express", "51.20", "59.25", "51.20", 2},
	{"USPS", "Priority", "11.01", "15.40", "11.01", 2},
	{"USPS", "GroundAdvantage", "8.20", "13.85", "9.74", 3},
	{"UPS", "Ground", "12.45", "17.10", "14.35", 5},
}

func (s *Server) create(r *http.Request, body []byte) (any, *apiError) {
	var req struct {
		Shipment json.RawMessage `json:"shipment"`
	}
	var in struct {
		Reference   string         `json:"reference"`
		ToAddress   *addressIn     `json:"to_address"`
		FromAddress *addressIn     `json:"from_address"`
		Parcel      *parcelIn      `json:"parcel"`
		Options     map[string]any `json:"options"`
		Carrier     string         `json:"carrier"`
		Service     string         `json:"service"`
		Insurance   flexString     `json:"insurance"`
	}
	if len(body) > 0 && json.Unmarshal(body, &req) != nil {
		return nil, errBadRequest()
	}
	// EasyPost answers {"shipment":{}} as it answers no shipment
	// (easypost-go v5.4.0 tests/cassettes/TestApiError.yaml).
	if raw := strings.TrimSpace(string(req.Shipment)); raw == "" || raw == "null" || raw == "{}" {
		return nil, errRequired(fieldError{"shipment", "cannot be blank"})
	}
	if json.Unmarshal(req.Shipment, &in) != nil {
		return nil, errBadRequest()
	}
	missing := slices.Concat(missingAddress("to_address", in.ToAddress), missingAddress("from_address", in.FromAddress))
	missing2, invalid := checkParcel(in.Parcel)
	if missing = append(missing, missing2...); len(missing) > 0 {
		return nil, errRequired(missing...)
	}
	if len(invalid) > 0 {
		return nil, errInvalid(invalid...)
	}

	now := time.Now().UTC()
	st := &shipment{
		id: newID("shp_"), ref: in.Reference, created: now, updated: now,
		to:      address{id: newID("adr_"), created: now, in: *in.ToAddress},
		from:    address{id: newID("adr_"), created: now, in: *in.FromAddress},
		parcel:  parcel{id: newID("prcl_"), created: now, in: *in.Parcel},
		options: in.Options,
		formats: map[string]bool{},
	}
	for _, spec := range s.rateSpecs() {
		st.rates = append(st.rates, rate{id: newID("rate_"), carrier: spec.carrier, service: spec.service,
			amount: spec.amount, retail: spec.retail, list: spec.list, days: spec.days, account: s.accounts[spec.carrier]})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.shipments = append(s.shipments, st)
	s.byID[st.id] = st
	if in.Carrier == "" && in.Service == "" {
		return s.render(st, viewCreate), nil
	}
	// One-call buy: EasyPost creates the shipment, then buys the rate of
	// that carrier and service; a refusal leaves the shipment unbought.
	i := slices.IndexFunc(st.rates, func(rt rate) bool {
		return strings.EqualFold(rt.carrier, in.Carrier) && strings.EqualFold(rt.service, in.Service)
	})
	if i < 0 { // EasyPost's wording, from a batch_message in easypost-go's TestBatchAll.yaml
		return nil, &apiError{status: http.StatusUnprocessableEntity, Code: CodePostageFailure,
			Message: fmt.Sprintf("%s does not offer service %s for this shipment.", in.Carrier, in.Service),
			Errors:  []fieldError{{"service", "is not offered for this shipment"}}}
	}
	if e := s.purchase(r, st, i, string(in.Insurance)); e != nil {
		return nil, e
	}
	return s.render(st, viewOneCall), nil
}

func (s *Server) rateSpecs() []rateSpec {
	if s.fx != nil {
		return s.fx.rates
	}
	return defaultRates
}

func missingAddress(name string, a *addressIn) []fieldError {
	if a == nil {
		return []fieldError{{name, "cannot be blank"}}
	}
	var out []fieldError
	for _, f := range []struct{ field, value string }{
		{"street1", a.Street1}, {"city", a.City}, {"zip", a.Zip}, {"country", a.Country},
	} {
		if strings.TrimSpace(f.value) == "" {
			out = append(out, fieldError{name + "." + f.field, "cannot be blank"})
		}
	}
	if strings.TrimSpace(a.Name) == "" && strings.TrimSpace(a.Company) == "" {
		out = append(out, fieldError{name + ".name", "cannot be blank when company is blank"})
	}
	return out
}

func checkParcel(p *parcelIn) (missing, invalid []fieldError) {
	if p == nil {
		return []fieldError{{"parcel", "cannot be blank"}}, nil
	}
	dim := func(field string, v *float64, need bool) {
		switch {
		case v == nil && need:
			missing = append(missing, fieldError{"parcel." + field, "cannot be blank"})
		case v != nil && *v <= 0:
			invalid = append(invalid, fieldError{"parcel." + field, "must be greater than 0"})
		}
	}
	dim("weight", p.Weight, true)
	boxed := strings.TrimSpace(p.PredefinedPackage) == ""
	dim("length", p.Length, boxed)
	dim("width", p.Width, boxed)
	dim("height", p.Height, boxed)
	return missing, invalid
}

// undeliverable applies UndeliverableStreetWord.
func undeliverable(a addressIn) bool {
	words := strings.FieldsFunc(a.Street1, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	return slices.ContainsFunc(words, func(w string) bool { return strings.EqualFold(w, UndeliverableStreetWord) })
}

// find returns a shipment by id or, as EasyPost also accepts, by its
// reference (the newest with it). Callers hold s.mu.
func (s *Server) find(id string) *shipment {
	if st := s.byID[id]; st != nil {
		return st
	}
	for i := len(s.shipments) - 1; i >= 0; i-- {
		if st := s.shipments[i]; st.ref != "" && st.ref == id {
			return st
		}
	}
	return nil
}

func (s *Server) get(id string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.find(id)
	if st == nil {
		return nil, errNotFound()
	}
	return s.render(st, viewGet), nil
}

func (s *Server) buy(r *http.Request, id string, body []byte) (any, *apiError) {
	var req struct {
		Rate *struct {
			ID string `json:"id"`
		} `json:"rate"`
		Insurance flexString `json:"insurance"`
	}
	if len(body) > 0 && json.Unmarshal(body, &req) != nil {
		return nil, errBadRequest()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.find(id)
	switch {
	case st == nil:
		return nil, errNotFound()
	case st.bought:
		return nil, &apiError{status: http.StatusUnprocessableEntity, Code: CodePostageExists,
			Message: "Postage already exists for this shipment."}
	case req.Rate == nil || req.Rate.ID == "":
		return nil, errRequired(fieldError{"rate", "cannot be blank"})
	}
	i := slices.IndexFunc(st.rates, func(rt rate) bool { return rt.id == req.Rate.ID })
	if i < 0 {
		// EasyPost's wording, quoted in EasyPost/easypost-python#36.
		return nil, errUnprocessable("A valid rate must be supplied in order to purchase a shipment. "+
			"Please verify the rate exists and that the rate is associated with the shipment being purchased.",
			fieldError{"rate", "is not a rate of this shipment"})
	}
	if e := s.purchase(r, st, i, string(req.Insurance)); e != nil {
		return nil, e
	}
	return s.render(st, viewBuy), nil
}

// purchase buys st's rate i. Callers hold s.mu.
func (s *Server) purchase(r *http.Request, st *shipment, i int, insurance string) *apiError {
	if undeliverable(st.to.in) {
		return &apiError{status: http.StatusUnprocessableEntity, Code: CodePostageFailure,
			Message: "The carrier could not purchase postage: the destination address is undeliverable.",
			Errors:  []fieldError{{"to_address", "Address not found"}}}
	}
	now := time.Now().UTC()
	st.bought, st.boughtAt, st.updated, st.selected = true, now, now, i
	if insurance != "" {
		st.insurance = insurance
	}
	st.tracking = s.newTrackingCode()
	st.labelID, st.trackerID = newID("pl_"), newID("trk_")
	st.trackerStatus = "pre_transit"
	st.fileBase = s.base
	if st.fileBase == "" { // served through ServeHTTP by someone else
		st.fileBase = "http://" + r.Host
	}
	return nil
}

func (s *Server) label(id, format string) (any, *apiError) {
	ext, ok := map[string]string{"PNG": "png", "PDF": "pdf", "ZPL": "zpl", "EPL2": "epl2"}[strings.ToUpper(format)]
	if format == "" {
		return nil, errRequired(fieldError{"file_format", "cannot be blank"})
	}
	if !ok {
		return nil, errUnprocessable("Invalid label format.", fieldError{"file_format", "must be one of PDF, ZPL, EPL2, PNG"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.find(id)
	switch {
	case st == nil:
		return nil, errNotFound()
	case !st.bought:
		return nil, errUnprocessable("The shipment has no postage label: it has not been purchased.")
	}
	if ext != "png" {
		st.formats[ext] = true
		st.updated = time.Now().UTC()
	}
	return s.render(st, viewLabel), nil
}

// refund requests a refund; asking again answers the same shipment.
func (s *Server) refund(id string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.find(id)
	switch {
	case st == nil:
		return nil, errNotFound()
	case !st.bought:
		return nil, errUnprocessable("The shipment cannot be refunded: it has not been purchased.")
	}
	if st.refundStatus == "" {
		st.refundStatus, st.updated = "submitted", time.Now().UTC()
	}
	return s.render(st, viewRefund), nil
}

// list answers GET /v2/shipments, newest first. As EasyPost does, it
// returns only purchased shipments unless purchased=false (then all): the
// official client's own recorded lists (easypost-go v5.4.0
// tests/cassettes/TestShipmentAll.yaml) hold only bought shipments though
// its tests created unbought ones in between.
func (s *Server) list(q url.Values) (any, *apiError) {
	size := 20
	if n, err := strconv.Atoi(q.Get("page_size")); err == nil && n > 0 {
		size = min(n, 100)
	}
	onlyBought := q.Get("purchased") != "false"
	start, hasStart := parseTime(q.Get("start_datetime"))
	end, hasEnd := parseTime(q.Get("end_datetime"))

	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := -1, len(s.shipments) // exclusive bounds on creation order
	if id := q.Get("before_id"); id != "" {
		hi = slices.IndexFunc(s.shipments, func(st *shipment) bool { return st.id == id })
	}
	if id := q.Get("after_id"); id != "" {
		if lo = slices.IndexFunc(s.shipments, func(st *shipment) bool { return st.id == id }); lo < 0 {
			hi = -1 // an unknown id has nothing after it
		}
	}
	var page []any
	more := false
	for i := hi - 1; i > lo && i >= 0; i-- {
		st := s.shipments[i]
		c := st.created.Truncate(time.Second)
		if (onlyBought && !st.bought) || (hasStart && c.Before(start)) || (hasEnd && c.After(end)) {
			continue
		}
		if len(page) == size {
			more = true
			break
		}
		page = append(page, s.render(st, viewGet))
	}
	if page == nil {
		page = []any{}
	}
	return s.renderList(page, more), nil
}

func parseTime(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Shipments returns every shipment as EasyPost would answer it now, oldest
// first, decoded by the official client's types.
func (s *Server) Shipments() []easypost.Shipment {
	s.mu.Lock()
	bodies := make([][]byte, 0, len(s.shipments))
	for _, st := range s.shipments {
		b, _ := json.Marshal(s.render(st, viewGet))
		bodies = append(bodies, b)
	}
	s.mu.Unlock()
	out := make([]easypost.Shipment, len(bodies))
	for i, b := range bodies {
		_ = json.Unmarshal(b, &out[i])
	}
	return out
}

// Bought counts the shipments bought (labels paid for), refunded or not.
func (s *Server) Bought() int { return s.countBought(func(*shipment) bool { return true }) }

// BoughtFor counts the shipments bought with this reference: piivault
// must buy exactly one label per order.
func (s *Server) BoughtFor(reference string) int {
	return s.countBought(func(st *shipment) bool { return st.ref == reference })
}

func (s *Server) countBought(match func(*shipment) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.shipments {
		if st.bought && match(st) {
			n++
		}
	}
	return n
}

// newTrackingCode returns 22 digits, as USPS's, unique in this server.
// Callers hold s.mu.
func (s *Server) newTrackingCode() string {
	for {
		n, err := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil))
		if err != nil {
			panic(err)
		}
		code := fmt.Sprintf("94%020d", n)
		if !s.codes[code] {
			s.codes[code] = true
			return code
		}
	}
}

// newID is prefix + 32 hex digits, as EasyPost's ids are.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// CreatedFor reports how many shipments, bought or not, carry reference:
// tests assert that a purchase found its earlier shipment again instead
// of creating another.
func (s *Server) CreatedFor(reference string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.shipments {
		if st.ref == reference {
			n++
		}
	}
	return n
}
