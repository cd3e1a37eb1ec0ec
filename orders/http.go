package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/monitoring"
)

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Trail appends one entry or several in one group (a pick-list's reveals).
type Trail interface {
	Recorder
	RecordAll(ctx context.Context, entries []audit.Entry) error
}

// RevealWatcher is told about every reveal (the intrusion monitor); a
// pick-list reserves its reveals first and gives back what it did not use.
type RevealWatcher interface {
	Revealed(ctx context.Context, username, ip string)
	ReserveReveals(ctx context.Context, username string, n int) error
	ReleaseReveals(ctx context.Context, username string, n int)
}

// Lockdown says whether reveals are refused for an incident.
type Lockdown interface {
	Check(ctx context.Context) error
}

// Handler serves the order endpoints.
type Handler struct {
	store    *Store
	audit    Trail
	watch    RevealWatcher
	lockdown Lockdown
	write    func(*gin.Context, error)
	log      *slog.Logger
}

// NewHandler builds a Handler; writeErr renders errors (web.WriteError with a logger).
func NewHandler(store *Store, rec Trail, watch RevealWatcher, lockdown Lockdown, writeErr func(*gin.Context, error), log *slog.Logger) *Handler {
	return &Handler{store: store, audit: rec, watch: watch, lockdown: lockdown, write: writeErr, log: log}
}

// Create handles POST /v1/orders (storefront clients).
func (h *Handler) Create(c *gin.Context) {
	body, err := web.ReadBody(c, web.MaxBody)
	if err != nil {
		h.write(c, err)
		return
	}
	req, err := DecodeRequest(body)
	if err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	e := audit.Entry{Time: time.Now().UTC(), Actor: p.Actor(), Action: audit.ActionStore, OrderID: req.OrderID, IP: c.ClientIP(),
		Event: audit.NewEventID()}
	note, _ := json.Marshal(e)
	rcpt, res, err := h.store.StoreNoting(c.Request.Context(), req, note)
	if res == Tombstoned {
		if err := h.store.RecordNote(c.Request.Context(), h.audit, req.OrderID, rcpt.Note); err != nil {
			h.log.Warn("early event purge audit", "order_id", req.OrderID, "err", err)
		}
	}
	if err != nil {
		h.write(c, err)
		return
	}
	if res == Duplicate {
		c.JSON(http.StatusOK, rcpt)
		return
	}
	if err := h.store.RecordNoted(c.Request.Context(), h.audit, req.OrderID, e, note); err != nil {
		h.log.Warn("order store audit", "order_id", req.OrderID, "err", err)
	}
	c.JSON(http.StatusCreated, rcpt)
}

// DecodeRequest decodes and validates a POST /v1/orders body: malformed
// JSON, unknown fields or trailing data → Invalid; bad values → Validation
// naming the fields.
func DecodeRequest(body []byte) (Request, error) {
	var req Request
	if err := web.DecodeStrict(body, &req); err != nil {
		return Request{}, err
	}
	if err := req.Validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Get handles GET /v1/orders/:id: the purchase reference only.
func (h *Handler) Get(c *gin.Context) {
	ref, err := h.store.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, ref)
}

// RevealReasons are the purposes a reveal may give (SPEC.md). Codes only:
// free text would invite PII into the audit trail.
var RevealReasons = []string{"label", "delivery_issue", "customer_contact", "address_check", "fraud_review"}

// ValidReason reports whether r is one of RevealReasons.
func ValidReason(r string) bool { return slices.Contains(RevealReasons, r) }

// Shipping handles GET /v1/orders/:id/shipping?reason=CODE: the decrypted
// shipping block itself ({name, email, phone, address}), full for
// fulfillment, the masked copy for support (X-Piivault-View says which).
// Decryption runs with the caller's own Vault token, and Vault's policies
// decide what that token opens. The reveal and its reason are audited
// before anything is sent; if they cannot be audited, nothing is sent.
func (h *Handler) Shipping(c *gin.Context) {
	p, _ := web.PrincipalOf(c)
	ship, view, err := h.Reveal(c.Request.Context(), p, c.ClientIP(), c.Param("id"), c.Query("reason"))
	if err != nil {
		h.write(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Piivault-View", view)
	c.JSON(http.StatusOK, ship)
}

// Reveal is one reveal, for the API and the console alike: a reason code is
// required, a lockdown refuses it, the caller's own token decrypts (the
// masked copy for every role but fulfillment), and the reveal is audited
// before anything is returned. view is "full" or "masked".
func (h *Handler) Reveal(ctx context.Context, p web.Principal, ip, id, reason string) (Shipping, string, error) {
	if !ValidReason(reason) {
		return Shipping{}, "", &apperr.Error{Code: apperr.Validation, Fields: []string{"reason"},
			Message: "reason is required: one of " + strings.Join(RevealReasons, ", ")}
	}
	if err := h.lockdown.Check(ctx); err != nil {
		return Shipping{}, "", err
	}
	masked := p.Role != web.RoleFulfillment
	ship, err := h.store.Reveal(ctx, id, p.Token.Reveal(), masked)
	if err != nil {
		return Shipping{}, "", unverifiedRefusal(p, err)
	}
	view := "full"
	if masked {
		view = "masked"
	}
	if err := h.audit.Record(ctx, audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: id,
		IP: ip, Detail: map[string]string{"role": p.Role, "view": view, "reason": reason}}); err != nil {
		return Shipping{}, "", err
	}
	if err := h.store.NoteReveals(ctx, []string{id}, time.Now(), p.Role, reason); err != nil {
		h.log.Warn("reveal not kept for the access report", "order_id", id, "err", err)
	}
	monitoring.Reveals.WithLabelValues(p.Role).Inc()
	h.watch.Revealed(ctx, p.Name, ip)
	return ship, view, nil
}

// unverifiedRefusal turns Vault's refusal of a decrypt into 401 when the
// token was not looked up on this request: the role's policy decrypts, so
// a refusal means the token was revoked or its member disabled or removed.
func unverifiedRefusal(p web.Principal, err error) error {
	if p.Unverified && apperr.Is(err, apperr.Forbidden) {
		return apperr.Wrap(apperr.Unauthorized, err, "invalid or expired token")
	}
	return err
}

// MaxLabels is the most orders one pick-list may reveal.
const MaxLabels = 100

// LabelResult is one order of a pick-list answer.
type LabelResult struct {
	OrderID  string           `json:"order_id"`
	Shipping *Shipping        `json:"shipping,omitempty"`
	Error    *web.ErrorDetail `json:"error,omitempty"`
}

// Labels handles POST /v1/fulfillment/labels {"order_ids":[…≤100],"reason"}
// (fulfillment).
func (h *Handler) Labels(c *gin.Context) {
	var body struct {
		OrderIDs []string `json:"order_ids"`
		Reason   string   `json:"reason"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	out, err := h.PickList(c.Request.Context(), p, c.ClientIP(), body.OrderIDs, body.Reason)
	if err != nil {
		h.write(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"labels": out})
}

// PickList reveals each order's full shipping block, decrypted in one
// batched Vault call with the caller's own token, or a per-order error
// (unknown, purged). Every revealed order is one audit entry, written
// before the answer, and counts against the caller's hourly reveal limit;
// a list that would cross it is refused whole.
func (h *Handler) PickList(ctx context.Context, p web.Principal, ip string, ids []string, reason string) ([]LabelResult, error) {
	var bad []string
	if n := len(ids); n == 0 || n > MaxLabels {
		bad = append(bad, "order_ids")
	}
	if !ValidReason(reason) {
		bad = append(bad, "reason")
	}
	if len(bad) > 0 {
		return nil, &apperr.Error{Code: apperr.Validation, Fields: bad, Message: fmt.Sprintf(
			"order_ids: 1 to %d ids; reason: one of %s", MaxLabels, strings.Join(RevealReasons, ", "))}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if err := h.lockdown.Check(ctx); err != nil {
		return nil, err
	}
	if err := h.watch.ReserveReveals(ctx, p.Name, len(ids)); err != nil {
		return nil, err
	}
	labels, err := h.store.RevealMany(ctx, ids, p.Token.Reveal())
	if err != nil {
		h.watch.ReleaseReveals(ctx, p.Name, len(ids))
		return nil, unverifiedRefusal(p, err)
	}
	monitoring.LabelBatches.Inc()
	var revealed []string
	var entries []audit.Entry
	out := make([]LabelResult, len(labels))
	for i, l := range labels {
		out[i].OrderID = l.OrderID
		if l.Err != nil {
			d := web.DetailOf(l.Err)
			out[i].Error = &d
			continue
		}
		out[i].Shipping = &labels[i].Shipping
		revealed = append(revealed, l.OrderID)
		entries = append(entries, audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: l.OrderID, IP: ip,
			Detail: map[string]string{"role": p.Role, "view": "full", "reason": reason, "via": "labels"}})
	}
	h.watch.ReleaseReveals(ctx, p.Name, len(ids)-len(revealed))
	monitoring.LabelItems.Observe(float64(len(revealed)))
	if err := h.audit.RecordAll(ctx, entries); err != nil {
		return nil, err
	}
	if err := h.store.NoteReveals(ctx, revealed, time.Now(), p.Role, reason); err != nil {
		h.log.Warn("label reveals not kept for the access report", "orders", len(revealed), "err", err)
	}
	monitoring.Reveals.WithLabelValues(p.Role).Add(float64(len(revealed)))
	return out, nil
}

// ReasonAccessRequest is the reveal reason of an access report's copy: a
// purpose piivault itself names, never one a caller may give.
const ReasonAccessRequest = "access_request"

// RevealCopies reveals held orders for a customer's access report (the
// copy of the data, Art. 15): a reveal in every respect, like a pick-list.
// A lockdown refuses it; each order counts against the caller's hourly
// reveal limit (a report that would cross it is refused whole); the
// caller's own token decrypts (the masked copy for every role but
// fulfillment); every decrypted order is one audit entry with reason
// access_request, written before anything is returned, and is kept in the
// order's reveal list. Orders that are gone or unknown are left out; when
// Vault refuses the caller's token an order (a role without decrypt),
// denied is true and that order has no copy.
func (h *Handler) RevealCopies(ctx context.Context, p web.Principal, ip string, ids []string) (copies map[string]Shipping, denied bool, err error) {
	if len(ids) == 0 {
		return nil, false, nil
	}
	if err := h.lockdown.Check(ctx); err != nil {
		return nil, false, err
	}
	if err := h.watch.ReserveReveals(ctx, p.Name, len(ids)); err != nil {
		return nil, false, err
	}
	masked := p.Role != web.RoleFulfillment
	view := "full"
	if masked {
		view = "masked"
	}
	copies = map[string]Shipping{}
	var entries []audit.Entry
	var revealed []string
	for _, id := range ids {
		ship, err := h.store.Reveal(ctx, id, p.Token.Reveal(), masked)
		switch {
		case err == nil:
			copies[id] = ship
			revealed = append(revealed, id)
			entries = append(entries, audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: id, IP: ip,
				Detail: map[string]string{"role": p.Role, "view": view, "reason": ReasonAccessRequest, "via": "access_report"}})
		case apperr.Is(err, apperr.Gone), apperr.Is(err, apperr.NotFound):
		case apperr.Is(err, apperr.Forbidden) && !p.Unverified:
			denied = true
		default:
			h.watch.ReleaseReveals(ctx, p.Name, len(ids))
			return nil, false, unverifiedRefusal(p, err)
		}
	}
	h.watch.ReleaseReveals(ctx, p.Name, len(ids)-len(revealed))
	if err := h.audit.RecordAll(ctx, entries); err != nil {
		return nil, false, err
	}
	if err := h.store.NoteReveals(ctx, revealed, time.Now(), p.Role, ReasonAccessRequest); err != nil {
		h.log.Warn("access report reveals not kept for the access report", "orders", len(revealed), "err", err)
	}
	monitoring.Reveals.WithLabelValues(p.Role).Add(float64(len(revealed)))
	return copies, denied, nil
}

// Queue handles GET /v1/fulfillment/queue: held orders, oldest first, no
// PII. Paginated with ?limit= and the opaque ?after= cursor it returns.
func (h *Handler) Queue(c *gin.Context) {
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			h.write(c, &apperr.Error{Code: apperr.Validation, Message: "limit must be 1-500", Fields: []string{"limit"}})
			return
		}
		limit = n
	}
	// Start at now: orders already past retention wait for the sweep and
	// have nothing left to ship to.
	afterMS, afterID := time.Now().UnixMilli(), ""
	if v := c.Query("after"); v != "" {
		ms, id, ok := strings.Cut(v, ":")
		n, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil {
			h.write(c, &apperr.Error{Code: apperr.Validation, Message: "after is not a cursor from this endpoint", Fields: []string{"after"}})
			return
		}
		afterMS, afterID = n, id
	}
	items, err := h.store.Oldest(c.Request.Context(), afterMS, afterID, limit)
	if err != nil {
		h.write(c, err)
		return
	}
	resp := gin.H{"orders": items}
	if len(items) == limit {
		last := items[len(items)-1]
		resp["next"] = strconv.FormatInt(last.ExpiresAt.UnixMilli(), 10) + ":" + last.OrderID
	}
	c.JSON(http.StatusOK, resp)
}
