package privacy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
	"piivault/internal/keyseal"
)

// Cookie names: neither is the console's (piivault_console, Path=/console/),
// so no staff route ever reads a customer's session.
const (
	sessionCookie = "piivault_privacy"
	formCookie    = "piivault_privacy_form"
	cookiePath    = "/privacy/"
)

// session is what the sealed session cookie carries. The email is the
// customer's own, in their own browser, sealed; its expiry is absolute.
type session struct {
	Email   string `json:"email"`
	CSRF    string `json:"csrf"`
	Expires int64  `json:"expires"` // unix seconds
}

// formState is what the sealed pre-session cookie carries: the sign-in
// forms' CSRF token (bound to this browser by the seal, so a cookie planted
// by a sibling domain cannot forge it) and, once a code was asked for, the
// email it was asked for.
type formState struct {
	CSRF    string `json:"csrf"`
	Email   string `json:"email,omitempty"`
	Expires int64  `json:"expires"`
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) writeCookie(c *gin.Context, name string, s *keyseal.Sealer, v any, maxAge int) error {
	plain, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sealed, err := s.Seal(c.Request.Context(), plain)
	if err != nil {
		return err
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: sealed, Path: cookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: h.d.HTTPS, SameSite: http.SameSiteStrictMode})
	return nil
}

func (h *Handler) clearCookie(c *gin.Context, name string) {
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: "", Path: cookiePath, MaxAge: -1,
		HttpOnly: true, Secure: h.d.HTTPS, SameSite: http.SameSiteStrictMode})
}

// readCookie opens name into v; false when missing, altered or unsealable.
func readCookie(c *gin.Context, name string, s *keyseal.Sealer, v any) bool {
	raw, err := c.Cookie(name)
	if err != nil || raw == "" {
		return false
	}
	plain, err := s.Open(c.Request.Context(), raw)
	return err == nil && json.Unmarshal(plain, v) == nil
}

// currentSession is the live session, if any.
func (h *Handler) currentSession(c *gin.Context) (session, bool) {
	var s session
	ok := readCookie(c, sessionCookie, h.session, &s) && s.Email != "" && s.CSRF != "" &&
		h.d.Now().Unix() < s.Expires
	return s, ok
}

// startSession signs the customer in for 15 minutes, absolute: the session
// is never extended, a new code is needed after it.
func (h *Handler) startSession(c *gin.Context, email string) error {
	s := session{Email: email, CSRF: randomToken(24), Expires: h.d.Now().Add(sessionTTL).Unix()}
	if err := h.writeCookie(c, sessionCookie, h.session, s, int(sessionTTL.Seconds())); err != nil {
		return err
	}
	h.clearCookie(c, formCookie)
	return nil
}

// currentForm is the live pre-session state, if any.
func (h *Handler) currentForm(c *gin.Context) (formState, bool) {
	var f formState
	ok := readCookie(c, formCookie, h.form, &f) && f.CSRF != "" && h.d.Now().Unix() < f.Expires
	return f, ok
}

// ensureForm returns the live pre-session state, or starts one; a page
// with a sign-in form calls it before rendering.
func (h *Handler) ensureForm(c *gin.Context) (formState, error) {
	f, ok := h.currentForm(c)
	if !ok {
		f = formState{CSRF: randomToken(24), Expires: h.d.Now().Add(formTTL).Unix()}
		if err := h.saveForm(c, f); err != nil {
			return f, err
		}
	}
	c.Set(formCtx, f)
	return f, nil
}

func (h *Handler) saveForm(c *gin.Context, f formState) error {
	maxAge := int(f.Expires - h.d.Now().Unix())
	return h.writeCookie(c, formCookie, h.form, f, max(maxAge, 1))
}

// before guards the sign-in forms' POSTs: email must be on, then the
// per-IP limit, the form's origin and its CSRF token (from the pre-session
// cookie).
func (h *Handler) before(next gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if h.d.Mail == nil {
			h.fail(c, errMailOff)
			return
		}
		if err := h.allowIP(c); err != nil {
			h.fail(c, err)
			return
		}
		f, ok := h.currentForm(c)
		if !ok || !h.sameOrigin(c) || !tokenOK(f.CSRF, c.PostForm("csrf")) {
			h.fail(c, errStaleForm)
			return
		}
		c.Set(formCtx, f)
		next(c)
	}
}

// signedIn runs next for a live session; a POST must also pass the origin
// check, carry the session's CSRF token and the per-IP limit. Without a
// session the customer is sent to the start page.
func (h *Handler) signedIn(next gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		post := c.Request.Method == http.MethodPost
		if post {
			if err := h.allowIP(c); err != nil {
				h.fail(c, err)
				return
			}
		}
		s, ok := h.currentSession(c)
		if !ok {
			if _, err := c.Cookie(sessionCookie); err == nil {
				h.clearCookie(c, sessionCookie)
			}
			c.Redirect(http.StatusSeeOther, "/privacy/?ended=1")
			c.Abort()
			return
		}
		c.Set(sessionCtx, s)
		if post && (!h.sameOrigin(c) || !tokenOK(s.CSRF, c.PostForm("csrf"))) {
			h.fail(c, errStaleForm)
			return
		}
		next(c)
	}
}

var errStaleForm = say(apperr.Forbidden, "This form has expired or did not come from this page. Please go back, reload the page and try again (cookies must be allowed).")

func (h *Handler) allowIP(c *gin.Context) error {
	if h.d.IPLimit == nil {
		return nil
	}
	return h.d.IPLimit.Allow(c.Request.Context(), c.ClientIP())
}

// sameOrigin reports whether a POST comes from this page's own origin: the
// public origin when PublicURL is set, this host otherwise. These pages
// send Referrer-Policy: no-referrer, under which browsers send "Origin:
// null" on a form post; Sec-Fetch-Site (which the policy does not touch)
// then says whether the form was same-origin. SameSite=Strict keeps the
// cookies off cross-site posts; this and the sealed token are the second
// and third locks.
func (h *Handler) sameOrigin(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" && o != "null" {
		return h.ownOrigin(c, o)
	}
	if site := c.GetHeader("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	if ref := c.GetHeader("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && u.Scheme != "" && h.ownOrigin(c, u.Scheme+"://"+u.Host)
	}
	return false
}

func (h *Handler) ownOrigin(c *gin.Context, origin string) bool {
	if h.publicOrigin != "" {
		return strings.EqualFold(origin, h.publicOrigin)
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, c.Request.Host)
}

func tokenOK(want, got string) bool {
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
