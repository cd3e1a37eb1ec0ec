package vault

import (
	"bytes"
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
