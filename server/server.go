// Package server assembles piivault's HTTP API: the middleware chain and
// the whole route table, one line per route with who may call it. Handlers
// live with their features; this package only wires them.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"piivault/api"
	"piivault/audit"
	"piivault/checkout"
	"piivault/compliance"
	"piivault/console"
	"piivault/internal/apperr"
	"piivault/internal/redispipe"
	"piivault/internal/web"
	"piivault/monitoring"
	"piivault/orders"
	"piivault/postage"
	"piivault/privacy"
	"piivault/purge"
	"piivault/requests"
	"piivault/staff"
	"piivault/webhooks"
)

// ClientAuth authenticates storefront API keys.
type ClientAuth interface {
	Authenticate(ctx context.Context, key string) (string, error)
}

// StaffAuth authenticates staff Vault tokens; AuthenticateForDecrypt may
// trust a recent answer on routes whose next step is a decrypt.
type StaffAuth interface {
	Authenticate(ctx context.Context, token string) (web.Principal, error)
	AuthenticateForDecrypt(ctx context.Context, token string) (web.Principal, error)
	RememberedForDecrypt(token string) (web.Principal, bool)
}

// Checker reports whether a dependency is ready.
type Checker interface {
	Ready(ctx context.Context) error
}

// LockdownStatus reports an incident lockdown (for /readyz).
type LockdownStatus interface {
	Status(ctx context.Context) (compliance.LockdownState, error)
}

// Limiter is a rate limit.
type Limiter interface {
	Allow(ctx context.Context, who string) error
}

// Deps is everything the API needs, built by cmd/piivault.
type Deps struct {
	Log   *slog.Logger
	Redis redis.UniversalClient
	// Pipe sends each request's block check (and its API key's look-up)
	// in a round trip shared with other requests'; nil: New makes one.
	Pipe           *redispipe.Shared
	Vault          Checker
	Clients        ClientAuth
	Staff          StaffAuth
	Monitor        *monitoring.Monitor
	Orders         *orders.Handler
	Purge          *purge.Handler
	StaffHTTP      *staff.Handler
	Audit          *audit.Handler
	Blocks         *monitoring.Handler
	Webhooks       *webhooks.Handler
	Compliance     *compliance.Handler
	Console        *console.Handler
	Checkout       *checkout.Handler
	Postage        *postage.Handler
	Requests       *requests.Service
	Privacy        *privacy.Handler // customers' own pages, /privacy/
	Lockdown       LockdownStatus
	LoginLimit     Limiter
	ClientLimit    Limiter
	TrustedProxies []string
	AllowedOrigins []string
	HTTPS          bool // browsers reach piivault over HTTPS only (its own TLS or an https PIIVAULT_PUBLIC_URL): HSTS
	AccessLog      *monitoring.AccessStore
	Replicas       Replicas // nil: answers do not wait for Redis replicas
	// MetricsElsewhere: /metrics has its own listener
	// (PIIVAULT_METRICS_LISTEN), so this router answers it 404.
	MetricsElsewhere bool
}

const (
	fulfillment = web.RoleFulfillment
	support     = web.RoleSupport
	admin       = web.RoleAdmin
	auditor     = web.RoleAuditor
)

