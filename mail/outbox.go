package mail

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Transport delivers one message. Its errors must not hold the recipient,
// subject or body: the outbox logs them. *Sender is one.
type Transport interface {
	Send(ctx context.Context, m Message) error
}

var _ Transport = (*Sender)(nil)

// Sealer encrypts a message's recipient, subject and body before they are
// stored; Vault transit in production.
type Sealer interface {
	Seal(ctx context.Context, plaintext []byte) (string, error)
}

// Opener decrypts what a Sealer sealed.
type Opener interface {
	Open(ctx context.Context, ciphertext string) ([]byte, error)
}

// Encrypter seals on Enqueue and opens on Drain.
type Encrypter interface {
	Sealer
	Opener
}

const (
	keyPrefix = "piivault:{mail}:"
	queueKey  = keyPrefix + "queue"
	// keep is the dedupe window and every key's TTL.
	keep = 7 * 24 * time.Hour
	// lease is how long a claimed message is left to its claimer before
	// another Drain may take it; longer than a send can last.
	lease       = 5 * time.Minute
	sendTimeout = time.Minute
	// bookTimeout bounds the Redis writes after a send, which run even when
	// the caller's context has ended, so a sent message is marked sent.
	bookTimeout = 5 * time.Second
	// claimBatch is one: a lease covers the one send it was taken for.
	// Claiming several would leave the last of them to a slow relay past
	// their lease, where another instance could send them again.
	claimBatch = 1
	maxIDLen   = 200
)

func seenKey(id string) string { return keyPrefix + "seen:" + id }
func msgKey(id string) string  { return keyPrefix + "msg:" + id }

// Outbox queues messages in Redis and sends them from Drain. A message is
// retried with backoff until it is sent or has failed for the retry window
// (24 hours unless WithRetryFor), and is never dropped on an SMTP failure
// before that. Once sent it is not sent again, except in one case SMTP
// cannot rule out: Redis fails between the relay's acceptance and the
// outbox's record of it. The copy then carries the same Message-ID.
type Outbox struct {
	rdb       redis.UniversalClient
	transport Transport
	enc       Encrypter
	log       *slog.Logger

	now        func() time.Time
	retryFor   time.Duration
	firstDelay time.Duration
	maxDelay   time.Duration
}

// Option changes an Outbox's defaults.
type Option func(*Outbox)

// WithRetryFor sets how long a failing message is retried (default 24h,
// at most 6 days so that its keys outlive it).
func WithRetryFor(d time.Duration) Option {
	return func(o *Outbox) { o.retryFor = min(d, keep-24*time.Hour) }
}

// WithBackoff sets the delay after the first failure, doubled after each
// further one up to max (defaults 1 minute and 1 hour).
func WithBackoff(first, max time.Duration) Option {
	return func(o *Outbox) { o.firstDelay, o.maxDelay = first, max }
}

// WithClock replaces time.Now, for tests of backoff and expiry.
func WithClock(now func() time.Time) Option {
	return func(o *Outbox) { o.now = now }
}

// NewOutbox keeps messages in rdb sealed by enc and sends them with t. The
// Encrypter is not optional: the recipient and body are PII.
func NewOutbox(rdb redis.UniversalClient, t Transport, enc Encrypter, log *slog.Logger, opts ...Option) *Outbox {
	o := &Outbox{
		rdb: rdb, transport: t, enc: enc, log: log,
		now: time.Now, retryFor: 24 * time.Hour, firstDelay: time.Minute, maxDelay: time.Hour,
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// payload is what is sealed; the id stays in the clear, in the keys.
type payload struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
}

// enqueueScript stores a message unless its id was seen within the dedupe
// window: KEYS seen, msg, queue; ARGV sealed, now (ms), ttl (s), id.
var enqueueScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], 'sealed', ARGV[1], 'enqueued', ARGV[2], 'attempts', '0')
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
`)

// Enqueue stores m, sealed, for Drain to send, and returns without waiting
// on SMTP. Enqueue of an id that was enqueued within 7 days is a no-op, so a
// retried request never sends a second message. It returns ErrInvalid for a
// message that could never be sent, and otherwise an error only when m was
// not stored.
func (o *Outbox) Enqueue(ctx context.Context, m Message) error {
	switch {
	case m.ID == "" || len(m.ID) > maxIDLen:
		return fmt.Errorf("%w: an id of 1 to %d bytes is required", ErrInvalid, maxIDLen)
	case !isAddress(m.To):
		return fmt.Errorf("%w: %s: the recipient is not an address", ErrInvalid, m.ID)
	}
	plain, err := json.Marshal(payload{To: m.To, Subject: m.Subject, Text: m.Text})
	if err != nil {
		return fmt.Errorf("mail: enqueue %s: %w", m.ID, err)
	}
	sealed, err := o.enc.Seal(ctx, plain)
	if err != nil {
		return fmt.Errorf("mail: enqueue %s: seal: %w", m.ID, err)
	}
	added, err := enqueueScript.Run(ctx, o.rdb, []string{seenKey(m.ID), msgKey(m.ID), queueKey},
		sealed, o.now().UnixMilli(), int64(keep/time.Second), m.ID).Int()
	if err != nil {
		return fmt.Errorf("mail: enqueue %s: %w", m.ID, err)
	}
	if added == 0 {
		o.log.Debug("mail already enqueued", slog.String("id", m.ID))
	}
	return nil
}

func isAddress(s string) bool {
	_, err := netmail.ParseAddress(s)
	return err == nil
}

// claimScript leases up to ARGV[3] due ids to the caller by moving their
// score past the lease: KEYS queue; ARGV now (ms), lease end (ms), limit, ttl (s).
var claimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
if #ids > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return ids
`)

