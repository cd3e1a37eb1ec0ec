package vault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"piivault/internal/testenv"
	"piivault/vault"
)

// BenchmarkTransitCallClientCPU is what one transit call costs the process
// that makes it, in CPU: piivault's call (vaultapi's raw write over the fast
// transport, decoded into typed results) beside the same request sent and
// its answer decoded with nothing but net/http and encoding/json, against
// the test environment's real Vault. On the 2-core development machine
// net/http's call cost about 220 µs serially and 150 in parallel, piivault's
// about 150 and 95: net/http's cost is mostly its hand-overs between the
// caller and the connection's read and write loops, which fasthttp does
// not make (fasttransport.go).
func BenchmarkTransitCallClientCPU(b *testing.B) {
	env := testenv.Shared(b)
	ctx := context.Background()
	input := [][]byte{[]byte("email\x00jane.doe@example.com")}
	addr, token := env.VaultAddr, vault.TokenOf(env.Service)
	body := []byte(`{"batch_input":[{"input":"` + base64.StdEncoding.EncodeToString(input[0]) +
		`"}],"partial_failure_response_code":200}`)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	calls := []struct {
		name string
		call func() error
	}{
		{"piivault", func() error {
			_, err := env.Service.HMAC(ctx, input)
			return err
		}},
		{"net/http", func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr+"/v1/"+vault.IndexHMACPath(env.Service), bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("X-Vault-Token", token)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			var answer struct {
				Data struct {
					Results []struct {
						HMAC string `json:"hmac"`
					} `json:"batch_results"`
				} `json:"data"`
			}
			return json.Unmarshal(raw, &answer)
		}},
	}
	for _, c := range calls {
		name, call := c.name, c.call
		b.Run(name+"/serial", func(b *testing.B) {
			cpu := processCPU()
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/call")
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.SetParallelism(8) // 16 callers on 2 cores, as at concurrency 16
			cpu := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/call")
		})
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
