package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/easypoststandin"
	"piivault/internal/testenv"
	"piivault/webhooks"
)

const testEasyPostKey = "EZTK_piivault_test"

// testShipFrom is the warehouse's return address (the merchant's own, not PII).
const testShipFrom = `{"company":"Piivault Test Warehouse","street1":"1 Dock Road","city":"Portland","state":"OR","zip":"97201","country":"US","phone":"5035550100"}`

// easyPost starts an EasyPost stand-in on loopback that the official
// client talks to; with fixtures, it answers EasyPost's published bodies.
func easyPost(t *testing.T, fixturesDir string) *easypoststandin.Server {
	t.Helper()
	s, err := easypoststandin.New(easypoststandin.Options{APIKey: testEasyPostKey, FixturesDir: fixturesDir})
	require.NoError(t, err)
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(s.Close)
	return s
}

// postageHarness is an instance that buys labels from ep.
func postageHarness(t *testing.T, env *testenv.Env, ep *easypoststandin.Server) *harness {
	t.Helper()
	return newHarness(t, env, map[string]string{"EASYPOST_API_KEY": testEasyPostKey, "EASYPOST_API_URL": ep.URL(),
		"PIIVAULT_SHIP_FROM": testShipFrom})
}

var smallParcel = map[string]any{"length": 9, "width": 6, "height": 3, "weight": 16}

func shipmentsBody(ids []string, extra ...any) map[string]any {
	b := map[string]any{"order_ids": ids, "parcel": smallParcel, "service": "cheapest", "reason": "label"}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// shipmentsOf returns the answer's shipments by order id.
func shipmentsOf(t *testing.T, r response) map[string]map[string]any {
	t.Helper()
	require.Equal(t, 200, r.Status, string(r.Raw))
	list, _ := r.Body["shipments"].([]any)
	out := map[string]map[string]any{}
	for _, s := range list {
		m := s.(map[string]any)
		out[m["order_id"].(string)] = m
	}
	return out
}

func orderIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%02d-%d", prefix, i, time.Now().UnixNano()%1e9)
	}
	return ids
}

// auditWith returns the trail's entries of action on order id.
func auditWith(t *testing.T, h *harness, action, id string) []audit.Entry {
	t.Helper()
	page, err := h.app.audit.List(context.Background(), audit.Filter{Action: action, OrderID: id, Limit: 100})
	require.NoError(t, err)
	return page.Entries
}

