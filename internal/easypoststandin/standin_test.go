package easypoststandin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EasyPost/easypost-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/internal/easypoststandin"
)

const testKey = "EZTKstandin0000000000000000000"

var (
	shipmentID = regexp.MustCompile(`^shp_[0-9a-f]{32}$`)
	digits     = regexp.MustCompile(`^[0-9]{22}$`)
)

func start(t *testing.T, fixturesDir string) *easypoststandin.Server {
	t.Helper()
	s, err := easypoststandin.New(easypoststandin.Options{APIKey: testKey, FixturesDir: fixturesDir})
	require.NoError(t, err)
	require.NoError(t, s.Start("127.0.0.1:0"))
	t.Cleanup(s.Close)
	return s
}

// client is the official client pointed at s, with its own http.Client:
// the library sets the Timeout of the one it uses.
func client(t *testing.T, s *easypoststandin.Server, key string) *easypost.Client {
	t.Helper()
	c := easypost.New(key)
	var err error
	c.BaseURL, err = url.Parse(s.URL())
	require.NoError(t, err)
	c.Client = &http.Client{}
	return c
}

func order(ref string) *easypost.Shipment {
	return &easypost.Shipment{
		Reference: ref,
		ToAddress: &easypost.Address{Name: "Ada Lovelace", Street1: "12 Analytical Engine Rd", City: "Springfield",
			State: "IL", Zip: "62701", Country: "US", Phone: "5555550100", Email: "ada@example.com"},
		FromAddress: &easypost.Address{Company: "Example Shop", Street1: "1 Warehouse Way", City: "Springfield",
			State: "IL", Zip: "62702", Country: "US"},
		Parcel: &easypost.Parcel{Length: 10, Width: 8, Height: 4, Weight: 15.4},
	}
}

func rateOf(t *testing.T, shp *easypost.Shipment, carrier, service string) *easypost.Rate {
	t.Helper()
	for _, r := range shp.Rates {
		if r.Carrier == carrier && r.Service == service {
			return r
		}
	}
	t.Fatalf("no %s %s rate", carrier, service)
	return nil
}

func buyOne(t *testing.T, c *easypost.Client, ref string) *easypost.Shipment {
	t.Helper()
	shp, err := c.CreateShipment(order(ref))
	require.NoError(t, err)
	bought, err := c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "GroundAdvantage"), "")
	require.NoError(t, err)
	return bought
}

// apiError unwraps the client's error into EasyPost's answer.
func apiError(t *testing.T, err error, status int, code string) *easypost.APIError {
	t.Helper()
	require.Error(t, err)
	var api *easypost.APIError
	require.True(t, errors.As(err, &api), "not an EasyPost answer: %v", err)
	assert.Equal(t, status, api.StatusCode)
	assert.Equal(t, code, api.Code)
	return api
}

func fields(api *easypost.APIError) []string {
	list, _ := api.Errors.([]interface{})
	var out []string
	for _, e := range list {
		if fe, ok := e.(*easypost.FieldError); ok {
			out = append(out, fe.Field)
		}
	}
	return out
}

func fetch(t *testing.T, u string) (int, string, []byte) {
	t.Helper()
	res, err := http.Get(u)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

// raw sends a request as any HTTP client would, with the test key.
func raw(t *testing.T, s *easypost.Client, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(s.BaseURL.String(), "/")+path, rd)
	require.NoError(t, err)
	req.SetBasicAuth(s.APIKey, "")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	return res.StatusCode, m
}

