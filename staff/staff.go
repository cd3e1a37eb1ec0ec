// Package staff owns staff accounts and sessions. Accounts live in Vault
// (userpass with TOTP login MFA, one policy per role); piivault keeps no
// password, no TOTP secret and no session of its own: every staff request
// is checked against Vault with the caller's own token, so a removed member
// or a revoked token fails on its very next request.
//
// A suspension by the intrusion monitor disables the member's Vault entity,
// so Vault itself refuses every token of theirs (a decrypt sent straight to
// Vault included), and is listed in Redis for the operator:
//
//	piivault:{staff}:suspended   hash  username → unix time of suspension
package staff

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/vault"
)

const suspendedKey = "piivault:{staff}:suspended"

// MaxPasswordBytes is bcrypt's limit: Vault's userpass fails (500) on more.
const MaxPasswordBytes = 72

// loginFloor is the least time a failed login takes, so unknown users,
// wrong passwords and wrong codes all answer in the same timing class.
const loginFloor = 600 * time.Millisecond

var usernamePattern = regexp.MustCompile(`^[a-z][a-z0-9._-]{1,31}$`)

// ValidUsername reports whether name is an acceptable staff username.
func ValidUsername(name string) bool { return usernamePattern.MatchString(name) }

// ValidRole reports whether role is a staff role.
func ValidRole(role string) bool {
	for _, r := range vault.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Directory is the Vault side of staff accounts. vault.Client implements it.
type Directory interface {
	Login(ctx context.Context, username, password, totp string) (vault.Session, error)
	LookupToken(ctx context.Context, token string) (vault.TokenInfo, error)
	RevokeToken(ctx context.Context, token string) error
	SetStaffDisabled(ctx context.Context, username string, disabled bool) error
}

// Service logs staff in and authenticates their requests.
type Service struct {
	dir     Directory
	rdb     redis.UniversalClient
	sleep   func(time.Duration)
	invalid *tokenMemory
	valid   *principalMemory
}

// NewService builds a Service.
func NewService(dir Directory, rdb redis.UniversalClient) *Service {
	return &Service{dir: dir, rdb: rdb, sleep: time.Sleep, invalid: newTokenMemory(10_000, time.Minute),
		valid: newPrincipalMemory(10_000, 30*time.Second)}
}

// ErrKnownInvalid is Authenticate's answer for a token Vault refused a
// moment ago: Unauthorized, without asking Vault again. The intrusion
// monitor counts a wrong token once, not on every retry of it.
var ErrKnownInvalid = apperr.New(apperr.Unauthorized, "invalid or expired token")

// Login exchanges username, password and TOTP code for a Vault token. Every
// failure is the same Unauthorized error and takes at least loginFloor.
func (s *Service) Login(ctx context.Context, username, password, totp string) (vault.Session, error) {
	start := time.Now()
	sess, err := s.login(ctx, username, password, totp)
	if apperr.Is(err, apperr.Unauthorized) {
		if d := loginFloor - time.Since(start); d > 0 {
			s.sleep(d)
		}
	}
	return sess, err
}

func (s *Service) login(ctx context.Context, username, password, totp string) (vault.Session, error) {
	if !ValidUsername(username) || password == "" || len(password) > MaxPasswordBytes || len(totp) > 16 {
		// Still ask Vault, so a malformed attempt costs what a wrong one does.
		username, password = "invalid-user", "invalid-password"
	}
	sess, err := s.dir.Login(ctx, username, password, totp)
	if err != nil {
		return vault.Session{}, err
	}
	if sess.Role == "" {
		_ = s.dir.RevokeToken(ctx, sess.Token)
		return vault.Session{}, vault.ErrBadLogin
	}
	suspended, err := s.Suspended(ctx, username)
	if err != nil || suspended {
		// The token was issued but is never handed out: revoke it.
		_ = s.dir.RevokeToken(context.WithoutCancel(ctx), sess.Token)
	}
	if err != nil {
		return vault.Session{}, err
	}
	if suspended {
		return vault.Session{}, apperr.New(apperr.Forbidden, "this account is suspended pending review")
	}
	return sess, nil
}

// Logout revokes the caller's token.
func (s *Service) Logout(ctx context.Context, token string) error {
	return s.dir.RevokeToken(ctx, token)
}

// Authenticate checks a staff token with Vault and returns its holder.
//
// Tokens Vault refused are remembered (a SHA-256 of each, for a minute, at
// most 10,000), so a flood of random tokens is not a flood of Vault calls.
// Valid tokens are never remembered: revocation holds on the next request.
func (s *Service) Authenticate(ctx context.Context, token string) (web.Principal, error) {
	if s.invalid.has(token) {
		return web.Principal{}, ErrKnownInvalid
	}
	info, err := s.dir.LookupToken(ctx, token)
	if apperr.Is(err, apperr.Unauthorized) {
		s.invalid.add(token)
	}
	if err != nil {
		return web.Principal{}, err
	}
	if info.Role == "" || info.Username == "" {
		return web.Principal{}, apperr.New(apperr.Unauthorized, "invalid or expired token")
	}
	if suspended, err := s.Suspended(ctx, info.Username); err != nil {
		return web.Principal{}, err
	} else if suspended {
		return web.Principal{}, apperr.New(apperr.Forbidden, "this account is suspended pending review")
	}
	return web.Principal{Kind: web.KindStaff, Name: info.Username, Role: info.Role, Token: web.Secret(token)}, nil
}

// AuthenticateForDecrypt is Authenticate for routes whose next step is a
// decrypt with the same token (reveals, label pick-lists): a token Vault
// accepted in the last 30 seconds is not looked up again; the principal
// comes back Unverified, and the decrypt is Vault's check. That saves one
// Vault round trip per reveal and weakens nothing: a revoked token, a
// disabled entity or a removed member fails the decrypt on that request.
func (s *Service) AuthenticateForDecrypt(ctx context.Context, token string) (web.Principal, error) {
	if p, ok := s.RememberedForDecrypt(token); ok {
		return p, nil
	}
	p, err := s.Authenticate(ctx, token)
	if err == nil {
		s.valid.put(token, p)
	}
	return p, err
}

// RememberedForDecrypt is AuthenticateForDecrypt's answer when it needs
// no round trip: the principal of a token Vault accepted in the last 30
// seconds, Unverified. false: the token must be looked up.
func (s *Service) RememberedForDecrypt(token string) (web.Principal, bool) {
	p, ok := s.valid.get(token)
	p.Unverified = ok
	return p, ok
}

// Suspend disables a staff member's Vault entity, so Vault refuses every
// token of theirs until an operator lifts it, and lists the suspension.
func (s *Service) Suspend(ctx context.Context, username string) error {
	if err := s.rdb.HSet(ctx, suspendedKey, username, time.Now().Unix()).Err(); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if err := s.dir.SetStaffDisabled(ctx, username, true); err != nil {
		return fmt.Errorf("disable the member in vault: %w", err)
	}
	return nil
}

// Unsuspend enables the member's Vault entity again and lifts the listing.
// A member who is not suspended is NotFound (and Vault is left alone:
// writing an entity by name would create one).
func (s *Service) Unsuspend(ctx context.Context, username string) error {
	if listed, err := s.Suspended(ctx, username); err != nil {
		return err
	} else if !listed {
		return apperr.New(apperr.NotFound, "%s is not suspended", username)
	}
	if err := s.dir.SetStaffDisabled(ctx, username, false); err != nil {
		return fmt.Errorf("enable the member in vault: %w", err)
	}
	if err := s.rdb.HDel(ctx, suspendedKey, username).Err(); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return nil
}

// ForgetSuspension drops a removed member's listing (their entity is gone).
func (s *Service) ForgetSuspension(ctx context.Context, username string) error {
	if err := s.rdb.HDel(ctx, suspendedKey, username).Err(); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return nil
}

// Suspended reports whether username is suspended.
func (s *Service) Suspended(ctx context.Context, username string) (bool, error) {
	ok, err := s.rdb.HExists(ctx, suspendedKey, username).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return ok, nil
}

// Suspensions lists suspended usernames with the time of suspension.
func (s *Service) Suspensions(ctx context.Context) (map[string]time.Time, error) {
	m, err := s.rdb.HGetAll(ctx, suspendedKey).Result()
	if err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		sec, _ := strconv.ParseInt(v, 10, 64)
		out[k] = time.Unix(sec, 0).UTC()
	}
	return out, nil
}

// CheckPassword enforces the staff password rules (the same classes as
// Vault's password policy, at least 14 characters) and says what is missing.
func CheckPassword(p string) error {
	var missing []string
	if len([]rune(p)) < 14 {
		missing = append(missing, "at least 14 characters")
	}
	if len(p) > MaxPasswordBytes {
		missing = append(missing, "at most 72 bytes")
	}
	classes := []struct {
		name string
		in   func(rune) bool
	}{
		{"a lower-case letter", unicode.IsLower},
		{"an upper-case letter", unicode.IsUpper},
		{"a digit", unicode.IsDigit},
		{"a symbol", func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) }},
	}
	for _, c := range classes {
		if !strings.ContainsFunc(p, c.in) {
			missing = append(missing, c.name)
		}
	}
	for _, r := range p {
		if unicode.IsControl(r) {
			missing = append(missing, "no control characters")
			break
		}
	}
	if len(missing) > 0 {
		return apperr.New(apperr.Validation, "password is too weak: it needs %s", strings.Join(missing, ", "))
	}
	return nil
}