func TestBuyingLabelsForAPickListSendsAddressesOnlyToEasyPost(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	ids := orderIDs("lbl", 20)
	for _, id := range ids {
		h.storeOrder(id)
	}
	name, tok := h.login("fulfillment")

	r := h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids))
	got := shipmentsOf(t, r)
	require.Len(t, got, 20)
	list := r.Body["shipments"].([]any)
	for i, id := range ids {
		assert.Equal(t, id, list[i].(map[string]any)["order_id"], "answers come in the request's order")
		s := got[id]
		require.Nil(t, s["error"], "order %s: %v", id, s["error"])
		for _, f := range []string{"shipment_id", "tracking_code", "carrier", "service", "label_url"} {
			assert.NotEmpty(t, s[f], "order %s: %s", id, f)
		}
		assert.Equal(t, "PDF", s["label_format"])
		assert.Contains(t, s["label_url"], ".pdf")
		rate := s["rate"].(map[string]any)
		assert.NotEmpty(t, rate["amount"])
		assert.Equal(t, "USD", rate["currency"])
		assert.Equal(t, 1, ep.BoughtFor(id), "one label for %s", id)

		// Every decrypt is a reveal, disclosed to EasyPost, before anything was sent.
		reveals := auditWith(t, h, audit.ActionReveal, id)
		require.Len(t, reveals, 1)
		assert.Equal(t, "easypost", reveals[0].Detail["disclosed_to"])
		assert.Equal(t, "label", reveals[0].Detail["reason"])
		assert.Equal(t, name, reveals[0].Actor)
		bought := auditWith(t, h, audit.ActionLabelBought, id)
		require.Len(t, bought, 1)
		assert.Equal(t, s["tracking_code"], bought[0].Detail["tracking_code"])
		assert.True(t, reveals[0].Seq < bought[0].Seq, "the reveal is recorded before the label")

		// The reference shows the label, without PII.
		ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
		label := ref.Body["label"].(map[string]any)
		assert.Equal(t, s["tracking_code"], label["tracking_code"])
		assert.Equal(t, s["carrier"], label["carrier"])
		assert.NotEmpty(t, label["bought_at"])
	}

	// The address went to EasyPost, in each shipment's to_address…
	creates := 0
	for _, req := range ep.Requests() {
		if req.Method == "POST" && req.Path == "/v2/shipments" {
			creates++
			assert.Contains(t, string(req.Body), "742 Canarystreet")
			assert.Contains(t, string(req.Body), "Canaryname Zzyzx")
		}
	}
	assert.Equal(t, 20, creates)
	// …and nowhere else: not in the answer, Redis, serve's log or metrics.
	requireNoPII(t, "the answer", string(r.Raw))
	requireNoPII(t, "Redis", h.redisDump())
	requireNoPII(t, "serve's log", h.logs.String())
	requireNoPII(t, "metrics", string(h.call("GET", "/metrics", "", nil).Raw))

	// The queue shows them as labelled.
	q := h.call("GET", "/v1/fulfillment/queue?limit=500", tok, nil)
	labelled := 0
	for _, o := range q.Body["orders"].([]any) {
		m := o.(map[string]any)
		if _, ok := got[m["order_id"].(string)]; ok && m["label"] != nil {
			labelled++
		}
	}
	assert.Equal(t, 20, labelled)

	// EasyPost's tracker event for one label purges exactly that order.
	first := got[ids[3]]
	trk := trackerOf(t, ep, first["shipment_id"].(string))
	body := trackerUpdated("evt_lbl_"+ids[3], trk, first["tracking_code"].(string), "in_transit", first["shipment_id"].(string))
	ev := h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	require.Equal(t, "purged", ev.Body["outcome"], string(ev.Raw))
	for i, id := range ids {
		ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
		if i == 3 {
			assert.Equal(t, "shipped", ref.Body["status"])
			assert.Equal(t, "shipped", ref.Body["purge_reason"])
		} else {
			assert.Equal(t, "held", ref.Body["status"], id)
		}
	}

	// A purged order's label (an image of the address that is gone) is
	// never answered again.
	again := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{ids[3]})))[ids[3]]
	require.NotNil(t, again["error"])
	assert.Equal(t, "gone", again["error"].(map[string]any)["code"])
	assert.Nil(t, again["label_url"])

	// The access report says where the data went.
	sup, stok := h.login("support")
	_ = sup
	ar := h.call("POST", "/v1/access-requests", stok, map[string]any{"order_ids": []string{ids[5]}})
	require.Equal(t, 201, ar.Status, string(ar.Raw))
	ord := ar.Body["orders"].([]any)[0].(map[string]any)
	rv := ord["reveals"].([]any)[0].(map[string]any)
	assert.Equal(t, "easypost", rv["disclosed_to"])
}

// post sends a JSON POST from any goroutine: it asserts nothing, the
// caller checks the error on the test's goroutine.
func (h *harness) post(path, token string, body any) (response, error) {
	return h.do("POST", path, token, body)
}

// do is post with any method.
func (h *harness) do(method, path, token string, body any) (response, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return response{}, err
	}
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(raw))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", h.ip)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	out := response{Status: resp.StatusCode, Header: resp.Header}
	if out.Raw, err = io.ReadAll(resp.Body); err != nil {
		return out, err
	}
	return out, json.Unmarshal(out.Raw, &out.Body)
}

