package postage

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
	"piivault/internal/web"
)

// Handler serves the postage endpoints. A nil *Service (no
// EASYPOST_API_KEY) answers 404, like a webhook without its secret.
type Handler struct {
	svc   *Service
	write func(*gin.Context, error)
}

// NewHandler builds a Handler; svc may be nil.
func NewHandler(svc *Service, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{svc: svc, write: writeErr}
}

func (h *Handler) ready(c *gin.Context) bool {
	if h.svc == nil {
		h.write(c, apperr.New(apperr.NotConfigured, "label buying is not configured (EASYPOST_API_KEY and PIIVAULT_SHIP_FROM)"))
		return false
	}
	return true
}

// Buy handles POST /v1/fulfillment/shipments (fulfillment).
func (h *Handler) Buy(c *gin.Context) {
	if h.ready(c) {
		batch(h, c, "shipments", h.svc.Buy)
	}
}

// Rates handles POST /v1/fulfillment/rates (fulfillment).
func (h *Handler) Rates(c *gin.Context) {
	if h.ready(c) {
		batch(h, c, "rates", h.svc.Rates)
	}
}

// batch reads a Request, runs it as the caller and answers {key: results}.
func batch[T any](h *Handler, c *gin.Context, key string, run func(context.Context, web.Principal, string, Request) ([]T, error)) {
	var req Request
	if err := web.BindStrict(c, &req); err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	out, err := run(c.Request.Context(), p, c.ClientIP(), req)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{key: out})
}

// Refund handles POST /v1/fulfillment/shipments/:order_id/refund
// (fulfillment, admin).
func (h *Handler) Refund(c *gin.Context) {
	if !h.ready(c) {
		return
	}
	p, _ := web.PrincipalOf(c)
	out, err := h.svc.Refund(c.Request.Context(), p, c.ClientIP(), c.Param("order_id"))
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, out)
}

// Enabled reports whether labels can be bought (for the console).
func (h *Handler) Enabled() bool { return h.svc != nil }

// Service returns the service (nil when off).
func (h *Handler) Service() *Service { return h.svc }
