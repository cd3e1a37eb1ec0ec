package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
)

var sixDigits = regexp.MustCompile(`\b[0-9]{6}\b`)

// codeIn waits for the next code mailed to addr after n earlier messages.
func codeIn(t *testing.T, box *mailbox, addr string, n int) string {
	t.Helper()
	pollUntil(t, 15*time.Second, 100*time.Millisecond, func() bool { return len(box.to(addr)) > n }, "a code is mailed to %s", addr)
	msg := box.to(addr)[n]
	code := sixDigits.FindString(msg.Body)
	require.NotEmpty(t, code, "the mail carries a six-digit code")
	return code
}

func TestCustomersSeeCorrectAndDeleteTheirOwnData(t *testing.T) {
	box := newMailbox(t)
	h := newHarness(t, nil, box.env())
	ids := []string{"ord-mine-1", "ord-mine-2"}
	for _, id := range ids {
		h.storeOrder(id)
	}
	_, ful := h.login("fulfillment")
	require.Equal(t, 200, h.call("GET", "/v1/orders/"+ids[0]+"/shipping?reason=label", ful, nil).Status)
	name, _ := h.login("support")

	ctx := browser(t)
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/privacy/"),
		chromedp.WaitVisible("#email", chromedp.ByID),
	))
	var typ, auto string
	require.NoError(t, chromedp.Run(ctx, chromedp.AttributeValue("#email", "type", &typ, nil)))
	assert.Equal(t, "email", typ)
	shot(t, ctx, "privacy-start")
	require.NoError(t, chromedp.Run(ctx,
		chromedp.SendKeys("#email", "Canary.Zzyzx@example.com", chromedp.ByID),
		chromedp.Submit("#email", chromedp.ByID),
		chromedp.WaitVisible("#code", chromedp.ByID),
		chromedp.AttributeValue("#code", "autocomplete", &auto, nil),
	))
	assert.Equal(t, "one-time-code", auto)
	shot(t, ctx, "privacy-code")
	code := codeIn(t, box, "canary.zzyzx@example.com", 0)
	mailed := box.to("canary.zzyzx@example.com")[0]
	requireNoPII(t, "the code email", mailed.Body)
	require.NoError(t, chromedp.Run(ctx,
		chromedp.SendKeys("#code", code, chromedp.ByID),
		chromedp.Submit("#code", chromedp.ByID),
		chromedp.WaitVisible("section.order", chromedp.ByQuery),
	))
	page := text(t, ctx, "main")
	for _, id := range ids {
		assert.Contains(t, page, id)
	}
	assert.Contains(t, page, "at the latest on")
	assert.Contains(t, page, "fulfillment", "each view with its role")
	assert.NotContains(t, page, name, "never a staff name")
	shot(t, ctx, "privacy-orders")

	// Correct the first order's address: the form starts empty.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`a[href="/privacy/orders/`+ids[0]+`/correct"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#f-line1", chromedp.ByID),
	))
	var line1 string
	require.NoError(t, chromedp.Run(ctx, chromedp.Value("#f-line1", &line1, chromedp.ByID)))
	assert.Empty(t, line1)
	require.NoError(t, chromedp.Run(ctx,
		chromedp.SendKeys("#f-name", "Canary Zzyzx", chromedp.ByID),
		chromedp.SendKeys("#f-email", "canary.zzyzx@example.com", chromedp.ByID),
		chromedp.SendKeys("#f-line1", "12 Fixedstreet", chromedp.ByID),
		chromedp.SendKeys("#f-postal_code", "10001", chromedp.ByID),
		chromedp.SendKeys("#f-city", "Newtown", chromedp.ByID),
		chromedp.SendKeys("#f-country", "US", chromedp.ByID),
		chromedp.Submit("#f-line1", chromedp.ByID),
		// The answer page's own element: "main" would match the form's page
		// still on screen, and a screenshot taken mid-navigation can hang.
		chromedp.WaitVisible("p.ok", chromedp.ByQuery),
	))
	shot(t, ctx, "privacy-corrected")
	full := h.call("GET", "/v1/orders/"+ids[0]+"/shipping?reason=address_check", ful, nil)
	require.Equal(t, 200, full.Status, string(full.Raw))
	assert.Equal(t, "12 Fixedstreet", full.Body["address"].(map[string]any)["line1"])
	rect := auditWith(t, h, audit.ActionRectify, ids[0])
	require.Len(t, rect, 1)
	assert.Equal(t, "privacy", rect[0].Detail["channel"])
	assert.NotContains(t, rect[0].Actor, "canary")

	// Delete the second order's data: a receipt on screen and by email.
	before := len(box.to("canary.zzyzx@example.com"))
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/privacy/orders"),
		chromedp.WaitVisible(`form[action="/privacy/orders/`+ids[1]+`/delete"]`, chromedp.ByQuery),
		chromedp.Click(`form[action="/privacy/orders/`+ids[1]+`/delete"] input[name=confirm]`, chromedp.ByQuery),
		chromedp.Click(`form[action="/privacy/orders/`+ids[1]+`/delete"] button`, chromedp.ByQuery),
		chromedp.WaitVisible("p.ok", chromedp.ByQuery),
	))
	assert.Contains(t, text(t, ctx, "main"), ids[1])
	shot(t, ctx, "privacy-deleted")
	assert.Equal(t, "purged", h.status(ids[1]))
	assert.Equal(t, "held", h.status(ids[0]))
	pollUntil(t, 10*time.Second, 100*time.Millisecond, func() bool { return len(box.to("canary.zzyzx@example.com")) > before })
	receipt := box.to("canary.zzyzx@example.com")[before]
	assert.Contains(t, receipt.Body, ids[1])
	requireNoPII(t, "the receipt", receipt.Body)

	requireNoPII(t, "Redis", h.redisDump())
	assert.NotContains(t, h.redisDump(), "canary.zzyzx")
	assert.NotContains(t, h.logs.String(), "canary.zzyzx")
	assert.NotContains(t, h.logs.String(), code)
}

// An unknown email and a known one get the same page (apart from the
// per-session token), and neither waits on SMTP.
func TestThePrivacyPageDoesNotTellWhichEmailsItKnows(t *testing.T) {
	box := newMailbox(t)
	h := newHarness(t, nil, box.env())
	h.storeOrder("ord-known-1")
	csrf := regexp.MustCompile(`name="csrf" value="[^"]*"`)
	ask := func(addr string) (int, string) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		resp, err := c.Get(h.url + "/privacy/")
		require.NoError(t, err)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		token := strings.TrimSuffix(strings.TrimPrefix(csrf.FindString(string(page)), `name="csrf" value="`), `"`)
		req, _ := http.NewRequest("POST", h.url+"/privacy/", strings.NewReader(url.Values{"email": {addr}, "csrf": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", h.url)
		resp, err = c.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, csrf.ReplaceAllString(string(body), "")
	}
	knownStatus, known := ask("canary.zzyzx@example.com")
	unknownStatus, unknown := ask("nobody.here@example.com")
	assert.Equal(t, 200, knownStatus)
	assert.Equal(t, knownStatus, unknownStatus)
	assert.Equal(t, known, unknown, "the same page whether or not the email is known")
	codeIn(t, box, "canary.zzyzx@example.com", 0)
	time.Sleep(2 * mailEvery)
	assert.Empty(t, box.to("nobody.here@example.com"), "an unknown email gets nothing")
}
