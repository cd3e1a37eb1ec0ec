// Package console is the staff console: server-rendered pages under
// /console/ for fulfillment, support, auditors and admins, with every
// asset embedded in the binary (no build step, no CDN, no Node).
//
// It holds no session: the staff member's Vault token travels in a sealed
// cookie (session.go) and every request checks it with Vault, so removal,
// suspension and lockdown hold on the very next click. Every page goes
// through the same calls as the API (reveal with a reason, pick-lists,
// purges, reports), so the same audit entries, limits and refusals apply.
// Pages carry a strict Content-Security-Policy (no inline script or style),
// every form that changes something carries a CSRF token bound to the
// session and is checked for its origin, and no PII is ever in a URL, a
// title or a log line.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/compliance"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/monitoring"
	"piivault/orders"
	"piivault/postage"
	"piivault/purge"
	"piivault/requests"
	"piivault/vault"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP allows the console's own script and stylesheet and nothing inline.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Staff is the login side (staff.Handler and staff.Service).
type Staff interface {
	Attempt(ctx context.Context, ip, username, password, totp string) (vault.Session, error)
	End(ctx context.Context, p web.Principal, ip string) error
}

// Authenticator checks a Vault token on every request (staff.Service).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (web.Principal, error)
}

// Orders is the reveal side (orders.Handler) and the store's reads.
type Orders interface {
	Reveal(ctx context.Context, p web.Principal, ip, id, reason string) (orders.Shipping, string, error)
	PickList(ctx context.Context, p web.Principal, ip string, ids []string, reason string) ([]orders.LabelResult, error)
	RevealCopies(ctx context.Context, p web.Principal, ip string, ids []string) (map[string]orders.Shipping, bool, error)
}

// Postage buys labels through EasyPost (postage.Service); nil when off.
type Postage interface {
	Buy(ctx context.Context, p web.Principal, ip string, req postage.Request) ([]postage.Shipment, error)
	LabelImage(ctx context.Context, p web.Principal, ip, orderID string) ([]byte, error)
	Refund(ctx context.Context, p web.Principal, ip, orderID string) (postage.Refunded, error)
}

// Requests are customers' emailed requests that wait for a person
// (requests.Service).
type Requests interface {
	Enabled() bool
	List(ctx context.Context, p web.Principal) ([]requests.Pending, error)
	ConfirmRequest(ctx context.Context, p web.Principal, ip, id string) (requests.Outcome, error)
	RejectRequest(ctx context.Context, p web.Principal, ip, id string) error
}

// Store reads references and the queue, and corrects an address.
type Store interface {
	Get(ctx context.Context, orderID string) (orders.Reference, error)
	Oldest(ctx context.Context, afterMS int64, afterID string, limit int) ([]orders.Held, error)
	RectifyAudited(ctx context.Context, orderID string, ship orders.Shipping, e audit.Entry) (orders.Reference, error)
}

// Purger purges one order on behalf of a staff member.
type Purger interface {
	Purge(ctx context.Context, actor, ip, orderID, reason string) (bool, error)
}

// Deletions runs deletion requests and lists their receipts.
type Deletions interface {
	Request(ctx context.Context, actor, ip, email string) (purge.Receipt, error)
	Recent(ctx context.Context, limit int) ([]purge.Receipt, error)
}

// Trail is the audit trail as the console reads it.
type Trail interface {
	List(ctx context.Context, f audit.Filter) (audit.Page, error)
	Verify(ctx context.Context) (audit.Verification, error)
}

// Blocks lists and lifts IP blocks.
type Blocks interface {
	Blocks(ctx context.Context) ([]monitoring.Block, error)
	Unblock(ctx context.Context, actor, ip, fromIP string) error
}

// StaffList lists staff accounts (vault.Client).
type StaffList interface {
	ListStaff(ctx context.Context) ([]vault.StaffMember, error)
}

// Deps are the console's collaborators.
type Deps struct {
	Log       *slog.Logger
	Key       []byte // 32 bytes: seals session cookies
	HTTPS     bool   // browsers reach piivault over HTTPS only: the session cookie is Secure
	Idle      time.Duration
	Now       func() time.Time // the clock of the idle limit (time.Now when nil); tests move it
	Staff     Staff
	Auth      Authenticator
	Orders    Orders
	Store     Store
	Purger    Purger
	Deletions Deletions
	Reports   *compliance.Reports
	Lockdown  *compliance.Lockdown
	Trail     Trail
	Blocks    Blocks
	StaffList StaffList
	Retention time.Duration
	Postage   Postage // nil: no label buying (no EASYPOST_API_KEY or PIIVAULT_SHIP_FROM)
	Requests  Requests

	// PublicOrigin is an https PIIVAULT_PUBLIC_URL as an origin
	// (https://vault.shop.example), "" otherwise. When set, a form must
	// come from it (a proxy may rewrite the request's Host), and a sign-in
	// that reached piivault over plain HTTP from a non-loopback address is
	// refused and pointed at it.
	PublicOrigin string
	// TrustedProxies (PIIVAULT_TRUSTED_PROXIES, IPs or CIDRs) are the peers
	// whose X-Forwarded-Proto is believed, as Gin believes their
	// X-Forwarded-For.
	TrustedProxies []string
}