// trackerOf returns the tracker EasyPost created for a bought shipment.
func trackerOf(t *testing.T, ep *easypoststandin.Server, shipmentID string) string {
	t.Helper()
	for _, s := range ep.Shipments() {
		if s.ID == shipmentID && s.Tracker != nil {
			return s.Tracker.ID
		}
	}
	t.Fatalf("no tracker for %s", shipmentID)
	return ""
}

func TestALabelIsBoughtExactlyOnce(t *testing.T) {
	ep := easyPost(t, "")
	env := testenv.Shared(t)
	h := postageHarness(t, env, ep)
	other := postageHarness(t, env, ep) // a second instance on the same Vault and Redis
	_, tok := h.login("fulfillment")

	t.Run("double submit", func(t *testing.T) {
		ids := orderIDs("twice", 3)
		for _, id := range ids {
			h.storeOrder(id)
		}
		a := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids)))
		b := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids)))
		for _, id := range ids {
			assert.Equal(t, a[id]["shipment_id"], b[id]["shipment_id"])
			assert.Equal(t, a[id]["tracking_code"], b[id]["tracking_code"])
			assert.Equal(t, a[id]["label_url"], b[id]["label_url"])
			assert.Equal(t, 1, ep.BoughtFor(id))
			var toEasyPost, shown int
			for _, e := range auditWith(t, h, audit.ActionReveal, id) {
				switch {
				case e.Detail["disclosed_to"] == "easypost":
					toEasyPost++
				case e.Detail["via"] == "label_image":
					shown++
				}
			}
			assert.Equal(t, 1, toEasyPost, "a retry decrypts nothing")
			assert.Equal(t, 1, shown, "answering the label again (its link shows the address) is an audited reveal")
			assert.Len(t, auditWith(t, h, audit.ActionLabelBought, id), 1, "a retry writes no audit entry twice")
		}
	})

	t.Run("two instances at once", func(t *testing.T) {
		ids := orderIDs("race", 5)
		for _, id := range ids {
			h.storeOrder(id)
		}
		var wg sync.WaitGroup
		answers := make([]response, 4)
		errs := make([]error, 4)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				target := h
				if i%2 == 1 {
					target = other
				}
				answers[i], errs[i] = target.post("/v1/fulfillment/shipments", tok, shipmentsBody(ids))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		for _, id := range ids {
			assert.Equal(t, 1, ep.BoughtFor(id), "order %s", id)
			shipment := ""
			for _, a := range answers {
				s := shipmentsOf(t, a)[id]
				if s["error"] != nil {
					assert.Equal(t, "label_in_progress", s["error"].(map[string]any)["code"])
					continue
				}
				if shipment == "" {
					shipment = s["shipment_id"].(string)
				}
				assert.Equal(t, shipment, s["shipment_id"], "every answer is the one label")
			}
			assert.NotEmpty(t, shipment)
		}
	})

	t.Run("lost answers", func(t *testing.T) {
		for _, route := range []string{"buy", "create"} {
			id := orderIDs("lost-"+route, 1)[0]
			h.storeOrder(id)
			ep.FailNext(route, 1, easypoststandin.LoseAnswer)
			if route == "buy" {
				// The purchase looks at the shipment at once after a lost
				// answer; it is unavailable too, so only the next one can.
				ep.FailNext("get", 1, easypoststandin.Unavailable)
			}
			first := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
			require.NotNil(t, first["error"], "%s: EasyPost's answer was lost", route)
			code := first["error"].(map[string]any)["code"]
			assert.Contains(t, []any{"easypost_unavailable", "easypost_timeout"}, code)
			assert.Contains(t, []any{503.0, 504.0}, first["status"])

			again := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
			require.Nil(t, again["error"], "%s: %v", route, again["error"])
			assert.Equal(t, 1, ep.BoughtFor(id), "%s: the label bought is found again, not bought twice", route)
			assert.Equal(t, 1, ep.CreatedFor(id), "%s: the shipment created is found again by its reference", route)
			assert.Len(t, auditWith(t, h, audit.ActionLabelBought, id), 1)
		}
	})

	t.Run("EasyPost down", func(t *testing.T) {
		id := orderIDs("down", 1)[0]
		h.storeOrder(id)
		ep.SetDown(true)
		s := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
		ep.SetDown(false)
		require.NotNil(t, s["error"])
		assert.Equal(t, "easypost_unavailable", s["error"].(map[string]any)["code"])
		assert.Equal(t, 503.0, s["status"])
		assert.Equal(t, 0, ep.BoughtFor(id))
		ref := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
		assert.Nil(t, ref.Body["label"], "nothing half-written")
		s = shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
		require.Nil(t, s["error"], "%v", s["error"])
		assert.Equal(t, 1, ep.BoughtFor(id))
	})
}