// New builds the Gin engine.
func New(d Deps) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	if err := r.SetTrustedProxies(d.TrustedProxies); err != nil {
		return nil, err
	}
	if d.Pipe == nil {
		d.Pipe = redispipe.New(d.Redis, redispipe.Config{})
	}
	s := &srv{d: d}
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, _ any) {
		s.fail(c, apperr.New(apperr.Internal, "internal error"))
	}))
	r.Use(monitoring.AccessLog(d.Log, d.AccessLog), s.headers, s.cors)
	if d.Replicas != nil {
		r.Use(s.durable)
	}
	r.NoRoute(func(c *gin.Context) { s.fail(c, apperr.New(apperr.NotFound, "no such endpoint")) })
	r.NoMethod(func(c *gin.Context) {
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, web.ErrorBody{Error: web.ErrorDetail{
			Code: "method_not_allowed", Message: "method not allowed on this endpoint"}})
	})

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.ready)
	if !d.MetricsElsewhere {
		r.GET("/metrics", gin.WrapH(promhttp.Handler()))
	}
	r.GET("/checkout.js", d.Checkout.Script)

	client := s.auth(true, d.Staff.Authenticate)
	staffOnly := s.auth(false, d.Staff.Authenticate)
	reveal := s.auth(false, d.Staff.AuthenticateForDecrypt)
	// Webhooks are judged by their signatures, not by the sender's IP: a
	// provider's addresses are shared, and a block must not cut off the
	// events that purge. Every other /v1 route refuses blocked IPs.
	hooks := r.Group("/v1/webhooks")
	v1 := r.Group("/v1", s.notBlocked)

	v1.GET("/openapi.json", api.Serve) // public, cacheable: the API document itself

	// Storefront
	v1.POST("/orders", client, s.clientOnly, s.limit(d.ClientLimit, "client"), d.Orders.Create)
	v1.GET("/orders/:id", client, s.roles(true, fulfillment, support, admin, auditor), d.Orders.Get)
	// Corrections: the storefront's secret key, support and admin; nobody
	// reads the old address to replace it.
	v1.PUT("/orders/:id/shipping", client, s.roles(true, support, admin), s.limit(d.ClientLimit, "client"), d.Orders.Rectify)
	v1.POST("/orders/:id/tracking", client, s.clientOnly, s.limit(d.ClientLimit, "client"), d.Webhooks.LinkTracking)
	v1.POST("/checkout/sessions", client, s.clientOnly, s.limit(d.ClientLimit, "client"), d.Checkout.OpenSession)
	// The customer's browser: a publishable key, CORS for its own origins.
	v1.OPTIONS("/checkout/shipping", d.Checkout.Preflight)
	v1.POST("/checkout/shipping", d.Checkout.Shipping)
	// Staff
	v1.POST("/auth/login", s.jsonOnly, s.limit(d.LoginLimit, "ip"), d.StaffHTTP.Login)
	v1.POST("/auth/logout", staffOnly, d.StaffHTTP.Logout)
	// A reveal reads its IP block with its order (the Revealer's one round
	// trip) when its token needs no look-up: see revealAuth.
	r.GET("/v1/orders/:id/shipping", s.revealAuth(reveal), s.roles(false, fulfillment, support), d.Orders.Shipping)
	v1.GET("/fulfillment/queue", client, s.roles(false, fulfillment, admin), d.Orders.Queue)
	v1.POST("/fulfillment/labels", reveal, s.roles(false, fulfillment), d.Orders.Labels)
	// Postage: the address goes to EasyPost only, on a member's click,
	// decrypted with the member's token like a reveal (a label answered
	// without a decrypt has its token looked up by the service).
	v1.POST("/fulfillment/shipments", reveal, s.roles(false, fulfillment), d.Postage.Buy)
	v1.POST("/fulfillment/rates", reveal, s.roles(false, fulfillment), d.Postage.Rates)
	v1.POST("/fulfillment/shipments/:order_id/refund", staffOnly, s.roles(false, fulfillment, admin), d.Postage.Refund)
	v1.POST("/orders/:id/shipped", client, s.roles(false, fulfillment), d.Purge.Shipped)
	v1.DELETE("/orders/:id/pii", client, s.roles(false, support, admin), d.Purge.DeletePII)
	v1.POST("/deletion-requests", client, s.roles(false, support, admin), d.Purge.CreateDeletionRequest)
	// Emailed requests that wait for a person (?status=pending).
	v1.GET("/deletion-requests", client, s.roles(false, support, admin), d.Requests.Pending)
	v1.POST("/deletion-requests/:id/confirm", client, s.roles(false, support, admin), d.Requests.Confirm)
	v1.POST("/deletion-requests/:id/reject", client, s.roles(false, support, admin), d.Requests.Reject)
	v1.GET("/deletion-requests/:id", client, s.roles(false, support, admin), d.Purge.GetDeletionRequest)
	v1.POST("/access-requests", client, s.roles(false, support, admin), d.Compliance.CreateAccessRequest)
	v1.GET("/access-requests/:id", client, s.roles(false, support, admin), d.Compliance.GetAccessRequest)
	v1.GET("/incidents/scope", client, s.roles(false, auditor, admin), d.Compliance.Scope)
	v1.GET("/reports/retention", client, s.roles(false, auditor, admin), d.Compliance.Retention)
	v1.GET("/admin/lockdown", client, s.roles(false, admin), d.Compliance.GetLockdown)
	v1.POST("/admin/lockdown", client, s.roles(false, admin), d.Compliance.SetLockdown)
	v1.GET("/audit", client, s.roles(false, auditor, admin), d.Audit.List)
	v1.GET("/audit/verify", client, s.roles(false, auditor, admin), d.Audit.Verify)
	v1.GET("/admin/blocks", client, s.roles(false, admin), d.Blocks.ListBlocks)
	v1.GET("/admin/blocks/:ip", client, s.roles(false, admin), d.Blocks.GetBlock)
	v1.DELETE("/admin/blocks/:ip", client, s.roles(false, admin), d.Blocks.DeleteBlock)
	// Webhooks: authenticated by their signatures, inside the handlers.
	// The staff console: its own cookie sessions, CSP and CSRF checks;
	// blocked IPs are refused like on the API.
	if d.Console != nil {
		d.Console.Register(r, s.notBlocked)
	}
	// Customers' pages: their own sealed session, no staff route.
	if d.Privacy != nil {
		d.Privacy.Register(r, s.notBlocked)
	}
	hooks.POST("/stripe", d.Webhooks.Stripe)
	hooks.POST("/shopify", d.Webhooks.Shopify)
	hooks.POST("/easypost", d.Webhooks.EasyPost)
	hooks.POST("/shipping", d.Webhooks.Shipping)
	// Inbound email (Postmark, SendGrid): HTTP basic auth with
	// PIIVAULT_INBOUND_SECRET, checked inside; like webhooks, never
	// refused for the provider's shared IPs.
	d.Requests.RegisterInbound(r)
	return r, nil
}