func TestCreateBuyGetLabelListRefund(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)

	shp, err := c.CreateShipment(order("order-1"))
	require.NoError(t, err)
	assert.Regexp(t, shipmentID, shp.ID)
	assert.Equal(t, "Shipment", shp.Object)
	assert.Equal(t, "test", shp.Mode)
	assert.Equal(t, "order-1", shp.Reference)
	assert.Equal(t, "unknown", shp.Status)
	assert.NotNil(t, shp.CreatedAt)
	assert.Regexp(t, `^adr_[0-9a-f]{32}$`, shp.ToAddress.ID)
	assert.Equal(t, "12 Analytical Engine Rd", shp.ToAddress.Street1)
	assert.Equal(t, "Example Shop", shp.FromAddress.Company)
	assert.Regexp(t, `^prcl_[0-9a-f]{32}$`, shp.Parcel.ID)
	assert.InDelta(t, 15.4, shp.Parcel.Weight, 1e-9)
	assert.Equal(t, "USD", shp.Options.Currency)
	assert.Nil(t, shp.PostageLabel)
	require.Len(t, shp.Rates, 4)
	for _, r := range shp.Rates {
		assert.Regexp(t, `^rate_[0-9a-f]{32}$`, r.ID)
		assert.Equal(t, shp.ID, r.ShipmentID)
	}
	lowest, err := c.LowestShipmentRateWithCarrier(shp, []string{"USPS"})
	require.NoError(t, err)
	assert.Equal(t, "GroundAdvantage", lowest.Service)
	assert.Equal(t, "8.20", lowest.Rate)
	assert.Equal(t, "11.01", rateOf(t, shp, "USPS", "Priority").Rate)
	assert.Equal(t, "51.20", rateOf(t, shp, "USPS", "Express").Rate)
	rateOf(t, shp, "UPS", "Ground")

	bought, err := c.BuyShipment(shp.ID, &lowest, "100.00")
	require.NoError(t, err)
	assert.Equal(t, lowest.ID, bought.SelectedRate.ID)
	assert.Regexp(t, digits, bought.TrackingCode)
	assert.Equal(t, "100.00", bought.Insurance)
	pl := bought.PostageLabel
	require.NotNil(t, pl)
	assert.Equal(t, "PostageLabel", pl.Object)
	assert.Regexp(t, `^pl_[0-9a-f]{32}$`, pl.ID)
	assert.Equal(t, "4x6", pl.LabelSize)
	assert.Equal(t, "image/png", pl.LabelFileType)
	assert.Equal(t, strings.TrimSuffix(s.URL(), "/v2/")+"/files/postage_label/"+shp.ID+".png", pl.LabelURL)
	assert.Empty(t, pl.LabelPDFURL)
	trk := bought.Tracker
	require.NotNil(t, trk)
	assert.Regexp(t, `^trk_[0-9a-f]{32}$`, trk.ID)
	assert.Equal(t, "Tracker", trk.Object)
	assert.Equal(t, "pre_transit", trk.Status)
	assert.Equal(t, bought.TrackingCode, trk.TrackingCode)
	assert.Equal(t, shp.ID, trk.ShipmentID)
	assert.Equal(t, "USPS", trk.Carrier)

	got, err := c.GetShipment(shp.ID)
	require.NoError(t, err)
	assert.Equal(t, bought.TrackingCode, got.TrackingCode)
	assert.Equal(t, bought.PostageLabel.LabelURL, got.PostageLabel.LabelURL)

	status, ctype, body := fetch(t, pl.LabelURL)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "image/png", ctype)
	cfg, err := png.DecodeConfig(bytes.NewReader(body))
	require.NoError(t, err)
	assert.Equal(t, [2]int{1200, 1800}, [2]int{cfg.Width, cfg.Height})

	for _, tt := range []struct {
		format string
		url    func(*easypost.PostageLabel) string
		starts string
		ends   string
	}{
		{"PDF", func(l *easypost.PostageLabel) string { return l.LabelPDFURL }, "%PDF-1.4\n", "%%EOF\n"},
		{"ZPL", func(l *easypost.PostageLabel) string { return l.LabelZPLURL }, "^XA", "^XZ\n"},
		{"EPL2", func(l *easypost.PostageLabel) string { return l.LabelEPL2URL }, "N\n", "P1\n"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			conv, err := c.GetShipmentLabel(shp.ID, tt.format)
			require.NoError(t, err)
			u := tt.url(conv.PostageLabel)
			require.NotEmpty(t, u)
			assert.Equal(t, pl.LabelURL, conv.PostageLabel.LabelURL)
			status, _, body := fetch(t, u)
			require.Equal(t, http.StatusOK, status)
			assert.True(t, strings.HasPrefix(string(body), tt.starts), "%q", body)
			assert.True(t, strings.HasSuffix(string(body), tt.ends), "%q", body)
		})
	}

	// Newer shipments push order-1 off the first page: paging finds it.
	for i := range 3 {
		buyOne(t, c, fmt.Sprintf("order-later-%d", i))
	}
	page, err := c.ListShipments(&easypost.ListShipmentsOptions{PageSize: 2})
	require.NoError(t, err)
	var found *easypost.Shipment
	pages := 1
	for found == nil {
		for _, sh := range page.Shipments {
			if sh.Reference == "order-1" {
				found = sh
			}
		}
		if found != nil {
			break
		}
		page, err = c.GetNextShipmentPage(page)
		require.NoError(t, err)
		pages++
	}
	assert.Equal(t, 2, pages)
	assert.Equal(t, shp.ID, found.ID)
	assert.Equal(t, bought.TrackingCode, found.TrackingCode)

	refunded, err := c.RefundShipment(shp.ID)
	require.NoError(t, err)
	assert.Equal(t, "submitted", refunded.RefundStatus)
	again, err := c.RefundShipment(shp.ID)
	require.NoError(t, err, "asking again answers the same refund")
	assert.Equal(t, "submitted", again.RefundStatus)

	assert.Equal(t, 1, s.BoughtFor("order-1"))
	assert.Equal(t, 4, s.Bought())
}

