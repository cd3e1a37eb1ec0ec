package monitoring

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
	"piivault/internal/web"
)

// Handler serves the admin block endpoints.
type Handler struct {
	mon   *Monitor
	write func(*gin.Context, error)
}

// NewHandler builds a Handler.
func NewHandler(m *Monitor, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{mon: m, write: writeErr}
}

// ListBlocks handles GET /v1/admin/blocks.
func (h *Handler) ListBlocks(c *gin.Context) {
	bs, err := h.mon.Blocks(c.Request.Context())
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"blocks": bs})
}

// GetBlock handles GET /v1/admin/blocks/:ip.
func (h *Handler) GetBlock(c *gin.Context) {
	bs, err := h.mon.Blocks(c.Request.Context())
	if err != nil {
		h.write(c, err)
		return
	}
	for _, b := range bs {
		if b.IP == c.Param("ip") {
			c.JSON(http.StatusOK, b)
			return
		}
	}
	h.write(c, apperr.New(apperr.NotFound, "that IP is not blocked"))
}

// DeleteBlock handles DELETE /v1/admin/blocks/:ip.
func (h *Handler) DeleteBlock(c *gin.Context) {
	p, _ := web.PrincipalOf(c)
	if err := h.mon.Unblock(c.Request.Context(), p.Actor(), c.Param("ip"), c.ClientIP()); err != nil {
		h.write(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
