package vault

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"piivault/internal/apperr"
)

// Staff token lifetimes: short, renewable up to a working day.
const (
	StaffTokenTTL    = time.Hour
	StaffTokenMaxTTL = 8 * time.Hour
)

// StaffMember is one staff account as `staff list` shows it. No secrets.
type StaffMember struct {
	Name    string    `json:"username"`
	Role    string    `json:"role"`
	Created time.Time `json:"created_at"`
}

// Enrolment is what a new staff member needs, handed out once.
type Enrolment struct {
	TOTPURL string // otpauth:// URL
}

// GeneratePassword asks Vault's password policy for a new password.
func (c *Client) GeneratePassword(ctx context.Context) (string, error) {
	s, err := c.api.Logical().ReadWithContext(ctx, "sys/policies/password/"+PasswordPolicy+"/generate")
	if err != nil || s == nil {
		return "", fmt.Errorf("generate password: %w", translate(err, "generate password"))
	}
	p, _ := s.Data["password"].(string)
	return p, nil
}

// CreateStaff creates a userpass user bound to the role's policy, an identity
// entity with an alias for it, and enrols the entity in TOTP login MFA.
// It refuses to touch an existing user: re-adding would reset a password.
func (c *Client) CreateStaff(ctx context.Context, name, role, password string) (Enrolment, error) {
	userPath := "auth/" + UserpassMount + "/users/" + name
	if s, err := c.api.Logical().ReadWithContext(ctx, userPath); err != nil && !isNotFoundErr(err) {
		return Enrolment{}, translate(err, "read user")
	} else if s != nil {
		return Enrolment{}, apperr.New(apperr.Conflict, "staff member %q already exists", name)
	}
	methodID, err := c.mfaMethodID(ctx)
	if err != nil {
		return Enrolment{}, err
	}
	if methodID == "" {
		return Enrolment{}, apperr.New(apperr.NotFound, "no TOTP method in vault; run piivault setup first")
	}
	acc, err := c.mountAccessor(ctx, UserpassMount)
	if err != nil {
		return Enrolment{}, err
	}
	if _, err := c.api.Logical().WriteWithContext(ctx, userPath, map[string]any{
		"password":       password,
		"token_policies": []string{PolicyPrefix + role},
		"token_ttl":      StaffTokenTTL.String(),
		"token_max_ttl":  StaffTokenMaxTTL.String(),
		"token_type":     "service",
	}); err != nil {
		return Enrolment{}, translate(err, "create user")
	}
	entityID, err := c.ensureEntity(ctx, name, role, acc)
	if err != nil {
		return Enrolment{}, err
	}
	s, err := c.api.Logical().WriteWithContext(ctx, "identity/mfa/method/totp/admin-generate", map[string]any{
		"method_id": methodID, "entity_id": entityID,
	})
	if err != nil {
		return Enrolment{}, translate(err, "enrol totp")
	}
	url, _ := s.Data["url"].(string)
	if url == "" {
		return Enrolment{}, fmt.Errorf("vault enrolled no TOTP secret for %q (warnings: %v)", name, s.Warnings)
	}
	return Enrolment{TOTPURL: url}, nil
}

func (c *Client) ensureEntity(ctx context.Context, name, role, accessor string) (string, error) {
	if _, err := c.api.Logical().WriteWithContext(ctx, "identity/entity/name/"+name, map[string]any{
		"metadata": map[string]string{"piivault_role": role, "piivault_created": time.Now().UTC().Format(time.RFC3339)},
		"disabled": false,
	}); err != nil {
		return "", translate(err, "write entity")
	}
	s, err := c.api.Logical().ReadWithContext(ctx, "identity/entity/name/"+name)
	if err != nil || s == nil {
		return "", fmt.Errorf("read entity: %w", translate(err, "read entity"))
	}
	id, _ := s.Data["id"].(string)
	aliases, _ := s.Data["aliases"].([]any)
	for _, a := range aliases {
		m, _ := a.(map[string]any)
		if m["mount_accessor"] == accessor {
			return id, nil
		}
	}
	if _, err := c.api.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]any{
		"name": name, "canonical_id": id, "mount_accessor": accessor,
	}); err != nil {
		return "", translate(err, "create entity alias")
	}
	return id, nil
}

