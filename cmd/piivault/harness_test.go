package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
)

// TestMain runs the tests, or, when a fault test starts this binary again
// with runAsPiivault set, runs it as the piivault command itself: the
// instances of the scale-out tests are separate processes.
func TestMain(m *testing.M) {
	if os.Getenv(runAsPiivault) == "1" {
		main()
		os.Exit(0)
	}
	testenv.Main(m)
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is one piivault instance, built exactly as `serve` builds it,
// against a real Vault and Redis, behind an httptest server.
type harness struct {
	t      *testing.T
	env    *testenv.Env
	app    *app
	url    string
	logs   *syncBuffer
	apiKey string
	ip     string // sent as X-Forwarded-For (127.0.0.1 is a trusted proxy)
}

const (
	testShippingSecret = "whsec-shipping-test"
	testStripeSecret   = "whsec_stripe_test"
	testShopifySecret  = "shpss_shopify_test"
	testEasyPostSecret = "easypost-test-secret"
)

func baseEnv(env *testenv.Env) map[string]string {
	return map[string]string{
		"VAULT_ADDR":               env.VaultAddr,
		"PIIVAULT_VAULT_ROLE_ID":   env.RoleID,
		"PIIVAULT_VAULT_SECRET_ID": env.SecretID,
		"REDIS_URL":                env.RedisURL,
		"PIIVAULT_TRUSTED_PROXIES": "127.0.0.1",
		"PIIVAULT_WEBHOOK_SECRET":  testShippingSecret,
		"STRIPE_WEBHOOK_SECRET":    testStripeSecret,
		"SHOPIFY_WEBHOOK_SECRET":   testShopifySecret,
		"EASYPOST_WEBHOOK_SECRET":  testEasyPostSecret,
	}
}

// newHarness starts an instance on env (testenv.Shared when nil) with the
// given extra environment.
func newHarness(t *testing.T, env *testenv.Env, extra map[string]string) *harness {
	t.Helper()
	return newHarnessTweaked(t, env, extra, nil)
}

// newHarnessTweaked is newHarness with the configuration changed by tweak
// before the instance starts (what no variable can set, such as the DKIM
// key look-up).
func newHarnessTweaked(t *testing.T, env *testenv.Env, extra map[string]string, tweak func(*config)) *harness {
	t.Helper()
	if env == nil {
		env = testenv.Shared(t)
	}
	vars := baseEnv(env)
	for k, v := range extra {
		vars[k] = v
	}
	cfg, err := loadConfig(envOf(vars))
	require.NoError(t, err)
	if tweak != nil {
		tweak(cfg)
	}
	logs := &syncBuffer{}
	a, err := newApp(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	require.NoError(t, err)
	h, err := a.handler()
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	bg, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.runBackground(bg); close(done) }()
	t.Cleanup(func() { srv.Close(); stop(); <-done; a.close() })
	key, err := a.clients.Add(context.Background(), fmt.Sprintf("shop-%d", seq.Add(1)))
	require.NoError(t, err)
	return &harness{t: t, env: env, app: a, url: srv.URL, logs: logs, apiKey: key, ip: "127.0.0.1"}
}

var seq atomic.Int64

// response is a decoded API answer.
type response struct {
	Status int
	Body   map[string]any
	Raw    []byte
	Header http.Header
}

func (r response) errorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// call sends a request. body may be nil, []byte (sent as is) or a value to JSON-encode.
func (h *harness) call(method, path, token string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", h.ip)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Raw: raw, Header: resp.Header}
	_ = json.Unmarshal(raw, &r.Body)
	h.conform(req, r) // the answer must match api/openapi.yaml (openapi_test.go)
	return r
}

// orderBody is a valid order; canary strings make PII easy to search for.
func orderBody(id string) map[string]any {
	return map[string]any{
		"order_id":    id,
		"payment_ref": "pi_" + id,
		"shipping": map[string]any{
			"name":  "Canaryname Zzyzx",
			"email": "canary.zzyzx@example.com",
			"phone": "+15550123456",
			"address": map[string]any{
				"line1": "742 Canarystreet", "line2": "Apt 9", "city": "Canaryville",
				"state": "CA", "postal_code": "90210", "country": "US",
			},
		},
	}
}

// piiCanaries are substrings of orderBody's PII that must never show up
// in Redis, logs, audit entries or metrics.
var piiCanaries = []string{"Canaryname", "Zzyzx", "zzyzx", "Canarystreet", "Canaryville", "5550123456"}

// staffMember creates a staff account in Vault and returns its name,
// password and TOTP key.
func (h *harness) staffMember(role string) (string, string, *otp.Key) {
	h.t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("%s%d-%d", role[:4], time.Now().UnixNano()%1e6, seq.Add(1))
	pw, err := h.env.Root.GeneratePassword(ctx)
	require.NoError(h.t, err)
	enr, err := h.env.Root.CreateStaff(ctx, name, role, pw)
	require.NoError(h.t, err)
	key, err := otp.NewKeyFromURL(enr.TOTPURL)
	require.NoError(h.t, err)
	return name, pw, key
}

// codes hands out TOTP codes for test logins. Vault remembers a used code
// for 90 s per MFA method, not per member, so two members whose codes
// happen to match inside that window would see the second login refused
// (1 in a million per pair, but a run makes hundreds of logins).
var codes = struct {
	sync.Mutex
	used map[string]time.Time
}{used: map[string]time.Time{}}

// freshCode returns key's code at `at` (within Vault's one period of skew
// from now), or failing that a code of another period Vault still accepts,
// that no test login used in the last 100 s.
func freshCode(t testing.TB, key *otp.Key, at time.Time) string {
	t.Helper()
	codes.Lock()
	defer codes.Unlock()
	now := time.Now()
	for _, when := range []time.Time{at, now, now.Add(30 * time.Second), now.Add(-30 * time.Second)} {
		if d := when.Sub(now); d > 30*time.Second || d < -30*time.Second {
			continue
		}
		code, err := totp.GenerateCode(key.Secret(), when)
		require.NoError(t, err)
		if last, ok := codes.used[code]; !ok || time.Since(last) > 100*time.Second {
			codes.used[code] = time.Now()
			return code
		}
	}
	t.Fatal("no unused TOTP code near now")
	return ""
}

// login logs a new staff member of role in through the API and returns
// its name and token.
func (h *harness) login(role string) (string, string) {
	h.t.Helper()
	name, pw, key := h.staffMember(role)
	code := freshCode(h.t, key, time.Now())
	r := h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": pw, "totp": code})
	require.Equal(h.t, 200, r.Status, string(r.Raw))
	require.Equal(h.t, role, r.Body["role"])
	tok, _ := r.Body["token"].(string)
	require.NotEmpty(h.t, tok)
	return name, tok
}

// storeOrder stores orderBody(id) as the storefront.
func (h *harness) storeOrder(id string) {
	h.t.Helper()
	r := h.call("POST", "/v1/orders", h.apiKey, orderBody(id))
	require.Equal(h.t, 201, r.Status, string(r.Raw))
}

// redisDump returns every key and value in Redis as text.
func (h *harness) redisDump() string {
	h.t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	keys, err := h.env.Redis.Keys(ctx, "*").Result()
	require.NoError(h.t, err)
	for _, k := range keys {
		dump, err := h.env.Redis.Dump(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			// Gone since KEYS (an expiring lock, a mail sent): nothing to read.
			continue
		}
		require.NoError(h.t, err)
		out.WriteString(k + "\n" + dump + "\n")
		// Streams and hashes are also read field by field: DUMP may compress.
		switch h.env.Redis.Type(ctx, k).Val() {
		case "hash":
			for f, v := range h.env.Redis.HGetAll(ctx, k).Val() {
				out.WriteString(f + "=" + v + "\n")
			}
		case "stream":
			for _, m := range h.env.Redis.XRange(ctx, k, "-", "+").Val() {
				fmt.Fprintf(&out, "%v\n", m.Values)
			}
		case "string":
			out.WriteString(h.env.Redis.Get(ctx, k).Val() + "\n")
		case "set":
			fmt.Fprintf(&out, "%v\n", h.env.Redis.SMembers(ctx, k).Val())
		case "zset":
			fmt.Fprintf(&out, "%v\n", h.env.Redis.ZRange(ctx, k, 0, -1).Val())
		}
	}
	return out.String()
}

func requireNoPII(t *testing.T, where, text string) {
	t.Helper()
	for _, c := range piiCanaries {
		require.NotContains(t, text, c, "PII canary %q found in %s", c, where)
	}
}