type srv struct{ d Deps }

func (s *srv) fail(c *gin.Context, err error) { web.WriteError(c, s.d.Log, err) }

// headers: nothing piivault answers may be cached, sniffed or framed, and
// a browser that once reached it over HTTPS never falls back to HTTP
// (HSTS). Behind a TLS-terminating proxy the header is sent on the plain
// hop too: the proxy passes it on over HTTPS, where browsers heed it.
func (s *srv) headers(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if s.d.HTTPS {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
	c.Next()
}

// cors answers browsers from PIIVAULT_ALLOWED_ORIGINS only.
func (s *srv) cors(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" || !slices.Contains(s.d.AllowedOrigins, origin) {
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Vary", "Origin")
	if c.Request.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

func (s *srv) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	status := gin.H{"vault": "ok", "redis": "ok"}
	code := http.StatusOK
	lockdown := "off"
	if err := s.d.Vault.Ready(ctx); err != nil {
		status["vault"], code = "unavailable", http.StatusServiceUnavailable
		s.d.Log.Warn("readiness: vault", "err", err)
	}
	if err := s.d.Redis.Ping(ctx).Err(); err != nil {
		status["redis"], code = "unavailable", http.StatusServiceUnavailable
		s.d.Log.Warn("readiness: redis", "err", err)
	} else if ld, err := s.d.Lockdown.Status(ctx); err == nil && ld.On {
		// Ready (ingest and purges go on), but an operator must see it.
		lockdown = "on"
	}
	if code != http.StatusOK {
		failing := []string{}
		for _, part := range []string{"vault", "redis"} {
			if status[part] != "ok" {
				failing = append(failing, part)
			}
		}
		c.JSON(code, gin.H{"status": "unavailable", "checks": status, "lockdown": lockdown, "error": web.ErrorDetail{
			Code: "not_ready", Message: "not ready: " + strings.Join(failing, ", ") + " unavailable"}})
		return
	}
	c.JSON(code, gin.H{"status": "ready", "checks": status, "lockdown": lockdown})
}

// notBlocked refuses every request from an IP the monitor blocked. It is
// read from Redis on each request, so a block made by any instance holds
// on the next request everywhere.
//
// A request with a storefront key has the key looked up in the same round
// trip (the auth middleware after it takes that answer): one Redis read
// instead of two on the storefront's every call.
func (s *srv) notBlocked(c *gin.Context) {
	if s.checkBlocked(c) {
		c.Next()
	}
}

// revealAuth is the reveal route's notBlocked and auth. A token Vault
// accepted a moment ago (RememberedForDecrypt) needs no round trip, and
// the Revealer then reads the IP block with the order, in one round trip
// for both; every answer the route gives before that (a role refused) is
// checked here first. A token that must be looked up is checked against
// the block first, as on every other route: a blocked IP never reaches
// Vault.
func (s *srv) revealAuth(auth gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if cred, ok := bearer(c); ok && !strings.HasPrefix(cred, "pvk_") {
			if p, known := s.d.Staff.RememberedForDecrypt(cred); known {
				c.Set(blockLaterKey, true)
				web.SetPrincipal(c, p)
				c.Next()
				return
			}
		}
		if s.checkBlocked(c) {
			auth(c)
		}
	}
}

// blockLaterKey marks a request whose IP block the handler reads (revealAuth).
const blockLaterKey = "piivault.blockLater"

