package main

// PIIVAULT_PUBLIC_URL on the real stack: piivault behind a TLS-terminating
// proxy (the harness's 127.0.0.1 is the trusted proxy; X-Forwarded-For
// names the staff member's address, X-Forwarded-Proto what the proxy was
// reached by).

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testPublicURL = "https://vault.shop.example"
	testHSTS      = "max-age=63072000; includeSubDomains"
)

// consoleResponse is a console answer, read whole; redirects are not followed.
type consoleResponse struct {
	Status int
	Header http.Header
	Body   string
	Cookie *http.Cookie // piivault_console, when set
}

// console sends a console request; headers are name, value pairs. A form
// (non-nil) makes it a POST.
func (h *harness) console(path string, form url.Values, cookie *http.Cookie, headers ...string) consoleResponse {
	h.t.Helper()
	method, body := "GET", io.Reader(nil)
	if form != nil {
		method, body = "POST", strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.url+path, body)
	require.NoError(h.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if cookie != nil {
		// Set by hand: a cookie jar keeps a Secure cookie off http://.
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	r := consoleResponse{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
	for _, c := range resp.Cookies() {
		if c.Name == "piivault_console" {
			r.Cookie = c
		}
	}
	return r
}

// signInForm makes a staff member of role and returns a filled-in login form.
func (h *harness) signInForm(role string) url.Values {
	h.t.Helper()
	name, pw, key := h.staffMember(role)
	return url.Values{"username": {name}, "password": {pw}, "totp": {freshCode(h.t, key, time.Now())}}
}

// overTheProxy are the headers a TLS-terminating proxy adds for a staff
// member at 198.51.100.4, and the Origin their browser sends.
func overTheProxy(proto string) []string {
	return []string{"X-Forwarded-For", "198.51.100.4", "X-Forwarded-Proto", proto, "Origin", testPublicURL}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestPublicURLMakesTheConsoleCookieSecureAndSendsHSTS(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_PUBLIC_URL": testPublicURL})

	r := h.console("/console/login", h.signInForm("fulfillment"), nil, overTheProxy("https")...)
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	require.NotNil(t, r.Cookie)
	require.True(t, r.Cookie.Secure, "the session cookie must never be sent over plain HTTP")
	require.True(t, r.Cookie.HttpOnly)
	require.Equal(t, http.SameSiteStrictMode, r.Cookie.SameSite)
	require.Equal(t, testHSTS, r.Header.Get("Strict-Transport-Security"))

	// The session works through the proxy, and HSTS is on every answer:
	// console pages, the API, its errors, health checks.
	page := h.console("/console/queue", nil, r.Cookie, overTheProxy("https")...)
	require.Equal(t, http.StatusOK, page.Status, page.Body)
	require.Equal(t, testHSTS, page.Header.Get("Strict-Transport-Security"))
	for _, path := range []string{"/healthz", "/v1/orders/ord-none", "/no-such-route"} {
		require.Equal(t, testHSTS, h.call("GET", path, h.apiKey, nil).Header.Get("Strict-Transport-Security"), path)
	}
}

func TestAnHTTPPublicURLChangesNothing(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_PUBLIC_URL": "http://vault.shop.example"})
	// From the network over plain HTTP, with the Origin of the Host asked
	// for, as before PIIVAULT_PUBLIC_URL existed.
	r := h.console("/console/login", h.signInForm("fulfillment"), nil, "X-Forwarded-For", "198.51.100.4", "Origin", h.url)
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	require.NotNil(t, r.Cookie)
	require.False(t, r.Cookie.Secure)
	require.Empty(t, r.Header.Get("Strict-Transport-Security"))
}

func TestPublicURLRefusesAPlainHTTPConsoleSignInFromTheNetwork(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_PUBLIC_URL": testPublicURL})
	const why = `This console must be reached over HTTPS: use <a href="https://vault.shop.example/console/">`
	tests := []struct {
		name    string
		headers []string
		allowed bool
	}{
		{"the proxy was reached over http", overTheProxy("http"), false},
		{"the proxy says nothing", []string{"X-Forwarded-For", "198.51.100.4", "Origin", testPublicURL}, false},
		{"the proxy was reached over https", overTheProxy("https"), true},
		{"a loopback client over plain HTTP", []string{"X-Forwarded-For", "127.0.0.1", "Origin", testPublicURL}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := h.console("/console/login", nil, nil, tt.headers...)
			require.Equal(t, http.StatusOK, page.Status)
			r := h.console("/console/login", h.signInForm("fulfillment"), nil, tt.headers...)
			if tt.allowed {
				require.NotContains(t, page.Body, why)
				require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
				require.NotNil(t, r.Cookie)
				return
			}
			require.Contains(t, page.Body, why, "the login page says where to go")
			require.Equal(t, http.StatusForbidden, r.Status)
			require.Contains(t, r.Body, why)
			require.Nil(t, r.Cookie, "no session over plain HTTP")
		})
	}
}

func TestPublicURLIsTheOriginFormsMustComeFrom(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_PUBLIC_URL": testPublicURL})
	from := func(origin string) []string {
		return []string{"X-Forwarded-For", "198.51.100.4", "X-Forwarded-Proto", "https", "Origin", origin}
	}
	// Sign-in: another site, or the Host the proxy forwarded to, is refused.
	for _, origin := range []string{"https://evil.example", h.url} {
		r := h.console("/console/login", h.signInForm("fulfillment"), nil, from(origin)...)
		require.Equal(t, http.StatusForbidden, r.Status, origin)
		require.Contains(t, r.Body, "did not come from the console", origin)
		require.Nil(t, r.Cookie, origin)
	}
	r := h.console("/console/login", h.signInForm("fulfillment"), nil, from(testPublicURL)...)
	require.Equal(t, http.StatusSeeOther, r.Status, r.Body)
	session := r.Cookie

	// A signed-in form: the same rule.
	page := h.console("/console/queue", nil, session, from(testPublicURL)...)
	require.Equal(t, http.StatusOK, page.Status, page.Body)
	m := csrfField.FindStringSubmatch(page.Body)
	require.NotNil(t, m, "the page carries a CSRF token")
	for _, origin := range []string{"https://evil.example", h.url} {
		out := h.console("/console/logout", url.Values{"csrf": {m[1]}}, session, from(origin)...)
		require.Equal(t, http.StatusForbidden, out.Status, origin)
		require.Contains(t, out.Body, "did not come from the console", origin)
	}
	out := h.console("/console/logout", url.Values{"csrf": {m[1]}}, session, from(testPublicURL)...)
	require.Equal(t, http.StatusSeeOther, out.Status, out.Body)
	require.Equal(t, "/console/login", out.Header.Get("Location"))
}
