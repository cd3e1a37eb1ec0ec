package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/webhooks"
)

func TestAccessLogAndAuditHoldNoPIIOrTokens(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.ip = "203.0.113.7"
	r := h.call("POST", "/v1/orders?email=canary.zzyzx@example.com", h.apiKey, orderBody("ord-log"))
	require.Equal(t, 201, r.Status)
	_, tok := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-log/shipping?reason=label", tok, nil).Status)
	bad := orderBody("ord-log2")
	bad["shipping"].(map[string]any)["email"] = "Canaryname-bad-email"
	require.Equal(t, 422, h.call("POST", "/v1/orders", h.apiKey, bad).Status)

	logs := h.logs.String()
	requireNoPII(t, "logs", logs)
	require.NotContains(t, logs, h.apiKey)
	require.NotContains(t, logs, tok)
	require.NotContains(t, logs, "email=")
	// One access line per request with the route template and the client IP.
	require.Contains(t, logs, `"route":"/v1/orders/:id/shipping"`)
	require.Contains(t, logs, `"ip":"203.0.113.7"`)
	require.NotContains(t, logs, `"route":"/v1/orders/ord-log/shipping"`)

	ctx := context.Background()
	var kept strings.Builder
	require.Eventually(t, func() bool {
		kept.Reset()
		for _, m := range h.env.Redis.XRange(ctx, "piivault:{access}:log", "-", "+").Val() {
			fmt.Fprintf(&kept, "%v\n", m.Values)
		}
		return strings.Contains(kept.String(), "/v1/orders/:id/shipping")
	}, 5*time.Second, 50*time.Millisecond, "access lines are kept in Redis")
	requireNoPII(t, "kept access log", kept.String())

	entries := h.call("GET", "/v1/audit", h.loginToken("auditor"), nil)
	require.Equal(t, 200, entries.Status)
	requireNoPII(t, "audit", string(entries.Raw))
	require.NotContains(t, string(entries.Raw), tok)
	require.Contains(t, string(entries.Raw), `"action":"order.reveal"`)
	require.Contains(t, string(entries.Raw), `"order_id":"ord-log"`)
	require.Contains(t, string(entries.Raw), `"ip":"203.0.113.7"`)

	metrics := h.call("GET", "/metrics", "", nil)
	requireNoPII(t, "metrics", string(metrics.Raw))
	require.NotContains(t, string(metrics.Raw), "ord-log")
	require.NotContains(t, string(metrics.Raw), "203.0.113.7")
}

