package console

import (
	"context"
	"crypto/rand"
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
)

// anyToken stands in for Vault: the cookie's own rules (sealing, CSRF,
// the origin) are under test here. The idle limit and role gating depend
// on what Vault says about the token and on the configuration: they are
// tested on the real stack (cmd/piivault, TestConsoleIdleLimitOnTheRealStack
// and TestConsoleRoleGatingOnTheRealStack).
type anyToken struct{}

func (anyToken) Authenticate(_ context.Context, token string) (web.Principal, error) {
	return web.Principal{Kind: web.KindStaff, Name: "alice", Role: web.RoleFulfillment, Token: web.Secret(token)}, nil
}

func key(t *testing.T) []byte {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func TestSealedCookiesCannotBeReadOrAltered(t *testing.T) {
	s, err := newSealer(key(t))
	require.NoError(t, err)
	v, err := s.seal(session{Token: "hvs.secret-token", CSRF: "c", Seen: 1, Expires: 2})
	require.NoError(t, err)
	require.NotContains(t, v, "secret-token")
	got, err := s.open(v)
	require.NoError(t, err)
	require.Equal(t, "hvs.secret-token", got.Token)

	tampered := []byte(v)
	tampered[len(tampered)/2] ^= 'x' ^ 'y'
	_, err = s.open(string(tampered))
	require.ErrorIs(t, err, errNoSession)
	other, err := newSealer(key(t))
	require.NoError(t, err)
	_, err = other.open(v)
	require.ErrorIs(t, err, errNoSession, "another key opens nothing")
}

func TestSessionsNeedACookieAndFormsTheirToken(t *testing.T) {
	gin.SetMode(gin.TestMode)
	h, err := New(Deps{Key: key(t), Idle: time.Minute, Auth: anyToken{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	r := gin.New()
	ok := func(c *gin.Context) { c.String(http.StatusOK, "ok") }
	r.GET("/console/x", h.authed(nil, ok))
	r.POST("/console/x", h.authed(nil, ok))
	cookie := func(seen time.Time) *http.Cookie {
		v, err := h.seal.seal(session{Token: "t", CSRF: "csrf-1", Seen: seen.Unix(), Expires: time.Now().Add(time.Hour).Unix()})
		require.NoError(t, err)
		return &http.Cookie{Name: cookieName, Value: v}
	}
	send := func(method, path string, c *http.Cookie, form url.Values, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://console.test"+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if c != nil {
			req.AddCookie(c)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	tests := []struct {
		name     string
		method   string
		path     string
		cookie   *http.Cookie
		form     url.Values
		origin   string
		status   int
		location string
	}{
		{"no cookie", "GET", "/console/x", nil, nil, "", http.StatusSeeOther, "/console/login"},
		{"fresh", "GET", "/console/x", cookie(time.Now()), nil, "", http.StatusOK, ""},
		{"form without token", "POST", "/console/x", cookie(time.Now()), url.Values{}, "http://console.test", http.StatusForbidden, ""},
		{"form from elsewhere", "POST", "/console/x", cookie(time.Now()), url.Values{"csrf": {"csrf-1"}}, "http://evil.test", http.StatusForbidden, ""},
		{"form with token", "POST", "/console/x", cookie(time.Now()), url.Values{"csrf": {"csrf-1"}}, "http://console.test", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := send(tt.method, tt.path, tt.cookie, tt.form, tt.origin)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.location != "" {
				require.Equal(t, tt.location, w.Header().Get("Location"))
			}
		})
	}
}
