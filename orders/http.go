package orders

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
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

// Handler serves the order endpoints: parse, one call into the store or
// the Revealer, render.
type Handler struct {
	store    *Store
	revealer *Revealer
	write    func(*gin.Context, error)
	log      *slog.Logger
}

// NewHandler builds a Handler; writeErr renders errors (web.WriteError with a logger).
func NewHandler(store *Store, revealer *Revealer, writeErr func(*gin.Context, error), log *slog.Logger) *Handler {
	return &Handler{store: store, revealer: revealer, write: writeErr, log: log}
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
	rcpt, res, err := h.store.StoreAudited(c.Request.Context(), req, audit.Entry{Actor: p.Actor(), IP: c.ClientIP()})
	if err = LogDeferred(h.log, req.OrderID, err); err != nil {
		h.write(c, err)
		return
	}
	if res == Duplicate {
		c.JSON(http.StatusOK, rcpt)
		return
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

// Shipping handles GET /v1/orders/:id/shipping?reason=CODE: the decrypted
// shipping block itself ({name, email, phone, address}), full for
// fulfillment, the masked copy for support (X-Piivault-View says which).
// Decryption runs with the caller's own Vault token, and Vault's policies
// decide what that token opens. The reveal and its reason are audited
// before anything is sent; if they cannot be audited, nothing is sent.
func (h *Handler) Shipping(c *gin.Context) {
	p, _ := web.PrincipalOf(c)
	ship, view, err := h.revealer.Reveal(c.Request.Context(), p, c.ClientIP(), c.Param("id"), c.Query("reason"))
	if err != nil {
		h.write(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Header("X-Piivault-View", view)
	c.JSON(http.StatusOK, ship)
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
	out, err := h.revealer.PickList(c.Request.Context(), p, c.ClientIP(), body.OrderIDs, body.Reason)
	if err != nil {
		h.write(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"labels": out})
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
	afterMS, afterID, err := ParseQueueCursor(c.Query("after"), time.Now())
	if err != nil {
		h.write(c, err)
		return
	}
	items, err := h.store.Oldest(c.Request.Context(), afterMS, afterID, limit)
	if err != nil {
		h.write(c, err)
		return
	}
	if items == nil {
		items = []Held{} // an empty queue is [], as documented, never null
	}
	resp := gin.H{"orders": items}
	if len(items) == limit {
		resp["next"] = QueueCursor(items[len(items)-1])
	}
	c.JSON(http.StatusOK, resp)
}

// Rectify handles PUT /v1/orders/:id/shipping {"shipping":{…}}: the
// storefront (its secret key: the shop's own "change address" page),
// support or admin (from a customer's email) correct a held order's
// address without reading the old one. The answer is the purchase
// reference: nothing of the new address comes back either.
func (h *Handler) Rectify(c *gin.Context) {
	var body struct {
		Shipping *Shipping `json:"shipping"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	if body.Shipping == nil {
		h.write(c, &apperr.Error{Code: apperr.Validation, Message: "invalid fields: shipping", Fields: []string{"shipping"}})
		return
	}
	p, _ := web.PrincipalOf(c)
	channel := "storefront"
	if p.Kind == web.KindStaff {
		channel = "staff"
	}
	id := c.Param("id")
	ref, err := h.store.RectifyAudited(c.Request.Context(), id, *body.Shipping,
		audit.Entry{Actor: p.Actor(), IP: c.ClientIP(), Detail: map[string]string{"channel": channel}})
	if err = LogDeferred(h.log, id, err); err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, ref)
}
