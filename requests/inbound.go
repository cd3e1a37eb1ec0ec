package requests

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"piivault/inbound"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
)

var (
	errNotConfigured = apperr.New(apperr.NotConfigured, "no such endpoint")
	errUnauthorized  = apperr.New(apperr.Unauthorized, "invalid or missing credentials")
	errInProgress    = apperr.New(apperr.Conflict, "this message is being processed; retry later")
	// errDKIMTemporary: a signing key could not be fetched (DNS). The
	// provider retries a 5xx, and the retry is checked afresh.
	errDKIMTemporary = errors.New("requests: a DKIM key could not be fetched for now")
)

// Answer is the JSON answer to an inbound webhook.
type Answer struct {
	Received  bool   `json:"received"`
	Outcome   string `json:"outcome"`
	RequestID string `json:"request_id,omitempty"` // a pending request's id
}

// Postmark handles POST /v1/inbound/postmark: Postmark's inbound webhook
// JSON, best with "Include raw email content in JSON payload" on (without
// the raw message nothing can pass DKIM, so every request waits).
func (s *Service) Postmark(c *gin.Context) {
	if !s.authorize(c, ProviderPostmark) {
		return
	}
	body, err := web.ReadBody(c, s.cfg.MaxBody)
	if err != nil {
		s.refuse(c, ProviderPostmark, err)
		return
	}
	m, err := inbound.ParsePostmark(body)
	if err != nil {
		s.refuse(c, ProviderPostmark, apperr.Wrap(apperr.Invalid, err, "the body is not a Postmark inbound message with one sender"))
		return
	}
	s.receive(c, ProviderPostmark, m)
}

// SendGrid handles POST /v1/inbound/sendgrid: SendGrid's Inbound Parse
// multipart POST, best with "POST the raw, full MIME message" on.
func (s *Service) SendGrid(c *gin.Context) {
	if !s.authorize(c, ProviderSendGrid) {
		return
	}
	if c.Request.ContentLength > s.cfg.MaxBody {
		s.refuse(c, ProviderSendGrid, apperr.New(apperr.TooLarge, "request body is larger than %d bytes", s.cfg.MaxBody))
		return
	}
	m, err := inbound.ParseSendGrid(c.Request, s.cfg.MaxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = apperr.New(apperr.TooLarge, "request body is larger than %d bytes", s.cfg.MaxBody)
		} else {
			err = apperr.Wrap(apperr.Invalid, err, "the body is not a SendGrid Inbound Parse message with one sender")
		}
		s.refuse(c, ProviderSendGrid, err)
		return
	}
	s.receive(c, ProviderSendGrid, m)
}

// authorize checks the basic auth password against the inbound secret in
// constant time (the user name is not checked). No secret: 404, the
// endpoint does not exist for this deployment.
func (s *Service) authorize(c *gin.Context, provider string) bool {
	if s.cfg.Secret == "" {
		s.write(c, errNotConfigured)
		return false
	}
	_, password, ok := c.Request.BasicAuth()
	if ok && equalSecret(password, s.cfg.Secret) {
		return true
	}
	received.WithLabelValues(provider, "unauthorized").Inc()
	if s.watch != nil {
		s.watch.BadSignature(c.Request.Context(), "inbound_"+provider)
	}
	c.Header("WWW-Authenticate", `Basic realm="piivault inbound", charset="UTF-8"`)
	s.write(c, errUnauthorized)
	return false
}

// equalSecret compares digests, so neither the content nor the length of
// the secret leaks through timing.
func equalSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// refuse answers an error and counts it.
func (s *Service) refuse(c *gin.Context, provider string, err error) {
	outcome := "failed"
	switch apperr.CodeOf(err) {
	case apperr.Invalid, apperr.TooLarge:
		outcome = "invalid"
	case apperr.Conflict:
		outcome = "in_progress"
	}
	received.WithLabelValues(provider, outcome).Inc()
	s.write(c, err)
}

