package easypoststandin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/EasyPost/easypost-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/internal/easypoststandin"
	"piivault/webhooks"
)

// The demo's "carrier scanned it" delivers EasyPost's tracker.updated,
// signed as piivault's own verifier expects EasyPost to sign it.
func TestDemoShipDeliversASignedTrackerEvent(t *testing.T) {
	const secret = "démo-secret" // not ASCII: the secret is NFKD-normalised
	var got struct {
		sig  string
		body []byte
	}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.sig = r.Header.Get("X-Hmac-Signature")
		got.body, _ = io.ReadAll(r.Body)
		_, _ = w.Write([]byte(`{"outcome":"purged"}`))
	}))
	defer hook.Close()
	s, err := easypoststandin.New(easypoststandin.Options{APIKey: testKey,
		Webhook: easypoststandin.Webhook{URL: hook.URL, Secret: secret}})
	require.NoError(t, err)
	require.NoError(t, s.Start("127.0.0.1:0"))
	defer s.Close()
	c := client(t, s, testKey)
	shp, err := c.CreateShipment(order("ord-demo"))
	require.NoError(t, err)
	shp, err = c.BuyShipment(shp.ID, &easypost.Rate{ID: shp.Rates[0].ID}, "")
	require.NoError(t, err)

	base := strings.TrimSuffix(s.URL(), "/v2/")
	resp, err := http.Post(base+"/_demo/ship/"+shp.ID, "application/json", nil)
	require.NoError(t, err)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(answer))
	assert.Contains(t, string(answer), "purged")
	assert.Equal(t, webhooks.SignEasyPost(secret, got.body), got.sig)
	var ev struct {
		Description string `json:"description"`
		Result      struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(got.body, &ev))
	assert.Equal(t, "tracker.updated", ev.Description)
	assert.Equal(t, shp.Tracker.ID, ev.Result.ID)
	assert.Equal(t, "in_transit", ev.Result.Status)

	resp, err = http.Post(base+"/_demo/ship/shp_unknown", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
}
