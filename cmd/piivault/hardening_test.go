package main

// Each test here replays one of the attacks of the hardening review against
// the real stack and shows it failing.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/pquerna/otp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/orders"
	"piivault/vault"
	"piivault/webhooks"
)

// rootAPI is a raw Vault client with the root token, for what an attacker
// with a Vault token, or an operator's manual change, would do.
func rootAPI(t *testing.T, h *harness) *vaultapi.Client {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = h.env.VaultAddr
	c, err := vaultapi.NewClient(cfg)
	require.NoError(t, err)
	c.SetToken(h.env.RootToken)
	return c
}

// requireLiveInVault and requireRevokedInVault ask Vault itself, with the
// root token, about a staff token (auth/token/lookup), not piivault: a 401
// or 423 from piivault can come from its own Redis state (a lockdown flag,
// a suspension listing) while Vault would still honour the token for
// anyone who sends it straight to Vault.
func requireLiveInVault(t *testing.T, h *harness, tok string) {
	t.Helper()
	s, err := rootAPI(t, h).Auth().Token().Lookup(tok)
	require.NoError(t, err, "Vault does not know the token")
	require.NotNil(t, s)
}

func requireRevokedInVault(t *testing.T, h *harness, tok string) {
	t.Helper()
	_, err := rootAPI(t, h).Auth().Token().Lookup(tok)
	var re *vaultapi.ResponseError
	require.ErrorAs(t, err, &re, "Vault still holds the token: it was not revoked")
	// Vault's answer to a lookup of a token that no longer exists.
	require.Equal(t, 403, re.StatusCode, "%v", err)
	require.Equal(t, []string{"bad token"}, re.Errors)
}

// loginAs logs a known member in; at is the TOTP time (Vault refuses a code
// twice, so a second login in one period uses the next period's code).
func (h *harness) loginAs(name, pw string, key *otp.Key, at time.Time) response {
	h.t.Helper()
	code := freshCode(h.t, key, at)
	return h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": pw, "totp": code})
}

func TestCredentialLessRequestsBlockNobody(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.ip = "198.51.100.10" // an office behind one address
	formBody := []byte(`{"username":"alice","password":"x","totp":"1"}=`)
	for i := 0; i < 12; i++ {
		// What a page on any other site can make a browser send: a "simple"
		// cross-site POST (text/plain form) and requests without a credential.
		r := h.call("POST", "/v1/auth/login", "", formBody, "Content-Type", "text/plain")
		require.Equal(t, 415, r.Status, string(r.Raw))
		require.Equal(t, 401, h.call("GET", "/v1/orders/x", "", nil).Status)
		require.Equal(t, 401, h.call("GET", "/v1/fulfillment/queue", "", nil, "Authorization", "Basic eDp5").Status)
		require.Equal(t, 422, h.call("POST", "/v1/auth/login", "", map[string]any{"username": "alice"}).Status)
	}
	r := h.call("GET", "/v1/orders/x", h.apiKey, nil)
	require.Equal(t, 404, r.Status, "the office is not blocked: %s", r.Raw)
	bs, err := h.app.monitor.Blocks(context.Background())
	require.NoError(t, err)
	require.Empty(t, bs)
}

