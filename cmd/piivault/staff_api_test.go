package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/stretchr/testify/require"
)

func TestRoleMatrix(t *testing.T) {
	h := newHarness(t, nil, nil)
	tokens := map[string]string{"client": h.apiKey}
	for _, role := range []string{"fulfillment", "support", "admin", "auditor"} {
		_, tokens[role] = h.login(role)
	}
	type endpoint struct {
		method, path string
		body         any
	}
	eps := map[string]endpoint{
		"ref":      {"GET", "/v1/orders/ord-m", nil},
		"shipping": {"GET", "/v1/orders/ord-m/shipping?reason=label", nil},
		"queue":    {"GET", "/v1/fulfillment/queue", nil},
		"audit":    {"GET", "/v1/audit", nil},
		"verify":   {"GET", "/v1/audit/verify", nil},
		"blocks":   {"GET", "/v1/admin/blocks", nil},
		"store":    {"POST", "/v1/orders", orderBody("ord-m2")},
		"dr-get":   {"GET", "/v1/deletion-requests/dr_unknown", nil},
	}
	h.storeOrder("ord-m")
	// caller → endpoint → status
	want := map[string]map[string]int{
		"client":      {"ref": 200, "shipping": 403, "queue": 403, "audit": 403, "verify": 403, "blocks": 403, "store": 201, "dr-get": 403},
		"fulfillment": {"ref": 200, "shipping": 200, "queue": 200, "audit": 403, "verify": 403, "blocks": 403, "store": 403, "dr-get": 403},
		"support":     {"ref": 200, "shipping": 200, "queue": 403, "audit": 403, "verify": 403, "blocks": 403, "store": 403, "dr-get": 404},
		"admin":       {"ref": 200, "shipping": 403, "queue": 200, "audit": 200, "verify": 200, "blocks": 200, "store": 403, "dr-get": 404},
		"auditor":     {"ref": 200, "shipping": 403, "queue": 403, "audit": 200, "verify": 200, "blocks": 403, "store": 403, "dr-get": 403},
	}
	for caller, row := range want {
		for name, status := range row {
			t.Run(caller+"/"+name, func(t *testing.T) {
				ep := eps[name]
				r := h.call(ep.method, ep.path, tokens[caller], ep.body)
				require.Equal(t, status, r.Status, string(r.Raw))
			})
		}
	}
	// Purging endpoints last: they change the order.
	require.Equal(t, 403, h.call("POST", "/v1/orders/ord-m/shipped", tokens["support"], nil).Status)
	require.Equal(t, 403, h.call("DELETE", "/v1/orders/ord-m/pii", tokens["fulfillment"], nil).Status)
	require.Equal(t, 403, h.call("POST", "/v1/deletion-requests", tokens["auditor"], map[string]any{"email": "a@example.com"}).Status)
	require.Equal(t, 403, h.call("DELETE", "/v1/orders/ord-m/pii", tokens["client"], nil).Status)
	require.Equal(t, 200, h.call("DELETE", "/v1/orders/ord-m/pii", tokens["admin"], nil).Status)
	require.Equal(t, 401, h.call("GET", "/v1/orders/ord-m", "hvs.not-a-token", nil).Status)
}

func TestRevealFullForFulfillmentMaskedForSupport(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-r")
	_, ful := h.login("fulfillment")
	_, sup := h.login("support")

	full := h.call("GET", "/v1/orders/ord-r/shipping?reason=label", ful, nil)
	require.Equal(t, 200, full.Status, string(full.Raw))
	ship := full.Body
	require.Equal(t, "full", full.Header.Get("X-Piivault-View"))
	require.Equal(t, "Canaryname Zzyzx", ship["name"])
	require.Equal(t, "742 Canarystreet", ship["address"].(map[string]any)["line1"])

	masked := h.call("GET", "/v1/orders/ord-r/shipping?reason=label", sup, nil)
	require.Equal(t, 200, masked.Status)
	m := masked.Body
	require.Equal(t, "masked", masked.Header.Get("X-Piivault-View"))
	require.Equal(t, "C*** Z***", m["name"])
	require.Equal(t, "****@example.com", m["email"])
	addr := m["address"].(map[string]any)
	require.Equal(t, "Canaryville", addr["city"])
	require.Equal(t, "US", addr["country"])
	require.Empty(t, addr["line1"])
	require.Empty(t, addr["postal_code"])

	// Shipped → PII gone, 410 with the reason; the reference remains.
	require.Equal(t, 200, h.call("POST", "/v1/orders/ord-r/shipped", ful, nil).Status)
	gone := h.call("GET", "/v1/orders/ord-r/shipping?reason=label", ful, nil)
	require.Equal(t, 410, gone.Status)
	require.Equal(t, "shipped", gone.Body["error"].(map[string]any)["detail"].(map[string]any)["purge_reason"])
	require.Equal(t, 404, h.call("GET", "/v1/orders/ord-none/shipping?reason=label", ful, nil).Status)
}

