// Package vault is piivault's adapter to HashiCorp Vault: transit encryption
// and HMAC for the service identity, decryption with a caller's own token,
// key rotation and trimming, staff accounts (userpass + TOTP login MFA) and the
// idempotent bootstrap that `piivault setup` runs.
//
// Errors leave this package as apperr codes: Vault down, sealed, rate limited
// or slow → VaultUnavailable; permission denied → Forbidden; an undecryptable
// ciphertext → Gone. Callers never see a vaultapi type.
package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"piivault/internal/apperr"
)

// Config says how to reach Vault and which transit key to use.
type Config struct {
	Addr string
	// Token is used as is when set; otherwise RoleID and SecretID log in via AppRole.
	Token        string
	RoleID       string
	SecretID     string
	TransitMount string // default "transit"
	TransitKey   string // default "order-pii"
	// Timeout bounds each call to Vault (default 5s).
	Timeout time.Duration
}

// IndexKeyName is the transit key that computes blind-index HMACs for a
// given encryption key. It is separate so it can outlive rotation/trimming of
// the encryption key without breaking lookups of held orders.
func IndexKeyName(key string) string { return key + "-index" }

// SealKeyName is the transit key that seals audit entries: an HMAC over each
// entry's chain hash, so rewriting the trail needs Vault, not just Redis.
func SealKeyName(key string) string { return key + "-audit" }

// Client talks to Vault. It is safe for concurrent use.
type Client struct {
	api      *vaultapi.Client
	raw      *vaultapi.Client // transit's typed calls: api's settings, no per-call timeout of its own
	mount    string
	key      string
	indexKey string
	sealKey  string
	cfg      Config
	log      *slog.Logger

	mu sync.Mutex // guards re-login
}

// New builds a client; with AppRole credentials it logs in once before returning.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Client, error) {
	if cfg.TransitMount == "" {
		cfg.TransitMount = "transit"
	}
	if cfg.TransitKey == "" {
		cfg.TransitKey = "order-pii"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	var addrs []string
	if cfg.Addr != "" {
		var err error
		if addrs, err = SplitAddrs(cfg.Addr); err != nil {
			return nil, fmt.Errorf("vault address: %w", err)
		}
	}
	vc, err := apiConfig(cfg, addrs, nil)
	if err != nil {
		return nil, err
	}
	api, err := vaultapi.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	api.ClearToken() // never pick VAULT_TOKEN up implicitly
	// Transit's calls go over fasthttp (fasttransport.go) on a client of
	// their own. vaultapi bounds a raw call by its own timeout and ends it
	// as the call returns, before the answer is read; transit's calls are
	// bounded by c.ctx instead, and every one names its token.
	rc, err := apiConfig(cfg, addrs, func(base *http.Transport, dialTimeout time.Duration) http.RoundTripper {
		return newFastTransport(base, dialTimeout, cfg.Timeout)
	})
	if err != nil {
		return nil, err
	}
	rc.Timeout = 0
	raw, err := vaultapi.NewClient(rc)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	raw.ClearToken()
	c := &Client{api: api, raw: raw, mount: cfg.TransitMount, key: cfg.TransitKey,
		indexKey: IndexKeyName(cfg.TransitKey), sealKey: SealKeyName(cfg.TransitKey), cfg: cfg, log: log}
	// AppRole wins when configured: an operator's VAULT_TOKEN left in the
	// environment must never become the service's identity.
	switch {
	case cfg.RoleID != "" && cfg.SecretID != "":
		c.cfg.Token = ""
		if _, err := c.login(ctx); err != nil {
			return nil, err
		}
	case cfg.Token != "":
		api.SetToken(cfg.Token)
	default:
		return nil, errors.New("vault client: neither a token nor AppRole credentials were given")
	}
	return c, nil
}

// Addr is the Vault address in use.
func (c *Client) Addr() string { return c.api.Address() }

// KeyName is the transit encryption key in use.
func (c *Client) KeyName() string { return c.key }

// login performs an AppRole login and installs the token. It returns the token TTL.
func (c *Client) login(ctx context.Context) (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	tok, ttl, err := c.appRoleLogin(ctx, c.cfg.RoleID, c.cfg.SecretID)
	if err != nil {
		return 0, err
	}
	c.api.SetToken(tok)
	return ttl, nil
}

// KeepLoggedIn renews the AppRole token and logs in again before it expires,
// until ctx ends. It does nothing for a static token.
func (c *Client) KeepLoggedIn(ctx context.Context) {
	if c.cfg.Token != "" || c.cfg.RoleID == "" {
		return
	}
	for {
		ttl, err := c.tokenTTL(ctx)
		if err != nil || ttl < time.Minute {
			if ttl, err = c.login(ctx); err != nil {
				c.log.Warn("vault approle re-login failed", "err", err)
				ttl = 30 * time.Second
			}
		}
		wait := ttl / 2
		if wait < 10*time.Second {
			wait = 10 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if _, err := c.api.Auth().Token().RenewSelfWithContext(ctx, 0); err != nil {
			c.log.Info("vault token renewal failed, logging in again", "err", err)
			if _, err := c.login(ctx); err != nil {
				c.log.Warn("vault approle re-login failed", "err", err)
			}
		}
	}
}

func (c *Client) tokenTTL(ctx context.Context) (time.Duration, error) {
	s, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return 0, translate(err, "token lookup")
	}
	return s.TokenTTL()
}