func TestConcurrentWrongLoginsGetExactlyTheThresholdAndOneBlock(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL, "PIIVAULT_LOGIN_RATE_LIMIT": "0"})
	name, pw, key := h.staffMember("fulfillment")
	h.ip = "198.51.100.20"

	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// send, not h.call: no assertion may run off the test goroutine.
			body := []byte(`{"username":"` + name + `","password":"Wrong-Password-12345","totp":"123456"}`)
			st := send("POST", h.url+"/v1/auth/login", "", body, "X-Forwarded-For", h.ip)
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Equal(t, map[int]int{401: 10, 403: 30}, statuses,
		"exactly the threshold (10) of tries reach Vault; the rest are refused before it")
	require.Equal(t, 1, countAudit(t, h, "ip.block"))
	require.Equal(t, 1, countAudit(t, h, "staff.login_failed"), "failed logins are aggregated per IP and window")
	// Alerts go out one at a time, in order: once a marker sent after the
	// block has arrived, every alert of the block has too. No sleeping.
	h.app.alerter.Notify("test", "marker after the block")
	pollUntil(t, 10*time.Second, 20*time.Millisecond, func() bool { return strings.Contains(recv.all(), "marker after the block") })
	require.Equal(t, 1, strings.Count(recv.all(), "blocked 198.51.100.20"), "one alert")

	// Ten wrong passwords did not lock the member out of Vault: from their
	// own desk, the right password and code still work.
	h.ip = "192.0.2.30"
	r := h.loginAs(name, pw, key, time.Now())
	require.Equal(t, 200, r.Status, string(r.Raw))
	// The CLI lists the block and lifts it without an admin login.
	vars := baseEnv(h.env)
	var out bytes.Buffer
	require.NoError(t, realMain(context.Background(), []string{"blocks", "list"}, nil, &out, io.Discard, envOf(vars)))
	require.Contains(t, out.String(), "198.51.100.20")
	require.NoError(t, realMain(context.Background(), []string{"blocks", "lift", "198.51.100.20"}, nil, io.Discard, io.Discard, envOf(vars)))
	h.ip = "198.51.100.20"
	require.Equal(t, 404, h.call("GET", "/v1/orders/x", h.apiKey, nil).Status)
	require.Equal(t, 1, countAudit(t, h, "ip.unblock"))
}

func TestStaffUnlockLiftsVaultsLockout(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_LOGIN_RATE_LIMIT": "0"})
	api := rootAPI(t, h)
	ctx := context.Background()
	// Someone switched Vault's lockout back on by hand; setup switches it off again.
	t.Cleanup(func() { _, err := h.env.Root.Setup(ctx, vault.SetupOptions{}); require.NoError(t, err) })
	_, err := api.Logical().Write("sys/mounts/auth/userpass/tune", map[string]any{
		"user_lockout_config": map[string]any{"lockout_threshold": "2", "lockout_duration": "10m", "lockout_disable": false}})
	require.NoError(t, err)
	name, pw, key := h.staffMember("support")
	for i := 0; i < 3; i++ {
		h.ip = fmt.Sprintf("192.0.2.%d", 100+i)
		require.Equal(t, 401, h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": "Wrong-Password-12345", "totp": "123456"}).Status)
	}
	h.ip = "192.0.2.110"
	require.Equal(t, 401, h.loginAs(name, pw, key, time.Now()).Status, "Vault's lockout holds the member")
	locked, err := h.env.Root.LockedStaff(ctx)
	require.NoError(t, err)
	require.Contains(t, locked, name)

	vars := baseEnv(h.env)
	vars["VAULT_TOKEN"] = h.env.RootToken
	var out bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"staff", "unlock", name}, nil, &out, io.Discard, envOf(vars)))
	require.Contains(t, out.String(), "lifted")
	r := h.loginAs(name, pw, key, time.Now())
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, 1, countAudit(t, h, "staff.unlock"))

	// With setup's tuning, five wrong passwords lock no one out.
	_, err = h.env.Root.Setup(ctx, vault.SetupOptions{})
	require.NoError(t, err)
	for i := 0; i < 6; i++ {
		h.ip = fmt.Sprintf("192.0.2.%d", 120+i)
		require.Equal(t, 401, h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": "Wrong-Password-12345", "totp": "123456"}).Status)
	}
	require.Equal(t, 200, h.loginAs(name, pw, key, time.Now().Add(30*time.Second)).Status)
}

// waitAnchored waits until Vault's anchor holds the trail's newest entry.
func waitAnchored(t *testing.T, h *harness) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		head := h.env.Redis.Get(ctx, "piivault:{audit}:head").Val()
		a, _, err := h.env.Service.ReadAnchor(ctx)
		return err == nil && head != "" && strings.HasPrefix(head, fmt.Sprintf("%d:", a.Seq))
	}, 5*time.Second, 20*time.Millisecond)
}

