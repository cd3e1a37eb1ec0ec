// Package privacy is the customers' own page, /privacy/: a customer signs in
// with a one-time code (or link) mailed to the address of their orders, and
// sees each order with its status, its dates, when its shipping data is (or
// was) destroyed and every time it was viewed (role, reason, date: the
// content of the Art. 15 report, never a staff member's name). They can
// delete the shipping data of a held order (receipt on screen and by email)
// or correct it without seeing it.
//
// Pages are server-rendered like the staff console: embedded templates and
// stylesheet, no script, the console's Content-Security-Policy, plain forms
// each carrying a CSRF token and checked for their origin. The page answers
// POST /privacy/ the same way whether or not piivault knows the email, and
// mails a code only when it does.
//
// Cookies (both sealed with keyseal, HttpOnly, SameSite=Strict, Path=/privacy/,
// Secure under HTTPS; no staff route reads either):
//
//	piivault_privacy       the session: the customer's email, its CSRF token,
//	                       its absolute expiry (15 minutes)
//	piivault_privacy_form  before sign-in: the forms' CSRF token and, once a
//	                       code was asked for, the email it was asked for
//	                       (so the code form needs only the code); 30 minutes
//
// Redis keys (one hash tag, so a Cluster keeps them in one slot and a script
// may touch them together; every key has a TTL of 10 minutes; <m> is the
// hex HMAC-SHA256 of the normalised email under a key derived from Deps.Key,
// so no key or value names a person):
//
//	piivault:{privacy}:code:<m>  hash: code (HMAC of the code), tries, link
//	                             (HMAC of the link token), exp (unix ms)
//	piivault:{privacy}:link:<l>  hash, <l> the HMAC of the link token: e (the
//	                             email sealed under a key derived from the
//	                             token, which only the mail holds), m, exp
//
// A code and its link are one sign-in: using either, 5 wrong codes or a new
// request ends both.
package privacy

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/keyseal"
	"piivault/internal/web"
	"piivault/mail"
	"piivault/monitoring"
	"piivault/orders"
	"piivault/purge"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the staff console's policy (console.CSP, checked by a test), kept
// as a copy so this package does not build the whole console.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Actor is the audit actor of every change made from this page. It names
// the channel, never the customer: no PII in an audit entry.
const Actor = "customer:privacy"

// Store reads a customer's orders and corrects them (*orders.Store).
type Store interface {
	// History returns the order ids of an email, held or purged, until each
	// one's retention ends.
	History(ctx context.Context, email string) ([]string, error)
	// Get returns the purchase reference; NotFound for an unknown order.
	Get(ctx context.Context, orderID string) (orders.Reference, error)
	// Reveals returns each order's views (time, role, reason, disclosed to).
	Reveals(ctx context.Context, ids []string) (map[string][]orders.Revealed, error)
	// RectifyAudited corrects a held order's shipping data: Gone once it is
	// destroyed, LabelBought once a label carries the address, Validation
	// naming the fields, NotFound; a *orders.DeferredError when the
	// correction was made and only its audit entry waits.
	RectifyAudited(ctx context.Context, orderID string, ship orders.Shipping, e audit.Entry) (orders.Reference, error)
}

// Deleter purges orders at a customer's request (*purge.Deletions).
type Deleter interface {
	PurgeOrders(ctx context.Context, actor, ip string, ids []string, reason string) (purge.Receipt, error)
}

// Mailer queues an email and returns at once (*mail.Outbox): the same ID
// is sent once.
type Mailer interface {
	Enqueue(ctx context.Context, m mail.Message) error
}

// Limiter counts a request for who; an apperr RateLimited error when over
// (*monitoring.Limiter).
type Limiter interface {
	Allow(ctx context.Context, who string) error
}

var (
	_ Store   = (*orders.Store)(nil)
	_ Deleter = (*purge.Deletions)(nil)
	_ Mailer  = (*mail.Outbox)(nil)
	_ Limiter = (*monitoring.Limiter)(nil)
)