func TestAPIKey(t *testing.T) {
	s := start(t, "")
	for _, tt := range []struct {
		name string
		auth func(*http.Request)
	}{
		{"no auth", func(*http.Request) {}},
		{"wrong key", func(r *http.Request) { r.SetBasicAuth("EZTKwrong", "") }},
		{"key as password", func(r *http.Request) { r.SetBasicAuth("", testKey) }},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testKey) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, s.URL()+"shipments", nil)
			require.NoError(t, err)
			tt.auth(req)
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
			var body struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
					Errors  []any  `json:"errors"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
			assert.Equal(t, easypoststandin.CodeAPIKeyRequired, body.Error.Code)
			assert.NotEmpty(t, body.Error.Message)
			assert.NotNil(t, body.Error.Errors)
		})
	}
	t.Run("official client", func(t *testing.T) {
		_, err := client(t, s, "EZTKwrong").CreateShipment(order("order-key"))
		apiError(t, err, http.StatusUnauthorized, easypoststandin.CodeAPIKeyRequired)
		var unauthorized *easypost.UnauthorizedError
		assert.True(t, errors.As(err, &unauthorized))
		assert.Empty(t, s.Shipments())
	})
}

func TestBuyingTwiceIsRefused(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	shp, err := c.CreateShipment(order("order-twice"))
	require.NoError(t, err)
	_, err = c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "Priority"), "")
	require.NoError(t, err)
	for _, service := range []string{"Priority", "Express"} {
		_, err = c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", service), "")
		var invalid *easypost.InvalidRequestError
		assert.True(t, errors.As(err, &invalid))
		apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodePostageExists)
	}
	assert.Equal(t, 1, s.BoughtFor("order-twice"))
}

func TestConcurrentBuysBuyOneLabel(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	shp, err := c.CreateShipment(order("order-race"))
	require.NoError(t, err)
	rate := rateOf(t, shp, "USPS", "GroundAdvantage")
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Go(func() { _, results[i] = client(t, s, testKey).BuyShipment(shp.ID, rate, "") })
	}
	wg.Wait()
	ok := 0
	for _, err := range results {
		if err == nil {
			ok++
			continue
		}
		apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodePostageExists)
	}
	assert.Equal(t, 1, ok)
	assert.Equal(t, 1, s.BoughtFor("order-race"))
}

func TestUndeliverableAddressIsRefusedAtPurchase(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	for _, tt := range []struct {
		street1 string
		refused bool
	}{
		{"1 " + easypoststandin.UndeliverableStreetWord + " St", true},
		{"1 undeliverable road", true},
		{"Undeliverable-Lane 4", true},
		{"12 Undeliverables Ave", false},
		{"12 Analytical Engine Rd", false},
	} {
		t.Run(tt.street1, func(t *testing.T) {
			ref := "order-" + tt.street1
			in := order(ref)
			in.ToAddress.Street1 = tt.street1
			shp, err := c.CreateShipment(in)
			require.NoError(t, err, "EasyPost creates shipments without verifying them")
			_, err = c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "GroundAdvantage"), "")
			if !tt.refused {
				require.NoError(t, err)
				return
			}
			api := apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodePostageFailure)
			assert.Equal(t, []string{"to_address"}, fields(api))
			assert.NotContains(t, api.Error(), tt.street1)
			assert.Zero(t, s.BoughtFor(ref))
			got, err := c.GetShipment(shp.ID)
			require.NoError(t, err)
			assert.Empty(t, got.TrackingCode)
		})
	}
	t.Run("one-call buy", func(t *testing.T) {
		in := order("order-one-call-undeliverable")
		in.ToAddress.Street1 = "9 UNDELIVERABLE ST"
		in.Carrier, in.Service = "USPS", "Priority"
		_, err := c.CreateShipment(in)
		apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodePostageFailure)
		assert.Zero(t, s.BoughtFor("order-one-call-undeliverable"))
	})
}

func TestLostBuyAnswerStillBuys(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	shp, err := c.CreateShipment(order("order-lost"))
	require.NoError(t, err)
	s.FailNext(easypoststandin.RouteBuy, 1, easypoststandin.LoseAnswer)
	_, err = c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "GroundAdvantage"), "")
	require.Error(t, err)
	var api *easypost.APIError
	assert.False(t, errors.As(err, &api), "a network error, not an answer: %v", err)

	assert.Equal(t, 1, s.BoughtFor("order-lost"))
	got, err := c.GetShipment(shp.ID)
	require.NoError(t, err)
	assert.Regexp(t, digits, got.TrackingCode)
	require.NotNil(t, got.PostageLabel)
	assert.NotEmpty(t, got.PostageLabel.LabelURL)

	// A blind retry is refused; the shipment is found again by reference.
	_, err = c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "GroundAdvantage"), "")
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodePostageExists)
	list, err := c.ListShipments(&easypost.ListShipmentsOptions{})
	require.NoError(t, err)
	require.Len(t, list.Shipments, 1)
	assert.Equal(t, "order-lost", list.Shipments[0].Reference)
	assert.Equal(t, 1, s.BoughtFor("order-lost"))
}

func TestCreateRequiresAddressesAndParcel(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	for _, tt := range []struct {
		name   string
		change func(*easypost.Shipment)
		code   string
		fields []string
	}{
		{"empty shipment", func(sh *easypost.Shipment) { *sh = easypost.Shipment{} },
			easypoststandin.CodeParameterRequired, []string{"shipment"}},
		{"no to_address", func(sh *easypost.Shipment) { sh.ToAddress = nil },
			easypoststandin.CodeParameterRequired, []string{"to_address"}},
		{"no street1", func(sh *easypost.Shipment) { sh.ToAddress.Street1 = "" },
			easypoststandin.CodeParameterRequired, []string{"to_address.street1"}},
		{"no city, zip, country", func(sh *easypost.Shipment) { sh.ToAddress.City, sh.ToAddress.Zip, sh.ToAddress.Country = "", "", "" },
			easypoststandin.CodeParameterRequired, []string{"to_address.city", "to_address.zip", "to_address.country"}},
		{"neither name nor company", func(sh *easypost.Shipment) { sh.ToAddress.Name = "" },
			easypoststandin.CodeParameterRequired, []string{"to_address.name"}},
		{"blank street1", func(sh *easypost.Shipment) { sh.ToAddress.Street1 = "  " },
			easypoststandin.CodeParameterRequired, []string{"to_address.street1"}},
		{"from_address without zip", func(sh *easypost.Shipment) { sh.FromAddress.Zip = "" },
			easypoststandin.CodeParameterRequired, []string{"from_address.zip"}},
		{"no parcel", func(sh *easypost.Shipment) { sh.Parcel = nil },
			easypoststandin.CodeParameterRequired, []string{"parcel"}},
		{"no weight", func(sh *easypost.Shipment) { sh.Parcel.Weight = 0 },
			easypoststandin.CodeParameterRequired, []string{"parcel.weight"}},
		{"no dimensions", func(sh *easypost.Shipment) { sh.Parcel = &easypost.Parcel{Weight: 3} },
			easypoststandin.CodeParameterRequired, []string{"parcel.length", "parcel.width", "parcel.height"}},
		{"negative weight", func(sh *easypost.Shipment) { sh.Parcel.Weight = -1 },
			easypoststandin.CodeShipmentInvalidParams, []string{"parcel.weight"}},
		{"predefined package", func(sh *easypost.Shipment) {
			sh.Parcel = &easypost.Parcel{Weight: 3, PredefinedPackage: "FlatRateEnvelope"}
		},
			"", nil},
		{"company only", func(sh *easypost.Shipment) { sh.ToAddress.Name, sh.ToAddress.Company = "", "Acme" },
			"", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := order("order-" + tt.name)
			tt.change(in)
			before := len(s.Shipments())
			shp, err := c.CreateShipment(in)
			if tt.code == "" {
				require.NoError(t, err)
				assert.Regexp(t, shipmentID, shp.ID)
				return
			}
			api := apiError(t, err, http.StatusUnprocessableEntity, tt.code)
			assert.Equal(t, tt.fields, fields(api))
			assert.Len(t, s.Shipments(), before, "nothing created")
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, s.URL()+"shipments", strings.NewReader("{"))
		require.NoError(t, err)
		req.SetBasicAuth(testKey, "")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	})
}

func TestOneCallBuy(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	in := order("order-one-call")
	in.Carrier, in.Service = "USPS", "Priority"
	shp, err := c.CreateShipment(in)
	require.NoError(t, err)
	assert.Equal(t, "Priority", shp.SelectedRate.Service)
	assert.Equal(t, "11.01", shp.SelectedRate.Rate)
	assert.Regexp(t, digits, shp.TrackingCode)
	assert.Equal(t, "pre_transit", shp.Tracker.Status)
	assert.Equal(t, 1, s.BoughtFor("order-one-call"))

	in = order("order-one-call-teleport")
	in.Carrier, in.Service = "USPS", "Teleport"
	_, err = c.CreateShipment(in)
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodePostageFailure)
	assert.Zero(t, s.BoughtFor("order-one-call-teleport"))
}

func TestBuyNeedsARateOfTheShipment(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	a, err := c.CreateShipment(order("order-a"))
	require.NoError(t, err)
	b, err := c.CreateShipment(order("order-b"))
	require.NoError(t, err)

	_, err = c.BuyShipment(a.ID, rateOf(t, b, "USPS", "Priority"), "")
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodeUnprocessable)
	_, err = c.BuyShipment(a.ID, &easypost.Rate{}, "")
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodeParameterRequired)
	_, err = c.BuyShipment("shp_00000000000000000000000000000000", rateOf(t, a, "USPS", "Priority"), "")
	var notFound *easypost.NotFoundError
	assert.True(t, errors.As(err, &notFound))
	apiError(t, err, http.StatusNotFound, easypoststandin.CodeNotFound)
	assert.Zero(t, s.Bought())
}

func TestFaults(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)

	t.Run("unavailable", func(t *testing.T) {
		s.FailNext(easypoststandin.RouteCreate, 1, easypoststandin.Unavailable)
		_, err := c.CreateShipment(order("order-503"))
		var unavailable *easypost.ServiceUnavailableError
		assert.True(t, errors.As(err, &unavailable))
		apiError(t, err, http.StatusServiceUnavailable, easypoststandin.CodeServiceUnavailable)
		assert.Empty(t, s.Shipments())
		_, err = c.CreateShipment(order("order-503"))
		require.NoError(t, err, "only the next request fails")
	})

	shp, err := c.CreateShipment(order("order-slow"))
	require.NoError(t, err)

	t.Run("slow answers late", func(t *testing.T) {
		s.FailNext(easypoststandin.RouteGet, 1, easypoststandin.Slow(300*time.Millisecond))
		began := time.Now()
		_, err := c.GetShipment(shp.ID)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(began), 300*time.Millisecond)
	})

	t.Run("slow buy the client gave up on buys nothing", func(t *testing.T) {
		impatient := client(t, s, testKey)
		impatient.Timeout = 50 // milliseconds
		s.FailNext(easypoststandin.RouteBuy, 1, easypoststandin.Slow(400*time.Millisecond))
		_, err := impatient.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "Priority"), "")
		require.Error(t, err)
		time.Sleep(600 * time.Millisecond)
		assert.Zero(t, s.BoughtFor("order-slow"))
	})

	t.Run("lose a GET", func(t *testing.T) {
		// Without keep-alive Go's transport cannot retry on a reused
		// connection, so one lost answer is one error.
		fresh := client(t, s, testKey)
		fresh.Client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		s.FailNext(easypoststandin.RouteGet, 1, easypoststandin.LoseAnswer)
		_, err := fresh.GetShipment(shp.ID)
		require.Error(t, err)
		_, err = fresh.GetShipment(shp.ID)
		require.NoError(t, err)
	})

	t.Run("down", func(t *testing.T) {
		bought := buyOne(t, c, "order-down")
		s.SetDown(true)
		for _, call := range []func() error{
			func() error { _, err := c.GetShipment(shp.ID); return err },
			func() error { _, err := c.CreateShipment(order("order-down-2")); return err },
			func() error { _, err := c.RefundShipment(bought.ID); return err },
		} {
			apiError(t, call(), http.StatusServiceUnavailable, easypoststandin.CodeServiceUnavailable)
		}
		status, _, _ := fetch(t, bought.PostageLabel.LabelURL)
		assert.Equal(t, http.StatusOK, status, "label files are not the API")
		s.SetDown(false)
		_, err := c.GetShipment(shp.ID)
		require.NoError(t, err)
	})

	assert.Panics(t, func() { s.FailNext("rates", 1, easypoststandin.Unavailable) })
}

// TestOfficialClientPanicsOnAFailedList pins a trap of easypost-go v5.4.0:
// ListShipments dereferences its nil result when the request fails (any
// error: 5xx, timeout), so callers must recover or never let it fail
// unobserved. If this test fails, the client was fixed.
func TestOfficialClientPanicsOnAFailedList(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	s.FailNext(easypoststandin.RouteList, 1, easypoststandin.Unavailable)
	assert.Panics(t, func() { _, _ = c.ListShipments(&easypost.ListShipmentsOptions{}) })
}

func TestListPagesNewestFirst(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	ids := map[string]string{}
	for i := range 5 {
		ref := fmt.Sprintf("r%d", i)
		shp, err := c.CreateShipment(order(ref))
		require.NoError(t, err)
		ids[ref] = shp.ID
		if i != 2 && i != 4 {
			_, err = c.BuyShipment(shp.ID, rateOf(t, shp, "USPS", "GroundAdvantage"), "")
			require.NoError(t, err)
		}
	}
	refs := func(l *easypost.ListShipmentsResult) []string {
		var out []string
		for _, sh := range l.Shipments {
			out = append(out, sh.Reference)
		}
		return out
	}
	no := false
	past := easypost.DateTimeFromTime(time.Now().Add(-time.Hour))
	future := easypost.DateTimeFromTime(time.Now().Add(time.Hour))
	for _, tt := range []struct {
		name  string
		opts  easypost.ListShipmentsOptions
		pages [][]string
	}{
		{"purchased only by default", easypost.ListShipmentsOptions{}, [][]string{{"r3", "r1", "r0"}}},
		{"purchased=false lists all", easypost.ListShipmentsOptions{Purchased: &no}, [][]string{{"r4", "r3", "r2", "r1", "r0"}}},
		{"pages of 2", easypost.ListShipmentsOptions{PageSize: 2}, [][]string{{"r3", "r1"}, {"r0"}}},
		// GetNextShipmentPage does not repeat page_size: later pages hold 20.
		{"pages of 2, all", easypost.ListShipmentsOptions{PageSize: 2, Purchased: &no}, [][]string{{"r4", "r3"}, {"r2", "r1", "r0"}}},
		{"before_id", easypost.ListShipmentsOptions{BeforeID: ids["r3"]}, [][]string{{"r1", "r0"}}},
		{"after_id", easypost.ListShipmentsOptions{AfterID: ids["r1"], Purchased: &no}, [][]string{{"r4", "r3", "r2"}}},
		{"unknown before_id", easypost.ListShipmentsOptions{BeforeID: "shp_unknown"}, [][]string{nil}},
		{"since an hour", easypost.ListShipmentsOptions{StartDateTime: &past, EndDateTime: &future}, [][]string{{"r3", "r1", "r0"}}},
		{"from the future", easypost.ListShipmentsOptions{StartDateTime: &future}, [][]string{nil}},
		{"until an hour ago", easypost.ListShipmentsOptions{EndDateTime: &past}, [][]string{nil}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			page, err := c.ListShipments(&opts)
			require.NoError(t, err)
			for i, want := range tt.pages {
				if i > 0 {
					page, err = c.GetNextShipmentPage(page)
					require.NoError(t, err)
				}
				assert.Equal(t, want, refs(page), "page %d", i+1)
				assert.Equal(t, i < len(tt.pages)-1, page.HasMore, "page %d has_more", i+1)
			}
			_, err = c.GetNextShipmentPage(page)
			var end *easypost.EndOfPaginationError
			assert.True(t, errors.As(err, &end), "%v", err)
		})
	}
}

func TestLabelAndRefundNeedAPurchase(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	shp, err := c.CreateShipment(order("order-unbought"))
	require.NoError(t, err)

	_, err = c.GetShipmentLabel(shp.ID, "PDF")
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodeUnprocessable)
	_, err = c.RefundShipment(shp.ID)
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodeUnprocessable)
	status, _, _ := fetch(t, strings.TrimSuffix(s.URL(), "/v2/")+"/files/postage_label/"+shp.ID+".png")
	assert.Equal(t, http.StatusNotFound, status)

	bought := buyOne(t, c, "order-bought")
	_, err = c.GetShipmentLabel(bought.ID, "GIF")
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodeUnprocessable)
	_, err = c.GetShipmentLabel(bought.ID, "")
	apiError(t, err, http.StatusUnprocessableEntity, easypoststandin.CodeParameterRequired)
	status, _, _ = fetch(t, strings.TrimSuffix(bought.PostageLabel.LabelURL, ".png")+".pdf")
	assert.Equal(t, http.StatusNotFound, status, "no PDF before it is asked for")
	png, err := c.GetShipmentLabel(bought.ID, "png")
	require.NoError(t, err)
	assert.Equal(t, bought.PostageLabel.LabelURL, png.PostageLabel.LabelURL)
}

func TestUnknownRoutes(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/addresses"},
		{http.MethodDelete, "/shipments/shp_1"},
		{http.MethodPut, "/shipments"},
		{http.MethodGet, "/shipments/shp_1/buy"},
		{http.MethodPost, "/shipments/shp_1/insure"},
		{http.MethodGet, "/shipments/shp_1/label/x"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, body := raw(t, c, tt.method, tt.path, nil)
			assert.Equal(t, http.StatusNotFound, status)
			e, _ := body["error"].(map[string]any)
			assert.Equal(t, easypoststandin.CodeNotFound, e["code"])
			assert.Equal(t, []any{}, e["errors"])
		})
	}
	_, err := c.GetShipment("shp_00000000000000000000000000000000")
	apiError(t, err, http.StatusNotFound, easypoststandin.CodeNotFound)
	_, err = c.RefundShipment("shp_00000000000000000000000000000000")
	apiError(t, err, http.StatusNotFound, easypoststandin.CodeNotFound)
	status, _, _ := fetch(t, strings.TrimSuffix(s.URL(), "/v2/")+"/elsewhere")
	assert.Equal(t, http.StatusNotFound, status)
}

func TestGetByReference(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	shp, err := c.CreateShipment(order("order-by-ref"))
	require.NoError(t, err)
	got, err := c.GetShipment("order-by-ref")
	require.NoError(t, err, "EasyPost accepts a reference in place of an id")
	assert.Equal(t, shp.ID, got.ID)
}

func TestRequestsAreRecorded(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	bought := buyOne(t, c, "order-rec")
	_, err := c.ListShipments(&easypost.ListShipmentsOptions{PageSize: 7})
	require.NoError(t, err)
	fetch(t, bought.PostageLabel.LabelURL)

	reqs := s.Requests()
	require.Len(t, reqs, 4)
	assert.Equal(t, http.MethodPost, reqs[0].Method)
	assert.Equal(t, "/v2/shipments", reqs[0].Path)
	assert.Contains(t, string(reqs[0].Body), "12 Analytical Engine Rd")
	assert.Contains(t, string(reqs[0].Body), `"reference":"order-rec"`)
	assert.Equal(t, "/v2/shipments/"+bought.ID+"/buy", reqs[1].Path)
	assert.Equal(t, "page_size=7", reqs[2].Query)
	assert.Equal(t, "/files/postage_label/"+bought.ID+".png", reqs[3].Path)
	assert.False(t, reqs[0].Time.IsZero())
	reqs[0].Body[0] = 'X'
	assert.Equal(t, byte('{'), s.Requests()[0].Body[0], "a copy")
}

func TestShipmentsSnapshot(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	bought := buyOne(t, c, "order-snap-1")
	_, err := c.CreateShipment(order("order-snap-2"))
	require.NoError(t, err)
	all := s.Shipments()
	require.Len(t, all, 2)
	assert.Equal(t, bought.ID, all[0].ID)
	assert.Equal(t, bought.TrackingCode, all[0].TrackingCode)
	assert.Equal(t, "order-snap-2", all[1].Reference)
	assert.Nil(t, all[1].PostageLabel)
}

func TestTrackerEvent(t *testing.T) {
	s := start(t, "")
	c := client(t, s, testKey)
	bought := buyOne(t, c, "order-track")

	body := s.TrackerEvent(bought.ID, "delivered")
	require.NotNil(t, body)
	var ev easypost.Event
	require.NoError(t, json.Unmarshal(body, &ev))
	assert.Regexp(t, `^evt_[0-9a-f]{32}$`, ev.ID)
	assert.Equal(t, "Event", ev.Object)
	assert.Equal(t, "tracker.updated", ev.Description)
	assert.Equal(t, "test", ev.Mode)
	assert.Equal(t, map[string]interface{}{"status": "pre_transit"}, ev.PreviousAttributes)
	assert.NotNil(t, ev.CreatedAt)

	var withTracker struct {
		Result easypost.Tracker `json:"result"`
	}
	require.NoError(t, json.Unmarshal(body, &withTracker))
	trk := withTracker.Result
	assert.Equal(t, "Tracker", trk.Object)
	assert.Equal(t, bought.Tracker.ID, trk.ID)
	assert.Equal(t, "delivered", trk.Status)
	assert.Equal(t, bought.ID, trk.ShipmentID)
	assert.Equal(t, bought.TrackingCode, trk.TrackingCode)
	assert.Equal(t, "USPS", trk.Carrier)
	assert.NotContains(t, string(body), "Analytical", "a tracker carries no address")

	got, err := c.GetShipment(bought.ID)
	require.NoError(t, err)
	assert.Equal(t, "delivered", got.Tracker.Status)

	unbought, err := c.CreateShipment(order("order-track-2"))
	require.NoError(t, err)
	assert.Nil(t, s.TrackerEvent(unbought.ID, "delivered"))
	assert.Nil(t, s.TrackerEvent("shp_unknown", "delivered"))
}

func TestStartIsLoopbackOnly(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"192.0.2.10:0", false},
		{"example.com:0", false},
		{"127.0.0.1", false},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			s, err := easypoststandin.New(easypoststandin.Options{APIKey: testKey})
			require.NoError(t, err)
			assert.Empty(t, s.URL())
			err = s.Start(tt.addr)
			if !tt.ok {
				require.Error(t, err)
				assert.Empty(t, s.URL())
				return
			}
			require.NoError(t, err)
			defer s.Close()
			assert.Regexp(t, `^http://127\.0\.0\.1:[0-9]+/v2/$`, s.URL())
			assert.Error(t, s.Start("127.0.0.1:0"), "started once")
		})
	}
}