// checkBlocked refuses a blocked IP and reports whether the request may go on.
func (s *srv) checkBlocked(c *gin.Context) bool {
	ctx, ip := c.Request.Context(), c.ClientIP()
	in, pipelined := s.d.Clients.(clientAuthIn)
	cred, presented := bearer(c)
	withKey := presented && pipelined && strings.HasPrefix(cred, "pvk_")
	var isBlocked func() (bool, error)
	var owner func() (string, error)
	err := s.d.Pipe.Do(ctx, func(pipe redis.Pipeliner) {
		isBlocked = s.d.Monitor.BlockedIn(ctx, pipe, ip)
		if withKey {
			owner = in.AuthenticateIn(ctx, pipe, cred)
		}
	})
	var blocked bool
	if err != nil { // nothing was sent: the request's context ended first
		err = apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	} else {
		blocked, err = isBlocked()
	}
	if err == nil && withKey {
		name, kerr := owner()
		c.Set(keyLookupKey, keyLookup{key: cred, name: name, err: kerr})
	}
	if err == nil && blocked {
		err = monitoring.ErrBlocked
	}
	if err != nil {
		s.fail(c, err)
		return false
	}
	return true
}

// jsonOnly refuses a body that is not declared JSON (415). Browsers send
// JSON cross-site only after a CORS preflight, which piivault answers for
// its allowed origins alone; a "simple" cross-site form post is never JSON.
func (s *srv) jsonOnly(c *gin.Context) {
	if mt := c.ContentType(); mt != "application/json" {
		s.fail(c, apperr.New(apperr.UnsupportedMedia, "send the body as application/json"))
		return
	}
	c.Next()
}

// auth authenticates the bearer credential: a storefront API key (pvk_...)
// or a staff Vault token. Every failure is the same 401. Only a credential
// that was presented and is wrong counts toward an IP block, once per
// distinct wrong token: a missing one counts for nothing, so no page on
// another site can get an office's IP blocked. allowClient=false refuses
// API keys outright.
func (s *srv) auth(allowClient bool, staffAuth func(context.Context, string) (web.Principal, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		cred, presented := bearer(c)
		var p web.Principal
		var err error
		switch {
		case !presented:
			err = apperr.New(apperr.Unauthorized, "missing bearer credential")
		case strings.HasPrefix(cred, "pvk_"):
			var name string
			if v, ok := c.Get(keyLookupKey); ok && v.(keyLookup).key == cred {
				name, err = v.(keyLookup).name, v.(keyLookup).err // read with the block check
			} else {
				name, err = s.d.Clients.Authenticate(ctx, cred)
			}
			if err == nil {
				p = web.Principal{Kind: web.KindClient, Name: name}
				if !allowClient {
					err = apperr.New(apperr.Forbidden, "storefront keys cannot call this endpoint")
				}
			}
		default:
			p, err = staffAuth(ctx, cred)
		}
		if err != nil {
			if apperr.Is(err, apperr.Unauthorized) {
				if presented && !errors.Is(err, staff.ErrKnownInvalid) {
					s.d.Monitor.AuthFailed(ctx, c.ClientIP())
				}
				c.Header("WWW-Authenticate", `Bearer realm="piivault"`)
			}
			s.fail(c, err)
			return
		}
		web.SetPrincipal(c, p)
		c.Next()
	}
}

// bearer is the request's bearer credential, and whether one was presented.
func bearer(c *gin.Context) (string, bool) {
	cred, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	cred = strings.TrimSpace(cred)
	return cred, ok && cred != ""
}

// clientAuthIn is a ClientAuth whose look-up can share a pipeline with the
// block check (*clients.Registry).
type clientAuthIn interface {
	AuthenticateIn(ctx context.Context, p redis.Pipeliner, key string) func() (string, error)
}

// keyLookup is a storefront key's look-up made by notBlocked, for auth.
type keyLookup struct {
	key, name string
	err       error
}

const keyLookupKey = "piivault.keyLookup"

// roles lets through the listed staff roles, and storefront clients when
// clients is true. Everyone else authenticated gets 403.
func (s *srv) roles(clients bool, roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, _ := web.PrincipalOf(c)
		if (p.Kind == web.KindClient && clients) || (p.Kind == web.KindStaff && slices.Contains(roles, p.Role)) {
			c.Next()
			return
		}
		if c.GetBool(blockLaterKey) && !s.checkBlocked(c) {
			return // a blocked IP hears that first
		}
		s.fail(c, apperr.New(apperr.Forbidden, "your role may not call this endpoint"))
	}
}

func (s *srv) clientOnly(c *gin.Context) {
	if p, _ := web.PrincipalOf(c); p.Kind != web.KindClient {
		s.fail(c, apperr.New(apperr.Forbidden, "only storefront clients store orders"))
		return
	}
	c.Next()
}

// limit applies a rate limit per client name ("client") or per IP ("ip").
func (s *srv) limit(l Limiter, by string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if l == nil {
			c.Next()
			return
		}
		who := c.ClientIP()
		if p, ok := web.PrincipalOf(c); ok && by == "client" {
			who = p.Actor()
		}
		if err := l.Allow(c.Request.Context(), who); err != nil {
			s.fail(c, err)
			return
		}
		c.Next()
	}
}
