package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/client"
)

// newTestClient is a client of h whose every answer is also validated
// against api/openapi.yaml.
func (h *harness) newTestClient(credential string) *client.Client {
	return client.New(h.url, credential, client.WithHTTPClient(&http.Client{
		Timeout: 20 * time.Second, Transport: conformingTransport{t: h.t}}))
}

// clientLogin signs a new staff member of role in through the client.
func (h *harness) clientLogin(c *client.Client, role string) *client.Client {
	h.t.Helper()
	name, pw, key := h.staffMember(role)
	sess, err := c.Login(context.Background(), name, pw, freshCode(h.t, key, time.Now()))
	require.NoError(h.t, err)
	require.Equal(h.t, role, sess.Role)
	return c.WithToken(sess.Token)
}

func clientShipping() client.Shipping {
	return client.Shipping{Name: "Canaryname Zzyzx", Email: "canary.zzyzx@example.com", Phone: "+15550123456",
		Address: client.Address{Line1: "742 Canarystreet", Line2: "Apt 9", City: "Canaryville", State: "CA",
			PostalCode: "90210", Country: "US"}}
}

// requireAPIError asserts err is a *client.Error with status and code.
func requireAPIError(t *testing.T, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	require.True(t, errors.As(err, &e), "want *client.Error, got %v", err)
	require.Equal(t, status, e.Status, e.Error())
	require.Equal(t, code, e.Code, e.Error())
	return e
}

// TestClientStorefront drives the storefront's routes through package client.
func TestClientStorefront(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	shop := h.newTestClient(h.apiKey)
	req := client.OrderRequest{OrderID: "cli-s1", PaymentRef: "pi_cli-s1", Shipping: clientShipping()}

	rcpt, err := shop.CreateOrder(ctx, req)
	require.NoError(t, err)
	require.True(t, rcpt.Created)
	require.Equal(t, client.StatusHeld, rcpt.Status)
	again, err := shop.CreateOrder(ctx, req)
	require.NoError(t, err)
	require.False(t, again.Created, "the same order and body again is 200")

	ref, err := shop.Order(ctx, "cli-s1")
	require.NoError(t, err)
	require.Equal(t, "pi_cli-s1", ref.PaymentRef)
	require.Nil(t, ref.PurgedAt)

	linked, err := shop.LinkTracking(ctx, "cli-s1", client.TrackingLink{Carrier: "UPS", TrackingCode: "1Z999AA10123456784"})
	require.NoError(t, err)
	require.Equal(t, "1Z999AA10123456784", linked.Linked.TrackingCode)

	sess, err := shop.OpenCheckoutSession(ctx, "cli-s2", "pi_cli-s2")
	require.NoError(t, err)
	require.NotEmpty(t, sess.ClientSecret)
	require.True(t, sess.ExpiresAt.After(time.Now()))

	// Errors carry the status, the code and the fields.
	bad := req
	bad.OrderID = "cli-s3"
	bad.Shipping.Address.Country = "XX"
	_, err = shop.CreateOrder(ctx, bad)
	e := requireAPIError(t, err, 422, client.CodeValidationFailed)
	require.Equal(t, []string{"shipping.address.country"}, e.Fields)

	changed := req
	changed.Shipping.Name = "Someone Else"
	_, err = shop.CreateOrder(ctx, changed)
	requireAPIError(t, err, 409, client.CodeConflict)

	_, err = shop.Order(ctx, "cli-none")
	requireAPIError(t, err, 404, client.CodeNotFound)

	_, err = h.newTestClient("pvk_wrong").Order(ctx, "cli-s1")
	requireAPIError(t, err, 401, client.CodeUnauthorized)
}

