package checkout

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
)

// Store is the order store as the browser route uses it.
type Store interface {
	StoreAudited(ctx context.Context, req orders.Request, e audit.Entry) (orders.Receipt, orders.StoreResult, error)
}

// Keys checks publishable keys against the request's origin.
type Keys interface {
	AuthenticatePublishable(ctx context.Context, pk, origin string) (string, error)
	ServesOrigin(ctx context.Context, origin string) (bool, error)
}

// Limiter is a rate limit.
type Limiter interface {
	Allow(ctx context.Context, who string) error
}

// Handler serves the checkout routes and /checkout.js.
type Handler struct {
	sessions *Sessions
	store    Store
	log      *slog.Logger
	keys     Keys
	perIP    Limiter // nil: off
	perSess  Limiter // nil: off
	write    func(*gin.Context, error)
}

// NewHandler builds a Handler.
func NewHandler(s *Sessions, store Store, keys Keys, perIP, perSession Limiter, writeErr func(*gin.Context, error), log *slog.Logger) *Handler {
	return &Handler{sessions: s, store: store, keys: keys, perIP: perIP, perSess: perSession, write: writeErr, log: log}
}

// OpenSession handles POST /v1/checkout/sessions {"order_id","payment_ref"}
// (the storefront's secret key): a single-use session for 15 minutes.
func (h *Handler) OpenSession(c *gin.Context) {
	var body struct {
		OrderID    string `json:"order_id"`
		PaymentRef string `json:"payment_ref"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	p, _ := web.PrincipalOf(c)
	s, err := h.sessions.Open(c.Request.Context(), p.Name, body.OrderID, body.PaymentRef)
	if err != nil {
		h.write(c, err)
		return
	}
	c.JSON(http.StatusCreated, s)
}

// cors answers the browser from origin: no credentials, POST with a JSON
// body and the publishable key only.
func cors(c *gin.Context, origin string) {
	hd := c.Writer.Header()
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Add("Vary", "Origin")
}

// publishableKey is the key of a browser request: ?key=pk_… (a preflight
// carries no header of ours, and the key is not a secret), or a Bearer.
func publishableKey(c *gin.Context) string {
	if k := c.Query("key"); k != "" {
		return k
	}
	pk, _ := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	return strings.TrimSpace(pk)
}

// Preflight handles OPTIONS /v1/checkout/shipping: with ?key=pk_… (as
// checkout.js sends it) it is answered only for an origin that key serves;
// without one (a client sending the key as a Bearer header cannot put it
// in a preflight), for an origin some publishable key serves. Either way
// the request that follows is held to its own key's origins.
func (h *Handler) Preflight(c *gin.Context) {
	ctx := c.Request.Context()
	origin := c.GetHeader("Origin")
	var ok bool
	var err error
	if c.Query("key") != "" {
		_, err = h.keys.AuthenticatePublishable(ctx, c.Query("key"), origin)
		ok = err == nil
		if apperr.Is(err, apperr.Unauthorized) {
			err = nil
		}
	} else if origin != "" {
		ok, err = h.keys.ServesOrigin(ctx, origin)
	}
	if err != nil {
		h.write(c, err)
		return
	}
	if !ok {
		c.AbortWithStatus(http.StatusForbidden)
		return
	}
	cors(c, origin)
	hd := c.Writer.Header()
	hd.Set("Access-Control-Allow-Methods", "POST")
	hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	hd.Set("Access-Control-Max-Age", "600")
	c.AbortWithStatus(http.StatusNoContent)
}

// Shipping handles POST /v1/checkout/shipping?key=pk_… from the customer's
// browser: the publishable key, from one of its origins, and {"client_secret","shipping":{…}}. The order is stored
// exactly as POST /v1/orders stores it (same validation, same answers,
// same audit entry, marked as collected in the browser), and the session
// is used up. Invalid fields come back per field and leave the session
// usable; a used, expired or foreign secret is refused without saying which.
func (h *Handler) Shipping(c *gin.Context) {
	ctx := c.Request.Context()
	origin := c.GetHeader("Origin")
	client, err := h.keys.AuthenticatePublishable(ctx, publishableKey(c), origin)
	if err != nil {
		h.write(c, err)
		return
	}
	cors(c, origin)
	if h.perIP != nil {
		if err := h.perIP.Allow(ctx, c.ClientIP()); err != nil {
			h.write(c, err)
			return
		}
	}
	var body struct {
		ClientSecret string           `json:"client_secret"`
		Shipping     *orders.Shipping `json:"shipping"`
	}
	if err := web.BindStrict(c, &body); err != nil {
		h.write(c, err)
		return
	}
	st, err := h.sessions.peek(ctx, client, body.ClientSecret)
	if err != nil {
		h.write(c, err)
		return
	}
	if h.perSess != nil {
		if err := h.perSess.Allow(ctx, st.SessionID); err != nil {
			h.write(c, err)
			return
		}
	}
	req := orders.Request{OrderID: st.OrderID, PaymentRef: st.PaymentRef}
	if body.Shipping != nil {
		req.Shipping = *body.Shipping
	}
	if err := req.Validate(); err != nil {
		h.write(c, err)
		return
	}
	ttl, err := h.sessions.take(ctx, body.ClientSecret)
	if err != nil {
		h.write(c, err)
		return
	}
	rcpt, res, err := h.store.StoreAudited(ctx, req, audit.Entry{Actor: "client:" + client, IP: c.ClientIP(),
		Detail: map[string]string{"collected": "browser", "session": st.SessionID}})
	if err = orders.LogDeferred(h.log, req.OrderID, err); err != nil {
		if apperr.Is(err, apperr.VaultUnavailable) || apperr.Is(err, apperr.StoreUnavailable) {
			h.sessions.giveBack(ctx, body.ClientSecret, st, ttl)
		}
		h.write(c, err)
		return
	}
	answer := gin.H{"order_id": rcpt.OrderID, "status": rcpt.Status, "expires_at": rcpt.ExpiresAt}
	if res == orders.Duplicate {
		c.JSON(http.StatusOK, answer)
		return
	}
	c.JSON(http.StatusCreated, answer)
}

// Script handles GET /checkout.js. Cross-origin pages load it with an
// integrity hash, so it is served with Access-Control-Allow-Origin: *.
func (h *Handler) Script(c *gin.Context) {
	hd := c.Writer.Header()
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Cache-Control", "public, max-age=300")
	hd.Set("Cross-Origin-Resource-Policy", "cross-origin")
	c.Data(http.StatusOK, "text/javascript; charset=utf-8", Script)
}
