package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/client"
)

// The client against the real server is tested in cmd/piivault
// (client_test.go there), where every answer is also validated against
// api/openapi.yaml. These tests cover what a real server would not show.

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   client.Error
	}{
		{"api error with fields", 422,
			`{"error":{"code":"validation_failed","message":"invalid fields: shipping.email","fields":["shipping.email"]}}`,
			client.Error{Status: 422, Code: client.CodeValidationFailed, Message: "invalid fields: shipping.email", Fields: []string{"shipping.email"}}},
		{"api error with detail", 410,
			`{"error":{"code":"gone","message":"purged","detail":{"purge_reason":"shipped"}}}`,
			client.Error{Status: 410, Code: client.CodeGone, Message: "purged", Detail: map[string]any{"purge_reason": "shipped"}}},
		{"not the api's shape", 502, `<html>bad gateway</html>`,
			client.Error{Status: 502, Message: "Bad Gateway"}},
		{"empty body", 503, ``, client.Error{Status: 503, Message: "Service Unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			_, err := client.New(srv.URL, "pvk_x").Order(context.Background(), "ord-1")
			var e *client.Error
			require.True(t, errors.As(err, &e), "%v", err)
			require.Equal(t, tt.want, *e)
			require.Equal(t, tt.status == 503, e.Temporary())
		})
	}
}

func TestClientRequests(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"entries":[],"next":"1-0"}`)
	}))
	defer srv.Close()
	c := client.New(srv.URL+"/", "").WithToken("hvs.staff")

	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	page, err := c.Audit(context.Background(), client.AuditFilter{OrderID: "ord 1", Since: since, Limit: 10})
	require.NoError(t, err)
	require.Equal(t, "1-0", page.Next)
	require.Equal(t, "GET", got.Method)
	require.Equal(t, "/v1/audit", got.URL.Path)
	require.Equal(t, "ord 1", got.URL.Query().Get("order_id"))
	require.Equal(t, "2026-01-02T03:04:05Z", got.URL.Query().Get("since"))
	require.Equal(t, "10", got.URL.Query().Get("limit"))
	require.Equal(t, "Bearer hvs.staff", got.Header.Get("Authorization"))
	require.Empty(t, body)

	_, _ = c.Order(context.Background(), "a/b")
	require.Equal(t, "/v1/orders/a%2Fb", got.URL.EscapedPath(), "ids are one path segment")
}

// TestClientRedacts: shipping data and credentials never print.
func TestClientRedacts(t *testing.T) {
	ship := client.Shipping{Name: "Canary Person", Email: "canary@example.com", Phone: "+15550123456",
		Address: client.Address{Line1: "1 Canary Street", City: "Canaryville", Country: "US"}}
	c := client.New("http://vault.example", "pvk_canarysecret")
	sess := client.Session{Token: "hvs.canarytoken", Role: "support"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "shipping", ship, "client", c, "session", sess,
		"order", client.OrderRequest{OrderID: "o", Shipping: ship}, "label", client.Label{OrderID: "o", Shipping: &ship},
		"report", client.AccessReport{Orders: []client.AccessOrder{{OrderID: "o", Copy: &ship}}})
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v %v %#v", ship, ship, ship, ship, c, c, c, sess, sess) + logs.String()
	for _, canary := range []string{"Canary", "canary", "5550123456"} {
		require.NotContains(t, out, canary)
	}
	require.Contains(t, out, "[REDACTED]")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
