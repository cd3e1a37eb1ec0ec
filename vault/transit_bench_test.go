package vault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
)

// encryptAnswer is a transit answer to an encrypt batch of n items, in
// the shape Vault writes it.
func encryptAnswer(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"request_id":"8b5d4a3e-6c1f-4f63-9b1a-2f4e7c9d0a11","lease_id":"","renewable":false,"lease_duration":0,"data":{"batch_results":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"ciphertext":"vault:v1:%s","key_version":1}`, strings.Repeat("Qk9YZXhhbXBsZQ", 24))
	}
	b.WriteString(`]},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"transit"}` + "\n")
	return []byte(b.String())
}

// A batch answer is decoded into typed results rather than vaultapi's maps.
func BenchmarkTransitAnswer(b *testing.B) {
	body := encryptAnswer(32)
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, err := dataOf[batchResults](bytes.NewReader(body))
			if err != nil || len(data.Results) != 32 {
				b.Fatal(err)
			}
		}
	})
	b.Run("vaultapi.ParseSecret", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s, err := vaultapi.ParseSecret(bytes.NewReader(body))
			if err != nil || len(s.Data["batch_results"].([]any)) != 32 {
				b.Fatal(err)
			}
		}
	})
}

// A batch request is written with each item's bytes base64-encoded
// straight into the JSON.
func BenchmarkTransitRequest(b *testing.B) {
	plain := bytes.Repeat([]byte(`{"name":"Jane Doe","address":{"line1":"1 Main St"}}`), 6)
	batch := make([]transitItem, 32)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = transitItem{Plaintext: plain, AssociatedData: []byte("ord_1001")}
		}
		if _, err := json.Marshal(batchRequest{Batch: batch, PartialCode: 200}); err != nil {
			b.Fatal(err)
		}
	}
}
