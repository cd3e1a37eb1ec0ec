package compliance

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
	"piivault/internal/web"
)

// Handler serves the compliance and incident endpoints.
type Handler struct {
	reports  *Reports
	lockdown *Lockdown
	copier   Copier
	write    func(*gin.Context, error)
}

// NewHandler builds a Handler; copier reveals the access report's copies.
func NewHandler(r *Reports, l *Lockdown, copier Copier, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{reports: r, lockdown: l, copier: copier, write: writeErr}
}

// CreateAccessRequest handles POST /v1/access-requests {"email"} or
// {"order_ids":[…]} (support, admin): the customer's access report. The
// copy of the held data is a reveal to the caller (the masked one for
// support; an admin's token opens none).
func (h *Handler) CreateAccessRequest(c *gin.Context) {
	var q AccessQuery
	if err := web.BindStrict(c, &q); err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	rep, err := h.reports.Access(c.Request.Context(), p.Actor(), c.ClientIP(), q, h.copier, &p)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusCreated, rep)
}

// GetAccessRequest handles GET /v1/access-requests/:id: the stored report.
func (h *Handler) GetAccessRequest(c *gin.Context) {
	rep, err := h.reports.StoredAccessReport(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, rep)
}

// Scope handles GET /v1/incidents/scope?from=&to= (RFC 3339; to defaults
// to now).
func (h *Handler) Scope(c *gin.Context) {
	from, errFrom := time.Parse(time.RFC3339, c.Query("from"))
	to := time.Now()
	var errTo error
	if v := c.Query("to"); v != "" {
		to, errTo = time.Parse(time.RFC3339, v)
	}
	var bad []string
	if errFrom != nil || from.Year() < 1970 {
		bad = append(bad, "from")
	}
	if errTo != nil || (errFrom == nil && to.Before(from)) {
		bad = append(bad, "to")
	}
	if len(bad) > 0 {
		h.write(c, &apperr.Error{Code: apperr.Validation, Fields: bad,
			Message: "from (required) and to: RFC 3339 times, from before to"})
		return
	}
	s, err := h.reports.Scope(c.Request.Context(), from, to)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// Retention handles GET /v1/reports/retention.
func (h *Handler) Retention(c *gin.Context) {
	r, err := h.reports.Retention(c.Request.Context())
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// GetLockdown handles GET /v1/admin/lockdown.
func (h *Handler) GetLockdown(c *gin.Context) {
	s, err := h.lockdown.Status(c.Request.Context())
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// SetLockdown handles POST /v1/admin/lockdown {"on": true|false}.
func (h *Handler) SetLockdown(c *gin.Context) {
	var body struct {
		On *bool `json:"on"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	if body.On == nil {
		h.write(c, &apperr.Error{Code: apperr.Validation, Fields: []string{"on"}, Message: "on (true or false) is required"})
		return
	}
	p, _ := web.PrincipalOf(c)
	s, err := h.lockdown.Set(c.Request.Context(), *body.On, p.Actor(), c.ClientIP())
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}
