package postage

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/EasyPost/easypost-go/v5"
	"github.com/stretchr/testify/assert"

	"piivault/internal/apperr"
)

func TestPickRate(t *testing.T) {
	rates := []*easypost.Rate{
		{ID: "rate_express", Carrier: "USPS", Service: "Express", Rate: "51.20"},
		{ID: "rate_ground", Carrier: "USPS", Service: "GroundAdvantage", Rate: "8.20"},
		{ID: "rate_ups", Carrier: "UPS", Service: "Ground", Rate: "9.10"},
		{ID: "rate_bad", Carrier: "UPS", Service: "NextDayAir", Rate: "n/a"},
	}
	tests := []struct {
		service, want string
	}{
		{"cheapest", "rate_ground"},
		{"USPS:Express", "rate_express"},
		{"usps:groundadvantage", "rate_ground"},
		{"UPS:Ground", "rate_ups"},
		{"UPS:NextDayAir", "rate_bad"}, // the only rate of that service, whatever its price says
		{"DHL:Express", ""},
	}
	for _, tc := range tests {
		t.Run(tc.service, func(t *testing.T) {
			r, ok := pickRate(rates, tc.service)
			if tc.want == "" {
				assert.False(t, ok)
				return
			}
			assert.True(t, ok)
			assert.Equal(t, tc.want, r.ID)
		})
	}
}

func TestRequestValidation(t *testing.T) {
	box := Parcel{Length: 9, Width: 6, Height: 3, Weight: 16}
	tests := []struct {
		name  string
		req   Request
		rates bool
		bad   []string
	}{
		{"valid", Request{OrderIDs: []string{"a", "b", "a"}, Parcel: box, Service: "cheapest", Reason: "label"}, false, nil},
		{"predefined", Request{OrderIDs: []string{"a"}, Parcel: Parcel{PredefinedPackage: "FlatRateEnvelope", Weight: 3}, Service: "USPS:Priority", Reason: "label"}, false, nil},
		{"rates default service", Request{OrderIDs: []string{"a"}, Parcel: box, Reason: "label"}, true, nil},
		{"purchase needs a service", Request{OrderIDs: []string{"a"}, Parcel: box, Reason: "label"}, false, []string{"service"}},
		{"no ids", Request{Parcel: box, Service: "cheapest", Reason: "label"}, false, []string{"order_ids"}},
		{"bad id", Request{OrderIDs: []string{"../x"}, Parcel: box, Service: "cheapest", Reason: "label"}, false, []string{"order_ids"}},
		{"size and package", Request{OrderIDs: []string{"a"}, Parcel: Parcel{PredefinedPackage: "Box", Length: 1, Weight: 3}, Service: "cheapest", Reason: "label"}, false, []string{"parcel"}},
		{"no weight", Request{OrderIDs: []string{"a"}, Parcel: Parcel{Length: 1, Width: 1, Height: 1}, Service: "cheapest", Reason: "label"}, false, []string{"parcel"}},
		{"negative", Request{OrderIDs: []string{"a"}, Parcel: Parcel{Length: -1, Width: 1, Height: 1, Weight: 1}, Service: "cheapest", Reason: "label"}, false, []string{"parcel"}},
		{"reason", Request{OrderIDs: []string{"a"}, Parcel: box, Service: "cheapest", Reason: "fraud_review"}, false, []string{"reason"}},
		{"format", Request{OrderIDs: []string{"a"}, Parcel: box, Service: "cheapest", Reason: "label", LabelFormat: "EPL2"}, false, []string{"label_format"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.validate(tc.rates)
			if tc.bad == nil {
				assert.NoError(t, err)
				return
			}
			var e *apperr.Error
			if assert.True(t, errors.As(err, &e)) {
				assert.Equal(t, apperr.Validation, e.Code)
				assert.Equal(t, tc.bad, e.Fields)
			}
		})
	}
	r := Request{OrderIDs: []string{"b", "a", "b"}, Parcel: box, Service: "cheapest", Reason: "label", LabelFormat: "zpl"}
	assert.NoError(t, r.validate(false))
	assert.Equal(t, []string{"b", "a"}, r.OrderIDs, "duplicates dropped, the request's order kept")
	assert.Equal(t, "ZPL", r.LabelFormat)
}

func TestCarrierErrors(t *testing.T) {
	api := func(status int, code string, errs any) error {
		return &easypost.InvalidRequestError{APIError: easypost.APIError{
			LibraryError: easypost.LibraryError{Message: "Address 742 Canarystreet is not deliverable"},
			Code:         code, StatusCode: status, Errors: errs}}
	}
	tests := []struct {
		name     string
		err      error
		want     apperr.Code
		definite bool
	}{
		{"address code", api(422, "ADDRESS.VERIFY.FAILURE", nil), apperr.AddressRejected, true},
		{"postage failure on to_address", api(422, "SHIPMENT.POSTAGE.FAILURE",
			[]any{&easypost.FieldError{Field: "to_address", Message: "undeliverable"}}), apperr.AddressRejected, true},
		{"other refusal", api(422, "SHIPMENT.INVALID_PARAMS", nil), apperr.CarrierRefused, true},
		{"payment", api(http.StatusPaymentRequired, "PAYMENT.REQUIRED", nil), apperr.CarrierUnavailable, true},
		{"server error", api(503, "SERVICE_UNAVAILABLE", nil), apperr.CarrierUnavailable, false},
		{"gateway timeout", api(504, "", nil), apperr.CarrierTimeout, false},
		{"deadline", context.DeadlineExceeded, apperr.CarrierTimeout, false},
		{"network", errors.New("connection reset by peer"), apperr.CarrierUnavailable, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := carrierError(tc.err)
			assert.Equal(t, tc.want, e.Code)
			assert.NotContains(t, e.Message, "Canarystreet", "EasyPost's message may quote the address: never passed on")
			assert.Equal(t, tc.definite, definite(tc.err))
		})
	}
}