// apiConfig is vaultapi's configuration for cfg's nodes (addrs; none:
// VAULT_ADDR), with the environment's TLS settings. over, when set, puts
// its own transport over net/http's (whose TLS and dial settings it
// reads); failover goes over that when there are several nodes.
func apiConfig(cfg Config, addrs []string, over func(base *http.Transport, dialTimeout time.Duration) http.RoundTripper) (*vaultapi.Config, error) {
	vc := vaultapi.DefaultConfig()
	if len(addrs) > 0 {
		vc.Address = addrs[0]
	}
	vc.Timeout = cfg.Timeout
	vc.MaxRetries = 0 // callers hold deadlines; a retry loop here would hide an outage
	base, ok := vc.HttpClient.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("vault client: unexpected transport %T", vc.HttpClient.Transport)
	}
	// cleanhttp keeps GOMAXPROCS+1 idle connections per host; concurrent
	// reveals and logins would otherwise open a new connection per call.
	base.MaxIdleConnsPerHost = 128
	dialTimeout := 30 * time.Second // cleanhttp's
	if len(addrs) > 1 {
		// A node that drops packets must cost a second, not the whole call:
		// then the next node is tried.
		dialTimeout = time.Second
		base.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	var rt http.RoundTripper = base
	if over != nil {
		rt = over(base, dialTimeout)
	}
	if len(addrs) > 1 {
		fo, err := newFailover(rt, addrs)
		if err != nil {
			return nil, fmt.Errorf("vault address: %w", err)
		}
		rt = fo
	}
	vc.HttpClient.Transport = rt
	return vc, nil
}

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// Ready reports whether Vault is reachable, unsealed and holds the transit key.
func (c *Client) Ready(ctx context.Context) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	h, err := c.api.Sys().HealthWithContext(ctx)
	if err != nil {
		return translate(err, "health")
	}
	if !h.Initialized || h.Sealed {
		return apperr.New(apperr.VaultUnavailable, "vault is sealed or not initialised")
	}
	if _, err := c.Key().ReadKey(ctx); err != nil {
		return fmt.Errorf("transit key: %w", err)
	}
	return nil
}

// CanDecrypt reports whether this client's own identity may decrypt with
// the transit key. `serve` refuses to run as an identity that can.
func (c *Client) CanDecrypt(ctx context.Context) (bool, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	path := c.mount + "/decrypt/" + c.key
	s, err := c.api.Logical().WriteWithContext(ctx, "sys/capabilities-self", map[string]any{"paths": []string{path}})
	if err != nil {
		return false, translate(err, "capabilities")
	}
	if s == nil {
		return false, apperr.New(apperr.VaultUnavailable, "vault returned no capabilities")
	}
	for _, cap := range toStrings(s.Data[path]) {
		if cap == "update" || cap == "create" || cap == "root" || cap == "sudo" {
			return true, nil
		}
	}
	return false, nil
}

// serviceErr translates errors of calls made with the service's own
// identity: a refusal there is a misconfiguration or an expired token on
// piivault's side, never the client's fault, so it is Vault being
// unavailable (503), not 403/400.
func serviceErr(err error, op string) error {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests {
		return apperr.Wrap(apperr.VaultUnavailable, err, "vault refused piivault's service identity (%s)", op)
	}
	return translate(err, op)
}

// translate turns a Vault client error into an apperr code. op names the
// operation for the logs; it never contains request data.
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusForbidden:
			return apperr.Wrap(apperr.Forbidden, err, "vault refused the operation")
		case re.StatusCode == http.StatusNotFound:
			return apperr.Wrap(apperr.NotFound, err, "not found in vault")
		case re.StatusCode == http.StatusBadRequest:
			return apperr.Wrap(apperr.Invalid, err, "vault rejected the request")
		case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
			return apperr.Wrap(apperr.VaultUnavailable, err, "vault is unavailable")
		}
		return fmt.Errorf("vault %s: %w", op, err)
	}
	// Connection refused, DNS, timeouts, cancelled contexts: Vault is out of reach.
	return apperr.Wrap(apperr.VaultUnavailable, fmt.Errorf("vault %s: %w", op, err), "vault is unavailable")
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// isNotFoundErr tells a missing path apart; used by setup's idempotent checks.
func isNotFoundErr(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

func hasAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// MaskedKeyName is the transit key of the masked copy of each shipping
// block (support's view). Support's policy may decrypt only this key.
func MaskedKeyName(key string) string { return key + "-masked" }