func TestACarrierRejectingOneAddressFailsOnlyThatOrder(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	ids := orderIDs("rej", 3)
	for _, id := range ids[:2] {
		h.storeOrder(id)
	}
	bad := orderBody(ids[2])
	bad["shipping"].(map[string]any)["address"].(map[string]any)["line1"] = "1 " + easypoststandin.UndeliverableStreetWord + " Way"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, bad).Status)
	_, tok := h.login("fulfillment")
	got := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids)))
	for _, id := range ids[:2] {
		assert.Nil(t, got[id]["error"], id)
		assert.NotEmpty(t, got[id]["tracking_code"])
	}
	e := got[ids[2]]["error"].(map[string]any)
	assert.Equal(t, "address_rejected", e["code"])
	assert.Equal(t, 422.0, got[ids[2]]["status"])
	assert.NotContains(t, e["message"], easypoststandin.UndeliverableStreetWord, "EasyPost's message, which may quote the address, is not passed on")
	assert.Equal(t, 0, ep.BoughtFor(ids[2]))

	// Nothing was bought, so the address can be corrected, and the next
	// purchase sends the corrected one.
	fixed := orderBody(ids[2])["shipping"].(map[string]any)
	fixed["address"].(map[string]any)["line1"] = "14 Deliverable Way"
	r := h.call("PUT", "/v1/orders/"+ids[2]+"/shipping", h.apiKey, map[string]any{"shipping": fixed})
	require.Equal(t, 200, r.Status, string(r.Raw))
	s := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids[2:])))[ids[2]]
	require.Nil(t, s["error"], "%v", s["error"])
	assert.Equal(t, 1, ep.BoughtFor(ids[2]))
	assert.Equal(t, 2, ep.CreatedFor(ids[2]), "a new shipment with the corrected address")
}

func TestWhoMayBuyLabels(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	id := orderIDs("who", 1)[0]
	h.storeOrder(id)
	body := shipmentsBody([]string{id})

	_, sup := h.login("support")
	r := h.call("POST", "/v1/fulfillment/shipments", sup, body)
	assert.Equal(t, 403, r.Status, string(r.Raw))
	assert.Equal(t, 403, h.call("POST", "/v1/fulfillment/shipments", h.apiKey, body).Status, "a storefront key buys nothing")

	name, ful := h.login("fulfillment")
	require.NoError(t, h.env.Root.RemoveStaff(context.Background(), name))
	assert.Equal(t, 401, h.call("POST", "/v1/fulfillment/shipments", ful, body).Status, "a removed member's next request")

	_, admin := h.login("admin")
	_, ful2 := h.login("fulfillment")
	require.Equal(t, 200, h.call("POST", "/v1/fulfillment/rates", ful2, map[string]any{"order_ids": []string{"nope"},
		"parcel": smallParcel, "reason": "label"}).Status, "the token was looked up just now")
	require.Equal(t, 200, h.call("POST", "/v1/admin/lockdown", admin, map[string]any{"on": true}).Status)
	t.Cleanup(func() {
		_, err := h.app.lockdown.Set(context.Background(), false, "operator", "")
		require.NoError(t, err)
	})
	r = h.call("POST", "/v1/fulfillment/shipments", ful2, body)
	assert.Equal(t, 423, r.Status, string(r.Raw))
	assert.Equal(t, "locked_down", r.errorCode())
	assert.Empty(t, ep.Requests(), "nothing reached EasyPost")
	assert.Len(t, auditWith(t, h, audit.ActionReveal, id), 0)
}