// Deps are the page's collaborators.
type Deps struct {
	Log   *slog.Logger
	Key   []byte // 32+ bytes (the console key): every key of this package is derived from it
	Redis redis.UniversalClient
	HTTPS bool // cookies are Secure
	// PublicURL (PIIVAULT_PUBLIC_URL) is the base of the emailed link and
	// the origin forms must come from. When empty, forms must come from the
	// request's own host, and the email carries a link only when that host is
	// a loopback address (development): a link built from any other Host
	// header could point a customer's sign-in token at whoever sent it.
	PublicURL string
	Store     Store
	Deleter   Deleter
	// Mail is nil when SMTP is not set up: nobody can sign in, and the page
	// says to write to the shop instead.
	Mail       Mailer
	IPLimit    Limiter // every POST, per client IP; nil: none
	EmailLimit Limiter // code requests and code attempts, per email HMAC; nil: none
	Now        func() time.Time
	Retention  time.Duration // the longest an order's shipping data is kept (the page says so)
}

const (
	codeTTL    = 10 * time.Minute
	maxTries   = 5
	sessionTTL = 15 * time.Minute
	formTTL    = 30 * time.Minute
	redisWait  = 3 * time.Second
	mailWait   = 10 * time.Second
)

// Handler serves /privacy/.
type Handler struct {
	d            Deps
	session      *keyseal.Sealer
	form         *keyseal.Sealer
	macKey       []byte
	pages        map[string]*template.Template
	publicOrigin string         // scheme://host of PublicURL, "" when unset
	linkBase     string         // PublicURL without a trailing slash
	bg           sync.WaitGroup // code mails queued after the answer (Wait: tests)
}

// New builds the page; it parses every template once.
func New(d Deps) (*Handler, error) {
	switch {
	case d.Redis == nil:
		return nil, errors.New("privacy: no Redis client")
	case d.Store == nil || d.Deleter == nil:
		return nil, errors.New("privacy: no order store or deleter")
	}
	if o, ok := d.Mail.(*mail.Outbox); ok && o == nil {
		d.Mail = nil // a nil *Outbox in the interface is "no mail", not a crash
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Retention <= 0 {
		d.Retention = 720 * time.Hour
	}
	h := &Handler{d: d}
	var err error
	if h.session, err = keyseal.New(d.Key, "privacy session"); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	if h.form, err = keyseal.New(d.Key, "privacy form"); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	if h.macKey, err = keyseal.Key(d.Key, "privacy code"); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	if d.PublicURL != "" {
		u, err := url.Parse(d.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("privacy: PublicURL is not an http(s) URL")
		}
		h.publicOrigin = strings.ToLower(u.Scheme + "://" + u.Host)
		h.linkBase = strings.TrimRight(d.PublicURL, "/")
	}
	if h.pages, err = web.ParsePages(templateFS, funcs); err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	return h, nil
}

// Register adds the routes under /privacy/; mw run first (the IP block
// check). The whole route table is here.
func (h *Handler) Register(r gin.IRouter, mw ...gin.HandlerFunc) {
	static, _ := fs.Sub(staticFS, "static")
	g := r.Group("/privacy", append([]gin.HandlerFunc{h.headers}, mw...)...)
	g.StaticFileFS("/static/privacy.css", "privacy.css", http.FS(static))
	g.GET("/", h.start)                                     // email form
	g.POST("/", h.before(h.send))                           // send a code (same answer for every email)
	g.GET("/code", h.codePage)                              // code form
	g.POST("/code", h.before(h.code))                       // sign in with the code
	g.GET("/link", h.linkPage)                              // the emailed link: a button, nothing used yet
	g.POST("/link", h.before(h.link))                       // sign in with the link's token
	g.GET("/orders", h.signedIn(h.orders))                  // the customer's orders and their views
	g.POST("/orders/:id/delete", h.signedIn(h.deleteOrder)) // delete a held order's shipping data
	g.GET("/orders/:id/correct", h.signedIn(h.correctForm)) // empty correction form
	g.POST("/orders/:id/correct", h.signedIn(h.correct))    // correct it
	g.POST("/logout", h.signedIn(h.logout))                 // end the session
}

// headers: the console's CSP, nothing cached, framed, sniffed or referred
// (the link page's URL holds a token), and small bodies only.
func (h *Handler) headers(c *gin.Context) {
	hd := c.Writer.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, web.MaxBody)
	}
	c.Next()
}

