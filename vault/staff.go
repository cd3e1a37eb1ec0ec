package vault

import (
	"context"
	"errors"
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
	EntityID  string
	ExpiresAt time.Time
}

// staffLoginPath is the path Vault records on every token its userpass
// login issues, MFA included; no other way of making a token can set it.
const staffLoginPath = "auth/" + UserpassMount + "/login/"

// LookupToken asks Vault about a caller's token (lookup-self with that token),
// so a revoked token fails on its very next use. Invalid tokens are
// Unauthorized, and so is any token that did not come from the userpass
// login (which Vault holds to TOTP MFA) of an identity entity: a token made
// with auth/token/create, even one carrying a piivault-* policy, is not
// staff. The username is the one Vault wrote into the token's login path
// (the entity's userpass alias), never metadata the token's maker chose.
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
	path, _ := s.Data["path"].(string)
	entity, _ := s.Data["entity_id"].(string)
	name, ok := strings.CutPrefix(path, staffLoginPath)
	if !ok || name == "" || entity == "" {
		return TokenInfo{}, apperr.New(apperr.Unauthorized, "not a staff login token")
	}
	pols, _ := s.TokenPolicies()
	info := TokenInfo{Username: name, Role: RoleFromPolicies(pols), EntityID: entity}
	if et, _ := s.Data["expire_time"].(string); et != "" {
		info.ExpiresAt, _ = time.Parse(time.RFC3339Nano, et)
	}
	return info, nil
}

// SetStaffDisabled switches a staff member's Vault entity off or on. While
// it is off, Vault refuses every token of that member (a decrypt straight
// from Vault included); the service's policy lets it change nothing else.
func (c *Client) SetStaffDisabled(ctx context.Context, username string, disabled bool) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.Logical().WriteWithContext(ctx, "identity/entity/name/"+username, map[string]any{"disabled": disabled})
	return serviceErr(err, "set entity disabled")
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

// RevokeStaffTokens revokes every token the userpass login ever issued, at
// once (a lockdown): every staff session ends on its next request.
func (c *Client) RevokeStaffTokens(ctx context.Context) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.Logical().WriteWithContext(ctx, "sys/leases/revoke-prefix/"+staffLoginPath, nil)
	return serviceErr(err, "revoke staff tokens")
}

// ListStaff lists the staff accounts and their roles for the admin console
// (the service may list userpass users; it reads no entity).
func (c *Client) ListStaff(ctx context.Context) ([]StaffMember, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return listStaff(ctx, c.api, false)
}

func listStaff(ctx context.Context, api *vaultapi.Client, created bool) ([]StaffMember, error) {
	s, err := api.Logical().ListWithContext(ctx, "auth/"+UserpassMount+"/users")
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
		if u, err := api.Logical().ReadWithContext(ctx, "auth/"+UserpassMount+"/users/"+name); err == nil && u != nil {
			m.Role = RoleFromPolicies(toStrings(u.Data["token_policies"]))
		}
		if created {
			if e, err := api.Logical().ReadWithContext(ctx, "identity/entity/name/"+name); err == nil && e != nil {
				if md, ok := e.Data["metadata"].(map[string]any); ok {
					if ts, _ := md["piivault_created"].(string); ts != "" {
						m.Created, _ = time.Parse(time.RFC3339, ts)
					}
				}
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
