// Package shop is the demo storefront `make run` starts beside piivault: a
// cart, a checkout page whose shipping form goes straight from the
// customer's browser to piivault (checkout.js), and a confirmation. Its
// server opens the checkout session with its secret key and learns only
// the order id and status; it logs every request with its body, to show
// that no shipping data ever reaches it.
package shop

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"piivault/checkout"
	"piivault/client"
)

//go:embed static
var static embed.FS

// Config says where piivault is and which keys the shop holds.
type Config struct {
	PiiVaultURL    string // e.g. http://127.0.0.1:8080
	APIKey         string // the secret key: server side only
	PublishableKey string // goes to the page
	Log            io.Writer
}

// Shop is the storefront's HTTP server.
type Shop struct {
	cfg    Config
	vault  *client.Client // piivault, with the secret key
	mu     sync.Mutex
	orders []string // order ids confirmed by the page (no PII)
}

// New builds the shop.
func New(cfg Config) *Shop {
	cfg.PiiVaultURL = strings.TrimRight(cfg.PiiVaultURL, "/")
	vault := client.New(cfg.PiiVaultURL, cfg.APIKey, client.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	return &Shop{cfg: cfg, vault: vault}
}

// Orders returns the order ids the shop was told of.
func (s *Shop) Orders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.orders...)
}

// ServeHTTP logs the request, body included, and routes it.
func (s *Shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	r.Body = io.NopCloser(bytes.NewReader(body))
	fmt.Fprintf(s.cfg.Log, "%s %s %s body=%q\n", time.Now().UTC().Format(time.RFC3339), r.Method, r.URL.RequestURI(), body)
	h := w.Header()
	h.Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'self' %[1]s; connect-src 'self' %[1]s; "+
		"style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", s.cfg.PiiVaultURL))
	h.Set("Cache-Control", "no-store")
	sub, _ := fs.Sub(static, "static")
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		s.page(w, cartPage, nil)
	case r.URL.Path == "/checkout" && r.Method == http.MethodGet:
		s.checkout(w, r)
	case r.URL.Path == "/complete" && r.Method == http.MethodPost:
		s.complete(w, r)
	case r.URL.Path == "/app.js" || r.URL.Path == "/style.css":
		http.FileServer(http.FS(sub)).ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// checkout opens a checkout session for a new order with the secret key,
// server to server, and renders the form with its client secret.
func (s *Shop) checkout(w http.ResponseWriter, r *http.Request) {
	id := "shop-" + randomHex(6)
	sess, err := s.vault.OpenCheckoutSession(r.Context(), id, "pay_"+id)
	if err != nil {
		fmt.Fprintf(s.cfg.Log, "checkout session for %s: %v\n", id, err) // *client.Error: status and code, no PII
		http.Error(w, "checkout unavailable", http.StatusBadGateway)
		return
	}
	s.page(w, checkoutPage, map[string]string{"Order": id, "Secret": sess.ClientSecret, "Key": s.cfg.PublishableKey,
		"PiiVault": s.cfg.PiiVaultURL, "Integrity": checkout.ScriptIntegrity()})
}

// complete is what the page tells the shop after piivault stored the
// order: its id and status, nothing else.
func (s *Shop) complete(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OrderID string `json:"order_id"`
		Status  string `json:"status"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || in.OrderID == "" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.orders = append(s.orders, in.OrderID)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Shop) page(w http.ResponseWriter, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = t.Execute(w, data)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var cartPage = template.Must(template.New("cart").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo shop · cart</title><link rel="stylesheet" href="/style.css"><link rel="icon" href="data:,"></head>
<body><main>
<h1>Your cart</h1>
<ul class="cart"><li><span>Ceramic mug, blue</span><span>€14.00</span></li><li><span>Linen tea towel</span><span>€9.50</span></li></ul>
<p class="total">Total <strong>€23.50</strong></p>
<p><a class="button" href="/checkout">Go to checkout</a></p>
</main></body></html>`))

var checkoutPage = template.Must(template.New("checkout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo shop · checkout</title><link rel="stylesheet" href="/style.css"><link rel="icon" href="data:,">
<script src="{{.PiiVault}}/checkout.js" integrity="{{.Integrity}}" crossorigin="anonymous" defer></script>
<script src="/app.js" defer></script></head>
<body><main>
<h1>Shipping address</h1>
<p class="muted">Order {{.Order}}. Your address goes straight to our secure vault: this shop's servers never see it.</p>
<form id="shipping-form" data-key="{{.Key}}" data-secret="{{.Secret}}" novalidate>
  <label>Full name <input data-piivault="name" autocomplete="name" required></label>
  <label>Email <input data-piivault="email" type="email" autocomplete="email" required></label>
  <label>Phone <input data-piivault="phone" type="tel" autocomplete="tel"></label>
  <label>Address <input data-piivault="address.line1" autocomplete="address-line1" required></label>
  <label>Address line 2 <input data-piivault="address.line2" autocomplete="address-line2"></label>
  <div class="row">
    <label>Postal code <input data-piivault="address.postal_code" autocomplete="postal-code"></label>
    <label>City <input data-piivault="address.city" autocomplete="address-level2" required></label>
  </div>
  <div class="row">
    <label>State <input data-piivault="address.state" autocomplete="address-level1"></label>
    <label>Country (2 letters) <input data-piivault="address.country" autocomplete="country" maxlength="2" required></label>
  </div>
  <p id="errors" class="errors" role="alert" hidden></p>
  <button type="submit">Place order</button>
</form>
<section id="done" hidden><h2>Thank you!</h2><p>Order <strong id="done-order"></strong> is <span id="done-status"></span>.</p></section>
</main></body></html>`))