// view is what every page gets.
type view struct {
	Title    string
	CSRF     string
	SignedIn bool
	MailOff  bool
	Days     int
	Data     any
}

const (
	sessionCtx = "privacy.session"
	formCtx    = "privacy.form"
)

// render writes page inside the layout; the CSRF token is the session's
// when signed in, the sign-in forms' otherwise.
func (h *Handler) render(c *gin.Context, status int, page, title string, data any) {
	v := view{Title: title, MailOff: h.d.Mail == nil, Days: int(h.d.Retention / (24 * time.Hour)), Data: data}
	if s, ok := c.Get(sessionCtx); ok {
		v.SignedIn, v.CSRF = true, s.(session).CSRF
	} else if f, ok := c.Get(formCtx); ok {
		v.CSRF = f.(formState).CSRF
	}
	t, ok := h.pages[page]
	if !ok {
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := t.Execute(c.Writer, v); err != nil {
		h.d.Log.Error("privacy page failed", "page", page, "err", err)
	}
}

// errorView is the friendly error page's data.
type errorView struct {
	Status int
	Text   string
}

// forCustomer is an error whose message is written for customers (say);
// fail shows it as it is.
type forCustomer struct{ e *apperr.Error }

func (f forCustomer) Error() string { return f.e.Error() }
func (f forCustomer) Unwrap() error { return f.e }

// say is an error for a customer's eyes, with code's status.
func say(code apperr.Code, msg string) error {
	return forCustomer{&apperr.Error{Code: code, Message: msg}}
}

// customerText is what a customer reads for errors that come from below
// with staff-facing messages; the others' messages are written here.
var customerText = map[apperr.Code]string{
	apperr.Gone:             "The shipping data of this order is already destroyed: there is nothing left to change or delete.",
	apperr.LabelBought:      "A shipping label has already been printed with this address, so it can no longer be corrected here. Please contact the shop.",
	apperr.LabelInProgress:  "A shipping label is being printed for this order right now. Please try again in a minute.",
	apperr.Conflict:         "The order changed while we were saving your correction. Please try again.",
	apperr.RateLimited:      "You have tried this too often. Please wait a few minutes, then try again.",
	apperr.VaultUnavailable: "Our service is briefly unavailable. Please try again in a few minutes.",
	apperr.StoreUnavailable: "Our service is briefly unavailable. Please try again in a few minutes.",
	apperr.LockedDown:       "Our service is briefly unavailable. Please try again later.",
	apperr.Internal:         "Something went wrong on our side. Please try again later.",
}

// fail renders err as a friendly page with its status; only the unexpected
// is logged, by route, never with a body.
func (h *Handler) fail(c *gin.Context, err error) {
	d := web.DetailOf(err)
	status := web.Status(d.Code)
	switch d.Code {
	case apperr.Internal:
		h.d.Log.Error("privacy request failed", "route", c.FullPath(), "err", err)
	case apperr.VaultUnavailable, apperr.StoreUnavailable:
		h.d.Log.Warn("dependency unavailable", "route", c.FullPath(), "code", string(d.Code))
	case apperr.RateLimited:
		if ra, ok := d.Detail["retry_after_seconds"].(int); ok {
			c.Header("Retry-After", strconv.Itoa(ra))
		}
	}
	text := d.Message
	var fc forCustomer
	if t, ok := customerText[d.Code]; ok && !errors.As(err, &fc) {
		text = t
	}
	h.render(c, status, "error", "That did not work", errorView{Status: status, Text: text})
	c.Abort()
}

var funcs = template.FuncMap{
	"day": func(t time.Time) string { return t.UTC().Format("2 January 2006") },
	"when": func(t time.Time) string {
		return t.UTC().Format("2 January 2006, 15:04 UTC")
	},
	"whenp": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2 January 2006, 15:04 UTC")
	},
}
