package orders

import (
	"testing"
)

var benchBody = []byte(`{"order_id":"ord_1001","payment_ref":"pi_3Nabc","shipping":{"name":"Jane Doe","email":"jane.doe@example.com","phone":"+1 (555) 010-9999","address":{"line1":"1 Main St","line2":"Apt 2","city":"Springfield","state":"IL","postal_code":"62701","country":"US"}}}`)

// BenchmarkDecodeRequest is the in-process cost of POST /v1/orders before
// any I/O: strict JSON decoding and validation of every field.
func BenchmarkDecodeRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := DecodeRequest(benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMasked is the support view of a shipping block.
func BenchmarkMasked(b *testing.B) {
	s := validRequest().Shipping
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Masked()
	}
}
