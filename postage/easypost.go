package postage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/EasyPost/easypost-go/v5"

	"piivault/internal/apperr"
)

// EasyPost is the part of the official client piivault uses;
// *easypost.Client implements it.
type EasyPost interface {
	CreateShipmentWithContext(ctx context.Context, in *easypost.Shipment) (*easypost.Shipment, error)
	BuyShipmentWithContext(ctx context.Context, shipmentID string, rate *easypost.Rate, insurance string) (*easypost.Shipment, error)
	GetShipmentWithContext(ctx context.Context, shipmentID string) (*easypost.Shipment, error)
	GetShipmentLabelWithContext(ctx context.Context, shipmentID, format string) (*easypost.Shipment, error)
	ListShipmentsWithContext(ctx context.Context, opts *easypost.ListShipmentsOptions) (*easypost.ListShipmentsResult, error)
	GetNextShipmentPageWithContext(ctx context.Context, collection *easypost.ListShipmentsResult) (*easypost.ListShipmentsResult, error)
	RefundShipmentWithContext(ctx context.Context, shipmentID string) (*easypost.Shipment, error)
}

// NewClient returns the official EasyPost client for base (EasyPost's
// https://api.easypost.com/v2, or a stand-in on loopback) and key, made
// safe for concurrent calls: the library (v5.4.0) sets the Timeout of its
// http.Client on every call, so each call gets an http.Client of its own,
// all sharing one Transport and its connections.
func NewClient(base, key string, timeout time.Duration) (EasyPost, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + "/")
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("easypost: base URL %q is not an http(s) URL", base)
	}
	c := easypost.New(key)
	c.BaseURL = u
	c.Timeout = int(timeout.Milliseconds())
	return &official{base: *c, transport: http.DefaultTransport.(*http.Transport).Clone(), timeout: timeout}, nil
}

// official is the official client, one copy per call.
type official struct {
	base      easypost.Client
	transport http.RoundTripper
	timeout   time.Duration
}

func (o *official) c() *easypost.Client {
	c := o.base
	c.Client = &http.Client{Transport: o.transport, Timeout: o.timeout}
	return &c
}

func (o *official) CreateShipmentWithContext(ctx context.Context, in *easypost.Shipment) (*easypost.Shipment, error) {
	return o.c().CreateShipmentWithContext(ctx, in)
}

func (o *official) BuyShipmentWithContext(ctx context.Context, id string, rate *easypost.Rate, insurance string) (*easypost.Shipment, error) {
	return o.c().BuyShipmentWithContext(ctx, id, rate, insurance)
}

func (o *official) GetShipmentWithContext(ctx context.Context, id string) (*easypost.Shipment, error) {
	return o.c().GetShipmentWithContext(ctx, id)
}

func (o *official) GetShipmentLabelWithContext(ctx context.Context, id, format string) (*easypost.Shipment, error) {
	return o.c().GetShipmentLabelWithContext(ctx, id, format)
}

func (o *official) ListShipmentsWithContext(ctx context.Context, opts *easypost.ListShipmentsOptions) (*easypost.ListShipmentsResult, error) {
	return o.c().ListShipmentsWithContext(ctx, opts)
}

func (o *official) GetNextShipmentPageWithContext(ctx context.Context, page *easypost.ListShipmentsResult) (*easypost.ListShipmentsResult, error) {
	return o.c().GetNextShipmentPageWithContext(ctx, page)
}

func (o *official) RefundShipmentWithContext(ctx context.Context, id string) (*easypost.Shipment, error) {
	return o.c().RefundShipmentWithContext(ctx, id)
}

// References reads shipments' references: the webhook's way to find an
// order from a shipment nothing linked.
type References struct{ EP EasyPost }

// ShipmentReference returns the reference of a shipment ("" when it has
// none or EasyPost does not know it).
func (r References) ShipmentReference(ctx context.Context, shipmentID string) (string, error) {
	ep := r.EP
	if !strings.HasPrefix(shipmentID, "shp_") || len(shipmentID) > 64 {
		return "", nil
	}
	shp, err := ep.GetShipmentWithContext(ctx, shipmentID)
	var nf *easypost.NotFoundError
	switch {
	case errors.As(err, &nf):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("easypost: %w", err)
	}
	return shp.Reference, nil
}

// carrierError turns an EasyPost failure into the per-order error staff
// see. EasyPost's own message may quote the address, so it is never passed
// on: only its code (e.g. ADDRESS.VERIFY.FAILURE), which names no one.
func carrierError(err error) *apperr.Error {
	var api *easypost.APIError
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &apperr.Error{Code: apperr.CarrierTimeout, Err: err,
			Message: "EasyPost did not answer in time; try again: nothing is bought twice"}
	case errors.As(err, &api):
		return fromAPIError(api, err)
	}
	return &apperr.Error{Code: apperr.CarrierUnavailable, Err: err,
		Message: "EasyPost could not be reached; try again: nothing is bought twice"}
}

// fromAPIError reads an EasyPost error answer. The typed errors wrap
// APIError, whose StatusCode says which kind it is.
func fromAPIError(api *easypost.APIError, err error) *apperr.Error {
	detail := map[string]any{"easypost_code": api.Code}
	switch {
	case api.StatusCode == http.StatusGatewayTimeout:
		return &apperr.Error{Code: apperr.CarrierTimeout, Err: err, Detail: detail,
			Message: "EasyPost did not answer in time; try again: nothing is bought twice"}
	case api.StatusCode >= 500 || api.StatusCode == 0 || api.StatusCode == http.StatusTooManyRequests:
		return &apperr.Error{Code: apperr.CarrierUnavailable, Err: err, Detail: detail,
			Message: "EasyPost is unavailable; try again: nothing is bought twice"}
	case api.StatusCode == http.StatusUnauthorized || api.StatusCode == http.StatusForbidden || api.StatusCode == http.StatusPaymentRequired:
		return &apperr.Error{Code: apperr.CarrierUnavailable, Err: err, Detail: detail,
			Message: "EasyPost refused piivault's API key or account; an operator must check EASYPOST_API_KEY and the account's balance"}
	case strings.Contains(strings.ToUpper(api.Code), "ADDRESS") || namesAddress(api.Errors):
		return &apperr.Error{Code: apperr.AddressRejected, Err: err, Detail: detail,
			Message: "the carrier rejected this address; correct it (or ask the customer) and try again"}
	}
	return &apperr.Error{Code: apperr.CarrierRefused, Err: err, Detail: detail,
		Message: "EasyPost refused this shipment (see easypost_code)"}
}

// definite reports whether EasyPost answered err itself with a refusal, so
// the call certainly changed nothing (a 4xx); a network error or a 5xx
// leaves the outcome unknown.
func definite(err error) bool {
	var api *easypost.APIError
	return errors.As(err, &api) && api.StatusCode >= 400 && api.StatusCode < 500
}

// namesAddress reports whether EasyPost's field errors point at the
// destination address (a carrier refusing it at purchase answers
// SHIPMENT.POSTAGE.FAILURE with field to_address).
func namesAddress(errs any) bool {
	list, _ := errs.([]any) // the client makes each map a *FieldError
	for _, e := range list {
		if f, ok := e.(*easypost.FieldError); ok && strings.HasPrefix(f.Field, "to_address") {
			return true
		}
	}
	return false
}
