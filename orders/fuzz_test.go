package orders

import (
	"testing"

	"piivault/internal/apperr"
)

// FuzzDecodeOrder feeds arbitrary bodies to the POST /v1/orders decoder: it
// must never panic, and every rejection must be a client error (400/422),
// never an internal one (500).
func FuzzDecodeOrder(f *testing.F) {
	f.Add([]byte(`{"order_id":"o1","payment_ref":"p1","shipping":{"name":"Jane Doe","email":"jane@example.com","phone":"+15550100","address":{"line1":"1 Main St","line2":"","city":"Springfield","state":"IL","postal_code":"62701","country":"US"}}}`))
	f.Add([]byte(`{"order_id":"o1","extra":1}`))
	f.Add([]byte(`{"order_id":"o1"} trailing`))
	f.Add([]byte(`{"shipping":{"address":{"country":"\u0000"}}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err == nil {
			if req.Validate() != nil {
				t.Fatalf("accepted a request that does not validate")
			}
			return
		}
		switch apperr.CodeOf(err) {
		case apperr.Invalid, apperr.Validation:
		default:
			t.Fatalf("decoder returned %s for client input: %v", apperr.CodeOf(err), err)
		}
	})
}