// TestAccessLinesCarryTimeIPMethodRouteStatusAndLatency holds invariant 8 to
// each field of the access line (monitoring.AccessLog), in the process log
// (slog JSON) and in the copy kept in Redis: each request below comes from
// its own IP, so its line is found by IP and every other field is checked.
func TestAccessLinesCarryTimeIPMethodRouteStatusAndLatency(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-al")
	_, sup := h.login("support")
	tests := []struct {
		name, ip, method, path, token string
		body                          any
		route                         string // the template, never the path with its id or query
		status                        int
		// minLatency is a floor the request is known to take: a failed
		// login answers no sooner than 600 ms (the staff login floor).
		minLatency time.Duration
	}{
		{"store", "203.0.113.21", "POST", "/v1/orders", h.apiKey, orderBody("ord-al2"), "/v1/orders", 201, 0},
		{"reference", "203.0.113.22", "GET", "/v1/orders/ord-al", h.apiKey, nil, "/v1/orders/:id", 200, 0},
		{"unknown order with a query", "203.0.113.23", "GET", "/v1/orders/ord-none?email=x", h.apiKey, nil, "/v1/orders/:id", 404, 0},
		{"reveal", "203.0.113.24", "GET", "/v1/orders/ord-al/shipping?reason=label", sup, nil, "/v1/orders/:id/shipping", 200, 0},
		{"purge", "203.0.113.25", "DELETE", "/v1/orders/ord-al/pii", sup, nil, "/v1/orders/:id/pii", 200, 0},
		{"failed login", "203.0.113.26", "POST", "/v1/auth/login", "",
			map[string]any{"username": "nobody-al", "password": "Wrong-Password-123!", "totp": "123456"},
			"/v1/auth/login", 401, 550 * time.Millisecond},
		{"no such endpoint", "203.0.113.27", "GET", "/v1/nothing/ord-al", "", nil, "unmatched", 404, 0},
	}
	type sent struct {
		before, after time.Time
		took          time.Duration
	}
	calls := map[string]sent{}
	for _, tt := range tests {
		h.ip = tt.ip
		before := time.Now()
		r := h.call(tt.method, tt.path, tt.token, tt.body)
		took := time.Since(before)
		require.Equal(t, tt.status, r.Status, "%s: %s", tt.name, r.Raw)
		calls[tt.ip] = sent{before: before, after: time.Now(), took: took}
	}
	// The server's clock readings sit inside the client's round trip; the
	// slack covers only the order in which the two read their clocks.
	const slack = 100 * time.Millisecond

	t.Run("process log", func(t *testing.T) {
		lines := map[string][]map[string]any{}
		for _, raw := range strings.Split(h.logs.String(), "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(raw), &l) == nil && l["msg"] == "access" {
				ip, _ := l["ip"].(string)
				lines[ip] = append(lines[ip], l)
			}
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := calls[tt.ip]
				require.Len(t, lines[tt.ip], 1, "one access line per request")
				l := lines[tt.ip][0]
				ts, _ := l["time"].(string)
				at, err := time.Parse(time.RFC3339Nano, ts)
				require.NoError(t, err, "time: %v", l["time"])
				require.WithinRange(t, at, c.before.Add(-slack), c.after.Add(slack))
				require.Equal(t, tt.method, l["method"])
				require.Equal(t, tt.route, l["route"])
				require.EqualValues(t, tt.status, l["status"])
				// slog's JSON form of a Duration: nanoseconds.
				ns, ok := l["latency"].(float64)
				require.True(t, ok, "latency: %v", l["latency"])
				lat := time.Duration(ns)
				require.Greater(t, lat, time.Duration(0))
				require.GreaterOrEqual(t, lat, tt.minLatency)
				require.LessOrEqual(t, lat, c.took+slack)
			})
		}
	})

	t.Run("kept in Redis", func(t *testing.T) {
		ctx := context.Background()
		kept := map[string][]map[string]any{}
		require.Eventually(t, func() bool {
			clear(kept)
			for _, m := range h.env.Redis.XRange(ctx, "piivault:{access}:log", "-", "+").Val() {
				ip, _ := m.Values["ip"].(string)
				kept[ip] = append(kept[ip], m.Values)
			}
			for _, tt := range tests {
				if len(kept[tt.ip]) == 0 {
					return false
				}
			}
			return true
		}, 5*time.Second, 50*time.Millisecond, "every line reaches Redis")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := calls[tt.ip]
				require.Len(t, kept[tt.ip], 1, "one kept line per request")
				l := kept[tt.ip][0]
				ts, _ := l["time"].(string)
				at, err := time.Parse(time.RFC3339Nano, ts)
				require.NoError(t, err, "time: %v", l["time"])
				require.WithinRange(t, at, c.before.Add(-slack), c.after.Add(slack))
				require.Equal(t, tt.method, l["method"])
				require.Equal(t, tt.route, l["route"])
				require.Equal(t, strconv.Itoa(tt.status), l["status"])
				msText, _ := l["latency_ms"].(string)
				ms, err := strconv.ParseInt(msText, 10, 64)
				require.NoError(t, err, "latency_ms: %v", l["latency_ms"])
				lat := time.Duration(ms) * time.Millisecond
				require.GreaterOrEqual(t, lat, tt.minLatency.Truncate(time.Millisecond))
				require.LessOrEqual(t, lat, c.took+slack)
			})
		}
	})
}

// loginToken logs in a new staff member of role and returns its token.
func (h *harness) loginToken(role string) string {
	_, tok := h.login(role)
	return tok
}

func TestAuditVerifyFindsTheFirstBrokenEntry(t *testing.T) {
	h := newHarness(t, nil, nil)
	for i := 0; i < 5; i++ {
		h.storeOrder(fmt.Sprintf("ord-a%d", i))
	}
	tok := h.loginToken("auditor")
	v := h.call("GET", "/v1/audit/verify", tok, nil)
	require.Equal(t, 200, v.Status)
	require.Equal(t, true, v.Body["intact"], string(v.Raw))

	// Rewrite the stream with entry 3's actor edited, keeping every id.
	ctx := context.Background()
	key := "piivault:{audit}:log"
	msgs := h.env.Redis.XRange(ctx, key, "-", "+").Val()
	require.NoError(t, h.env.Redis.Del(ctx, key).Err())
	for i, m := range msgs {
		raw := m.Values["entry"].(string)
		if i == 2 {
			raw = strings.Replace(raw, `"actor":"client:`, `"actor":"client:x`, 1)
		}
		require.NoError(t, h.env.Redis.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: m.ID, Values: map[string]any{"entry": raw}}).Err())
	}
	v = h.call("GET", "/v1/audit/verify", tok, nil)
	require.Equal(t, false, v.Body["intact"])
	broken := v.Body["first_broken"].(map[string]any)
	require.EqualValues(t, 3, broken["seq"])
	require.Equal(t, msgs[2].ID, broken["id"])
	require.Contains(t, broken["reason"], "modified")

	// The CLI agrees, with one line on stderr and a non-zero exit.
	err := realMain(ctx, []string{"audit", "verify"}, nil, io.Discard, io.Discard, envOf(baseEnv(h.env)))
	require.ErrorContains(t, err, "broken at entry 3")
}

