package audit

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
)

// Handler serves the audit endpoints.
type Handler struct {
	log   *Log
	write func(*gin.Context, error)
}

// NewHandler builds a Handler.
func NewHandler(l *Log, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{log: l, write: writeErr}
}

// List handles GET /v1/audit?actor=&order_id=&action=&since=&until=&after=&limit=.
// Values are parsed here and validated by Log.List, once for the API and
// the console.
func (h *Handler) List(c *gin.Context) {
	f := Filter{Actor: c.Query("actor"), OrderID: c.Query("order_id"), Action: c.Query("action"), After: c.Query("after")}
	var bad []string
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(tf.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil || !validTime(t) { // a given zero time is not "unset"
				bad = append(bad, tf.name)
			}
			*tf.dst = t
		}
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			bad = append(bad, "limit")
		}
		f.Limit = n
	}
	if len(bad) > 0 {
		h.write(c, &apperr.Error{Code: apperr.Validation, Message: "invalid query parameters: " + strings.Join(bad, ", ") + " (since/until: RFC 3339 from 1970; after: a cursor from this endpoint; limit: 1-500)", Fields: bad})
		return
	}
	page, err := h.log.List(c.Request.Context(), f)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, page)
}

// Verify handles GET /v1/audit/verify.
func (h *Handler) Verify(c *gin.Context) {
	v, err := h.log.Verify(c.Request.Context())
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}
