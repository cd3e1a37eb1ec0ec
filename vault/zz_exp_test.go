package vault_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"piivault/internal/testenv"
	"piivault/vault"
)

func TestZZExp(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	s := env.Service
	pt := []vault.Plaintext{{Plaintext: []byte(`{"n":"abcdefabcdefabcd","shipping":{"name":"Jane Doe","line1":"1 Main St","city":"Springfield","postal_code":"12345","country":"US","email":"jane@example.com"}}`), AssociatedData: []byte("order-1")}}
	enc := func() { s.Encrypt(ctx, pt) }
	mask := func() { s.EncryptMasked(ctx, pt) }
	hm := func() { s.HMAC(ctx, [][]byte{[]byte("email\x00a@b.c"), []byte("request\x00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")}) }
	seal := func() { s.Seal(ctx, [][]byte{[]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")}) }
	par := func(fs ...func()) func() {
		return func() {
			var wg sync.WaitGroup
			for _, f := range fs {
				wg.Add(1)
				go func() { defer wg.Done(); f() }()
			}
			wg.Wait()
		}
	}
	run := func(name string, f func()) {
		var d []time.Duration
		for i := 0; i < 600; i++ {
			t0 := time.Now()
			f()
			d = append(d, time.Since(t0))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		t.Logf("%-20s p50 %v p90 %v", name, d[300], d[540])
	}
	for r := 0; r < 2; r++ {
		run("enc", enc)
		run("seal", seal)
		run("enc+mask par", par(enc, mask))
		run("enc+mask+hm par", par(enc, mask, hm))
		run("4 par", par(enc, mask, hm, seal))
		run("3par then seal", func() { par(enc, mask, hm)(); seal() })
	}
}
