package easypoststandin

import (
	"fmt"
	"strconv"
	"time"
)

// view is the request a shipment is rendered for; in fixtures mode it picks
// the published body to start from.
type view int

const (
	viewGet view = iota // retrieve, list, Shipments(): by state
	viewCreate
	viewOneCall
	viewBuy
	viewLabel
	viewRefund
)

// The default mode's bodies: a reduced set of the fields of EasyPost's
// published responses (EasyPost/examples official/docs/responses/shipments),
// with their names, types and nulls. Nothing here is a field EasyPost does
// not publish.

type jsonShipment struct {
	ID            string         `json:"id"`
	Object        string         `json:"object"`
	Mode          string         `json:"mode"`
	CreatedAt     string         `json:"created_at"`
	UpdatedAt     string         `json:"updated_at"`
	IsReturn      bool           `json:"is_return"`
	Messages      []any          `json:"messages"`
	Options       map[string]any `json:"options"`
	Reference     *string        `json:"reference"`
	Status        string         `json:"status"`
	TrackingCode  *string        `json:"tracking_code"`
	FromAddress   *jsonAddress   `json:"from_address"`
	Insurance     *string        `json:"insurance"`
	Parcel        *jsonParcel    `json:"parcel"`
	PostageLabel  *jsonLabel     `json:"postage_label"`
	Rates         []*jsonRate    `json:"rates"`
	RefundStatus  *string        `json:"refund_status"`
	SelectedRate  *jsonRate      `json:"selected_rate"`
	Tracker       *jsonTracker   `json:"tracker"`
	ToAddress     *jsonAddress   `json:"to_address"`
	ReturnAddress *jsonAddress   `json:"return_address"`
	BuyerAddress  *jsonAddress   `json:"buyer_address"`
	Forms         []any          `json:"forms"`
	Fees          []jsonFee      `json:"fees"`
}

type jsonAddress struct {
	ID              string         `json:"id"`
	Object          string         `json:"object"`
	CreatedAt       string         `json:"created_at"`
	UpdatedAt       string         `json:"updated_at"`
	Name            *string        `json:"name"`
	Company         *string        `json:"company"`
	Street1         *string        `json:"street1"`
	Street2         *string        `json:"street2"`
	City            *string        `json:"city"`
	State           *string        `json:"state"`
	Zip             *string        `json:"zip"`
	Country         *string        `json:"country"`
	Phone           *string        `json:"phone"`
	Email           *string        `json:"email"`
	Mode            string         `json:"mode"`
	CarrierFacility *string        `json:"carrier_facility"`
	Residential     *bool          `json:"residential"`
	FederalTaxID    *string        `json:"federal_tax_id"`
	StateTaxID      *string        `json:"state_tax_id"`
	Verifications   map[string]any `json:"verifications"`
}

type jsonParcel struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	CreatedAt         string   `json:"created_at"`
	UpdatedAt         string   `json:"updated_at"`
	Length            *float64 `json:"length"`
	Width             *float64 `json:"width"`
	Height            *float64 `json:"height"`
	PredefinedPackage *string  `json:"predefined_package"`
	Weight            *float64 `json:"weight"`
	Mode              string   `json:"mode"`
}

type jsonRate struct {
	ID                     string  `json:"id"`
	Object                 string  `json:"object"`
	CreatedAt              string  `json:"created_at"`
	UpdatedAt              string  `json:"updated_at"`
	Mode                   string  `json:"mode"`
	Service                string  `json:"service"`
	Carrier                string  `json:"carrier"`
	Rate                   string  `json:"rate"`
	Currency               string  `json:"currency"`
	RetailRate             string  `json:"retail_rate"`
	RetailCurrency         string  `json:"retail_currency"`
	ListRate               string  `json:"list_rate"`
	ListCurrency           string  `json:"list_currency"`
	BillingType            string  `json:"billing_type"`
	DeliveryDays           int     `json:"delivery_days"`
	DeliveryDate           *string `json:"delivery_date"`
	DeliveryDateGuaranteed bool    `json:"delivery_date_guaranteed"`
	EstDeliveryDays        int     `json:"est_delivery_days"`
	ShipmentID             string  `json:"shipment_id"`
	CarrierAccountID       string  `json:"carrier_account_id"`
}

