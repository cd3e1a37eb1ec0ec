package privacy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/orders"
)

const keyPrefix = "piivault:{privacy}:"

func codeKey(emailMAC string) string { return keyPrefix + "code:" + emailMAC }
func linkKey(linkMAC string) string  { return keyPrefix + "link:" + linkMAC }

// mac is the hex HMAC-SHA256 of the parts under the package's code key;
// parts are joined with NUL so that no two inputs collide.
func (h *Handler) mac(parts ...string) string {
	m := hmac.New(sha256.New, h.macKey)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// emailMAC names an email in Redis keys and rate limits without storing it.
func (h *Handler) emailMAC(email string) string { return h.mac("email", orders.NormalizeEmail(email)) }

func (h *Handler) codeMAC(emailMAC, code string) string { return h.mac("code", emailMAC, code) }
func (h *Handler) linkMAC(token string) string          { return h.mac("link", token) }

// linkAEAD is the cipher that seals the email under a link: its key needs
// both piivault's key and the token, which only the email holds.
func (h *Handler) linkAEAD(token string) (cipher.AEAD, error) {
	key, _ := hex.DecodeString(h.mac("link seal", token))
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (h *Handler) sealEmail(token, emailMAC, email string) (string, error) {
	aead, err := h.linkAEAD(token)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(email), []byte(emailMAC))), nil
}

func (h *Handler) openEmail(token, emailMAC, sealed string) (string, bool) {
	aead, err := h.linkAEAD(token)
	if err != nil {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	n := aead.NonceSize()
	if err != nil || len(raw) < n {
		return "", false
	}
	plain, err := aead.Open(nil, raw[:n], raw[n:], []byte(emailMAC))
	return string(plain), err == nil
}

// newCode is 6 uniformly random digits.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

func storeErr(err error) error {
	return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
}

// issueScript starts a sign-in for an email, replacing any earlier one (its
// code and link stop working): KEYS code, new link; ARGV code MAC, link MAC,
// sealed email, email MAC, expiry (unix ms), TTL (ms). It returns the old
// link's MAC, or "".
var issueScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], 'link')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'code', ARGV[1], 'tries', 0, 'link', ARGV[2], 'exp', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('HSET', KEYS[2], 'e', ARGV[3], 'm', ARGV[4], 'exp', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return old or ''
`)

// issued is a new sign-in: what the email carries.
type issued struct {
	Code, Token string
}

// issue stores a new code and link for email (a known customer's), valid
// for 10 minutes.
func (h *Handler) issue(ctx context.Context, email string) (issued, error) {
	code, err := newCode()
	if err != nil {
		return issued{}, err
	}
	token := randomToken(32)
	m := h.emailMAC(email)
	sealed, err := h.sealEmail(token, m, email)
	if err != nil {
		return issued{}, err
	}
	exp := h.d.Now().Add(codeTTL).UnixMilli()
	ctx, cancel := context.WithTimeout(ctx, redisWait)
	defer cancel()
	old, err := issueScript.Run(ctx, h.d.Redis, []string{codeKey(m), linkKey(h.linkMAC(token))},
		h.codeMAC(m, code), h.linkMAC(token), sealed, m, exp, codeTTL.Milliseconds()).Text()
	if err != nil {
		return issued{}, storeErr(err)
	}
	if old != "" {
		h.d.Redis.Del(ctx, linkKey(old)) // dead already (the code hash names the new link); its TTL backs this up
	}
	return issued{Code: code, Token: token}, nil
}

// attemptScript checks a code: KEYS code; ARGV code MAC, now (unix ms), the
// tries allowed. It returns {result, link MAC}: 1 right (the sign-in is
// used up); 0 none pending or expired; -1 wrong and now locked (deleted);
// -2 wrong.
var attemptScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'code', 'tries', 'link', 'exp')
if not h[1] then return {0, ''} end
local link = h[3] or ''
if tonumber(h[4] or '0') <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {0, link}
end
if h[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {1, link}
end
local t = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if t >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return {-1, link}
end
return {-2, ''}
`)

// errBadCode is every failed code, whatever the reason (none asked for, an
// unknown email, expired, wrong, locked): the answer must not tell whether
// piivault knows the email.
const badCodeText = "That code did not work. Codes work once, for 10 minutes, and stop after 5 wrong tries: check the latest email from us, or ask for a new code."

var errBadCode = say(apperr.Validation, badCodeText)

// attempt checks code for email; nil signs in. The sign-in ends on
// success, on expiry and on the 5th wrong try (its link with it).
func (h *Handler) attempt(ctx context.Context, email, code string) error {
	if len(code) != 6 {
		code = "" // counts as a wrong try, like any other
	}
	m := h.emailMAC(email)
	ctx, cancel := context.WithTimeout(ctx, redisWait)
	defer cancel()
	res, err := attemptScript.Run(ctx, h.d.Redis, []string{codeKey(m)},
		h.codeMAC(m, code), h.d.Now().UnixMilli(), maxTries).Slice()
	if err != nil {
		return storeErr(err)
	}
	n, _ := res[0].(int64)
	if link, _ := res[1].(string); link != "" {
		h.d.Redis.Del(ctx, linkKey(link)) // dead already: the code hash is gone
	}
	if n == 1 {
		return nil
	}
	return errBadCode
}

// linkScript uses a link: KEYS link, code; ARGV link MAC, now (unix ms).
// The link is valid while its email's code hash still names it (a code
// used, a new request or 5 wrong tries end it). It returns the sealed
// email, or nil.
var linkScript = redis.NewScript(`
local l = redis.call('HMGET', KEYS[1], 'e', 'exp')
if not l[1] then return false end
redis.call('DEL', KEYS[1])
if tonumber(l[2] or '0') <= tonumber(ARGV[2]) then return false end
if redis.call('HGET', KEYS[2], 'link') ~= ARGV[1] then return false end
redis.call('DEL', KEYS[2])
return l[1]
`)

var errBadLink = say(apperr.Gone, "This sign-in link has expired or was already used. Links work once, for 10 minutes: please ask for a new code.")

// useLink signs in with a link's token, once; it returns the email.
func (h *Handler) useLink(ctx context.Context, token string) (string, error) {
	if len(token) != base64.RawURLEncoding.EncodedLen(32) {
		return "", errBadLink
	}
	lm := h.linkMAC(token)
	ctx, cancel := context.WithTimeout(ctx, redisWait)
	defer cancel()
	m, err := h.d.Redis.HGet(ctx, linkKey(lm), "m").Result()
	if errors.Is(err, redis.Nil) {
		return "", errBadLink
	}
	if err != nil {
		return "", storeErr(err)
	}
	sealed, err := linkScript.Run(ctx, h.d.Redis, []string{linkKey(lm), codeKey(m)}, lm, h.d.Now().UnixMilli()).Text()
	if errors.Is(err, redis.Nil) {
		return "", errBadLink
	}
	if err != nil {
		return "", storeErr(err)
	}
	email, ok := h.openEmail(token, m, sealed)
	if !ok || h.emailMAC(email) != m {
		return "", errBadLink
	}
	return email, nil
}