// TestClientStaff drives the staff routes through package client.
func TestClientStaff(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	shop := h.newTestClient(h.apiKey)
	for _, id := range []string{"cli-f1", "cli-f2", "cli-f3"} {
		_, err := shop.CreateOrder(ctx, client.OrderRequest{OrderID: id, PaymentRef: "pi_" + id, Shipping: clientShipping()})
		require.NoError(t, err)
	}
	anon := h.newTestClient("")

	// Fulfillment: queue, reveal, labels, shipped.
	ful := h.clientLogin(anon, "fulfillment")
	page, err := ful.Queue(ctx, 500, "")
	require.NoError(t, err)
	var queued []string
	for _, o := range page.Orders {
		queued = append(queued, o.OrderID)
	}
	require.Subset(t, queued, []string{"cli-f1", "cli-f2", "cli-f3"})

	ship, view, err := ful.RevealShipping(ctx, "cli-f1", client.ReasonLabel)
	require.NoError(t, err)
	require.Equal(t, client.ViewFull, view)
	require.Equal(t, clientShipping(), ship)

	_, _, err = ful.RevealShipping(ctx, "cli-f1", "curiosity")
	e := requireAPIError(t, err, 422, client.CodeValidationFailed)
	require.Equal(t, []string{"reason"}, e.Fields)

	labels, err := ful.Labels(ctx, client.ReasonLabel, "cli-f2", "cli-none")
	require.NoError(t, err)
	require.Len(t, labels, 2)
	for _, l := range labels {
		if l.OrderID == "cli-f2" {
			require.NotNil(t, l.Shipping)
			require.Equal(t, "Canaryville", l.Shipping.Address.City)
		} else {
			require.NotNil(t, l.Error)
			require.Equal(t, client.CodeNotFound, l.Error.Code)
		}
	}

	ref, err := ful.MarkShipped(ctx, "cli-f1")
	require.NoError(t, err)
	require.Equal(t, client.StatusShipped, ref.Status)
	_, _, err = ful.RevealShipping(ctx, "cli-f1", client.ReasonLabel)
	e = requireAPIError(t, err, 410, client.CodeGone)
	require.Equal(t, "shipped", e.Detail["purge_reason"])

	// Support: masked reveal, delete PII, deletion and access requests.
	sup := h.clientLogin(anon, "support")
	masked, view, err := sup.RevealShipping(ctx, "cli-f2", client.ReasonCustomerContact)
	require.NoError(t, err)
	require.Equal(t, client.ViewMasked, view)
	require.Equal(t, "****@example.com", masked.Email)

	report, err := sup.RequestAccess(ctx, client.AccessQuery{OrderIDs: []string{"cli-f1", "cli-f2"}})
	require.NoError(t, err)
	require.Len(t, report.Orders, 2)
	stored, err := sup.AccessRequest(ctx, report.ReportID)
	require.NoError(t, err)
	require.Equal(t, report.ReportID, stored.ReportID)
	for _, o := range stored.Orders {
		require.Nil(t, o.Copy, "the stored report holds no copy")
	}

	ref, err = sup.DeletePII(ctx, "cli-f2")
	require.NoError(t, err)
	require.Equal(t, "customer_request", *ref.PurgeReason)

	rcpt, err := sup.RequestDeletion(ctx, "canary.zzyzx@example.com")
	require.NoError(t, err)
	require.Contains(t, rcpt.Orders, "cli-f3")
	got, err := sup.DeletionRequest(ctx, rcpt.RequestID)
	require.NoError(t, err)
	require.Equal(t, rcpt.Orders, got.Orders)

	_, err = sup.Queue(ctx, 0, "")
	requireAPIError(t, err, 403, client.CodeForbidden)

	// Auditor: the trail and its chain.
	aud := h.clientLogin(anon, "auditor")
	trail, err := aud.Audit(ctx, client.AuditFilter{OrderID: "cli-f1", Limit: 100})
	require.NoError(t, err)
	var actions []string
	for _, en := range trail.Entries {
		actions = append(actions, en.Action)
	}
	require.NotEmpty(t, actions)
	v, err := aud.VerifyAudit(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact)

	// Logout revokes the token.
	require.NoError(t, aud.Logout(ctx))
	_, err = aud.VerifyAudit(ctx)
	requireAPIError(t, err, 401, client.CodeUnauthorized)
}

// The Go client covers labels, rates, refunds, corrections and emailed
// requests, every answer checked against the API document.
func TestClientPostageCorrectionsAndRequests(t *testing.T) {
	ctx := context.Background()
	ep := easyPost(t, "")
	box := newMailbox(t)
	extra := box.env()
	extra["EASYPOST_API_KEY"], extra["EASYPOST_API_URL"], extra["PIIVAULT_SHIP_FROM"] = testEasyPostKey, ep.URL(), testShipFrom
	extra["PIIVAULT_INBOUND_SECRET"] = testInboundSecret
	h := newHarnessTweaked(t, nil, extra, func(c *config) { c.dkimLookup = lookup() })
	ids := orderIDs("cli", 2)
	for _, id := range ids {
		h.storeOrder(id)
	}
	shop := h.newTestClient(h.apiKey)
	ful := h.clientLogin(h.newTestClient(""), "fulfillment")
	sup := h.clientLogin(h.newTestClient(""), "support")
	req := client.ShipmentsRequest{OrderIDs: ids[:1], Parcel: client.Parcel{Length: 9, Width: 6, Height: 3, Weight: 16},
		Service: "cheapest", Reason: client.ReasonLabel}

	rates, err := ful.ShipmentRates(ctx, req)
	require.NoError(t, err)
	require.NotEmpty(t, rates[0].Rates)
	bought, err := ful.BuyShipments(ctx, req)
	require.NoError(t, err)
	require.Nil(t, bought[0].Error)
	ref, err := shop.Order(ctx, ids[0])
	require.NoError(t, err)
	require.NotNil(t, ref.Label)
	require.Equal(t, bought[0].TrackingCode, ref.Label.TrackingCode)
	page, err := ful.Queue(ctx, 500, "")
	require.NoError(t, err)
	var labelled bool
	for _, o := range page.Orders {
		labelled = labelled || (o.OrderID == ids[0] && o.Label != nil)
	}
	require.True(t, labelled)

	// A label bought: the address cannot be corrected until it is refunded.
	fixed := client.Shipping{Name: "Correctname Qwxyv", Email: "corrected.qwxyv@example.org",
		Address: client.Address{Line1: "12 Fixedstreet", City: "Newtown", PostalCode: "10001", Country: "US"}}
	_, err = shop.CorrectShipping(ctx, ids[0], fixed)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "label_bought", apiErr.Code)
	refund, err := ful.RefundShipment(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, "submitted", refund.RefundStatus)
	corrected, err := shop.CorrectShipping(ctx, ids[0], fixed)
	require.NoError(t, err)
	require.Equal(t, "held", corrected.Status)

	// An unsigned emailed request waits; support closes it.
	raw := email(t, nil, "canary.zzyzx@example.com", "Delete my data", "please", "cli-1@example.com")
	require.Equal(t, "pending", h.postmark("canary.zzyzx@example.com", "Delete my data", "please", raw).Body["outcome"])
	pending, err := sup.PendingRequests(ctx)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.NoError(t, sup.RejectRequest(ctx, pending[0].ID))
	_, err = sup.ConfirmRequest(ctx, pending[0].ID)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, 404, apiErr.Status)
}