func TestNew(t *testing.T) {
	_, err := easypoststandin.New(easypoststandin.Options{})
	assert.Error(t, err, "an API key is required")
	_, err = easypoststandin.New(easypoststandin.Options{APIKey: testKey, FixturesDir: filepath.Join(t.TempDir(), "none")})
	assert.Error(t, err)

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "shipments-create.json"), []byte(`{"object":"Shipment"}`), 0o600))
	_, err = easypoststandin.New(easypoststandin.Options{APIKey: testKey, FixturesDir: dir})
	assert.ErrorContains(t, err, "shipments-one-call-buy.json")
}

// TestFixturesMode runs the flow against EasyPost's published bodies
// (EasyPost/examples official/docs/responses) and checks that every answer
// keeps their fields, changing only ids, reference, addresses, parcel,
// tracking codes and label URLs.
func TestFixturesMode(t *testing.T) {
	root := os.Getenv("PIIVAULT_PROVIDER_FIXTURES")
	if root == "" {
		t.Skip("set PIIVAULT_PROVIDER_FIXTURES (e.g. /work/shared/fixtures) to run against EasyPost's published bodies")
	}
	dir := filepath.Join(root, "easypost-api")
	s := start(t, dir)
	c := client(t, s, testKey)
	published := func(name string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var m map[string]any
		require.NoError(t, dec.Decode(&m))
		return m
	}
	in := map[string]any{"shipment": map[string]any{
		"reference": "order-fx",
		"to_address": map[string]any{"name": "Ada Lovelace", "street1": "12 Analytical Engine Rd",
			"city": "Springfield", "state": "IL", "zip": "62701", "country": "US"},
		"from_address": map[string]any{"company": "Example Shop", "street1": "1 Warehouse Way",
			"city": "Springfield", "state": "IL", "zip": "62702", "country": "US"},
		"parcel": map[string]any{"length": 10, "width": 8, "height": 4, "weight": 15.4},
	}}

	status, created := raw(t, c, http.MethodPost, "/shipments", in)
	require.Equal(t, http.StatusCreated, status)
	keepsPublished(t, published("shipments-create.json"), created)
	id := created["id"].(string)
	assert.Regexp(t, shipmentID, id)
	assert.Equal(t, "order-fx", created["reference"])
	to := created["to_address"].(map[string]any)
	assert.Equal(t, "12 Analytical Engine Rd", to["street1"])
	assert.Nil(t, to["street2"])
	assert.Equal(t, to, created["buyer_address"])

	_, got := raw(t, c, http.MethodGet, "/shipments/"+id, nil)
	keepsPublished(t, published("shipments-retrieve.json"), got)

	var rateID string
	for _, r := range created["rates"].([]any) {
		if r := r.(map[string]any); r["service"] == "GroundAdvantage" {
			rateID = r["id"].(string)
		}
	}
	status, bought := raw(t, c, http.MethodPost, "/shipments/"+id+"/buy", map[string]any{"rate": map[string]any{"id": rateID}})
	require.Equal(t, http.StatusOK, status)
	keepsPublished(t, published("shipments-buy.json"), bought)
	assert.Regexp(t, digits, bought["tracking_code"])
	assert.Equal(t, rateID, bought["selected_rate"].(map[string]any)["id"])
	_, got = raw(t, c, http.MethodGet, "/shipments/"+id, nil)
	keepsPublished(t, published("shipments-buy.json"), got)

	status, label := raw(t, c, http.MethodGet, "/shipments/"+id+"/label?file_format=ZPL", nil)
	require.Equal(t, http.StatusOK, status)
	keepsPublished(t, published("shipments-label.json"), label)
	zpl := label["postage_label"].(map[string]any)["label_zpl_url"].(string)
	status, _, body := fetch(t, zpl)
	require.Equal(t, http.StatusOK, status)
	assert.True(t, strings.HasPrefix(string(body), "^XA"))

	status, refunded := raw(t, c, http.MethodPost, "/shipments/"+id+"/refund", nil)
	require.Equal(t, http.StatusOK, status)
	keepsPublished(t, published("shipping-refund-refund.json"), refunded)
	assert.Equal(t, "submitted", refunded["refund_status"])

	_, list := raw(t, c, http.MethodGet, "/shipments", nil)
	pubList := published("shipments-list.json")
	assert.ElementsMatch(t, keys(pubList), keys(list))
	require.Len(t, list["shipments"], 1)
	keepsPublished(t, published("shipping-refund-refund.json"), list["shipments"].([]any)[0].(map[string]any))

	oneCall := map[string]any{"shipment": map[string]any{}}
	for k, v := range in["shipment"].(map[string]any) {
		oneCall["shipment"].(map[string]any)[k] = v
	}
	oneCall["shipment"].(map[string]any)["carrier"] = "USPS"
	oneCall["shipment"].(map[string]any)["service"] = "Priority"
	status, one := raw(t, c, http.MethodPost, "/shipments", oneCall)
	require.Equal(t, http.StatusCreated, status)
	keepsPublished(t, published("shipments-one-call-buy.json"), one)

	ev := s.TrackerEvent(one["id"].(string), "in_transit")
	var event map[string]any
	dec := json.NewDecoder(bytes.NewReader(ev))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&event))
	result := event["result"].(map[string]any)
	assert.Equal(t, "in_transit", result["status"])
	keepsPublished(t, published("trackers-retrieve.json"), result)

	// The official client reads every published body.
	shp, err := c.CreateShipment(order("order-fx-client"))
	require.NoError(t, err)
	assert.Equal(t, "order-fx-client", shp.Reference)
	lowest, err := c.LowestShipmentRate(shp)
	require.NoError(t, err)
	boughtC, err := c.BuyShipment(shp.ID, &lowest, "")
	require.NoError(t, err)
	assert.Regexp(t, digits, boughtC.TrackingCode)
	assert.Equal(t, "12 Analytical Engine Rd", boughtC.ToAddress.Street1)
	conv, err := c.GetShipmentLabel(shp.ID, "PDF")
	require.NoError(t, err)
	status, _, body = fetch(t, conv.PostageLabel.LabelPDFURL)
	require.Equal(t, http.StatusOK, status)
	assert.True(t, strings.HasPrefix(string(body), "%PDF-"))
	page, err := c.ListShipments(&easypost.ListShipmentsOptions{PageSize: 1})
	require.NoError(t, err)
	assert.Equal(t, "order-fx-client", page.Shipments[0].Reference)
	page, err = c.GetNextShipmentPage(page)
	require.NoError(t, err)
	assert.Equal(t, "order-fx", page.Shipments[0].Reference)
	ref, err := c.RefundShipment(shp.ID)
	require.NoError(t, err)
	assert.Equal(t, "submitted", ref.RefundStatus)
	assert.Len(t, s.Shipments(), 3)
	assert.Equal(t, 1, s.BoughtFor("order-fx-client"))
}