func TestAuditVerifyFindsDeletedEntries(t *testing.T) {
	h := newHarness(t, nil, nil)
	for i := 0; i < 4; i++ {
		h.storeOrder(fmt.Sprintf("ord-b%d", i))
	}
	ctx := context.Background()
	msgs := h.env.Redis.XRange(ctx, "piivault:{audit}:log", "-", "+").Val()
	h.env.Redis.XDel(ctx, "piivault:{audit}:log", msgs[1].ID)
	v, err := h.app.audit.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact)
	require.EqualValues(t, 3, v.Broken.Seq)
	require.Contains(t, v.Broken.Reason, "removed")

	h.env.Redis.XDel(ctx, "piivault:{audit}:log", msgs[3].ID) // the newest
	h.env.Redis.Del(ctx, "piivault:{audit}:log")
	v, err = h.app.audit.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact, "emptying the trail is detected by the head")
}

func TestFailedLoginsBlockTheIPOnEveryInstance(t *testing.T) {
	h1 := newHarness(t, nil, nil)
	h2 := newHarness(t, h1.env, nil)
	adminTok := h1.loginToken("admin")
	h1.ip, h2.ip = "198.51.100.9", "198.51.100.9"
	for i := 0; i < 10; i++ {
		r := h1.call("POST", "/v1/auth/login", "", map[string]any{"username": "mallory", "password": "Guess-Guess-123!", "totp": "123456"})
		require.Equal(t, 401, r.Status, "attempt %d", i)
	}
	r := h2.call("GET", "/v1/orders/anything", h2.apiKey, nil)
	require.Equal(t, 403, r.Status, "the 11th request, on a second instance, is blocked")
	require.Equal(t, "blocked", r.errorCode())

	h2.ip = "192.0.2.1" // the admin, elsewhere
	list := h2.call("GET", "/v1/admin/blocks", adminTok, nil)
	require.Contains(t, string(list.Raw), "198.51.100.9")
	require.Equal(t, 204, h2.call("DELETE", "/v1/admin/blocks/198.51.100.9", adminTok, nil).Status)
	h1.ip = "198.51.100.9"
	require.Equal(t, 404, h1.call("GET", "/v1/orders/anything", h1.apiKey, nil).Status, "unblocking restores access")
	require.Equal(t, 1, countAudit(t, h1, "ip.block"))
	require.Equal(t, 1, countAudit(t, h1, "ip.unblock"))
}

func TestBadAPIKeysBlockTheIP(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.ip = "198.51.100.77"
	for i := 0; i < 10; i++ {
		require.Equal(t, 401, h.call("GET", "/v1/orders/x", "pvk_guess"+strconv.Itoa(i), nil).Status)
	}
	require.Equal(t, 403, h.call("GET", "/v1/orders/x", h.apiKey, nil).Status)
}

// TestABlockStopsTheNextRevealOfARememberedToken: a reveal whose token
// needs no look-up reads its IP block with the order (revealAuth, the
// Revealer's gate). A block still refuses the very next request, whatever
// else is wrong with it, and nothing is decrypted or audited.
func TestABlockStopsTheNextRevealOfARememberedToken(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-blocked-reveal")
	fulfillment, admin := h.loginToken("fulfillment"), h.loginToken("admin")
	h.ip = "198.51.100.33"
	path := "/v1/orders/ord-blocked-reveal/shipping?reason=label"
	require.Equal(t, 200, h.call("GET", path, fulfillment, nil).Status)
	require.Equal(t, 403, h.call("GET", path, admin, nil).Status, "an admin may not reveal")
	revealed := countAudit(t, h, audit.ActionReveal)

	for i := 0; i < 10; i++ {
		require.Equal(t, 401, h.call("GET", "/v1/orders/x", "pvk_guess"+strconv.Itoa(i), nil).Status)
	}
	for name, tt := range map[string]struct{ path, token string }{
		"a reveal":               {path, fulfillment},
		"without a reason":       {"/v1/orders/ord-blocked-reveal/shipping", fulfillment},
		"of a malformed id":      {"/v1/orders/%20x/shipping?reason=label", fulfillment},
		"by a role that may not": {path, admin},
		"with an unknown token":  {path, "hvs.not-a-token"},
	} {
		r := h.call("GET", tt.path, tt.token, nil)
		require.Equal(t, 403, r.Status, name)
		require.Equal(t, "blocked", r.errorCode(), name)
	}
	require.Equal(t, revealed, countAudit(t, h, audit.ActionReveal), "a blocked reveal is neither decrypted nor audited")

	h.ip = "192.0.2.1"
	require.Equal(t, 204, h.call("DELETE", "/v1/admin/blocks/198.51.100.33", admin, nil).Status)
	h.ip = "198.51.100.33"
	require.Equal(t, 200, h.call("GET", path, fulfillment, nil).Status, "unblocking restores access")
}