// Handler serves the console.
type Handler struct {
	Deps
	seal    *sealer
	pages   map[string]*template.Template
	proxies []*net.IPNet
}

// New builds the console; it parses every template once.
func New(d Deps) (*Handler, error) {
	s, err := newSealer(d.Key)
	if err != nil {
		return nil, err
	}
	if d.Idle <= 0 {
		d.Idle = 15 * time.Minute
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	proxies, err := parseProxies(d.TrustedProxies)
	if err != nil {
		return nil, err
	}
	h := &Handler{Deps: d, seal: s, proxies: proxies}
	if h.pages, err = web.ParsePages(templateFS, funcs); err != nil {
		return nil, err
	}
	return h, nil
}

// Register adds the console's routes under /console/; mw run first (the
// IP block check).
func (h *Handler) Register(r gin.IRouter, mw ...gin.HandlerFunc) {
	static, _ := fs.Sub(staticFS, "static")
	g := r.Group("/console", append([]gin.HandlerFunc{h.headers}, mw...)...)
	g.StaticFS("/static", http.FS(static))
	g.GET("/", h.authed(nil, h.home))
	g.GET("/login", h.loginPage)
	g.POST("/login", h.login)
	g.POST("/logout", h.authed(nil, h.logout))

	for _, p := range h.pageTable() {
		if p.get != nil {
			g.GET(p.path, h.authed(p.roles, p.get))
		}
		if p.post != nil {
			g.POST(p.path, h.authed(p.roles, p.post))
		}
	}
}

// page is one console page: its path under /console, its navigation label
// ("" for none), the roles that may use it, and its GET and POST handlers
// (either may be nil).
type page struct {
	path, label string
	roles       []string
	get, post   gin.HandlerFunc
}

// pageTable is every signed-in page, in navigation order: one table drives
// both the routes and each role's navigation.
func (h *Handler) pageTable() []page {
	ful, sup, adm, aud := web.RoleFulfillment, web.RoleSupport, web.RoleAdmin, web.RoleAuditor
	return []page{
		{"/queue", "Queue", []string{ful, adm}, h.queue, nil},
		{"/lookup", "Look up", []string{ful, sup}, h.lookup, nil},
		{"/orders/:id", "", []string{ful, sup, adm}, h.order, nil},
		{"/orders/:id/reveal", "", []string{ful, sup}, nil, h.reveal},
		{"/orders/:id/shipped", "", []string{ful}, nil, h.shipped},
		{"/orders/:id/delete", "", []string{sup, adm}, nil, h.deletePII},
		{"/orders/:id/correct", "", []string{sup, adm}, h.correctForm, h.correct},
		{"/labels", "", []string{ful}, nil, h.labels},
		{"/shipments", "", []string{ful}, nil, h.shipments},
		{"/shipments/:id/label.png", "", []string{ful}, h.labelImage, nil},
		{"/orders/:id/refund-label", "", []string{ful, adm}, nil, h.refundLabel},
		{"/deletions", "Deletions", []string{sup, adm}, h.deletions, h.deletionRequest},
		{"/requests/:id/confirm", "", []string{sup, adm}, nil, h.confirmRequest},
		{"/requests/:id/reject", "", []string{sup, adm}, nil, h.rejectRequest},
		{"/access", "Access reports", []string{sup, adm}, h.accessForm, h.accessReport},
		{"/audit", "Audit trail", []string{aud, adm}, h.audit, nil},
		{"/retention", "Retention", []string{aud, adm}, h.retention, nil},
		{"/scope", "Breach scope", []string{aud, adm}, h.scope, nil},
		{"/blocks", "Blocks", []string{adm}, h.blocks, nil},
		{"/blocks/lift", "", []string{adm}, nil, h.liftBlock},
		{"/lockdown", "Lockdown", []string{adm}, h.lockdownPage, h.setLockdown},
		{"/staff", "Staff", []string{adm}, h.staff, nil},
	}
}

// navFor is role's navigation, from the page table.
func (h *Handler) navFor(role string) []navItem {
	var out []navItem
	for _, p := range h.pageTable() {
		if p.label != "" && slices.Contains(p.roles, role) {
			out = append(out, navItem{Href: "/console" + p.path, Label: p.label})
		}
	}
	return out
}

// headers: a strict CSP and nothing cached, framed or sniffed.
func (h *Handler) headers(c *gin.Context) {
	hd := c.Writer.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("Cache-Control", "no-store")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" on form posts, and the origin check needs the real one.
	hd.Set("Referrer-Policy", "same-origin")
	c.Next()
}

// view is what every page gets.
type view struct {
	Title string
	P     web.Principal
	CSRF  string
	Nav   []navItem
	Flash string
	Data  any
}

type navItem struct {
	Href, Label string
	Active      bool
}

const principalKey = "console.principal"
const sessionKey = "console.session"

// authed runs next for a signed-in staff member of one of roles (nil: any
// role): the sealed cookie must open, be within the idle limit and hold a
// token Vault still accepts. A state-changing request must also come from
// the console's own origin with the session's CSRF token.
func (h *Handler) authed(roles []string, next gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw, err := c.Cookie(cookieName)
		var sess session
		if err == nil {
			sess, err = h.seal.open(raw)
		}
		now := h.Now()
		if err != nil || now.Unix()-sess.Seen > int64(h.Idle/time.Second) || now.Unix() >= sess.Expires {
			h.clearCookie(c)
			c.Redirect(http.StatusSeeOther, "/console/login")
			c.Abort()
			return
		}
		p, err := h.Auth.Authenticate(c.Request.Context(), sess.Token)
		if err != nil {
			if apperr.Is(err, apperr.Unauthorized) {
				h.clearCookie(c)
				c.Redirect(http.StatusSeeOther, "/console/login?ended=1")
				c.Abort()
				return
			}
			h.fail(c, err)
			return
		}
		c.Set(principalKey, p)
		c.Set(sessionKey, sess)
		if roles != nil && !slices.Contains(roles, p.Role) {
			h.fail(c, apperr.New(apperr.Forbidden, "your role may not open this page"))
			return
		}
		if c.Request.Method == http.MethodPost && (!h.sameOrigin(c) || !csrfOK(sess, c.PostForm("csrf"))) {
			h.fail(c, apperr.New(apperr.Forbidden, "this form did not come from the console; reload the page and try again"))
			return
		}
		if now.Unix()-sess.Seen >= 30 { // slide the idle limit, not on every click
			sess.Seen = now.Unix()
			_ = h.setCookie(c, sess)
		}
		next(c)
	}
}