func TestRemovedStaffLosesAccessOnTheNextRequest(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-s")
	name, tok := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/ord-s/shipping?reason=label", tok, nil).Status)
	require.Equal(t, 200, h.call("GET", "/v1/fulfillment/queue", tok, nil).Status)
	requireLiveInVault(t, h, tok)
	require.NoError(t, h.env.Root.RemoveStaff(context.Background(), name))
	// The reveal route (its token remembered, Vault's decrypt the check) and
	// a route that looks the token up both refuse it, and Vault no longer
	// holds it at all.
	for _, path := range []string{"/v1/orders/ord-s/shipping?reason=label", "/v1/fulfillment/queue"} {
		r := h.call("GET", path, tok, nil)
		require.Equal(t, 401, r.Status, "%s: %s", path, r.Raw)
		require.Equal(t, "unauthorized", r.errorCode())
	}
	requireRevokedInVault(t, h, tok)
	require.Equal(t, 1, countAudit(t, h, "order.reveal", name), "the refused reveal revealed nothing")
}

func TestLogoutRevokesTheToken(t *testing.T) {
	h := newHarness(t, nil, nil)
	_, tok := h.login("admin")
	require.Equal(t, 204, h.call("POST", "/v1/auth/logout", tok, nil).Status)
	require.Equal(t, 401, h.call("GET", "/v1/fulfillment/queue", tok, nil).Status)
}

func TestServiceIdentityCannotReveal(t *testing.T) {
	h := newHarness(t, nil, nil)
	h.storeOrder("ord-svc")
	// Log in as the service's own AppRole, as piivault does.
	s, err := h.env.Service.AppRoleLogin(context.Background(), h.env.RoleID, h.env.SecretID)
	require.NoError(t, err)
	r := h.call("GET", "/v1/orders/ord-svc/shipping?reason=label", s, nil)
	require.Equal(t, 401, r.Status, "a token with no staff role is not a staff member")
	ct := h.env.Redis.HGet(context.Background(), h.env.Redis.Keys(context.Background(), "piivault:*:pii:ord-svc").Val()[0], "ct").Val()
	_, err = h.env.Service.Decrypt(context.Background(), s, ct, []byte("ord-svc"))
	require.ErrorContains(t, err, "vault refused")
}

