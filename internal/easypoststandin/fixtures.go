package easypoststandin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// FixtureFiles are the published EasyPost bodies fixtures mode needs, as
// named in EasyPost/examples official/docs/responses (shipments/…,
// shipping-refund/…, trackers/…).
var FixtureFiles = []string{
	"shipments-create.json",       // POST /v2/shipments
	"shipments-one-call-buy.json", // POST /v2/shipments with carrier and service
	"shipments-retrieve.json",     // GET /v2/shipments/{id}, not bought
	"shipments-buy.json",          // POST …/buy, and GET once bought
	"shipments-label.json",        // GET …/label, and GET once converted
	"shipments-list.json",         // GET /v2/shipments (its envelope)
	"shipping-refund-refund.json", // POST …/refund, and GET once refunded
	"trackers-retrieve.json",      // the Tracker in TrackerEvent
}

// fixtures answers with EasyPost's published bodies, changing only the ids,
// the reference, the addresses and parcel sent, tracking codes and label
// URLs. Everything else (timestamps, fees, customs_info, insurance, …)
// stays as published.
type fixtures struct {
	create, oneCall, retrieve, buy, label, list, refund, tracker map[string]any
	rates                                                        []rateSpec
}

func loadFixtures(dir string) (*fixtures, error) {
	load := func(name string) (map[string]any, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("easypoststandin: fixtures: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // numbers go back out as published ("5.0", not 5)
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("easypoststandin: fixtures: %s: %w", name, err)
		}
		return m, nil
	}
	maps := make([]map[string]any, len(FixtureFiles))
	for i, name := range FixtureFiles {
		m, err := load(name)
		if err != nil {
			return nil, err
		}
		maps[i] = m
	}
	f := &fixtures{create: maps[0], oneCall: maps[1], retrieve: maps[2], buy: maps[3],
		label: maps[4], list: maps[5], refund: maps[6], tracker: maps[7]}

	for name, m := range map[string]map[string]any{"shipments-create.json": f.create, "shipments-retrieve.json": f.retrieve} {
		if str(m["object"]) != "Shipment" || m["postage_label"] != nil {
			return nil, fmt.Errorf("easypoststandin: fixtures: %s is not an unbought Shipment", name)
		}
	}
	for name, m := range map[string]map[string]any{"shipments-one-call-buy.json": f.oneCall,
		"shipments-buy.json": f.buy, "shipments-label.json": f.label, "shipping-refund-refund.json": f.refund} {
		if str(m["object"]) != "Shipment" || objectOf(m["postage_label"]) != "PostageLabel" || objectOf(m["tracker"]) != "Tracker" {
			return nil, fmt.Errorf("easypoststandin: fixtures: %s is not a bought Shipment", name)
		}
	}
	if _, ok := f.list["shipments"].([]any); !ok {
		return nil, fmt.Errorf("easypoststandin: fixtures: shipments-list.json has no shipments")
	}
	if objectOf(f.tracker) != "Tracker" {
		return nil, fmt.Errorf("easypoststandin: fixtures: trackers-retrieve.json is not a Tracker")
	}
	rates, _ := f.create["rates"].([]any)
	for _, r := range rates {
		rm, _ := r.(map[string]any)
		carrier, service := str(rm["carrier"]), str(rm["service"])
		if carrier == "" || service == "" {
			return nil, fmt.Errorf("easypoststandin: fixtures: shipments-create.json has a rate without carrier and service")
		}
		f.rates = append(f.rates, rateSpec{carrier: carrier, service: service})
	}
	if len(f.rates) == 0 {
		return nil, fmt.Errorf("easypoststandin: fixtures: shipments-create.json has no rates")
	}
	return f, nil
}

func (f *fixtures) template(st *shipment, v view) map[string]any {
	switch v {
	case viewCreate:
		return f.create
	case viewOneCall:
		return f.oneCall
	case viewBuy:
		return f.buy
	case viewLabel:
		return f.label
	case viewRefund:
		return f.refund
	}
	switch {
	case st.refundStatus != "":
		return f.refund
	case len(st.formats) > 0:
		return f.label
	case st.bought:
		return f.buy
	}
	return f.retrieve
}