func principal(c *gin.Context) (web.Principal, session) {
	p, _ := c.Get(principalKey)
	s, _ := c.Get(sessionKey)
	pp, _ := p.(web.Principal)
	ss, _ := s.(session)
	return pp, ss
}

// render writes page with the common view.
func (h *Handler) render(c *gin.Context, status int, page, title string, data any) {
	p, sess := principal(c)
	v := view{Title: title, P: p, CSRF: sess.CSRF, Data: data, Flash: flashes[c.Query("done")]}
	for _, n := range h.navFor(p.Role) {
		n.Active = strings.HasPrefix(c.Request.URL.Path, n.Href)
		v.Nav = append(v.Nav, n)
	}
	t, ok := h.pages[page]
	if !ok {
		c.String(http.StatusInternalServerError, "internal error")
		return
	}
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := t.Execute(c.Writer, v); err != nil {
		h.Log.Error("console page failed", "page", page, "err", err)
	}
}

// flashes are the only messages a redirect may carry in its URL: fixed
// texts chosen by a code, never data.
var flashes = map[string]string{
	"shipped":   "Marked as shipped: the shipping data is destroyed.",
	"deleted":   "The order's personal data is deleted.",
	"lifted":    "The block is lifted.",
	"corrected": "The address is corrected. The old one is gone; the order is still destroyed on the same date.",
	"refunded":  "EasyPost has the label's refund. The order is back in the queue without a label.",
}

// errorView is the friendly error page's data.
type errorView struct {
	Status int
	Code   apperr.Code
	Text   string
}

// fail renders err as a friendly page with the API's status and code.
func (h *Handler) fail(c *gin.Context, err error) {
	d := web.DetailOf(err)
	status := web.Status(d.Code)
	if d.Code == apperr.Internal {
		h.Log.Error("console request failed", "route", c.FullPath(), "err", err)
	}
	var e *apperr.Error
	if errors.As(err, &e) && (e.Code == apperr.VaultUnavailable || e.Code == apperr.StoreUnavailable) {
		h.Log.Warn("dependency unavailable", "route", c.FullPath(), "code", string(e.Code))
	}
	h.render(c, status, "error", "Something went wrong", errorView{Status: status, Code: d.Code, Text: d.Message})
	c.Abort()
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"reasons": func() []string { return orders.RevealReasons },
	"reasonLabel": func(r string) string {
		return map[string]string{"label": "Print the label", "delivery_issue": "Delivery issue",
			"customer_contact": "Contact the customer", "address_check": "Check the address",
			"fraud_review": "Fraud review", orders.ReasonAccessRequest: "Copy for the customer's access report"}[r]
	},
	"left": func(t time.Time) string {
		d := time.Until(t)
		switch {
		case d <= 0:
			return "due now"
		case d >= 48*time.Hour:
			return fmt.Sprintf("%d days", int(d.Hours()/24))
		case d >= time.Hour:
			return fmt.Sprintf("%d h", int(d.Hours()))
		}
		return fmt.Sprintf("%d min", int(d.Minutes()))
	},
}
