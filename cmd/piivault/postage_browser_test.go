package main

import (
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
)

func TestConsoleBuysLabelsWithoutShowingAnAddress(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	ids := []string{"ord-post-1", "ord-post-2", "ord-post-3"}
	for _, id := range ids[:2] {
		h.storeOrder(id)
	}
	bad := orderBody(ids[2])
	bad["shipping"].(map[string]any)["address"].(map[string]any)["line1"] = "9 Undeliverable Road"
	require.Equal(t, 201, h.call("POST", "/v1/orders", h.apiKey, bad).Status)
	name, pw, key := h.staffMember("fulfillment")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)

	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/queue"),
		chromedp.WaitVisible("fieldset.postage", chromedp.ByQuery),
		chromedp.Click("#all", chromedp.ByID),
		chromedp.SetValue("#parcel", "small", chromedp.ByID),
		chromedp.SetValue("#service", "cheapest", chromedp.ByID),
	))
	shot(t, ctx, "fulfillment-queue-postage")
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`button[formaction="/console/shipments"]`, chromedp.ByQuery),
		chromedp.WaitVisible("section.card table", chromedp.ByQuery),
	))
	body := text(t, ctx, "main")
	var html string
	require.NoError(t, chromedp.Run(ctx, chromedp.OuterHTML("html", &html, chromedp.ByQuery)))
	requireNoPII(t, "the labels page", html)
	assert.Contains(t, body, "2 labels ready to print")
	assert.Contains(t, body, "the carrier rejected this address")
	for _, id := range ids[:2] {
		rec, err := h.app.store.LabelOf(t.Context(), id)
		require.NoError(t, err)
		assert.Contains(t, body, rec.Code, "the tracking code of %s is on the page", id)
	}
	// The label images (print only) load through piivault, each an audited reveal.
	var loaded bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !loaded; {
		require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(
			`Array.from(document.querySelectorAll("img.label-image")).every(i => i.complete && i.naturalWidth > 0) && document.querySelectorAll("img.label-image").length === 2`, &loaded)))
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, loaded, "both label images loaded")
	var shown bool
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(
		`Array.from(document.querySelectorAll("img.label-image")).some(i => i.getBoundingClientRect().height > 0)`, &shown)))
	assert.False(t, shown, "no label (and so no address) is shown on screen")
	shot(t, ctx, "fulfillment-shipments")
	for _, id := range ids[:2] {
		var viaImage int
		for _, e := range auditWith(t, h, audit.ActionReveal, id) {
			if e.Detail["via"] == "label_image" {
				viaImage++
			}
		}
		assert.Equal(t, 1, viaImage, "the label image of %s is an audited reveal", id)
	}
	// Printed: one carrier label per 4×6 page, nothing else.
	require.NoError(t, chromedp.Run(ctx, emulation.SetEmulatedMedia().WithMedia("print")))
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(
		`Array.from(document.querySelectorAll("img.label-image")).every(i => i.getBoundingClientRect().height > 0)`, &shown)))
	assert.True(t, shown, "the labels print")
	shot(t, ctx, "fulfillment-shipments-print")
	require.NoError(t, chromedp.Run(ctx, emulation.SetEmulatedMedia().WithMedia("")))

	// The queue says which orders have a label.
	require.NoError(t, chromedp.Run(ctx, chromedp.Navigate(h.url+"/console/queue"), chromedp.WaitVisible("table", chromedp.ByQuery)))
	var labelled int
	require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(`document.querySelectorAll("tbody .badge.ok").length`, &labelled)))
	assert.Equal(t, 2, labelled)
	assert.Contains(t, text(t, ctx, "main"), "USPS")
	shot(t, ctx, "fulfillment-queue-labelled")
	requireNoPII(t, "serve's log", h.logs.String())
}

// A label bought by mistake is refunded from its order's page: the page
// names the label (no address), the refund goes to EasyPost, and the order
// stays held without a label.
func TestConsoleRefundsALabelBoughtByMistake(t *testing.T) {
	ep := easyPost(t, "")
	h := postageHarness(t, nil, ep)
	id := "ord-post-refund"
	h.storeOrder(id)
	_, tok := h.login("fulfillment")
	s := shipmentsOf(t, h.call("POST", "/v1/fulfillment/shipments", tok, shipmentsBody([]string{id})))[id]
	require.Nil(t, s["error"])
	name, pw, key := h.staffMember("fulfillment")
	ctx := browser(t)
	consoleLogin(t, ctx, h.url, name, pw, key)

	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(h.url+"/console/orders/"+id),
		chromedp.WaitVisible(`form[action$="/refund-label"] button`, chromedp.ByQuery),
	))
	body := text(t, ctx, "main")
	assert.Contains(t, body, "Postage label")
	assert.Contains(t, body, s["tracking_code"].(string))
	shot(t, ctx, "fulfillment-order-label")
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Click(`form[action$="/refund-label"] button`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`form[action$="/refund-label"]`, chromedp.ByQuery),
	))
	body = text(t, ctx, "main")
	assert.Contains(t, body, "EasyPost has the label's refund")
	assert.NotContains(t, body, "Postage label")
	var html string
	require.NoError(t, chromedp.Run(ctx, chromedp.OuterHTML("html", &html, chromedp.ByQuery)))
	requireNoPII(t, "the order page", html)
	shot(t, ctx, "fulfillment-order-label-refunded")

	order := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
	assert.Equal(t, "held", order.Body["status"], "a refund keeps the order held")
	assert.Nil(t, order.Body["label"])
	refunds := auditWith(t, h, audit.ActionLabelRefunded, id)
	require.Len(t, refunds, 1)
	assert.Equal(t, name, refunds[0].Actor, "the member who clicked")
}