func TestAuditTrailCutsAreReportedByBothVerifyPaths(t *testing.T) {
	const logKey, headKey = "piivault:{audit}:log", "piivault:{audit}:head"
	tests := []struct {
		name   string
		tamper func(ctx context.Context, rdb *redis.Client, msgs []redis.XMessage)
		reason string
	}{
		{"newest entries cut and the head moved back", func(ctx context.Context, rdb *redis.Client, msgs []redis.XMessage) {
			for _, m := range msgs[len(msgs)-2:] {
				rdb.XDel(ctx, logKey, m.ID)
			}
			var kept struct {
				Seq  int64  `json:"seq"`
				Hash string `json:"hash"`
			}
			require.NoError(t, json.Unmarshal([]byte(msgs[len(msgs)-3].Values["entry"].(string)), &kept))
			rdb.Set(ctx, headKey, fmt.Sprintf("%d:%s", kept.Seq, kept.Hash), 0)
		}, "newest entries were removed"},
		{"whole trail and head deleted", func(ctx context.Context, rdb *redis.Client, _ []redis.XMessage) {
			rdb.Del(ctx, logKey, headKey)
		}, "newest entries were removed"},
		{"head deleted", func(ctx context.Context, rdb *redis.Client, _ []redis.XMessage) {
			rdb.Del(ctx, headKey)
		}, "newest entries were removed"},
		{"entry added beyond the head", func(ctx context.Context, rdb *redis.Client, msgs []redis.XMessage) {
			rdb.XAdd(ctx, &redis.XAddArgs{Stream: logKey, Values: map[string]any{"entry": msgs[0].Values["entry"]}})
		}, "beyond the head"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, nil)
			for i := 0; i < 5; i++ {
				h.storeOrder(fmt.Sprintf("ord-cut%d", i))
			}
			waitAnchored(t, h)
			tok := h.loginToken("auditor")
			waitAnchored(t, h)
			require.Equal(t, true, h.call("GET", "/v1/audit/verify", tok, nil).Body["intact"])
			ctx := context.Background()
			tt.tamper(ctx, h.env.Redis, h.env.Redis.XRange(ctx, logKey, "-", "+").Val())

			v := h.call("GET", "/v1/audit/verify", tok, nil)
			require.Equal(t, 200, v.Status, string(v.Raw))
			require.Equal(t, false, v.Body["intact"], string(v.Raw))
			require.Contains(t, v.Body["first_broken"].(map[string]any)["reason"], tt.reason)
			err := realMain(ctx, []string{"audit", "verify"}, nil, io.Discard, io.Discard, envOf(baseEnv(h.env)))
			require.ErrorContains(t, err, tt.reason)
		})
	}
}

func TestTheAnchorIsNotMovedOverALostTail(t *testing.T) {
	recv := &alertReceiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	h := newHarness(t, nil, map[string]string{"PIIVAULT_ALERT_URL": srv.URL})
	for i := 0; i < 4; i++ {
		h.storeOrder(fmt.Sprintf("ord-lost%d", i))
	}
	waitAnchored(t, h)
	ctx := context.Background()
	before, _, err := h.env.Service.ReadAnchor(ctx)
	require.NoError(t, err)
	// A failover to a replica that missed the tail: the newest two entries and
	// the head that named them are gone, and the trail then grows again.
	msgs := h.env.Redis.XRange(ctx, "piivault:{audit}:log", "-", "+").Val()
	var kept struct {
		Seq  int64  `json:"seq"`
		Hash string `json:"hash"`
	}
	require.NoError(t, json.Unmarshal([]byte(msgs[len(msgs)-3].Values["entry"].(string)), &kept))
	for _, m := range msgs[len(msgs)-2:] {
		h.env.Redis.XDel(ctx, "piivault:{audit}:log", m.ID)
	}
	h.env.Redis.Set(ctx, "piivault:{audit}:head", fmt.Sprintf("%d:%s", kept.Seq, kept.Hash), 0)
	for i := 0; i < 4; i++ {
		h.storeOrder(fmt.Sprintf("ord-after%d", i))
	}
	require.Eventually(t, func() bool { return strings.Contains(recv.all(), "audit trail no longer holds") }, 5*time.Second, 50*time.Millisecond)
	after, _, err := h.env.Service.ReadAnchor(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "the anchor stays on the lost entry")
	v, err := h.app.audit.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact)
	require.Contains(t, v.Broken.Reason, "anchored in Vault")
}

