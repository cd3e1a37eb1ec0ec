package staff

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/monitoring"
	"piivault/vault"
)

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// LoginGuard counts login attempts per IP before they are tried (the
// intrusion monitor): it refuses an IP with no tries left and blocks it
// on its last failure.
type LoginGuard interface {
	AdmitLogin(ctx context.Context, ip string) (*monitoring.LoginAttempt, error)
}

// Lockdown refuses logins during an incident.
type Lockdown interface {
	Check(ctx context.Context) error
}

// Handler serves login and logout.
type Handler struct {
	svc      *Service
	audit    Recorder
	guard    LoginGuard
	lockdown Lockdown
	write    func(*gin.Context, error)
}

// NewHandler builds a Handler.
func NewHandler(svc *Service, rec Recorder, guard LoginGuard, lockdown Lockdown, writeErr func(*gin.Context, error)) *Handler {
	return &Handler{svc: svc, audit: rec, guard: guard, lockdown: lockdown, write: writeErr}
}

// Login handles POST /v1/auth/login {username, password, totp}. The route
// takes JSON only, so a cross-site form cannot post to it (server.jsonOnly).
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
	sess, err := h.Attempt(c.Request.Context(), c.ClientIP(), body.Username, body.Password.Reveal(), body.TOTP.Reveal())
	if err != nil {
		h.write(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"token": sess.Token, "role": sess.Role, "expires_at": sess.ExpiresAt})
}

// Attempt is one staff login, for the API and the console alike: a login
// missing a credential is a Validation error and counts for nothing; one
// that presents them is refused during a lockdown, counted against its IP
// before Vault sees it, and audited (failures once per IP and window).
func (h *Handler) Attempt(ctx context.Context, ip, username, password, totp string) (vault.Session, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{{"username", username}, {"password", password}, {"totp", totp}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return vault.Session{}, &apperr.Error{Code: apperr.Validation, Fields: missing, Message: "username, password and totp are required"}
	}
	if err := h.lockdown.Check(ctx); err != nil {
		return vault.Session{}, err
	}
	attempt, err := h.guard.AdmitLogin(ctx, ip)
	if err != nil {
		return vault.Session{}, err
	}
	sess, err := h.svc.Login(ctx, username, password, totp)
	if err != nil {
		if apperr.Is(err, apperr.Unauthorized) || apperr.Is(err, apperr.Forbidden) {
			actor := "unknown"
			if ValidUsername(username) {
				actor = username
			}
			attempt.Failed(ctx, actor)
		} else {
			attempt.Succeeded(ctx) // Vault or Redis failed, not the caller
		}
		return vault.Session{}, err
	}
	attempt.Succeeded(ctx)
	if err := h.audit.Record(ctx, audit.Entry{Actor: sess.Username, Action: audit.ActionLogin, IP: ip,
		Detail: map[string]string{"role": sess.Role}}); err != nil {
		_ = h.svc.Logout(ctx, sess.Token) // no unaudited session
		return vault.Session{}, err
	}
	return sess, nil
}

// End revokes a session's token and records the logout.
func (h *Handler) End(ctx context.Context, p web.Principal, ip string) error {
	if err := h.svc.Logout(ctx, p.Token.Reveal()); err != nil {
		return err
	}
	_ = h.audit.Record(ctx, audit.Entry{Actor: p.Actor(), Action: audit.ActionLogout, IP: ip})
	return nil
}

// Logout handles POST /v1/auth/logout: the caller's token is revoked.
func (h *Handler) Logout(c *gin.Context) {
	p, _ := web.PrincipalOf(c)
	if err := h.End(c.Request.Context(), p, c.ClientIP()); err != nil {
		h.write(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
