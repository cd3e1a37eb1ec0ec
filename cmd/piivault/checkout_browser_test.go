package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/checkout"
	"piivault/examples/storefront/shop"
)

// awaitJS evaluates a promise-returning expression in the page.
func awaitJS(expr string, out any) chromedp.Action {
	return chromedp.Evaluate(expr, out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) })
}

func fill(sel, v string) chromedp.Action { return chromedp.SendKeys(sel, v, chromedp.ByQuery) }

func TestCheckoutDropInKeepsPIIOffTheStorefront(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	// The demo storefront on a second origin.
	var s *shop.Shop
	shopSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.ServeHTTP(w, r) }))
	defer shopSrv.Close()
	keys, err := h.app.clients.AddWithOrigins(ctx, "browser-shop", []string{shopSrv.URL})
	require.NoError(t, err)
	log := &syncBuffer{}
	s = shop.New(shop.Config{PiiVaultURL: h.url, APIKey: keys.APIKey, PublishableKey: keys.PublishableKey, Log: log})

	b := browser(t)
	var url string
	require.NoError(t, chromedp.Run(b,
		chromedp.Navigate(shopSrv.URL+"/"),
		chromedp.Click("a.button", chromedp.ByQuery),
		chromedp.WaitVisible("#shipping-form", chromedp.ByID),
		chromedp.Location(&url),
	))
	shot(t, b, "checkout-form")
	// Invalid fields come back per field and show on the form.
	require.NoError(t, chromedp.Run(b,
		fill(`[data-piivault=name]`, "Canaryname Zzyzx"),
		fill(`[data-piivault=email]`, "not-an-email"),
		fill(`[data-piivault="address.line1"]`, "742 Canarystreet"),
		fill(`[data-piivault="address.city"]`, "Canaryville"),
		fill(`[data-piivault="address.country"]`, "XX"),
		chromedp.Click("button[type=submit]", chromedp.ByQuery),
		chromedp.WaitVisible("#errors", chromedp.ByID),
	))
	require.Contains(t, text(t, b, "#errors"), "email")
	require.Contains(t, text(t, b, "#errors"), "address.country")
	var invalid int
	require.NoError(t, chromedp.Run(b, chromedp.Evaluate(`document.querySelectorAll("[aria-invalid=true]").length`, &invalid)))
	require.Equal(t, 2, invalid)
	shot(t, b, "checkout-invalid")
	// Fixed, the same session stores the order.
	require.NoError(t, chromedp.Run(b,
		chromedp.SetValue(`[data-piivault=email]`, "canary.zzyzx@example.com", chromedp.ByQuery),
		chromedp.SetValue(`[data-piivault="address.country"]`, "US", chromedp.ByQuery),
		fill(`[data-piivault="address.postal_code"]`, "90210"),
		fill(`[data-piivault=phone]`, "+15550123456"),
		chromedp.Click("button[type=submit]", chromedp.ByQuery),
		chromedp.WaitVisible("#done", chromedp.ByID),
	))
	orderID := text(t, b, "#done-order")
	require.True(t, strings.HasPrefix(orderID, "shop-"), orderID)
	require.Equal(t, "held", text(t, b, "#done-status"))
	shot(t, b, "checkout-done")

	// Held in piivault, revealable by fulfillment, audited as collected in the browser.
	require.Eventually(t, func() bool { return len(s.Orders()) == 1 }, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, []string{orderID}, s.Orders(), "the shop learnt only the order id")
	require.Equal(t, "held", h.status(orderID))
	_, ful := h.login("fulfillment")
	ship := h.call("GET", "/v1/orders/"+orderID+"/shipping?reason=label", ful, nil)
	require.Equal(t, "742 Canarystreet", ship.Body["address"].(map[string]any)["line1"])
	page, err := h.app.audit.List(ctx, auditFilter(orderID))
	require.NoError(t, err)
	require.Equal(t, "browser", page.Entries[0].Detail["collected"])
	// The storefront server's own request log saw no PII.
	shopLog := log.String()
	require.Contains(t, shopLog, "/complete")
	requireNoPII(t, "the storefront's request log", shopLog)
	require.NotContains(t, shopLog, "canary.zzyzx")

	// The client secret is single use.
	secret := ""
	require.NoError(t, chromedp.Run(b, chromedp.Evaluate(`document.getElementById("shipping-form").getAttribute("data-secret")`, &secret)))
	var status int
	again := fmt.Sprintf(`fetch("%s?key=%s", {method: "POST", headers: {"Content-Type": "application/json"},
	  body: JSON.stringify({client_secret: %q, shipping: {name: "A B", email: "a@example.com", address: {line1: "1 Main", city: "X", country: "US"}}})}).then(r => r.status)`,
		h.url+"/v1/checkout/shipping", keys.PublishableKey, secret)
	require.NoError(t, chromedp.Run(b, awaitJS(again, &status)))
	require.Equal(t, 403, status, "a used client secret")

	// An expired one fails the same way.
	sess := h.call("POST", "/v1/checkout/sessions", keys.APIKey, map[string]any{"order_id": "shop-expired", "payment_ref": "pay_x"})
	require.Equal(t, 201, sess.Status, string(sess.Raw))
	for _, k := range h.env.Redis.Keys(ctx, "piivault:{checkout}:s:*").Val() {
		h.env.Redis.PExpire(ctx, k, time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	expired := strings.Replace(again, secret, sess.Body["client_secret"].(string), 1)
	require.NoError(t, chromedp.Run(b, awaitJS(expired, &status)))
	require.Equal(t, 403, status, "an expired client secret")
	require.Equal(t, 404, h.call("GET", "/v1/orders/shop-expired", h.apiKey, nil).Status)

	// A page on a third origin, not one of the key's, is refused by CORS.
	third := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `<!doctype html><title>elsewhere</title><p>elsewhere</p>`)
	}))
	defer third.Close()
	fresh := h.call("POST", "/v1/checkout/sessions", keys.APIKey, map[string]any{"order_id": "shop-third", "payment_ref": "pay_y"})
	var outcome string
	foreign := strings.Replace(again, secret, fresh.Body["client_secret"].(string), 1)
	foreign = strings.Replace(foreign, ".then(r => r.status)", `.then(r => "answered " + r.status, e => "refused: " + e.name)`, 1)
	require.NoError(t, chromedp.Run(b, chromedp.Navigate(third.URL), chromedp.WaitVisible("p", chromedp.ByQuery), awaitJS(foreign, &outcome)))
	require.Equal(t, "refused: TypeError", outcome)
	require.Equal(t, 404, h.call("GET", "/v1/orders/shop-third", h.apiKey, nil).Status)
	// The key only works from its origins, and only on the browser route.
	r := h.call("POST", "/v1/checkout/shipping?key="+keys.PublishableKey, "", map[string]any{"client_secret": "x"}, "Origin", third.URL)
	require.Equal(t, 401, r.Status)
	require.Empty(t, r.Header.Get("Access-Control-Allow-Origin"))
	pre := h.call("OPTIONS", "/v1/checkout/shipping?key="+keys.PublishableKey, "", nil, "Origin", third.URL,
		"Access-Control-Request-Method", "POST")
	require.Equal(t, 403, pre.Status, "the preflight is held to the key's own origins")
	require.Empty(t, pre.Header.Get("Access-Control-Allow-Origin"))
	pre = h.call("OPTIONS", "/v1/checkout/shipping?key="+keys.PublishableKey, "", nil, "Origin", shopSrv.URL,
		"Access-Control-Request-Method", "POST")
	require.Equal(t, 204, pre.Status)
	require.Equal(t, shopSrv.URL, pre.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, pre.Header.Get("Access-Control-Allow-Credentials"))
	// A client sending the key as a Bearer header cannot put it in its
	// preflight: answered for origins some key serves, refused elsewhere.
	pre = h.call("OPTIONS", "/v1/checkout/shipping", "", nil, "Origin", shopSrv.URL, "Access-Control-Request-Method", "POST")
	require.Equal(t, 204, pre.Status)
	pre = h.call("OPTIONS", "/v1/checkout/shipping", "", nil, "Origin", third.URL, "Access-Control-Request-Method", "POST")
	require.Equal(t, 403, pre.Status)
	// A session another client opened is foreign to this key: the same 403.
	other := h.call("POST", "/v1/checkout/sessions", h.apiKey, map[string]any{"order_id": "shop-foreign", "payment_ref": "pay_z"})
	r = h.call("POST", "/v1/checkout/shipping?key="+keys.PublishableKey, "", map[string]any{"client_secret": other.Body["client_secret"],
		"shipping": orderBody("x")["shipping"]}, "Origin", shopSrv.URL)
	require.Equal(t, 403, r.Status, string(r.Raw))
	// Revoking the client revokes both its keys.
	var out bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"clients", "list"}, nil, &out, io.Discard, envOf(baseEnv(h.env))))
	require.Contains(t, out.String(), "browser-shop  origins: "+shopSrv.URL)
	require.NoError(t, realMain(ctx, []string{"clients", "revoke", "browser-shop"}, nil, io.Discard, io.Discard, envOf(baseEnv(h.env))))
	pre = h.call("OPTIONS", "/v1/checkout/shipping?key="+keys.PublishableKey, "", nil, "Origin", shopSrv.URL)
	require.Equal(t, 403, pre.Status)
	require.Equal(t, 401, h.call("POST", "/v1/checkout/sessions", keys.APIKey, map[string]any{"order_id": "o", "payment_ref": "p"}).Status)
	require.Equal(t, 401, h.call("GET", "/v1/orders/"+orderID, keys.PublishableKey, nil).Status)
}

func TestREADMEPublishesTheCheckoutSnippetWithItsIntegrity(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	require.NoError(t, err)
	require.Contains(t, string(readme), checkout.ScriptIntegrity(), "update the README's checkout snippet: checkout.js changed")
	h := newHarness(t, nil, nil)
	r := h.call("GET", "/checkout.js", "", nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"))
	require.NotContains(t, string(r.Raw), "eval(")
}

func auditFilter(orderID string) audit.Filter {
	return audit.Filter{OrderID: orderID, Action: audit.ActionStore}
}
