package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"
)

// cookieName is the console's only cookie. It holds the staff member's
// Vault token sealed with AES-256-GCM under a key only piivault holds (in
// Vault's KV, shared by instances), so the browser can neither read nor
// alter it, and piivault keeps no session of its own: not in Redis, not in
// memory beyond the request.
const cookieName = "piivault_console"

// sealAAD binds sealed cookies to their purpose.
var sealAAD = []byte("piivault console session v1")

// session is what the sealed cookie carries.
type session struct {
	Token   string `json:"t"`
	CSRF    string `json:"c"`
	Seen    int64  `json:"s"` // unix seconds of the last request: the idle limit runs from it
	Expires int64  `json:"e"` // the token's expiry (unix seconds)
}

// sealer seals and opens sessions.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(sess session) (string, error) {
	plain, err := json.Marshal(sess)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, sealAAD)), nil
}

var errNoSession = errors.New("no console session")

func (s *sealer) open(v string) (session, error) {
	var sess session
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return sess, errNoSession
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], sealAAD)
	if err != nil {
		return sess, errNoSession
	}
	if json.Unmarshal(plain, &sess) != nil || sess.Token == "" {
		return sess, errNoSession
	}
	return sess, nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// setCookie writes the sealed session: HttpOnly, SameSite=Strict,
// Path=/console/, Secure when browsers reach piivault over HTTPS only
// (Deps.HTTPS), expiring with the token.
func (h *Handler) setCookie(c *gin.Context, sess session) error {
	v, err := h.seal.seal(sess)
	if err != nil {
		return err
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: v, Path: "/console/", HttpOnly: true,
		Secure: h.HTTPS, SameSite: http.SameSiteStrictMode, Expires: time.Unix(sess.Expires, 0)})
	return nil
}

func (h *Handler) clearCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieName, Value: "", Path: "/console/", HttpOnly: true,
		Secure: h.HTTPS, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// sameOrigin reports whether a state-changing request comes from the
// console's own pages: its Origin (or, without one, Sec-Fetch-Site) must
// be the public origin when PIIVAULT_PUBLIC_URL is https, this host
// otherwise. SameSite=Strict already keeps the cookie off cross-site
// requests; this and the CSRF token are the second and third locks.
func (h *Handler) sameOrigin(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" {
		if h.PublicOrigin != "" {
			// Behind a proxy the Host may be the pod's or a socket's
			// address; browsers serialise an origin exactly as
			// PublicOrigin is written (lower case, no default port).
			return o == h.PublicOrigin
		}
		u, err := url.Parse(o)
		return err == nil && u.Host == c.Request.Host
	}
	return c.GetHeader("Sec-Fetch-Site") == "same-origin"
}

func csrfOK(sess session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(got)) == 1
}
