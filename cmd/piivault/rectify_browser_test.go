package main

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
)

func TestConsoleSupportCorrectsAnAddressWithoutSeeingIt(t *testing.T) {
	h := newHarness(t, nil, nil)
	id := "ord-fix-console"
	h.storeOrder(id)
	name, pw, key := h.staffMember("support")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/orders/"+id),
		chromedp.Click(`a[href="/console/orders/`+id+`/correct"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#line1", chromedp.ByID),
	))
	var values []string
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(
		`Array.from(document.querySelectorAll("form.correct input:not([type=hidden])")).map(i => i.value)`, &values)))
	for _, v := range values {
		assert.Empty(t, v, "the form starts empty: nothing is revealed to fill it")
	}
	requireNoPII(t, "the correction form", text(t, ctx, "main"))
	// A country that is not one is refused, and what was typed stays to fix.
	require.NoError(t, chromedp.Run(ctx,
		chromedp.SendKeys("#name", "Correctname Qwxyv", chromedp.ByID),
		chromedp.SendKeys("#email", "corrected.qwxyv@example.org", chromedp.ByID),
		chromedp.SendKeys("#line1", "12 Fixedstreet", chromedp.ByID),
		chromedp.SendKeys("#postal_code", "10001", chromedp.ByID),
		chromedp.SendKeys("#city", "Newtown", chromedp.ByID),
		chromedp.SendKeys("#country", "QQ", chromedp.ByID),
		chromedp.Submit("#country", chromedp.ByID),
		chromedp.WaitVisible(".error", chromedp.ByQuery),
	))
	assert.Contains(t, text(t, ctx, ".error"), "country (two letters")
	shot(t, ctx, "support-correct-refused")
	require.NoError(t, chromedp.Run(ctx,
		chromedp.SetValue("#country", "US", chromedp.ByID),
		chromedp.Submit("#country", chromedp.ByID),
		chromedp.WaitVisible(".flash", chromedp.ByQuery),
	))
	assert.Contains(t, text(t, ctx, ".flash"), "corrected")
	shot(t, ctx, "support-corrected")
	entries := auditWith(t, h, audit.ActionRectify, id)
	require.Len(t, entries, 1)
	assert.Equal(t, "console", entries[0].Detail["channel"])
	assert.Equal(t, name, entries[0].Actor)
	_, ful := h.login("fulfillment")
	full := h.call("GET", "/v1/orders/"+id+"/shipping?reason=address_check", ful, nil)
	assert.Equal(t, "12 Fixedstreet", full.Body["address"].(map[string]any)["line1"])
	requireNoPII(t, "serve's log", h.logs.String())
}
