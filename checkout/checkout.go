// Package checkout lets the customer's browser send the shipping block
// straight to piivault, so the storefront's servers never see it: the
// storefront opens a checkout session for an order with its secret key and
// hands the session's client secret to its page; the page, with
// /checkout.js and the storefront's publishable key, posts the form to
// piivault, which stores the order exactly as POST /v1/orders does.
//
//	piivault:{checkout}:s:<sha256(client secret)>  string  JSON {session_id, client, order_id,
//	                                                       payment_ref, expires_at}; PX = 15 minutes,
//	                                                       deleted when used (single use); no PII
package checkout

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/orders"
)

// SessionTTL is how long a checkout session can be used.
const SessionTTL = 15 * time.Minute

// Script is /checkout.js, served as is (its SRI hash is in the README).
//
//go:embed checkout.js
var Script []byte

// ScriptIntegrity is the Subresource Integrity value of Script.
func ScriptIntegrity() string {
	sum := sha512.Sum384(Script)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Session is one checkout session as the storefront sees it.
type Session struct {
	SessionID    string    `json:"session_id"`
	ClientSecret string    `json:"client_secret"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// stored is what Redis keeps of a session (never the client secret).
type stored struct {
	SessionID  string    `json:"session_id"`
	Client     string    `json:"client"`
	OrderID    string    `json:"order_id"`
	PaymentRef string    `json:"payment_ref"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Sessions keeps checkout sessions in Redis.
type Sessions struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewSessions builds Sessions.
func NewSessions(rdb redis.UniversalClient) *Sessions { return &Sessions{rdb: rdb, now: time.Now} }

func sessionKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "piivault:{checkout}:s:" + hex.EncodeToString(sum[:])
}

// ErrBadSecret is the one answer to a used, expired, unknown or foreign
// client secret: which it was is not said.
var ErrBadSecret = apperr.New(apperr.Forbidden, "this checkout session cannot be used: reload the checkout page")

// Open makes a session for one order of client (no PII in it).
func (s *Sessions) Open(ctx context.Context, client, orderID, paymentRef string) (Session, error) {
	var bad []string
	if !orders.ValidOrderID(orderID) {
		bad = append(bad, "order_id")
	}
	if !orders.ValidOrderID(paymentRef) {
		bad = append(bad, "payment_ref")
	}
	if len(bad) > 0 {
		return Session{}, &apperr.Error{Code: apperr.Validation, Fields: bad, Message: "invalid fields: order_id and payment_ref are ids of 1-128 letters, digits and . _ : -"}
	}
	id := "pcs_" + random(16)
	sess := Session{SessionID: id, ClientSecret: id + "_secret_" + random(24), ExpiresAt: s.now().Add(SessionTTL).UTC()}
	b, _ := json.Marshal(stored{SessionID: id, Client: client, OrderID: orderID, PaymentRef: paymentRef, ExpiresAt: sess.ExpiresAt})
	if err := s.rdb.Set(ctx, sessionKey(sess.ClientSecret), b, SessionTTL).Err(); err != nil {
		return Session{}, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return sess, nil
}

// peek reads a session of client without using it.
func (s *Sessions) peek(ctx context.Context, client, secret string) (stored, error) {
	var st stored
	if len(secret) > 200 {
		return st, ErrBadSecret
	}
	b, err := s.rdb.Get(ctx, sessionKey(secret)).Bytes()
	if errors.Is(err, redis.Nil) {
		return st, ErrBadSecret
	}
	if err != nil {
		return st, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if json.Unmarshal(b, &st) != nil || st.Client != client {
		return st, ErrBadSecret
	}
	return st, nil
}

// take uses the session up: only one caller gets it.
func (s *Sessions) take(ctx context.Context, secret string) (time.Duration, error) {
	pipe := s.rdb.TxPipeline()
	ttl := pipe.PTTL(ctx, sessionKey(secret))
	del := pipe.Del(ctx, sessionKey(secret))
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if del.Val() == 0 {
		return 0, ErrBadSecret
	}
	return ttl.Val(), nil
}

// giveBack restores a session whose store failed on piivault's side, so
// the customer can try again.
func (s *Sessions) giveBack(ctx context.Context, secret string, st stored, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	b, _ := json.Marshal(st)
	_ = s.rdb.Set(context.WithoutCancel(ctx), sessionKey(secret), b, ttl).Err()
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