func TestLabelRequestsAreValidated(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	_, tok := h.login("fulfillment")
	id := orderIDs("val", 1)[0]
	h.storeOrder(id)
	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"no orders", shipmentsBody([]string{}), "order_ids"},
		{"too many", shipmentsBody(orderIDs("many", 51)), "order_ids"},
		{"no parcel weight", shipmentsBody([]string{id}, "parcel", map[string]any{"length": 1, "width": 1, "height": 1}), "parcel"},
		{"no parcel size", shipmentsBody([]string{id}, "parcel", map[string]any{"weight": 3}), "parcel"},
		{"bad service", shipmentsBody([]string{id}, "service", "fastest please"), "service"},
		{"bad reason", shipmentsBody([]string{id}, "reason", "curious"), "reason"},
		{"bad format", shipmentsBody([]string{id}, "label_format", "GIF"), "label_format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.call("POST", "/v1/fulfillment/shipments", tok, tc.body)
			require.Equal(t, 422, r.Status, string(r.Raw))
			assert.Contains(t, fmt.Sprint(r.Body["error"].(map[string]any)["fields"]), tc.field)
		})
	}
	r := h.call("POST", "/v1/fulfillment/shipments", tok, []byte(`{"order_ids":["x"],"surprise":1}`))
	assert.Equal(t, 400, r.Status)
	assert.Empty(t, ep.Requests(), "bad input changes nothing")

	// A predefined package and a carrier's service, as a thermal printer's ZPL.
	r = h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id},
		"parcel", map[string]any{"predefined_package": "FlatRateEnvelope", "weight": 10}, "service", "usps:priority", "label_format", "zpl"))
	s := shipmentsOf(t, r)[id]
	require.Nil(t, s["error"], "%v", s["error"])
	assert.Equal(t, "Priority", s["service"])
	assert.Equal(t, "ZPL", s["label_format"])
	assert.Contains(t, s["label_url"], ".zpl")

	// No rate for the service asked: that order's error.
	other := orderIDs("norate", 1)[0]
	h.storeOrder(other)
	s = shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{other}, "service", "DHL:Teleport")))[other]
	assert.Equal(t, "no_rate", s["error"].(map[string]any)["code"])
	assert.Equal(t, 0, ep.BoughtFor(other))
}

func TestLabelRoutesAnswer404WithoutAnEasyPostKey(t *testing.T) {
	h := newHarness(t, nil, nil)
	_, tok := h.login("fulfillment")
	for _, path := range []string{"/v1/fulfillment/shipments", "/v1/fulfillment/rates", "/v1/fulfillment/shipments/o-1/refund"} {
		r := h.call("POST", path, tok, shipmentsBody([]string{"o-1"}))
		assert.Equal(t, 404, r.Status, path)
		assert.Equal(t, "not_configured", r.errorCode(), path)
	}
}