func (f *fixtures) render(st *shipment, v view) map[string]any {
	m := deepCopy(f.template(st, v)).(map[string]any)
	m["id"] = st.id
	set(m, "reference", orNull(st.ref))
	// EasyPost's bodies repeat the to address as buyer_address and the
	// from address as return_address (same ids).
	setAddress(m["to_address"], st.to)
	setAddress(m["buyer_address"], st.to)
	setAddress(m["from_address"], st.from)
	setAddress(m["return_address"], st.from)
	if p, ok := m["parcel"].(map[string]any); ok {
		in := st.parcel.in
		set(p, "id", st.parcel.id)
		set(p, "length", orNullF(in.Length))
		set(p, "width", orNullF(in.Width))
		set(p, "height", orNullF(in.Height))
		set(p, "weight", orNullF(in.Weight))
		set(p, "predefined_package", orNull(in.PredefinedPackage))
	}
	rates, _ := m["rates"].([]any)
	kept := rates[:0]
	for _, r := range rates {
		if rm, ok := r.(map[string]any); ok && f.setRate(rm, st) {
			kept = append(kept, rm)
		}
	}
	m["rates"] = kept
	if !st.bought {
		return m
	}
	// The published selected_rate if it is the rate bought, else the
	// published rate of that carrier and service.
	sel := st.rates[st.selected]
	if r, ok := m["selected_rate"].(map[string]any); ok && rateIs(r, sel) {
		f.setRate(r, st)
	} else if i := slices.IndexFunc(kept, func(r any) bool { return rateIs(r, sel) }); i >= 0 {
		m["selected_rate"] = deepCopy(kept[i])
	} else if r := f.createRate(sel); r != nil {
		f.setRate(r, st)
		m["selected_rate"] = r
	}
	set(m, "tracking_code", st.tracking)
	if t, ok := m["tracker"].(map[string]any); ok {
		set(t, "id", st.trackerID)
		set(t, "tracking_code", st.tracking)
		set(t, "shipment_id", st.id)
		if st.trackerSet {
			set(t, "status", st.trackerStatus)
		}
	}
	if l, ok := m["postage_label"].(map[string]any); ok {
		set(l, "id", st.labelID)
		set(l, "label_url", st.fileURL("png"))
		set(l, "label_pdf_url", ptrOrNull(st.formatURL("pdf")))
		set(l, "label_zpl_url", ptrOrNull(st.formatURL("zpl")))
		set(l, "label_epl2_url", ptrOrNull(st.formatURL("epl2")))
	}
	return m
}

// setRate gives a published rate the id of the shipment's rate of the same
// carrier and service; false if the shipment has none.
func (f *fixtures) setRate(rm map[string]any, st *shipment) bool {
	i := slices.IndexFunc(st.rates, func(rt rate) bool { return rateIs(rm, rt) })
	if i < 0 {
		return false
	}
	set(rm, "id", st.rates[i].id)
	set(rm, "shipment_id", st.id)
	return true
}

func (f *fixtures) createRate(rt rate) map[string]any {
	rates, _ := f.create["rates"].([]any)
	if i := slices.IndexFunc(rates, func(r any) bool { return rateIs(r, rt) }); i >= 0 {
		return deepCopy(rates[i]).(map[string]any)
	}
	return nil
}

func rateIs(r any, rt rate) bool {
	rm, _ := r.(map[string]any)
	return str(rm["carrier"]) == rt.carrier && str(rm["service"]) == rt.service
}

// trackerResult is the published Tracker for st.
func (f *fixtures) trackerResult(st *shipment) map[string]any {
	t := deepCopy(f.tracker).(map[string]any)
	set(t, "id", st.trackerID)
	set(t, "tracking_code", st.tracking)
	set(t, "shipment_id", st.id)
	set(t, "status", st.trackerStatus)
	return t
}

func setAddress(v any, a address) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	in := a.in
	m["id"] = a.id
	for k, val := range map[string]string{
		"name": in.Name, "company": in.Company, "street1": in.Street1, "street2": in.Street2,
		"city": in.City, "state": in.State, "zip": in.Zip, "country": in.Country,
		"phone": in.Phone, "email": in.Email, "carrier_facility": in.CarrierFacility,
		"federal_tax_id": in.FederalTaxID, "state_tax_id": in.StateTaxID,
	} {
		set(m, k, orNull(val))
	}
}

// set changes a published field, never adding one the body lacks.
func set(m map[string]any, k string, v any) {
	if _, ok := m[k]; ok {
		m[k] = v
	}
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = deepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = deepCopy(x)
		}
		return s
	}
	return v
}

func objectOf(v any) string {
	m, _ := v.(map[string]any)
	return str(m["object"])
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orNullF(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func ptrOrNull(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