func TestRandomMethodsLeaveMetricsAndRedisBounded(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	before := h.env.Redis.MemoryUsage(ctx, "piivault:{access}:log").Val()
	for i := 0; i < 30; i++ {
		raw := make([]byte, 2048)
		_, _ = rand.Read(raw)
		method := strings.ToUpper(hex.EncodeToString(raw))
		req, err := http.NewRequest(method, h.url+"/v1/orders", nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	metrics := string(h.call("GET", "/metrics", "", nil).Raw)
	require.Contains(t, metrics, `method="OTHER"`)
	require.Less(t, len(metrics), 200_000)
	require.Eventually(t, func() bool {
		n := 0
		for _, m := range h.env.Redis.XRange(ctx, "piivault:{access}:log", "-", "+").Val() {
			if m.Values["method"] == "OTHER" {
				n++
			}
		}
		return n == 30
	}, 5*time.Second, 50*time.Millisecond)
	after := h.env.Redis.MemoryUsage(ctx, "piivault:{access}:log").Val()
	require.Less(t, after-before, int64(30*400), "30 lines of bounded size, not 30 times 4 KB")
	require.NotContains(t, h.logs.String(), strings.Repeat("A", 100))
}

func TestVaultEnforcesEveryStaffLimit(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-vlt")
	ctx := context.Background()
	pii := h.env.Redis.Keys(ctx, "piivault:*:pii:ord-vlt").Val()[0]
	full, masked := h.env.Redis.HGet(ctx, pii, "ct").Val(), h.env.Redis.HGet(ctx, pii, "mct").Val()
	ad := []byte("ord-vlt")

	t.Run("support decrypting straight from Vault gets only the masked record", func(t *testing.T) {
		_, sup := h.login("support")
		_, err := h.env.Service.Decrypt(ctx, sup, full, ad)
		require.Equal(t, apperr.Forbidden, apperr.CodeOf(err), "%v", err)
		plain, err := h.env.Service.DecryptMasked(ctx, sup, masked, ad)
		require.NoError(t, err)
		require.Contains(t, string(plain), `"C*** Z***"`)
		for _, c := range []string{"Canaryname", "Zzyzx", "zzyzx", "Canarystreet", "90210", "5550123456"} {
			require.NotContains(t, string(plain), c, "the masked record holds only initials, the email domain, city and country")
		}
	})

	t.Run("a suspended member's token cannot decrypt in Vault", func(t *testing.T) {
		name, pw, key := h.staffMember("fulfillment")
		h.ip = "192.0.2.50"
		r := h.loginAs(name, pw, key, time.Now())
		require.Equal(t, 200, r.Status)
		tok := r.Body["token"].(string)
		_, err := h.env.Service.Decrypt(ctx, tok, full, ad)
		require.NoError(t, err)
		require.NoError(t, h.app.staff.Suspend(ctx, name))
		_, err = h.env.Service.Decrypt(ctx, tok, full, ad)
		require.Error(t, err, "Vault refuses a disabled entity's token")
		require.Equal(t, 401, h.call("GET", "/v1/orders/ord-vlt/shipping?reason=label", tok, nil).Status)
		require.Equal(t, 401, h.loginAs(name, pw, key, time.Now().Add(30*time.Second)).Status, "no new session either")

		require.NoError(t, h.app.staff.Unsuspend(ctx, name))
		r = h.loginAs(name, pw, key, time.Now().Add(-30*time.Second))
		require.Equal(t, 200, r.Status, string(r.Raw))
		require.Equal(t, 200, h.call("GET", "/v1/orders/ord-vlt/shipping?reason=label", r.Body["token"].(string), nil).Status)
	})

	t.Run("a token from token/create with a piivault policy is not staff", func(t *testing.T) {
		s, err := rootAPI(t, h).Auth().Token().Create(&vaultapi.TokenCreateRequest{
			Policies: []string{"piivault-fulfillment"}, Metadata: map[string]string{"username": "alice"}, DisplayName: "userpass-alice"})
		require.NoError(t, err)
		r := h.call("GET", "/v1/orders/ord-vlt/shipping?reason=label", s.Auth.ClientToken, nil)
		require.Equal(t, 401, r.Status, string(r.Raw))
		require.Zero(t, countAudit(t, h, "order.reveal", "alice"))
	})

	t.Run("the actor is the login's alias, not token metadata", func(t *testing.T) {
		name, tok := h.login("fulfillment")
		require.Equal(t, 200, h.call("GET", "/v1/orders/ord-vlt/shipping?reason=label", tok, nil).Status)
		require.Equal(t, 1, countAudit(t, h, "order.reveal", name))
	})

	// Removal and lockdown are held by Vault, not by piivault's Redis: the
	// member's token no longer exists there, so a decrypt sent straight to
	// Vault with it (past piivault) is refused too.
	t.Run("a removed member's token is revoked in Vault", func(t *testing.T) {
		name, tok := h.login("fulfillment")
		_, err := h.env.Service.Decrypt(ctx, tok, full, ad)
		require.NoError(t, err)
		requireLiveInVault(t, h, tok)
		require.NoError(t, h.env.Root.RemoveStaff(ctx, name))
		requireRevokedInVault(t, h, tok)
		_, err = h.env.Service.Decrypt(ctx, tok, full, ad)
		require.Equal(t, apperr.Forbidden, apperr.CodeOf(err), "Vault refuses the removed member's decrypt: %v", err)
	})

	// Last: it ends every staff session of this test.
	t.Run("a lockdown revokes every staff token in Vault", func(t *testing.T) {
		_, ful := h.login("fulfillment")
		_, admin := h.login("admin")
		_, err := h.env.Service.Decrypt(ctx, ful, full, ad)
		require.NoError(t, err)
		r := h.call("POST", "/v1/admin/lockdown", admin, map[string]any{"on": true})
		require.Equal(t, 200, r.Status, string(r.Raw))
		t.Cleanup(func() {
			_, err := h.app.lockdown.Set(context.Background(), false, "operator", "")
			require.NoError(t, err)
		})
		for _, tok := range []string{ful, admin} {
			requireRevokedInVault(t, h, tok)
		}
		_, err = h.env.Service.Decrypt(ctx, ful, full, ad)
		require.Equal(t, apperr.Forbidden, apperr.CodeOf(err), "Vault refuses a decrypt with a token revoked by the lockdown: %v", err)
	})
}

func TestPurgesLeaveNoIndexEntry(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	h.storeOrder("ord-idx1")
	h.storeOrder("ord-idx2")
	// The email and payment indexes expire with their last member.
	for _, pattern := range []string{"piivault:*:email:*", "piivault:*:payref:*"} {
		for _, k := range h.env.Redis.Keys(ctx, pattern).Val() {
			require.Greater(t, h.env.Redis.PTTL(ctx, k).Val(), time.Duration(0), k)
		}
	}
	// ord-idx1's ciphertext already expired in Redis; ord-idx2's is held.
	h.env.Redis.Del(ctx, h.env.Redis.Keys(ctx, "piivault:*:pii:ord-idx1").Val()[0])
	sup := h.loginToken("support")
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-idx1/pii", sup, nil).Status)
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-idx2/pii", sup, nil).Status)
	for _, k := range h.env.Redis.Keys(ctx, "piivault:*").Val() {
		if strings.Contains(k, ":ref:") || strings.Contains(k, "{audit}") || strings.Contains(k, "outbox") {
			continue
		}
		if strings.Contains(k, ":reveals:") {
			// The order's reveal list stays for its access report on
			// purpose, for a while, and names no email.
			ttl := h.env.Redis.PTTL(ctx, k).Val()
			require.True(t, ttl > 0 && ttl <= orders.HistoryFor, "%s: %s", k, ttl)
			continue
		}
		if strings.Contains(k, ":mail:") || strings.Contains(k, ":mailof:") {
			// The email's link to a purged order stays until that order's
			// own expiry, and not a moment longer (invariant 13); only the
			// access report reads it, and no look-up that acts on orders.
			ttl := h.env.Redis.PTTL(ctx, k).Val()
			require.True(t, ttl > 0 && ttl <= orders.MaxRetention, "%s: %s", k, ttl)
			for _, z := range h.env.Redis.ZRangeWithScores(ctx, k, 0, -1).Val() {
				ref := h.call("GET", "/v1/orders/"+z.Member.(string), h.apiKey, nil)
				exp, err := time.Parse(time.RFC3339Nano, ref.Body["expires_at"].(string))
				require.NoError(t, err)
				require.Equal(t, exp.UnixMilli(), int64(z.Score), "%s: a link lasts exactly until its order's expiry", k)
			}
			continue
		}
		var members []string
		switch h.env.Redis.Type(ctx, k).Val() {
		case "set":
			members = h.env.Redis.SMembers(ctx, k).Val()
		case "zset":
			members = h.env.Redis.ZRange(ctx, k, 0, -1).Val()
		}
		for _, m := range members {
			require.NotContains(t, m, "ord-idx", "%s still names a purged order", k)
		}
	}
	r := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": "canary.zzyzx@example.com"})
	require.Equal(t, 201, r.Status)
	require.Empty(t, r.Body["orders"], "look-ups no longer find purged orders")
}

func TestDeletionRequestInDecomposedUnicodeFindsTheComposedOrder(t *testing.T) {
	h := newHarness(t, nil, nil)
	body := orderBody("ord-zoe")
	body["shipping"].(map[string]any)["email"] = "zo\u00eb@example.com" // composed ë
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, body).Status)
	sup := h.loginToken("support")
	r := h.call("POST", "/v1/deletion-requests", sup, map[string]any{"email": "ZOE\u0308@Example.COM"}) // decomposed Ë
	require.Equal(t, 201, r.Status, string(r.Raw))
	require.Equal(t, []any{"ord-zoe"}, r.Body["orders"])
	require.Equal(t, "purged", h.call("GET", "/v1/orders/ord-zoe", h.apiKey, nil).Body["status"])
}