func TestRatesAndRefund(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	_, tok := h.login("fulfillment")
	id := orderIDs("rate", 1)[0]
	h.storeOrder(id)

	r := h.call("POST", "/v1/fulfillment/rates", tok, shipmentsBody([]string{id}))
	require.Equal(t, 200, r.Status, string(r.Raw))
	rates := r.Body["rates"].([]any)[0].(map[string]any)
	list := rates["rates"].([]any)
	require.NotEmpty(t, list)
	first := list[0].(map[string]any)
	assert.NotEmpty(t, first["carrier"])
	assert.NotEmpty(t, first["amount"])
	assert.Equal(t, 0, ep.BoughtFor(id), "rates buy nothing")
	reveals := auditWith(t, h, audit.ActionReveal, id)
	require.Len(t, reveals, 1)
	assert.Equal(t, "easypost", reveals[0].Detail["disclosed_to"])
	requireNoPII(t, "the rates answer", string(r.Raw))

	s := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
	require.Nil(t, s["error"])
	ref := h.call("POST", "/v1/fulfillment/shipments/"+id+"/refund", tok, nil)
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	assert.Equal(t, "submitted", ref.Body["refund_status"])
	assert.Equal(t, s["shipment_id"], ref.Body["shipment_id"])
	order := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
	assert.Equal(t, "held", order.Body["status"], "a refund keeps the order held")
	assert.Nil(t, order.Body["label"])
	assert.Len(t, auditWith(t, h, audit.ActionLabelRefunded, id), 1)
	// The refunded label's tracker no longer names the order.
	body := trackerUpdated("evt_refunded_"+id, trackerOf(t, ep, s["shipment_id"].(string)), s["tracking_code"].(string), "in_transit", "")
	ev := h.call("POST", "/v1/webhooks/easypost", "", body, "X-Hmac-Signature", webhooks.SignEasyPost(testEasyPostSecret, body))
	assert.Equal(t, "unknown_order", ev.Body["outcome"], string(ev.Raw))
	assert.Equal(t, "held", h.call("GET", "/v1/orders/"+id, h.apiKey, nil).Body["status"])

	again := h.call("POST", "/v1/fulfillment/shipments/"+id+"/refund", tok, nil)
	assert.Equal(t, 404, again.Status)
	assert.Equal(t, "no_label", again.errorCode())
	// A new label can be bought after a refund.
	s2 := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
	require.Nil(t, s2["error"])
	assert.NotEqual(t, s["shipment_id"], s2["shipment_id"])
	assert.False(t, strings.Contains(string(ref.Raw), "Canary"))
}

// TestEasyPostAPIConformance buys, recovers, rates and refunds against
// EasyPost's own published API answers ($PIIVAULT_PROVIDER_FIXTURES/
// easypost-api, served by the stand-in with only ids, reference and
// addresses substituted), through the official client.
func TestEasyPostAPIConformance(t *testing.T) {
	dir := os.Getenv(providerFixturesVar)
	if dir == "" {
		t.Skip("PIIVAULT_PROVIDER_FIXTURES is not set: EasyPost API conformance not run")
	}
	ep := easyPost(t, filepath.Join(dir, "easypost-api"))
	h := postageHarness(t, nil, ep)
	_, tok := h.login("fulfillment")
	ids := orderIDs("conf", 3)
	for _, id := range ids {
		h.storeOrder(id)
	}
	r := h.call("POST", "/v1/fulfillment/rates", tok, shipmentsBody(ids[:1]))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.NotEmpty(t, r.Body["rates"].([]any)[0].(map[string]any)["rates"])

	ep.FailNext("buy", 1, easypoststandin.LoseAnswer)
	ep.FailNext("get", 1, easypoststandin.Unavailable)
	got := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids, "label_format", "ZPL")))
	lost := 0
	for _, id := range ids {
		if got[id]["error"] != nil {
			lost++
		}
	}
	require.Equal(t, 1, lost, "one purchase's answer was lost")
	got = shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody(ids, "label_format", "ZPL")))
	for _, id := range ids {
		s := got[id]
		require.Nil(t, s["error"], "%s: %v", id, s["error"])
		assert.Equal(t, 1, ep.BoughtFor(id))
		assert.Equal(t, "ZPL", s["label_format"])
		assert.True(t, strings.HasSuffix(s["label_url"].(string), ".zpl"), s["label_url"])
		assert.NotEmpty(t, s["tracking_code"])
	}
	requireNoPII(t, "Redis", h.redisDump())
	ref := h.call("POST", "/v1/fulfillment/shipments/"+ids[1]+"/refund", tok, nil)
	require.Equal(t, 200, ref.Status, string(ref.Raw))
	assert.Equal(t, "submitted", ref.Body["refund_status"])
}