type jsonLabel struct {
	Object          string  `json:"object"`
	ID              string  `json:"id"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
	DateAdvance     int     `json:"date_advance"`
	IntegratedForm  string  `json:"integrated_form"`
	LabelDate       string  `json:"label_date"`
	LabelResolution int     `json:"label_resolution"`
	LabelSize       string  `json:"label_size"`
	LabelType       string  `json:"label_type"`
	LabelFileType   string  `json:"label_file_type"`
	LabelURL        string  `json:"label_url"`
	LabelPDFURL     *string `json:"label_pdf_url"`
	LabelZPLURL     *string `json:"label_zpl_url"`
	LabelEPL2URL    *string `json:"label_epl2_url"`
	LabelFile       *string `json:"label_file"`
}

type jsonTracker struct {
	ID              string   `json:"id"`
	Object          string   `json:"object"`
	Mode            string   `json:"mode"`
	TrackingCode    string   `json:"tracking_code"`
	Status          string   `json:"status"`
	StatusDetail    string   `json:"status_detail"`
	CreatedAt       string   `json:"created_at"`
	UpdatedAt       string   `json:"updated_at"`
	SignedBy        *string  `json:"signed_by"`
	Weight          *float64 `json:"weight"`
	EstDeliveryDate *string  `json:"est_delivery_date"`
	ShipmentID      string   `json:"shipment_id"`
	Carrier         string   `json:"carrier"`
	TrackingDetails []any    `json:"tracking_details"`
	Fees            []any    `json:"fees"`
	CarrierDetail   any      `json:"carrier_detail"`
}

type jsonFee struct {
	Object   string `json:"object"`
	Type     string `json:"type"`
	Amount   string `json:"amount"`
	Charged  bool   `json:"charged"`
	Refunded bool   `json:"refunded"`
}

// render answers st as EasyPost would for v. Callers hold s.mu.
func (s *Server) render(st *shipment, v view) any {
	if s.fx != nil {
		return s.fx.render(st, v)
	}
	created := stamp(st.created)
	out := &jsonShipment{
		ID: st.id, Object: "Shipment", Mode: "test",
		CreatedAt: created, UpdatedAt: stamp(st.updated),
		Messages: []any{}, Forms: []any{}, Fees: []jsonFee{},
		Options:   shipmentOptions(st.options),
		Reference: nullable(st.ref), Status: "unknown",
		ToAddress: renderAddress(st.to), BuyerAddress: renderAddress(st.to),
		FromAddress: renderAddress(st.from), ReturnAddress: renderAddress(st.from),
		Parcel: renderParcel(st.parcel), RefundStatus: nullable(st.refundStatus),
		Insurance: nullable(st.insurance),
	}
	for _, rt := range st.rates {
		out.Rates = append(out.Rates, renderRate(st, rt))
	}
	if !st.bought {
		return out
	}
	sel := st.rates[st.selected]
	bought := stamp(st.boughtAt)
	out.SelectedRate = renderRate(st, sel)
	out.TrackingCode = &st.tracking
	out.PostageLabel = &jsonLabel{
		Object: "PostageLabel", ID: st.labelID, CreatedAt: bought, UpdatedAt: stamp(st.updated),
		IntegratedForm: "none", LabelDate: bought, LabelResolution: 300, LabelSize: "4x6",
		LabelType: "default", LabelFileType: "image/png", LabelURL: st.fileURL("png"),
		LabelPDFURL: st.formatURL("pdf"), LabelZPLURL: st.formatURL("zpl"), LabelEPL2URL: st.formatURL("epl2"),
	}
	out.Tracker = renderTracker(st)
	out.Fees = append(out.Fees, jsonFee{Object: "Fee", Type: "PostageFee", Amount: fee(sel.amount, 1), Charged: true})
	if st.insurance != "" {
		// EasyPost charges 0.5% of the insured value (1.24995 for 249.99).
		out.Fees = append(out.Fees, jsonFee{Object: "Fee", Type: "InsuranceFee", Amount: fee(st.insurance, 0.005), Charged: true})
	}
	return out
}

func (s *Server) renderList(page []any, more bool) any {
	if s.fx != nil {
		m := deepCopy(s.fx.list).(map[string]any)
		m["shipments"], m["has_more"] = page, more
		return m
	}
	return struct {
		Shipments []any `json:"shipments"`
		HasMore   bool  `json:"has_more"`
	}{page, more}
}

// shipmentOptions echoes the options sent over EasyPost's defaults.
func shipmentOptions(sent map[string]any) map[string]any {
	out := map[string]any{"currency": "USD", "payment": map[string]any{"type": "SENDER"}, "date_advance": 0}
	for k, v := range sent {
		out[k] = v
	}
	return out
}

func renderAddress(a address) *jsonAddress {
	in := a.in
	return &jsonAddress{
		ID: a.id, Object: "Address", Mode: "test",
		CreatedAt: stampOffset(a.created), UpdatedAt: stampOffset(a.created),
		Name: nullable(in.Name), Company: nullable(in.Company),
		Street1: nullable(in.Street1), Street2: nullable(in.Street2),
		City: nullable(in.City), State: nullable(in.State), Zip: nullable(in.Zip), Country: nullable(in.Country),
		Phone: nullable(in.Phone), Email: nullable(in.Email),
		CarrierFacility: nullable(in.CarrierFacility), Residential: in.Residential,
		FederalTaxID: nullable(in.FederalTaxID), StateTaxID: nullable(in.StateTaxID),
		Verifications: map[string]any{},
	}
}

func renderParcel(p parcel) *jsonParcel {
	return &jsonParcel{
		ID: p.id, Object: "Parcel", Mode: "test", CreatedAt: stamp(p.created), UpdatedAt: stamp(p.created),
		Length: p.in.Length, Width: p.in.Width, Height: p.in.Height, Weight: p.in.Weight,
		PredefinedPackage: nullable(p.in.PredefinedPackage),
	}
}

func renderRate(st *shipment, rt rate) *jsonRate {
	return &jsonRate{
		ID: rt.id, Object: "Rate", Mode: "test", CreatedAt: stamp(st.created), UpdatedAt: stamp(st.created),
		Service: rt.service, Carrier: rt.carrier, Rate: rt.amount, Currency: "USD",
		RetailRate: rt.retail, RetailCurrency: "USD", ListRate: rt.list, ListCurrency: "USD",
		BillingType: "easypost", DeliveryDays: rt.days, EstDeliveryDays: rt.days,
		ShipmentID: st.id, CarrierAccountID: rt.account,
	}
}

func renderTracker(st *shipment) *jsonTracker {
	return &jsonTracker{
		ID: st.trackerID, Object: "Tracker", Mode: "test", TrackingCode: st.tracking,
		Status: st.trackerStatus, StatusDetail: statusDetail(st.trackerStatus),
		CreatedAt: stamp(st.boughtAt), UpdatedAt: stamp(st.updated),
		ShipmentID: st.id, Carrier: st.rates[st.selected].carrier,
		TrackingDetails: []any{}, Fees: []any{},
	}
}

// statusDetail pairs a tracker status with one of EasyPost's status_detail
// values.
func statusDetail(status string) string {
	switch status {
	case "pre_transit":
		return "status_update"
	case "in_transit":
		return "arrived_at_facility"
	case "out_for_delivery":
		return "out_for_delivery"
	case "delivered":
		return "arrived_at_destination"
	case "return_to_sender":
		return "return"
	}
	return "unknown"
}

const labelPath = "/files/postage_label/"

func (st *shipment) fileURL(ext string) string {
	return st.fileBase + labelPath + st.id + "." + ext
}

// formatURL is the URL of a label converted to ext, null until it is.
func (st *shipment) formatURL(ext string) *string {
	if !st.formats[ext] {
		return nil
	}
	u := st.fileURL(ext)
	return &u
}

func fee(amount string, factor float64) string {
	f, err := strconv.ParseFloat(amount, 64)
	if err != nil {
		return amount
	}
	return fmt.Sprintf("%.5f", f*factor)
}

// stamp is EasyPost's time format for shipments ("2025-05-09T20:40:06Z");
// stampOffset its format for addresses ("2025-05-09T20:40:06+00:00").
func stamp(t time.Time) string       { return t.UTC().Format("2006-01-02T15:04:05Z") }
func stampOffset(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05+00:00") }

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