func TestBlockedIPsStillDeliverSignedWebhooks(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-hook")
	h.ip = "198.51.100.60" // a provider's shared address, blocked by someone's bad keys
	for i := 0; i < 10; i++ {
		h.call("GET", "/v1/orders/x", fmt.Sprintf("pvk_wrong%d", i), nil)
	}
	require.Equal(t, 403, h.call("GET", "/v1/orders/x", h.apiKey, nil).Status)
	body := []byte(`{"event_id":"evt-hook","order_id":"ord-hook","status":"shipped"}`)
	r := h.call("POST", "/v1/webhooks/shipping", "", body, "X-Piivault-Signature", webhooks.SignShipping(testShippingSecret, time.Now(), body))
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "shipped", h.call("GET", "/v1/orders/ord-hook", h.apiKey, nil, "X-Forwarded-For", "192.0.2.1").Body["status"])
}

func TestARepeatedWrongTokenCountsOnceAndAFloodOfThemStaysOffVault(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.ip = "198.51.100.70"
	for i := 0; i < 20; i++ {
		require.Equal(t, 401, h.call("GET", "/v1/fulfillment/queue", "hvs.stale-token-from-yesterday", nil).Status)
	}
	require.Equal(t, 404, h.call("GET", "/v1/orders/x", h.apiKey, nil).Status, "one stale token retried is one failure, not twenty")
	require.Equal(t, "1", h.env.Redis.Get(context.Background(), "piivault:{mon}:fail:198.51.100.70").Val())
}

func TestAuditQueryParametersAreValidated(t *testing.T) {
	h := newHarness(t, nil, nil)
	tok := h.loginToken("auditor")
	for _, q := range []struct{ query, field string }{
		{"since=1969-12-31T00:00:00Z", "since"},
		{"until=0001-01-01T00:00:00Z", "until"},
		{"after=99999999999999999999999-0", "after"},
		{"after=1-99999999999999999999999", "after"},
		{"limit=0", "limit"},
	} {
		r := h.call("GET", "/v1/audit?"+q.query, tok, nil)
		require.Equal(t, 422, r.Status, "%s: %s", q.query, r.Raw)
		require.Equal(t, []any{q.field}, r.Body["error"].(map[string]any)["fields"], q.query)
	}
	require.NotContains(t, h.logs.String(), "dependency unavailable")
}