// replayDigest names one message: the raw message's SHA-256 (the same
// bytes whichever provider delivers them), or without it the SHA-256 of
// its identifying fields. It is a key in Redis, so it is a digest of the
// whole message, never a readable part of it.
func replayDigest(m inbound.Message) string {
	h := sha256.New()
	if len(m.Raw) > 0 {
		h.Write([]byte("raw\x00"))
		h.Write(m.Raw)
		return hex.EncodeToString(h.Sum(nil))
	}
	var date string
	for _, f := range m.Headers {
		if strings.EqualFold(f.Name, "Date") {
			date = f.Value
		}
	}
	h.Write([]byte("fields\x00"))
	for _, f := range []string{m.MessageID, m.From, date, m.Subject, m.Text} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// receive runs a parsed message once: a repeat of a handled message
// answers 200 "duplicate" and does nothing; a failure forgets the message,
// so the provider's retry runs it again.
func (s *Service) receive(c *gin.Context, provider string, m inbound.Message) {
	// What a request starts (purges, Vault calls) finishes even if the
	// provider hangs up: it cannot be undone half-way.
	ctx := context.WithoutCancel(c.Request.Context())
	key := seenKey(replayDigest(m))
	fresh, err := s.rdb.SetNX(ctx, key, "processing", receiveLease).Result()
	if err != nil {
		s.refuse(c, provider, storeErr(err))
		return
	}
	if !fresh {
		if state, _ := s.rdb.Get(ctx, key).Result(); state != "done" {
			s.refuse(c, provider, errInProgress)
			return
		}
		received.WithLabelValues(provider, OutcomeDuplicate).Inc()
		c.JSON(http.StatusOK, Answer{Received: true, Outcome: OutcomeDuplicate})
		return
	}
	actCtx, cancel := context.WithTimeout(ctx, receiveLease/2)
	a, err := s.handle(actCtx, provider, c.ClientIP(), m)
	cancel()
	if err != nil {
		if derr := s.rdb.Del(ctx, key).Err(); derr != nil {
			s.log.Warn("inbound message not forgotten after a failure; its retry waits for the lease", "provider", provider, "err", derr)
		}
		if errors.Is(err, errDKIMTemporary) {
			received.WithLabelValues(provider, "dkim_temporary").Inc()
			c.Header("Retry-After", "300")
			s.write(c, apperr.New(apperr.DKIMUnavailable, "a DKIM key could not be fetched; retry later"))
			return
		}
		s.refuse(c, provider, err)
		return
	}
	if err := s.rdb.Set(ctx, key, "done", s.replayTTL()).Err(); err != nil {
		s.log.Warn("inbound message not remembered as done", "provider", provider, "err", err)
	}
	received.WithLabelValues(provider, a.Outcome).Inc()
	c.JSON(http.StatusOK, a)
}

// handle decides what a message does and does it: a deletion or access
// request runs when it is proven and can be answered by email; everything
// else waits for a person.
func (s *Service) handle(ctx context.Context, provider, ip string, m inbound.Message) (Answer, error) {
	v := s.cfg.Verifier.Check(m)
	if v.Temporary {
		// v.Reason names the signing domain's DNS record: not logged.
		s.log.Info("inbound request deferred: a DKIM key lookup failed", "provider", provider)
		return Answer{}, errDKIMTemporary
	}
	kind := inbound.Classify(m, s.cfg.Words)
	detail := map[string]string{"channel": "email", "provider": provider, "dkim": v.DKIM, "kind": string(kind)}

	reason, err := s.waitReason(ctx, v, kind, m)
	if err != nil {
		return Answer{}, err
	}
	if reason != "" {
		id, err := s.storePending(ctx, provider, m, v, kind, reason)
		if err != nil {
			return Answer{}, err
		}
		detail["outcome"], detail["request_id"], detail["reason"] = OutcomePending, id, reason
		if err := s.record(ctx, ActorCustomer, ActionInbound, ip, detail); err != nil {
			// No pending request without its entry: the provider retries.
			if rerr := s.remove(ctx, id); rerr != nil {
				s.log.Warn("unaudited pending request not removed; it expires with the retention", "request_id", id, "err", rerr)
			}
			return Answer{}, err
		}
		s.log.Info("inbound request pending", "provider", provider, "request_id", id, "reason", reason, "dkim", v.DKIM)
		return Answer{Received: true, Outcome: OutcomePending, RequestID: id}, nil
	}

	var outcome string
	switch kind {
	case inbound.Deletion:
		r, mailed, err := s.runDeletion(ctx, ActorCustomer, ip, m.From)
		if err != nil {
			return Answer{}, err
		}
		outcome, detail["deletion_request"], detail["mailed"] = OutcomeDeleted, r.RequestID, yesNo(mailed)
	case inbound.Access:
		reportID, mailed, err := s.runAccess(ctx, ActorCustomer, ip, m.From)
		if err != nil {
			return Answer{}, err
		}
		outcome, detail["report_id"], detail["mailed"] = OutcomeAccessSent, reportID, yesNo(mailed)
	}
	detail["outcome"] = outcome
	// The deletion or report is made and carries its own audit entry
	// (deletion_request, access_request, actor customer:email); a failure
	// here must not make the provider run it again.
	if err := s.record(ctx, ActorCustomer, ActionInbound, ip, detail); err != nil {
		s.log.Error("inbound request done but its audit entry failed", "provider", provider, "outcome", outcome, "err", err)
	}
	s.log.Info("inbound request done", "provider", provider, "outcome", outcome)
	return Answer{Received: true, Outcome: outcome}, nil
}

// waitReason says why a request must wait for a person, or "" when it may
// run now.
func (s *Service) waitReason(ctx context.Context, v inbound.Verdict, kind inbound.Kind, m inbound.Message) (string, error) {
	email := m.From
	switch {
	case v.DKIM != inbound.DKIMPass:
		return ReasonUnauthenticated, nil
	case automatic(m):
		return ReasonAutomatic, nil
	case !s.fresh(v, m):
		return ReasonStale, nil
	case kind != inbound.Deletion && kind != inbound.Access:
		return ReasonCorrection, nil
	case s.mailer == nil, kind == inbound.Access && s.cfg.PublicURL == "":
		return ReasonEmailOff, nil
	case !orders.ValidEmail(orders.NormalizeEmail(email)):
		return ReasonNoOrders, nil // not an address an order could have been stored with
	}
	ids, err := s.history.History(ctx, email)
	if err != nil {
		return "", err
	}
	if len(ids) == 0 {
		return ReasonNoOrders, nil
	}
	return "", nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// MaxAge is how old a signed Date: may be for a request to run by itself:
// DKIM proves who wrote a message, not when or to whom it was sent, so an
// old email of the customer's, replayed, waits for a person.
const MaxAge = 7 * 24 * time.Hour

// fresh reports whether m's Date: is signed and recent, and, with an
// Address configured, whether a signed To: or Cc: names it.
func (s *Service) fresh(v inbound.Verdict, m inbound.Message) bool {
	date, ok := header(m, "Date")
	if !ok || !v.Covers("date") {
		return false
	}
	t, err := netmail.ParseDate(date)
	now := s.now()
	if err != nil || t.Before(now.Add(-MaxAge)) || t.After(now.Add(24*time.Hour)) {
		return false
	}
	if s.cfg.Address == "" {
		return true
	}
	for _, field := range []string{"To", "Cc"} {
		list, ok := header(m, field)
		if !ok || !v.Covers(field) {
			continue
		}
		addrs, err := netmail.ParseAddressList(list)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if strings.EqualFold(a.Address, s.cfg.Address) {
				return true
			}
		}
	}
	return false
}

// automatic reports whether m says it was sent by a machine (RFC 3834's
// Auto-Submitted, Precedence bulk/junk/list/auto_reply, the common
// auto-responder headers): an out-of-office reply to piivault's own code
// email must not delete anything.
func automatic(m inbound.Message) bool {
	if v, ok := header(m, "Auto-Submitted"); ok && !strings.EqualFold(strings.TrimSpace(v), "no") {
		return true
	}
	if v, ok := header(m, "Precedence"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "junk", "list", "auto_reply":
			return true
		}
	}
	for _, h := range []string{"X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"} {
		if _, ok := header(m, h); ok {
			return true
		}
	}
	return false
}

// header returns the first value of m's header field name.
func header(m inbound.Message, name string) (string, bool) {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}
