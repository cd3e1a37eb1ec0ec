package webhooks

import (
	"crypto/hmac"
	"encoding/base64"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"
)

var benchEvent = []byte(`{"event_id":"evt-bench-000001","order_id":"ord_1001","status":"shipped"}`)

func BenchmarkVerifyShipping(b *testing.B) {
	now := time.Now()
	header := SignShipping("s3cret", now, benchEvent)
	b.ReportAllocs()
	for b.Loop() {
		if err := verifyShipping("s3cret", header, benchEvent, now, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyShopify(b *testing.B) {
	header := base64.StdEncoding.EncodeToString(hmacSHA256([]byte("shpss"), benchEvent))
	b.ReportAllocs()
	for b.Loop() {
		got, _ := base64.StdEncoding.DecodeString(header)
		if !hmac.Equal(got, hmacSHA256([]byte("shpss"), benchEvent)) {
			b.Fatal("mismatch")
		}
	}
}

func BenchmarkVerifyEasyPost(b *testing.B) {
	header := SignEasyPost("easypost-secret", benchEvent)
	b.ReportAllocs()
	for b.Loop() {
		if SignEasyPost("easypost-secret", benchEvent) != header {
			b.Fatal("mismatch")
		}
	}
}

func BenchmarkVerifyStripe(b *testing.B) {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: benchEvent, Secret: "whsec_x"})
	b.ReportAllocs()
	for b.Loop() {
		if err := webhook.ValidatePayloadIgnoringTolerance(signed.Payload, signed.Header, "whsec_x"); err != nil {
			b.Fatal(err)
		}
	}
}
