package web

import (
	"fmt"
	"log/slog"

	"github.com/gin-gonic/gin"
)

// Kind says what sort of caller a Principal is.
type Kind string

const (
	KindStaff   Kind = "staff"
	KindClient  Kind = "client"
	KindWebhook Kind = "webhook"
	KindSystem  Kind = "system"
)

// Staff roles, one per Vault policy that setup writes.
const (
	RoleFulfillment = "fulfillment"
	RoleSupport     = "support"
	RoleAdmin       = "admin"
	RoleAuditor     = "auditor"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	Kind Kind
	// Name is the staff username, the storefront client name, or the webhook
	// provider. It is the actor recorded in the audit trail.
	Name string
	Role string // staff only
	// Token is the caller's own Vault token (staff only). It is used to
	// decrypt on the caller's behalf and must never be logged.
	Token Secret
	// Unverified says Vault has not been asked about Token on this request
	// (a reveal route trusting a recent answer): the decrypt that follows
	// is the check, and its refusal means the token is no longer valid.
	Unverified bool
}

// Actor is how the audit trail names this caller.
func (p Principal) Actor() string {
	switch p.Kind {
	case KindClient:
		return "client:" + p.Name
	case KindWebhook:
		return "webhook:" + p.Name
	case KindSystem:
		return "system"
	}
	return p.Name
}

// Secret is a string that never prints: logs, %v and JSON all say [REDACTED].
type Secret string

func (Secret) String() string               { return "[REDACTED]" }
func (Secret) GoString() string             { return "[REDACTED]" }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte("[REDACTED]")) }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }
func (s Secret) Reveal() string             { return string(s) }

const principalKey = "piivault.principal"

// SetPrincipal attaches the authenticated caller to the request.
func SetPrincipal(c *gin.Context, p Principal) { c.Set(principalKey, p) }

// PrincipalOf returns the request's authenticated caller, if any.
func PrincipalOf(c *gin.Context) (Principal, bool) {
	v, ok := c.Get(principalKey)
	if !ok {
		return Principal{}, false
	}
	p, ok := v.(Principal)
	return p, ok
}