func TestLoginNeedsTheTOTPCode(t *testing.T) {
	h := newHarness(t, nil, nil)
	name, pw, key := h.staffMember("fulfillment")
	r := h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": pw, "totp": ""})
	require.Equal(t, 422, r.Status, "the code is required")
	require.Nil(t, r.Body["token"])
	r = h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": pw, "totp": "000000"})
	require.Equal(t, 401, r.Status)
	code := freshCode(t, key, time.Now())
	r = h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": pw, "totp": code})
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.NotEmpty(t, r.Body["token"])
	exp, err := time.Parse(time.RFC3339Nano, r.Body["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), exp, time.Minute)
}

func TestFailedLoginsDoNotRevealWhetherTheUserExists(t *testing.T) {
	h := newHarness(t, nil, nil)
	name, pw, _ := h.staffMember("support")
	attempts := []map[string]any{
		{"username": "nobody-here", "password": "Whatever-Pass-123!", "totp": "123456"},
		{"username": name, "password": "Wrong-Password-123!", "totp": "123456"},
		{"username": name, "password": pw, "totp": "000000"},
		{"username": "nobody-else", "password": pw, "totp": "999999"},
	}
	var bodies []string
	for i, a := range attempts {
		start := time.Now()
		r := h.call("POST", "/v1/auth/login", "", a)
		took := time.Since(start)
		require.Equal(t, 401, r.Status, "attempt %d", i)
		require.GreaterOrEqual(t, took, 550*time.Millisecond, "attempt %d answered too fast: %s", i, took)
		bodies = append(bodies, string(r.Raw))
	}
	for _, b := range bodies[1:] {
		require.Equal(t, bodies[0], b, "every failed login must look the same")
	}
	// A login missing a credential is not an attempt: 422 naming the
	// fields, whoever the username is (and it counts toward no block).
	r := h.call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": "", "totp": ""})
	require.Equal(t, 422, r.Status)
	require.ElementsMatch(t, []any{"password", "totp"}, r.Body["error"].(map[string]any)["fields"])
}

func TestStaffCLI(t *testing.T) {
	h := newHarness(t, nil, nil)
	vars := baseEnv(h.env)
	vars["VAULT_TOKEN"] = h.env.RootToken
	run := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := realMain(context.Background(), args, strings.NewReader(stdin), &out, &errOut, envOf(vars))
		return out.String(), err
	}
	// A weak password is refused with the reason.
	_, err := run("short\n", "staff", "add", "weakling", "--role", "support", "--password-stdin")
	require.ErrorContains(t, err, "at least 14 characters")
	_, err = run("alllowercaseletters\n", "staff", "add", "weakling", "--role", "support", "--password-stdin")
	require.ErrorContains(t, err, "an upper-case letter")
	_, err = run("", "staff", "add", "someone", "--role", "janitor")
	require.ErrorContains(t, err, "--role")

	out, err := run("", "staff", "add", "cli-user", "--role", "auditor", "--json")
	require.NoError(t, err)
	require.Contains(t, out, `"totp_url":"otpauth://totp/`)
	require.Contains(t, out, `"role":"auditor"`)
	// The member the CLI made logs in with what it printed, so its removal
	// below can be shown to end a live session.
	var added struct {
		Password string `json:"password"`
		TOTPURL  string `json:"totp_url"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &added))
	key, err := otp.NewKeyFromURL(added.TOTPURL)
	require.NoError(t, err)
	login := h.loginAs("cli-user", added.Password, key, time.Now())
	require.Equal(t, 200, login.Status, string(login.Raw))
	cliTok := login.Body["token"].(string)
	require.Equal(t, 200, h.call("GET", "/v1/audit", cliTok, nil).Status)
	out, err = run("", "staff", "list")
	require.NoError(t, err)
	require.Contains(t, out, "cli-user")
	require.NotContains(t, out, "otpauth")
	_, err = run("", "staff", "add", "cli-user", "--role", "auditor")
	require.ErrorContains(t, err, "already exists")
	out, err = run("", "staff", "remove", "cli-user")
	require.NoError(t, err)
	require.Contains(t, out, "revoked")
	// Not the CLI's word for it: piivault refuses the token and Vault no
	// longer holds it.
	gone := h.call("GET", "/v1/audit", cliTok, nil)
	require.Equal(t, 401, gone.Status, string(gone.Raw))
	requireRevokedInVault(t, h, cliTok)
	out, err = run("", "staff", "list", "--json")
	require.NoError(t, err)
	require.NotContains(t, out, "cli-user")

	_, err = run("", "staff", "unsuspend", "someone-not-suspended")
	require.ErrorContains(t, err, "not suspended")
	out, err = run("", "clients", "add", "cli-shop", "--json")
	require.NoError(t, err)
	require.Regexp(t, `^\{"api_key":"pvk_[A-Za-z0-9_-]{43}","name":"cli-shop"\}\n$`, out)
	_, err = run("", "clients", "revoke", "cli-shop")
	require.NoError(t, err)
	_, err = run("", "clients", "revoke", "cli-shop")
	require.ErrorContains(t, err, "no client")

	// Every staff and client change is in the audit trail.
	for _, action := range []string{"staff.add", "staff.remove", "client.add", "client.revoke"} {
		require.GreaterOrEqual(t, countAudit(t, h, action), 1, action)
	}
}
