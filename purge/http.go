package purge

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"piivault/internal/web"
	"piivault/orders"
)

// Referencer reads purchase references.
type Referencer interface {
	Get(ctx context.Context, orderID string) (orders.Reference, error)
}

// Handler serves the purge endpoints.
type Handler struct {
	purger    *Purger
	deletions *Deletions
	refs      Referencer
	write     func(*gin.Context, error)
}

// NewHandler builds a Handler.
func NewHandler(p *Purger, d *Deletions, refs Referencer, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{purger: p, deletions: d, refs: refs, write: writeErr}
}

func (h *Handler) purgeOne(c *gin.Context, reason string) {
	p, _ := web.PrincipalOf(c)
	id := c.Param("id")
	if _, err := h.purger.Purge(c.Request.Context(), p.Actor(), c.ClientIP(), id, reason); err != nil {
		h.write(c, err)
		return
	}
	ref, err := h.refs.Get(c.Request.Context(), id)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, ref)
}

// Shipped handles POST /v1/orders/:id/shipped: purge now as shipped.
func (h *Handler) Shipped(c *gin.Context) { h.purgeOne(c, orders.ReasonShipped) }

// DeletePII handles DELETE /v1/orders/:id/pii: purge now as customer_request.
func (h *Handler) DeletePII(c *gin.Context) { h.purgeOne(c, orders.ReasonCustomerRequest) }

// CreateDeletionRequest handles POST /v1/deletion-requests {email}.
func (h *Handler) CreateDeletionRequest(c *gin.Context) {
	var body struct {
		Email string `json:"email"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	r, err := h.deletions.Request(c.Request.Context(), p.Actor(), c.ClientIP(), body.Email)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusCreated, r)
}

// GetDeletionRequest handles GET /v1/deletion-requests/:id.
func (h *Handler) GetDeletionRequest(c *gin.Context) {
	r, err := h.deletions.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
