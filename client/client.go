// Package client is a small Go client of piivault's HTTP API
// (api/openapi.yaml): the storefront's routes (store an order, read its
// purchase reference, link tracking, open a checkout session) and the
// staff routes (login and logout, reveal with a reason, labels, the queue,
// shipped, delete PII, deletion and access requests, the audit trail).
//
// It is written by hand and imports nothing but the standard library, so
// a storefront that uses it pulls in no generator runtime and none of
// piivault's server packages. Every answer that is not a success is an
// *Error carrying the status and the API's error code:
//
//	_, err := c.CreateOrder(ctx, req)
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == client.CodeValidationFailed {
//		// e.Fields names the invalid fields, e.g. "shipping.address.country"
//	}
//
// Shipping data never prints: Shipping's String and LogValue say
// [REDACTED], and so do a Client's and a Session's credentials.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one piivault with one bearer credential: a storefront's
// secret API key (pvk_…) or a staff member's token from Login. It is safe
// for concurrent use.
type Client struct {
	base string
	cred credential
	http *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 10 s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a Client of the piivault at baseURL (e.g.
// https://piivault.example) that sends credential as its bearer; "" for
// none (before Login).
func New(baseURL, credential string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), cred: credentialOf(credential),
		http: &http.Client{Timeout: 10 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithToken returns a copy of c that sends token as its bearer, e.g. the
// Session.Token from Login.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.cred = credentialOf(token)
	return &cp
}

// String names the piivault, never the credential.
func (c *Client) String() string { return "piivault client for " + c.base }

// GoString is String: %#v must not print the credential either.
func (c *Client) GoString() string { return c.String() }

// LogValue is String for log/slog.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// credential is a bearer that never prints.
type credential struct{ v string }

func credentialOf(s string) credential { return credential{v: s} }

func (credential) String() string       { return "[REDACTED]" }
func (credential) GoString() string     { return "[REDACTED]" }
func (credential) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }

// Error codes of the API (api/openapi.yaml lists each one's status).
const (
	CodeInvalidRequest       = "invalid_request"
	CodeStaleEvent           = "stale_event"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeBlocked              = "blocked"
	CodeNotFound             = "not_found"
	CodeNotConfigured        = "not_configured"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodeGone                 = "gone"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeValidationFailed     = "validation_failed"
	CodeLockedDown           = "locked_down"
	CodeRateLimited          = "rate_limited"
	CodeInternal             = "internal"
	CodeVaultUnavailable     = "vault_unavailable"
	CodeStoreUnavailable     = "store_unavailable"
)

// Error is an answer that is not a success: its HTTP status and the API's
// {"error":{"code","message","fields","detail"}}. Code is "" when the body
// was not the API's error shape (a proxy's page, say).
type Error struct {
	Status  int
	Code    string
	Message string
	// Fields names the request fields that failed validation (never their values).
	Fields []string
	// Detail is extra client-safe data, e.g. "purge_reason" on a 410.
	Detail map[string]any
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("piivault: %d %s: %s", e.Status, e.Code, e.Message)
	if len(e.Fields) > 0 {
		msg += " (" + strings.Join(e.Fields, ", ") + ")"
	}
	return msg
}

// Temporary reports whether the same request may succeed later: piivault
// was unavailable or limited the rate, and every route is safe to retry.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests
}

// maxAnswer bounds what the client reads of one answer.
const maxAnswer = 4 << 20

// do sends a request with a JSON body (nil for none) and decodes a 2xx
// answer into out (nil to discard). It returns the status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (int, http.Header, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("piivault: encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("piivault: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cred.v != "" {
		req.Header.Set("Authorization", "Bearer "+c.cred.v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("piivault: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, resp.Header, fmt.Errorf("piivault: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, resp.Header, errorOf(resp.StatusCode, raw)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, resp.Header, fmt.Errorf("piivault: %s %s: decoding the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header, nil
}

func errorOf(status int, raw []byte) *Error {
	var body struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Fields  []string       `json:"fields"`
			Detail  map[string]any `json:"detail"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Error.Code == "" {
		return &Error{Status: status, Message: http.StatusText(status)}
	}
	b := body.Error
	return &Error{Status: status, Code: b.Code, Message: b.Message, Fields: b.Fields, Detail: b.Detail}
}

func orderPath(id string, rest ...string) string {
	return "/v1/orders/" + url.PathEscape(id) + strings.Join(rest, "")
}

// --- Storefront (secret API key) ---

// CreateOrder stores an order's shipping data (POST /v1/orders).
// Receipt.Created is false when the same order with the same body was
// already stored; the same order with other data is a 409 conflict.
func (c *Client) CreateOrder(ctx context.Context, o OrderRequest) (Receipt, error) {
	var r Receipt
	status, _, err := c.do(ctx, http.MethodPost, "/v1/orders", nil, o, &r)
	r.Created = status == http.StatusCreated
	return r, err
}

// Order returns an order's purchase reference, which holds no PII
// (GET /v1/orders/{id}; storefront and every staff role).
func (c *Client) Order(ctx context.Context, id string) (Reference, error) {
	var r Reference
	_, _, err := c.do(ctx, http.MethodGet, orderPath(id), nil, nil, &r)
	return r, err
}

// LinkTracking links carrier references to an order, so carrier events
// that name only one of them purge it (POST /v1/orders/{id}/tracking).
func (c *Client) LinkTracking(ctx context.Context, id string, l TrackingLink) (TrackingLinked, error) {
	var r TrackingLinked
	_, _, err := c.do(ctx, http.MethodPost, orderPath(id, "/tracking"), nil, l, &r)
	return r, err
}

// OpenCheckoutSession opens a single-use browser checkout session for an
// order (POST /v1/checkout/sessions): its client secret goes in the
// checkout page, where checkout.js sends the address to piivault.
func (c *Client) OpenCheckoutSession(ctx context.Context, orderID, paymentRef string) (CheckoutSession, error) {
	var r CheckoutSession
	_, _, err := c.do(ctx, http.MethodPost, "/v1/checkout/sessions", nil,
		map[string]string{"order_id": orderID, "payment_ref": paymentRef}, &r)
	return r, err
}

// --- Staff (token from Login) ---

// Login signs a staff member in (POST /v1/auth/login); use the returned
// token with WithToken.
func (c *Client) Login(ctx context.Context, username, password, totp string) (Session, error) {
	var r Session
	_, _, err := c.do(ctx, http.MethodPost, "/v1/auth/login", nil,
		map[string]string{"username": username, "password": password, "totp": totp}, &r)
	return r, err
}

// Logout revokes the client's token (POST /v1/auth/logout).
func (c *Client) Logout(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodPost, "/v1/auth/logout", nil, nil, nil)
	return err
}

// RevealShipping decrypts an order's shipping data with the caller's own
// token, for reason (one of the Reason constants), audited
// (GET /v1/orders/{id}/shipping). Fulfillment gets the full block, support
// the masked copy; the View says which. A purged order is a 410 gone whose
// Detail["purge_reason"] says why.
func (c *Client) RevealShipping(ctx context.Context, id, reason string) (Shipping, View, error) {
	var r Shipping
	_, h, err := c.do(ctx, http.MethodGet, orderPath(id, "/shipping"), url.Values{"reason": {reason}}, nil, &r)
	if err != nil {
		return Shipping{}, "", err
	}
	return r, View(h.Get("X-Piivault-View")), nil
}

// Labels reveals a pick-list's full shipping data in one batched decrypt
// (POST /v1/fulfillment/labels; fulfillment): one result per distinct id,
// each with its shipping data or its own error.
func (c *Client) Labels(ctx context.Context, reason string, orderIDs ...string) ([]Label, error) {
	var r struct {
		Labels []Label `json:"labels"`
	}
	_, _, err := c.do(ctx, http.MethodPost, "/v1/fulfillment/labels", nil,
		map[string]any{"order_ids": orderIDs, "reason": reason}, &r)
	return r.Labels, err
}

// BuyShipments buys carrier labels through EasyPost for the orders of req
// (POST /v1/fulfillment/shipments; fulfillment): the addresses go from the
// vault to EasyPost only, and each order answers its label or its own
// error. A retry answers the labels bought first, never a second one.
func (c *Client) BuyShipments(ctx context.Context, req ShipmentsRequest) ([]Shipment, error) {
	var r struct {
		Shipments []Shipment `json:"shipments"`
	}
	_, _, err := c.do(ctx, http.MethodPost, "/v1/fulfillment/shipments", nil, req, &r)
	return r.Shipments, err
}

// ShipmentRates asks the carriers' rates of each order without buying
// (POST /v1/fulfillment/rates; fulfillment).
func (c *Client) ShipmentRates(ctx context.Context, req ShipmentsRequest) ([]Rates, error) {
	var r struct {
		Rates []Rates `json:"rates"`
	}
	_, _, err := c.do(ctx, http.MethodPost, "/v1/fulfillment/rates", nil, req, &r)
	return r.Rates, err
}

// RefundShipment refunds an order's unused label and unlinks it
// (POST /v1/fulfillment/shipments/{order_id}/refund; fulfillment, admin).
func (c *Client) RefundShipment(ctx context.Context, orderID string) (Refund, error) {
	var r Refund
	_, _, err := c.do(ctx, http.MethodPost, "/v1/fulfillment/shipments/"+url.PathEscape(orderID)+"/refund", nil, nil, &r)
	return r, err
}

// CorrectShipping replaces a held order's shipping data without reading
// the old one (PUT /v1/orders/{id}/shipping; storefront key, support,
// admin); expires_at is unchanged.
func (c *Client) CorrectShipping(ctx context.Context, id string, s Shipping) (Reference, error) {
	var r Reference
	_, _, err := c.do(ctx, http.MethodPut, orderPath(id, "/shipping"), nil, map[string]any{"shipping": s}, &r)
	return r, err
}

// PendingRequests lists emailed requests waiting for a person
// (GET /v1/deletion-requests?status=pending; support, admin).
func (c *Client) PendingRequests(ctx context.Context) ([]PendingRequest, error) {
	var r struct {
		Requests []PendingRequest `json:"requests"`
	}
	_, _, err := c.do(ctx, http.MethodGet, "/v1/deletion-requests", url.Values{"status": {"pending"}}, nil, &r)
	return r.Requests, err
}

// ConfirmRequest runs a pending emailed request
// (POST /v1/deletion-requests/{id}/confirm; support, admin).
func (c *Client) ConfirmRequest(ctx context.Context, id string) (RequestOutcome, error) {
	var r RequestOutcome
	_, _, err := c.do(ctx, http.MethodPost, "/v1/deletion-requests/"+url.PathEscape(id)+"/confirm", nil, nil, &r)
	return r, err
}

// RejectRequest closes a pending emailed request without running it
// (POST /v1/deletion-requests/{id}/reject; support, admin).
func (c *Client) RejectRequest(ctx context.Context, id string) error {
	_, _, err := c.do(ctx, http.MethodPost, "/v1/deletion-requests/"+url.PathEscape(id)+"/reject", nil, nil, nil)
	return err
}

// Queue returns a page of held orders, oldest first, no PII
// (GET /v1/fulfillment/queue; fulfillment, admin). Pass the page's Next as
// after for the next one; limit 0 is the server's default (50).
func (c *Client) Queue(ctx context.Context, limit int, after string) (QueuePage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		q.Set("after", after)
	}
	var r QueuePage
	_, _, err := c.do(ctx, http.MethodGet, "/v1/fulfillment/queue", q, nil, &r)
	return r, err
}

// MarkShipped purges an order now as shipped (POST /v1/orders/{id}/shipped;
// fulfillment) and returns its purchase reference.
func (c *Client) MarkShipped(ctx context.Context, id string) (Reference, error) {
	var r Reference
	_, _, err := c.do(ctx, http.MethodPost, orderPath(id, "/shipped"), nil, nil, &r)
	return r, err
}

// DeletePII purges an order now as customer_request
// (DELETE /v1/orders/{id}/pii; support, admin).
func (c *Client) DeletePII(ctx context.Context, id string) (Reference, error) {
	var r Reference
	_, _, err := c.do(ctx, http.MethodDelete, orderPath(id, "/pii"), nil, nil, &r)
	return r, err
}

// RequestDeletion purges every order of an email and returns the receipt
// (POST /v1/deletion-requests; support, admin).
func (c *Client) RequestDeletion(ctx context.Context, email string) (DeletionReceipt, error) {
	var r DeletionReceipt
	_, _, err := c.do(ctx, http.MethodPost, "/v1/deletion-requests", nil, map[string]string{"email": email}, &r)
	return r, err
}

// DeletionRequest returns a deletion request's receipt
// (GET /v1/deletion-requests/{id}).
func (c *Client) DeletionRequest(ctx context.Context, id string) (DeletionReceipt, error) {
	var r DeletionReceipt
	_, _, err := c.do(ctx, http.MethodGet, "/v1/deletion-requests/"+url.PathEscape(id), nil, nil, &r)
	return r, err
}

// RequestAccess makes a customer's access report (GDPR Art. 15), asked
// for by email or by order ids (POST /v1/access-requests; support, admin).
// The copies of held data in it are reveals to the caller.
func (c *Client) RequestAccess(ctx context.Context, q AccessQuery) (AccessReport, error) {
	var r AccessReport
	_, _, err := c.do(ctx, http.MethodPost, "/v1/access-requests", nil, q, &r)
	return r, err
}

// AccessRequest returns a stored access report, which holds no email and
// no copy (GET /v1/access-requests/{id}).
func (c *Client) AccessRequest(ctx context.Context, id string) (AccessReport, error) {
	var r AccessReport
	_, _, err := c.do(ctx, http.MethodGet, "/v1/access-requests/"+url.PathEscape(id), nil, nil, &r)
	return r, err
}

// Audit returns a page of the audit trail (GET /v1/audit; auditor, admin).
func (c *Client) Audit(ctx context.Context, f AuditFilter) (AuditPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.Actor, "order_id": f.OrderID, "action": f.Action, "after": f.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var r AuditPage
	_, _, err := c.do(ctx, http.MethodGet, "/v1/audit", q, nil, &r)
	return r, err
}

// VerifyAudit checks the audit trail's hash chain
// (GET /v1/audit/verify; auditor, admin).
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	var r AuditVerification
	_, _, err := c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, nil, &r)
	return r, err
}