// RemoveStaff ends a staff member's access at once: the entity is disabled
// first (Vault refuses every token of a disabled entity on its next use),
// every token issued by the user's login path is revoked, then the user and
// entity are deleted. Removing an unknown name is NotFound.
func (c *Client) RemoveStaff(ctx context.Context, name string) error {
	userPath := "auth/" + UserpassMount + "/users/" + name
	s, err := c.api.Logical().ReadWithContext(ctx, userPath)
	if err != nil && !isNotFoundErr(err) {
		return translate(err, "read user")
	}
	if s == nil {
		return apperr.New(apperr.NotFound, "no staff member %q", name)
	}
	entityPath := "identity/entity/name/" + name
	if e, err := c.api.Logical().ReadWithContext(ctx, entityPath); err == nil && e != nil {
		if _, err := c.api.Logical().WriteWithContext(ctx, entityPath, map[string]any{"disabled": true}); err != nil {
			return translate(err, "disable entity")
		}
	}
	if _, err := c.api.Logical().WriteWithContext(ctx,
		"sys/leases/revoke-prefix/auth/"+UserpassMount+"/login/"+name, nil); err != nil {
		return translate(err, "revoke tokens")
	}
	if _, err := c.api.Logical().DeleteWithContext(ctx, userPath); err != nil {
		return translate(err, "delete user")
	}
	if _, err := c.api.Logical().DeleteWithContext(ctx, entityPath); err != nil && !isNotFoundErr(err) {
		return translate(err, "delete entity")
	}
	return nil
}

