package orders

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
)

func validRequest() Request {
	return Request{
		OrderID:    "ord_1001",
		PaymentRef: "pi_3Nabc",
		Shipping: Shipping{
			Name: "Jane Doe", Email: "jane.doe@example.com", Phone: "+1 (555) 010-9999",
			Address: Address{Line1: "1 Main St", Line2: "Apt 2", City: "Springfield", State: "IL", PostalCode: "62701", Country: "US"},
		},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Request)
		field  string // "" means valid
	}{
		{"valid", func(r *Request) {}, ""},
		{"no phone is fine", func(r *Request) { r.Shipping.Phone = "" }, ""},
		{"unicode name", func(r *Request) { r.Shipping.Name = "Zoë Ångström" }, ""},
		{"missing order id", func(r *Request) { r.OrderID = "" }, "order_id"},
		{"order id with slash", func(r *Request) { r.OrderID = "a/b" }, "order_id"},
		{"order id too long", func(r *Request) { r.OrderID = strings.Repeat("a", 129) }, "order_id"},
		{"missing payment ref", func(r *Request) { r.PaymentRef = "" }, "payment_ref"},
		{"missing name", func(r *Request) { r.Shipping.Name = "  " }, "shipping.name"},
		{"control character", func(r *Request) { r.Shipping.Name = "Jane\x00Doe" }, "shipping.name"},
		{"newline in line1", func(r *Request) { r.Shipping.Address.Line1 = "1 Main\nSt" }, "shipping.address.line1"},
		{"name too long", func(r *Request) { r.Shipping.Name = strings.Repeat("x", 201) }, "shipping.name"},
		{"bad email", func(r *Request) { r.Shipping.Email = "jane@" }, "shipping.email"},
		{"email with display name", func(r *Request) { r.Shipping.Email = "Jane <jane@example.com>" }, "shipping.email"},
		{"email without dot in domain", func(r *Request) { r.Shipping.Email = "jane@localhost" }, "shipping.email"},
		{"phone letters", func(r *Request) { r.Shipping.Phone = "call me" }, "shipping.phone"},
		{"phone too short", func(r *Request) { r.Shipping.Phone = "12345" }, "shipping.phone"},
		{"country lower case", func(r *Request) { r.Shipping.Address.Country = "us" }, "shipping.address.country"},
		{"country not a country", func(r *Request) { r.Shipping.Address.Country = "ZZ" }, "shipping.address.country"},
		{"country alpha-3", func(r *Request) { r.Shipping.Address.Country = "USA" }, "shipping.address.country"},
		{"missing city", func(r *Request) { r.Shipping.Address.City = "" }, "shipping.address.city"},
		{"postal code symbols", func(r *Request) { r.Shipping.Address.PostalCode = "62701;DROP" }, "shipping.address.postal_code"},
		{"invalid utf-8", func(r *Request) { r.Shipping.Address.City = "Spr\xffingfield" }, "shipping.address.city"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(&r)
			err := r.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, apperr.Validation, apperr.CodeOf(err))
			require.Contains(t, apperr.Fields(err), tt.field)
		})
	}
}

func TestValidationErrorNeverEchoesValues(t *testing.T) {
	r := validRequest()
	r.Shipping.Email = "secret-canary@"
	r.Shipping.Name = strings.Repeat("CanaryName", 30)
	err := r.Validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "canary")
	require.NotContains(t, err.Error(), "CanaryName")
}

func TestMasked(t *testing.T) {
	s := validRequest().Shipping
	m := s.Masked()
	require.Equal(t, "J*** D***", m.Name)
	require.Equal(t, "****@example.com", m.Email)
	require.Equal(t, "****99", m.Phone)
	require.Equal(t, Address{City: "Springfield", Country: "US"}, m.Address)
}

func TestShippingNeverPrints(t *testing.T) {
	s := validRequest().Shipping
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("oops", "shipping", s)
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", s, s, s, s)
	for _, pii := range []string{"Jane", "jane.doe", "Main St", "Springfield", "62701"} {
		require.NotContains(t, out, pii)
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"trim and case", "  Jane@Example.COM \t", "jane@example.com"},
		{"composed stays", "zo\u00eb@example.com", "zo\u00eb@example.com"},
		{"decomposed composes", "zoe\u0308@example.com", "zo\u00eb@example.com"},
		{"upper umlaut folds", "ZO\u00cb@EXAMPLE.COM", "zo\u00eb@example.com"},
		{"idna domain", "x@B\u00dcCHER.de", "x@xn--bcher-kva.de"},
		{"punycode domain unchanged", "x@xn--bcher-kva.de", "x@xn--bcher-kva.de"},
		{"no at sign", "Nobody", "nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, NormalizeEmail(tt.in)) })
	}
}
