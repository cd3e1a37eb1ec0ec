package easypoststandin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/text/unicode/norm"
)

// demoShipPath is the `make run` demo's "the carrier scanned it" button:
// POST /_demo/ship/{shipment_id} sends EasyPost's signed tracker.updated
// (in_transit) for that shipment to Options.Webhook, as EasyPost would.
const demoShipPath = "/_demo/ship/"

// Webhook is where the stand-in delivers tracker events, signed with the
// endpoint's secret the way EasyPost signs them.
type Webhook struct {
	URL    string
	Secret string
}

// Sign returns EasyPost's X-Hmac-Signature for body: "hmac-sha256-hex="
// and the hex HMAC-SHA256 of the raw body, keyed with the NFKD-normalised
// secret (EasyPost's client libraries, webhook.go).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(norm.NFKD.String(secret)))
	m.Write(body)
	return "hmac-sha256-hex=" + hex.EncodeToString(m.Sum(nil))
}

// demoShip delivers the in_transit event of a bought shipment.
func (s *Server) demoShip(w http.ResponseWriter, r *http.Request, shipmentID string) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if s.webhook.URL == "" {
		http.Error(w, "no webhook configured (-webhook-url)", http.StatusNotFound)
		return
	}
	body := s.TrackerEvent(shipmentID, "in_transit")
	if body == nil {
		http.Error(w, "no bought shipment "+shipmentID, http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.webhook.URL, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hmac-Signature", Sign(s.webhook.Secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "webhook: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "tracker.updated (in_transit) for %s delivered: %d %s\n", shipmentID, resp.StatusCode, strings.TrimSpace(string(answer)))
}