// substituted are the fields fixtures mode may change, by object key.
var substituted = map[string]bool{
	"id": true, "reference": true, "tracking_code": true, "shipment_id": true,
	// addresses
	"name": true, "company": true, "street1": true, "street2": true, "city": true, "state": true,
	"zip": true, "country": true, "phone": true, "email": true, "carrier_facility": true,
	"federal_tax_id": true, "state_tax_id": true,
	// parcel
	"length": true, "width": true, "height": true, "weight": true, "predefined_package": true,
	// postage_label
	"label_url": true, "label_pdf_url": true, "label_zpl_url": true, "label_epl2_url": true,
}

// keepsPublished checks got has exactly pub's fields, with pub's values but
// for the substituted ones (and a tracker's status, which TrackerEvent sets).
func keepsPublished(t *testing.T, pub, got map[string]any) {
	t.Helper()
	var walk func(path string, pub, got any)
	walk = func(path string, pub, got any) {
		switch p := pub.(type) {
		case map[string]any:
			g, ok := got.(map[string]any)
			if !assert.True(t, ok, "%s: not an object", path) {
				return
			}
			assert.ElementsMatch(t, keys(p), keys(g), "%s: fields", path)
			for k, v := range p {
				if substituted[k] || (k == "status" && p["object"] == "Tracker") {
					continue
				}
				if k == "selected_rate" {
					v = boughtRate(p, g)
				}
				walk(path+"."+k, v, g[k])
			}
		case []any:
			g, ok := got.([]any)
			if !assert.True(t, ok, "%s: not an array", path) || !assert.Len(t, g, len(p), path) {
				return
			}
			for i := range p {
				walk(fmt.Sprintf("%s[%d]", path, i), p[i], g[i])
			}
		default:
			assert.Equal(t, pub, got, path)
		}
	}
	walk("", pub, got)
}

// boughtRate is what a shipment's selected_rate must keep: the published
// selected_rate if the same service was bought, else the published rate of
// the service bought.
func boughtRate(pub, got map[string]any) any {
	sel, _ := got["selected_rate"].(map[string]any)
	if p, _ := pub["selected_rate"].(map[string]any); p == nil || sel == nil || p["service"] == sel["service"] {
		return pub["selected_rate"]
	}
	rates, _ := pub["rates"].([]any)
	for _, r := range rates {
		if r.(map[string]any)["service"] == sel["service"] {
			return r
		}
	}
	return pub["selected_rate"]
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