// alertReceiver is a local Slack-compatible webhook that records alerts.
type alertReceiver struct {
	mu    sync.Mutex
	texts []string
}

func (a *alertReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text string `json:"text"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	a.mu.Lock()
	a.texts = append(a.texts, body.Text)
	a.mu.Unlock()
}

func (a *alertReceiver) all() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.texts, "\n")
}

func TestRevealThresholdSuspendsAndAlerts(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_REVEAL_LIMIT": "3", "PIIVAULT_ALERT_URL": srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for i := 0; i < 5; i++ {
		h.storeOrder(fmt.Sprintf("ord-t%d", i))
	}
	name, pw, key := h.staffMember("fulfillment")
	tok := h.loginAs(name, pw, key, time.Now()).Body["token"].(string)
	for i := 0; i < 4; i++ {
		require.Equal(t, 200, h.call("GET", fmt.Sprintf("/v1/orders/ord-t%d/shipping?reason=label", i), tok, nil).Status, "reveal %d", i)
	}
	r := h.call("GET", "/v1/orders/ord-t4/shipping?reason=label", tok, nil)
	require.Equal(t, 401, r.Status, "the account is suspended after crossing the threshold: Vault refuses its token")
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), name) }, 5*time.Second, 50*time.Millisecond)
	require.Contains(t, recv.all(), "suspended")
	requireNoPII(t, "alerts", recv.all())

	require.NoError(t, h.app.staff.Unsuspend(ctx, name))
	tok = h.loginAs(name, pw, key, time.Now().Add(30*time.Second)).Body["token"].(string)
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-t4/shipping?reason=label", tok, nil).Status)
}

func TestRateLimitsAnswer429WithRetryAfter(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_RATE_LIMIT": "2", "PIIVAULT_LOGIN_RATE_LIMIT": "3"})
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-rl1")).Status)
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-rl2")).Status)
	r := h.call("POST", "/v1/orders", h.apiKey, orderBody("ord-rl3"))
	require.Equal(t, 429, r.Status)
	require.Equal(t, "rate_limited", r.errorCode())
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, ra >= 1 && ra <= 60, "Retry-After %d", ra)

	h.ip = "192.0.2.44"
	for i := 0; i < 3; i++ {
		require.Equal(t, 401, h.call("POST", "/v1/auth/login", "", map[string]any{"username": "x", "password": "y", "totp": "1"}).Status)
	}
	r = h.call("POST", "/v1/auth/login", "", map[string]any{"username": "x", "password": "y", "totp": "1"})
	require.Equal(t, 429, r.Status)
	require.NotEmpty(t, r.Header.Get("Retry-After"))
}

func TestBadSignatureFloodAlerts(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL})
	h.storeOrder("ord-flood")
	h.ip = "198.51.100.200"
	body := []byte(`{"event_id":"evt-flood","order_id":"ord-flood","status":"shipped"}`)
	for i := 0; i < 20; i++ {
		r := h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature", "t=1,v1=00")
		require.Equal(t, 401, r.Status)
	}
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), "bad signatures") }, 5*time.Second, 50*time.Millisecond)
	// Webhook senders are not blocked: a provider's IPs carry real deliveries
	// too, and so may a shop behind the same address.
	bs, err := h.app.monitor.Blocks(context.Background())
	require.NoError(t, err)
	require.Empty(t, bs, "bad signatures count toward no block")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-flood", h.apiKey, nil).Status)
	// From the flooding IP, an unsigned delivery is still judged by its
	// (missing) signature, and a signed one is processed.
	r := h.call("POST", "/v1/webhooks/shipping", "", body)
	require.Equal(t, 401, r.Status, string(r.Raw))
	require.Equal(t, "unauthorized", r.errorCode())
	require.Equal(t, "held", h.status("ord-flood"))
	r = h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now(), body))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "purged", r.Body["outcome"])
	require.Equal(t, "shipped", h.purgeReason("ord-flood"))
}
