package console

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"piivault/internal/web"
	"piivault/vault"
)

// signIns stands in for Vault's login: every attempt succeeds, and is
// counted, so a test can tell a refusal made before Vault was asked.
type signIns struct{ attempts int }

func (s *signIns) Attempt(_ context.Context, _, username, _, _ string) (vault.Session, error) {
	s.attempts++
	return vault.Session{Token: "hvs.t", Username: username, Role: web.RoleFulfillment, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func (s *signIns) End(context.Context, web.Principal, string) error { return nil }

const publicOrigin = "https://vault.shop.example"

// consoleBehindProxy is the console as server.New mounts it, behind the
// TLS-terminating proxies 10.0.0.0/8.
func consoleBehindProxy(t *testing.T, d Deps) (*gin.Engine, *Handler) {
	t.Helper()
	gin.SetMode(gin.TestMode)
	d.Key, d.Auth, d.Log = key(t), anyToken{}, slog.New(slog.NewTextHandler(io.Discard, nil))
	d.TrustedProxies = []string{"10.0.0.0/8"}
	h, err := New(d)
	require.NoError(t, err)
	r := gin.New()
	r.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	require.NoError(t, r.SetTrustedProxies(d.TrustedProxies))
	h.Register(r)
	ok := func(c *gin.Context) { c.String(http.StatusOK, "ok") }
	r.POST("/console/x", h.authed(nil, ok))
	return r, h
}

// request is one request to the console as it reaches piivault.
type request struct {
	peer    string // the socket's address
	tls     bool   // piivault's own TLS
	headers map[string]string
}

func (q request) send(r http.Handler, method, path string, form url.Values, cookie *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://piivault.piivault.svc:8080"+path, strings.NewReader(form.Encode()))
	req.RemoteAddr = q.peer
	if q.tls {
		req.TLS = &tls.ConnectionState{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range q.headers {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func consoleCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	return nil
}

const useHTTPS = "This console must be reached over HTTPS: use <a href=\"https://vault.shop.example/console/\">"

func TestPlainHTTPSignInsAreRefusedBehindAnHTTPSPublicURL(t *testing.T) {
	login := url.Values{"username": {"alice"}, "password": {"pw"}, "totp": {"123456"}}
	fromProxy := func(client, proto string) request {
		h := map[string]string{"X-Forwarded-For": client, "Origin": publicOrigin}
		if proto != "" {
			h["X-Forwarded-Proto"] = proto
		}
		return request{peer: "10.1.2.3:41000", headers: h}
	}
	tests := []struct {
		name    string
		req     request
		allowed bool
	}{
		{"proxy says https", fromProxy("198.51.100.4", "https"), true},
		{"proxy says HTTPS", fromProxy("198.51.100.4", "HTTPS"), true},
		{"proxy says http", fromProxy("198.51.100.4", "http"), false},
		{"proxy says nothing", fromProxy("198.51.100.4", ""), false},
		{"a client's https ahead of the proxy's http", fromProxy("198.51.100.4", "https, http"), false},
		{"loopback client through the proxy", fromProxy("127.0.0.1", ""), true},
		{"untrusted peer claiming https", request{peer: "192.0.2.7:5000",
			headers: map[string]string{"X-Forwarded-Proto": "https", "Origin": publicOrigin}}, false},
		{"untrusted peer over plain HTTP", request{peer: "192.0.2.7:5000", headers: map[string]string{"Origin": publicOrigin}}, false},
		{"piivault's own TLS", request{peer: "192.0.2.7:5000", tls: true, headers: map[string]string{"Origin": publicOrigin}}, true},
		{"loopback", request{peer: "127.0.0.1:5000", headers: map[string]string{"Origin": publicOrigin}}, true},
		{"ipv6 loopback", request{peer: "[::1]:5000", headers: map[string]string{"Origin": publicOrigin}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			staff := &signIns{}
			r, _ := consoleBehindProxy(t, Deps{HTTPS: true, PublicOrigin: publicOrigin, Staff: staff})

			page := tt.req.send(r, "GET", "/console/login", nil, nil)
			require.Equal(t, http.StatusOK, page.Code)
			w := tt.req.send(r, "POST", "/console/login", login, nil)
			if !tt.allowed {
				require.Contains(t, page.Body.String(), useHTTPS)
				require.NotContains(t, page.Body.String(), `name="password"`, "no form to type a password into over plain HTTP")
				require.Equal(t, http.StatusForbidden, w.Code)
				require.Contains(t, w.Body.String(), useHTTPS)
				require.Nil(t, consoleCookie(w))
				require.Zero(t, staff.attempts, "refused before Vault is asked")
				return
			}
			require.NotContains(t, page.Body.String(), "must be reached over HTTPS")
			require.Contains(t, page.Body.String(), `name="password"`)
			require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
			c := consoleCookie(w)
			require.NotNil(t, c)
			require.True(t, c.Secure)
			require.Equal(t, 1, staff.attempts)
		})
	}
}

func TestWithoutAnHTTPSPublicURLPlainHTTPSignInsGoOn(t *testing.T) {
	staff := &signIns{}
	r, _ := consoleBehindProxy(t, Deps{Staff: staff})
	w := request{peer: "192.0.2.7:5000", headers: map[string]string{"Origin": "http://piivault.piivault.svc:8080"}}.
		send(r, "POST", "/console/login", url.Values{"username": {"alice"}}, nil)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.False(t, consoleCookie(w).Secure)
}

// TestFormsMustComeFromThePublicOrigin: behind a proxy the request's Host
// is the Service's name, so with an https public URL the Origin is
// compared with that URL, and the Host no longer counts.
func TestFormsMustComeFromThePublicOrigin(t *testing.T) {
	tests := []struct {
		name   string
		origin string
		site   string // Sec-Fetch-Site, when no Origin is sent
		status int
	}{
		{"the public origin", publicOrigin, "", http.StatusOK},
		{"another site", "https://evil.example", "", http.StatusForbidden},
		{"the public host over http", "http://vault.shop.example", "", http.StatusForbidden},
		{"the request's host", "http://piivault.piivault.svc:8080", "", http.StatusForbidden},
		{"a subdomain", "https://x.vault.shop.example", "", http.StatusForbidden},
		{"no origin, same-origin fetch", "", "same-origin", http.StatusOK},
		{"no origin, cross-site fetch", "", "cross-site", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h := consoleBehindProxy(t, Deps{HTTPS: true, PublicOrigin: publicOrigin, Staff: &signIns{}})
			headers := map[string]string{"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
			if tt.origin != "" {
				headers["Origin"] = tt.origin
			}
			if tt.site != "" {
				headers["Sec-Fetch-Site"] = tt.site
			}
			q := request{peer: "10.1.2.3:41000", headers: headers}

			sealed, err := h.seal.seal(session{Token: "t", CSRF: "csrf-1", Seen: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix()})
			require.NoError(t, err)
			w := q.send(r, "POST", "/console/x", url.Values{"csrf": {"csrf-1"}}, &http.Cookie{Name: cookieName, Value: sealed})
			require.Equal(t, tt.status, w.Code, w.Body.String())

			w = q.send(r, "POST", "/console/login", url.Values{"username": {"alice"}}, nil)
			if tt.status == http.StatusOK {
				require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
			} else {
				require.Equal(t, http.StatusForbidden, w.Code)
				require.Contains(t, w.Body.String(), "did not come from the console")
			}
		})
	}
}