// Drain sends every message that is due and returns how many went out.
// Call it on a ticker; instances may drain at once, as each message is
// claimed before it is sent. A message that fails is rescheduled, not an
// error: Drain's error is Redis failing (or ctx ending), and the messages it
// did not reach wait for the next Drain.
func (o *Outbox) Drain(ctx context.Context) (sent int, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		now := o.now()
		ids, err := claimScript.Run(ctx, o.rdb, []string{queueKey},
			now.UnixMilli(), now.Add(lease).UnixMilli(), claimBatch, int64(keep/time.Second)).StringSlice()
		if err != nil {
			return sent, fmt.Errorf("mail: drain: claim: %w", err)
		}
		if len(ids) == 0 {
			return sent, nil
		}
		for _, id := range ids {
			ok, err := o.deliver(ctx, id)
			if ok {
				sent++
			}
			if err != nil {
				return sent, err
			}
		}
	}
}

// deliver sends one claimed message and records the outcome.
func (o *Outbox) deliver(ctx context.Context, id string) (sent bool, err error) {
	vals, err := o.rdb.HMGet(ctx, msgKey(id), "sealed", "enqueued", "attempts").Result()
	if err != nil {
		return false, fmt.Errorf("mail: drain: load %s: %w", id, err)
	}
	sealed, _ := vals[0].(string)
	if sealed == "" {
		// Expired with its TTL, or sent by an instance whose claim had lapsed.
		return false, o.rdb.ZRem(ctx, queueKey, id).Err()
	}
	enqueued := atoi(vals[1])
	attempts := atoi(vals[2]) + 1

	m, err := o.open(ctx, id, sealed)
	if err == nil {
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		err = o.transport.Send(sctx, m)
		cancel()
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookTimeout)
	defer cancel()
	if err != nil {
		return false, o.failed(bctx, id, enqueued, attempts, err)
	}
	_, err = o.rdb.TxPipelined(bctx, func(p redis.Pipeliner) error {
		p.Del(bctx, msgKey(id))
		p.ZRem(bctx, queueKey, id)
		p.Expire(bctx, seenKey(id), keep)
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("mail: drain: %s was sent but not marked sent, so it may go out again: %w", id, err)
	}
	o.log.Info("mail sent", slog.String("id", id), slog.Int64("attempts", attempts))
	return true, nil
}

func (o *Outbox) open(ctx context.Context, id, sealed string) (Message, error) {
	plain, err := o.enc.Open(ctx, sealed)
	if err != nil {
		return Message{}, fmt.Errorf("open: %w", err)
	}
	var p payload
	if err := json.Unmarshal(plain, &p); err != nil {
		return Message{}, fmt.Errorf("open: stored message unreadable: %w", err)
	}
	return Message{ID: id, To: p.To, Subject: p.Subject, Text: p.Text}, nil
}

// failed reschedules a message after a failed attempt, or gives it up once
// it has been failing for the retry window. A given-up message's id is
// forgotten too, so a later request may enqueue it afresh.
func (o *Outbox) failed(ctx context.Context, id string, enqueued, attempts int64, cause error) error {
	now := o.now()
	if now.Sub(time.UnixMilli(enqueued)) >= o.retryFor {
		o.log.Error("mail given up", slog.String("id", id), slog.Int64("attempts", attempts), slog.Any("err", cause))
		_, err := o.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, msgKey(id), seenKey(id))
			p.ZRem(ctx, queueKey, id)
			return nil
		})
		if err != nil {
			return fmt.Errorf("mail: drain: give up %s: %w", id, err)
		}
		return nil
	}
	delay := o.backoff(attempts)
	o.log.Warn("mail not sent, will retry", slog.String("id", id), slog.Int64("attempts", attempts),
		slog.Duration("retry_in", delay), slog.Any("err", cause))
	_, err := o.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, msgKey(id), "attempts", attempts)
		p.ZAdd(ctx, queueKey, redis.Z{Score: float64(now.Add(delay).UnixMilli()), Member: id})
		p.Expire(ctx, queueKey, keep)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mail: drain: reschedule %s: %w", id, err)
	}
	return nil
}

// backoff is firstDelay doubled per earlier failure, at most maxDelay.
func (o *Outbox) backoff(attempts int64) time.Duration {
	d := o.firstDelay
	for i := int64(1); i < attempts && d < o.maxDelay; i++ {
		d *= 2
	}
	return min(d, o.maxDelay)
}

// Pending is how many messages wait to be sent, claimed ones included.
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	n, err := o.rdb.ZCard(ctx, queueKey).Result()
	if err != nil {
		return 0, fmt.Errorf("mail: pending: %w", err)
	}
	return n, nil
}

func atoi(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
