package staff

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
)

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// FailureWatcher is told about failed logins (the intrusion monitor).
type FailureWatcher interface {
	AuthFailed(ctx context.Context, ip string)
}

// Handler serves login and logout.
type Handler struct {
	svc   *Service
	audit Recorder
	watch FailureWatcher
	write func(*gin.Context, error)
}

// NewHandler builds a Handler.
func NewHandler(svc *Service, rec Recorder, watch FailureWatcher, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{svc: svc, audit: rec, watch: watch, write: writeErr}
}

// Login handles POST /v1/auth/login {username, password, totp}.
func (h *Handler) Login(c *gin.Context) {
	var body struct {
		Username string     `json:"username"`
		Password web.Secret `json:"password"`
		TOTP     web.Secret `json:"totp"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	ctx := c.Request.Context()
	sess, err := h.svc.Login(ctx, body.Username, body.Password.Reveal(), body.TOTP.Reveal())
	if err != nil {
		if apperr.Is(err, apperr.Unauthorized) || apperr.Is(err, apperr.Forbidden) {
			actor := "unknown"
			if ValidUsername(body.Username) {
				actor = body.Username
			}
			_ = h.audit.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionLoginFailed, IP: c.ClientIP()})
			h.watch.AuthFailed(ctx, c.ClientIP())
		}
		h.write(c, err)
		return
	}
	if err := h.audit.Record(ctx, audit.Entry{Actor: sess.Username, Action: audit.ActionLogin, IP: c.ClientIP(),
		Detail: map[string]string{"role": sess.Role}}); err != nil {
		_ = h.svc.Logout(ctx, sess.Token) // no unaudited session
		h.write(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"token": sess.Token, "role": sess.Role, "expires_at": sess.ExpiresAt})
}

// Logout handles POST /v1/auth/logout: the caller's token is revoked.
func (h *Handler) Logout(c *gin.Context) {
	p, _ := web.PrincipalOf(c)
	if err := h.svc.Logout(c.Request.Context(), p.Token.Reveal()); err != nil {
		h.write(c, err)
		return
	}
	_ = h.audit.Record(c.Request.Context(), audit.Entry{Actor: p.Actor(), Action: audit.ActionLogout, IP: c.ClientIP()})
	c.Status(http.StatusNoContent)
}