// ListStaff lists the staff accounts, sorted by name.
func (c *Client) ListStaff(ctx context.Context) ([]StaffMember, error) {
	s, err := c.api.Logical().ListWithContext(ctx, "auth/"+UserpassMount+"/users")
	if err != nil && !isNotFoundErr(err) {
		return nil, translate(err, "list users")
	}
	var out []StaffMember
	if s == nil {
		return out, nil
	}
	keys, _ := s.Data["keys"].([]any)
	for _, k := range keys {
		name, _ := k.(string)
		m := StaffMember{Name: name}
		if u, err := c.api.Logical().ReadWithContext(ctx, "auth/"+UserpassMount+"/users/"+name); err == nil && u != nil {
			m.Role = RoleFromPolicies(toStrings(u.Data["token_policies"]))
		}
		if e, err := c.api.Logical().ReadWithContext(ctx, "identity/entity/name/"+name); err == nil && e != nil {
			if md, ok := e.Data["metadata"].(map[string]any); ok {
				if ts, _ := md["piivault_created"].(string); ts != "" {
					m.Created, _ = time.Parse(time.RFC3339, ts)
				}
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Session is a staff login.
type Session struct {
	Token     string
	Username  string
	Role      string
	ExpiresAt time.Time
}

// ErrBadLogin is returned for every failed login, whatever failed: unknown
// user, wrong password, missing or wrong TOTP code. Callers must not tell
// them apart to the client.
var ErrBadLogin = apperr.New(apperr.Unauthorized, "invalid username, password or code")

// Login performs userpass login followed by TOTP validation (Vault's
// two-step login MFA). No token is issued unless both succeed.
func (c *Client) Login(ctx context.Context, username, password, totp string) (Session, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	anon := c.api.WithRequestCallbacks(func(r *vaultapi.Request) { r.ClientToken = "" })
	s, err := anon.Logical().WriteWithContext(ctx, "auth/"+UserpassMount+"/login/"+username,
		map[string]any{"password": password})
	if err != nil {
		return Session{}, loginError(err)
	}
	if s == nil || s.Auth == nil {
		return Session{}, ErrBadLogin
	}
	if req := s.Auth.MFARequirement; req != nil {
		methodID := ""
		for _, cons := range req.MFAConstraints {
			for _, m := range cons.Any {
				if m.Type == "totp" {
					methodID = m.ID
				}
			}
		}
		if methodID == "" || totp == "" {
			return Session{}, ErrBadLogin
		}
		s, err = anon.Sys().MFAValidateWithContext(ctx, req.MFARequestID, map[string]any{methodID: []string{totp}})
		if err != nil {
			return Session{}, loginError(err)
		}
		if s == nil || s.Auth == nil {
			return Session{}, ErrBadLogin
		}
	}
	if s.Auth.ClientToken == "" {
		return Session{}, ErrBadLogin
	}
	return Session{
		Token:     s.Auth.ClientToken,
		Username:  username,
		Role:      RoleFromPolicies(s.Auth.Policies),
		ExpiresAt: time.Now().Add(time.Duration(s.Auth.LeaseDuration) * time.Second).UTC(),
	}, nil
}

func loginError(err error) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != 429 {
		return ErrBadLogin
	}
	return translate(err, "login")
}

// TokenInfo is what a staff token says about its holder.
type TokenInfo struct {
	Username  string
	Role      string
	ExpiresAt time.Time
}

// LookupToken asks Vault about a caller's token (lookup-self with that token),
// so a revoked token fails on its very next use. Invalid tokens are Unauthorized.
func (c *Client) LookupToken(ctx context.Context, token string) (TokenInfo, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	as := c.api.WithRequestCallbacks(func(r *vaultapi.Request) { r.ClientToken = token })
	s, err := as.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && (re.StatusCode == 403 || re.StatusCode == 400 || re.StatusCode == 401) {
			return TokenInfo{}, apperr.Wrap(apperr.Unauthorized, err, "invalid or expired token")
		}
		return TokenInfo{}, translate(err, "token lookup")
	}
	if s == nil {
		return TokenInfo{}, apperr.New(apperr.Unauthorized, "invalid or expired token")
	}
	pols, _ := s.TokenPolicies()
	info := TokenInfo{Role: RoleFromPolicies(pols)}
	if meta, ok := s.Data["meta"].(map[string]any); ok {
		info.Username, _ = meta["username"].(string)
	}
	if info.Username == "" {
		dn, _ := s.Data["display_name"].(string)
		info.Username = strings.TrimPrefix(dn, UserpassMount+"-")
	}
	if et, _ := s.Data["expire_time"].(string); et != "" {
		info.ExpiresAt, _ = time.Parse(time.RFC3339Nano, et)
	}
	return info, nil
}

// RevokeToken revokes the caller's own token (logout).
func (c *Client) RevokeToken(ctx context.Context, token string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	as := c.api.WithRequestCallbacks(func(r *vaultapi.Request) { r.ClientToken = token })
	if err := as.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		var re *vaultapi.ResponseError
		if errors.As(err, &re) && re.StatusCode == 403 {
			return nil // already revoked or expired: logout is done either way
		}
		return translate(err, "revoke token")
	}
	return nil
}

func toStrings(v any) []string {
	raw, _ := v.([]any)
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		if s, ok := r.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// AppRoleLogin logs in with AppRole credentials and returns the token.
// Tests use it to act as the service identity.
func (c *Client) AppRoleLogin(ctx context.Context, roleID, secretID string) (string, error) {
	tok, _, err := c.appRoleLogin(ctx, roleID, secretID)
	return tok, err
}

func (c *Client) appRoleLogin(ctx context.Context, roleID, secretID string) (string, time.Duration, error) {
	anon := c.api.WithRequestCallbacks(func(r *vaultapi.Request) { r.ClientToken = "" })
	s, err := anon.Logical().WriteWithContext(ctx, "auth/"+AppRoleMount+"/login", map[string]any{
		"role_id": roleID, "secret_id": secretID,
	})
	if err != nil {
		return "", 0, translate(err, "approle login")
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return "", 0, apperr.New(apperr.VaultUnavailable, "vault approle login returned no token")
	}
	return s.Auth.ClientToken, time.Duration(s.Auth.LeaseDuration) * time.Second, nil
}
