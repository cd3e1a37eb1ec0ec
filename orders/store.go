// Package orders owns an order's shipping PII from ingest to purge: it
// validates what the checkout sends, encrypts the shipping block through
// Vault transit (bound to the order id as associated data), keeps the
// ciphertext in Redis with a hard TTL, and keeps a PII-free purchase
// reference for good.
//
// # Redis layout
//
// Every order belongs to one of Shards shards, fnv32a(order id) mod Shards.
// A shard is a Redis Cluster hash tag, so all of an order's keys *and the
// shard's share of the indexes* live in one slot and are written by one
// atomic Lua script, on a single Redis and on a Cluster alike:
//
//	piivault:{sNN}:pii:<order>     hash  ct (transit ciphertext), mct (masked copy, under its own key),
//	                                     bidx (email HMAC), digest (request HMAC)
//	                                     PEXPIREAT = expires_at: PII expires even while piivault is down
//	piivault:{sNN}:ref:<order>     hash  purchase reference (no PII, nothing derived from an email, no TTL)
//	piivault:{sNN}:expiry          zset  held order ids scored by expires_at (ms): the sweep's and the queue's index
//	piivault:{sNN}:mail:<bidx>     zset  order ids of one email's blind index, held or purged, scored by
//	                                     their expires_at (ms): deletion requests and access reports find
//	                                     a customer's orders here until each one's retention ends, never
//	                                     after (reads skip, and every write drops, members past their
//	                                     score); PEXPIREAT = the latest member's expiry
//	piivault:{sNN}:mailof:<order>  string the email's blind index of a purged order, for the breach scope's
//	                                     count of customers; PEXPIREAT = the order's expires_at
//	piivault:{sNN}:keyver          zset  held order ids scored by their ciphertext's key version: the
//	                                     crypto-shredder never trims a version a held order needs
//	piivault:{sNN}:keyver:masked   zset  the same for the masked copies' key
//	piivault:{sNN}:outbox:notes    list  a note per store and purge, written by the script itself (the
//	                                     audit record to chain), removed once it is in the trail
//	piivault:{sNN}:tomb:<order>    string  "<reason>\n<payment ref>\n<actor>": a shipping or cancellation event
//	                                     for an order not stored yet (72 h); the store that meets it is refused
//	                                     and the order recorded as purged for that reason (no PII written)
//	piivault:{sNN}:shop:<domain>   set   held order ids of a Shopify shop, for shop/redact; TTL = latest expiry
//	piivault:{sNN}:reveals:<order> list  "<unix ms> <role> <reason>" per reveal (no staff name), for the
//	                                     access report asked for by order id; TTL = HistoryFor
//	piivault:{sNN}:payref:<ref>    set   held order ids paid with a payment reference (no PII), for refund
//	                                     and cancellation webhooks that name the payment, not the order;
//	                                     TTL = latest member's expiry
//
// Cross-order reads (the retention sweep, the fulfillment queue, deletion
// look-ups by email) visit every shard: their cost grows with the number of
// shards and of matching orders, not with the number stored.
//
// Nothing in Redis is plaintext PII: the shipping block is ciphertext, and
// emails appear only as keyed HMACs computed by Vault. Nothing derived from
// an email outlives the order's retention (invariant 13): the HMAC lives in
// the PII hash, in mail:<bidx> and in mailof:<order>, all bounded by
// expires_at.
//
// Keys of earlier versions, read or cleaned up until they expire by
// themselves: email:<bidx> (a set of held orders, TTL at most the
// retention), emailhist:<bidx> and the reference's bidx field (deleted by
// ForgetLegacyEmailLinks at start-up).
package orders

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/writes"
	"piivault/vault"
)

// Shards is the number of hash-tag shards. Changing it orphans stored
// orders: it is fixed for the life of a deployment.
const Shards = 32

// MaxRetention is the longest piivault keeps PII (SPEC: 30 days).
const MaxRetention = 720 * time.Hour

// Sealer encrypts and blind-indexes for the service identity. vault.Client
// implements it, and so does the batching Sealer in this package.
type Sealer interface {
	Encrypt(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error)
	EncryptMasked(ctx context.Context, items []vault.Plaintext) ([]vault.Result, error)
	HMAC(ctx context.Context, inputs [][]byte) ([]vault.Result, error)
}

// Opener decrypts with a caller's own Vault token: the full block, or the
// masked copy (the only one support's policy opens), or a batch of full
// blocks in one call (label pick-lists).
type Opener interface {
	Decrypt(ctx context.Context, token, ciphertext string, associatedData []byte) ([]byte, error)
	DecryptMasked(ctx context.Context, token, ciphertext string, associatedData []byte) ([]byte, error)
	DecryptBatch(ctx context.Context, token string, items []vault.Ciphertext) ([]vault.Result, error)
}

// HistoryFor is how long an order's reveals stay listed for the customer's
// access report (asked for by order id once the order's retention is
// over): 13 months, a year's requests and then some. No PII and nothing
// derived from an email: times, roles and reason codes.
const HistoryFor = 396 * 24 * time.Hour

// Store keeps orders in Redis, encrypted by Vault.
type Store struct {
	rdb       redis.UniversalClient
	sealer    Sealer
	opener    Opener
	retention time.Duration
	timeout   time.Duration
	now       func() time.Time
}

// Config holds a Store's settings.
type Config struct {
	Retention time.Duration // how long PII is kept; at most MaxRetention
	Timeout   time.Duration // bound on each Redis round trip group (default 3s)
	Now       func() time.Time
}

// NewStore builds a Store. Retention above MaxRetention is an error.
func NewStore(rdb redis.UniversalClient, sealer Sealer, opener Opener, cfg Config) (*Store, error) {
	if cfg.Retention <= 0 || cfg.Retention > MaxRetention {
		return nil, fmt.Errorf("orders: retention %s is outside (0, %s]", cfg.Retention, MaxRetention)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{rdb: rdb, sealer: sealer, opener: opener, retention: cfg.Retention, timeout: cfg.Timeout, now: cfg.Now}, nil
}

// Retention is how long the store keeps PII.
func (s *Store) Retention() time.Duration { return s.retention }

// ShardOf returns the hash-tag shard of an order id.
func ShardOf(orderID string) int {
	h := fnv.New32a()
	h.Write([]byte(orderID))
	return int(h.Sum32() % Shards)
}

func tag(shard int) string { return fmt.Sprintf("piivault:{s%02d}:", shard) }

type keys struct {
	pii, ref, tomb, reveals, expiry, keyver, keyverMasked, outbox, mailPrefix, mailOf, legacyEmailPrefix, payrefPrefix, shopPrefix string
}

func keysOf(orderID string) keys {
	t := tag(ShardOf(orderID))
	return keys{pii: t + "pii:" + orderID, ref: t + "ref:" + orderID, tomb: t + "tomb:" + orderID,
		reveals: t + "reveals:" + orderID, expiry: t + "expiry", mailPrefix: t + "mail:", mailOf: t + "mailof:" + orderID,
		legacyEmailPrefix: t + "email:", keyver: t + "keyver", keyverMasked: t + "keyver:masked", outbox: t + "outbox:notes",
		payrefPrefix: t + "payref:", shopPrefix: t + "shop:"}
}

// RecordNoted appends the audit entry e, which the caller also handed to
// StoreNoting or PurgeNoting as note, and removes the note once it is in
// the trail. If the trail is unavailable the note stays in the outbox and
// the sweep records it later: the error is only for logging.
func (s *Store) RecordNoted(ctx context.Context, rec Recorder, orderID string, e audit.Entry, note []byte) error {
	if err := rec.Record(ctx, e); err != nil {
		return fmt.Errorf("audit deferred to the outbox: %w", err)
	}
	if err := s.AckNote(ctx, OrderNote(orderID, note)); err != nil {
		return fmt.Errorf("outbox note not removed (it may be recorded twice): %w", err)
	}
	return nil
}

// scriptCode reads the store script's answer: a code, or {code, note}.
func scriptCode(res any) (int64, []byte) {
	switch v := res.(type) {
	case int64:
		return v, nil
	case []any:
		if len(v) == 2 {
			code, _ := v[0].(int64)
			note, _ := v[1].(string)
			return code, []byte(note)
		}
	}
	return 0, nil
}

// RecordNote appends the audit entry an outbox note holds (one the store
// wrote itself, such as an early event's purge) and removes the note.
func (s *Store) RecordNote(ctx context.Context, rec Recorder, orderID string, note []byte) error {
	var e audit.Entry
	if err := json.Unmarshal(note, &e); err != nil {
		return fmt.Errorf("outbox note: %w", err)
	}
	return s.RecordNoted(ctx, rec, orderID, e, note)
}

// Note is one outbox entry.
type Note struct {
	Shard int
	Body  []byte
}

// OrderNote is how a caller acknowledges the note of a purge it just made.
func OrderNote(orderID string, body []byte) Note { return Note{Shard: ShardOf(orderID), Body: body} }

// Notes returns up to limit outbox notes per shard, oldest first.
func (s *Store) Notes(ctx context.Context, limit int) ([]Note, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.LRange(ctx, tag(i)+"outbox:notes", 0, int64(limit-1))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	var out []Note
	for i, c := range cmds {
		for _, b := range c.Val() {
			out = append(out, Note{Shard: i, Body: []byte(b)})
		}
	}
	return out, nil
}

// AckNote removes a note once it has been recorded.
func (s *Store) AckNote(ctx context.Context, n Note) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.LRem(ctx, tag(n.Shard)+"outbox:notes", 1, n.Body).Err(); err != nil {
		return storeErr(err)
	}
	return nil
}

// DeferAudit keeps an audit entry the trail could not take in the outbox
// (the shard of its order, if any), where the retention sweep records it.
// Give e an Event, so an entry that did land after all is not written twice.
func (s *Store) DeferAudit(ctx context.Context, e audit.Entry) error {
	note, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("outbox note: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.RPush(ctx, tag(ShardOf(e.OrderID))+"outbox:notes", note).Err(); err != nil {
		return storeErr(err)
	}
	return nil
}

// envelope is the plaintext handed to Vault. The random nonce makes every
// plaintext unique, so the salted HMAC of it in Vault's audit log cannot be
// used to confirm a guessed address.
type envelope struct {
	Nonce    []byte   `json:"n"`
	Shipping Shipping `json:"shipping"`
}

// storeScript writes one order atomically, or reports what already exists:
// 1 stored; 2 same request already held; 3 different request (conflict);
// 4 the order was already purged; 5 a tombstone (an event that came first)
// applies: the reference is written as purged for its reason, no PII.
var storeScript = redis.NewScript(`
local ref, pii, expiry, mail, payidx, keyver, keyverm, outbox, tomb, shopidx = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local id, ct, mct, bidx, digest = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local payref, created, expires, version, mversion, note = ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local shop = ARGV[12]
local status = redis.call('HGET', ref, 'status')
if status then
  if status ~= 'held' then return 4 end
  local old = redis.call('HGET', pii, 'digest')
  if not old then return 4 end
  if old == digest then return 2 end
  return 3
end
local t = redis.call('GET', tomb)
if t then
  local reason, tpay, actor = string.match(t, '^([^\n]*)\n([^\n]*)\n?(.*)$')
  if tpay == '' or tpay == payref then
    local st = 'purged'
    if reason == 'shipped' then st = 'shipped' end
    redis.call('HSET', ref, 'order_id', id, 'payment_ref', payref, 'status', st, 'created_at', created,
      'expires_at', created, 'purged_at', created, 'purge_reason', reason, 'shop', shop)
    redis.call('DEL', tomb)
    -- The event's purge, recorded now: its audit note goes out like any purge's.
    local pnote = cjson.encode({time = ARGV[13], actor = actor, action = 'order.purge', order_id = id,
      detail = {reason = reason, before_store = 'true'}, event = 'tomb-' .. id .. '-' .. created, seq = 0, prev = '', hash = ''})
    redis.call('RPUSH', outbox, pnote)
    return {5, pnote}
  end
end

redis.call('HSET', pii, 'ct', ct, 'mct', mct, 'bidx', bidx, 'digest', digest)
redis.call('PEXPIREAT', pii, expires)
redis.call('HSET', ref, 'order_id', id, 'payment_ref', payref, 'status', 'held',
  'created_at', created, 'expires_at', tostring(expires), 'shop', shop)
redis.call('ZADD', expiry, expires, id)
redis.call('ZADD', keyver, version, id)
redis.call('ZADD', keyverm, mversion, id)
if note ~= '' then redis.call('RPUSH', outbox, note) end
local sets = {payidx}
if shop ~= '' then sets[2] = shopidx end
for _, set in ipairs(sets) do
  redis.call('SADD', set, id)
  if redis.call('PEXPIRETIME', set) < expires then redis.call('PEXPIREAT', set, expires) end
end
-- The email's links: this order's until its own expiry; those of orders
-- whose retention is over go now.
redis.call('ZREMRANGEBYSCORE', mail, '-inf', created)
redis.call('ZADD', mail, expires, id)
if redis.call('PEXPIRETIME', mail) < expires then redis.call('PEXPIREAT', mail, expires) end
return 1
`)

// purgeScript destroys an order's PII and every index entry of it and
// stamps its reference, atomically, whatever state its ciphertext is in
// (held, or already expired by TTL). 1 purged now; 0 already purged; -1
// unknown order; -2 the order was stored with a payment reference that is
// not one of ARGV[6] (newline-separated; empty: any payment): nothing
// changes. The payment is compared here, in the same atomic step, so no
// store between a caller's look-up and this purge can slip past it.
var purgeScript = redis.NewScript(`
local ref, pii, expiry, mail, payidx, keyver, keyverm, outbox, shopidx, email, mailof = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local id, status, reason, now, note, payments, bidx = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local cur = redis.call('HGET', ref, 'status')
if cur and payments ~= '' then
  local pay = redis.call('HGET', ref, 'payment_ref') or ''
  local ok = false
  for p in string.gmatch(payments, '[^\n]+') do
    if p == pay then ok = true end
  end
  if not ok then return -2 end
end
redis.call('DEL', pii)
redis.call('ZREM', expiry, id)
redis.call('ZREM', keyver, id)
redis.call('ZREM', keyverm, id)
redis.call('SREM', email, id)
redis.call('SREM', payidx, id)
redis.call('SREM', shopidx, id)
-- The email's link to this order stays until the order's own expiry (a
-- customer can still find a recently shipped order); links past theirs go.
redis.call('ZREMRANGEBYSCORE', mail, '-inf', now)
redis.call('HDEL', ref, 'bidx')
if not cur then return -1 end
if cur ~= 'held' then return 0 end
redis.call('HSET', ref, 'status', status, 'purged_at', now, 'purge_reason', reason)
-- Which customer it was stays countable (a breach's scope) until the
-- order's own expiry, and no longer.
local expires = tonumber(redis.call('HGET', ref, 'expires_at') or '0')
if bidx ~= '' and expires > tonumber(now) then redis.call('SET', mailof, bidx, 'PXAT', expires) end
if note ~= '' then redis.call('RPUSH', outbox, note) end
return 1
`)

// ErrOtherPayment is PurgePaidNoting's answer for an order stored with
// another payment: nothing changed.
var ErrOtherPayment = apperr.New(apperr.Conflict, "the order was stored with another payment")

// Result of Store.
type StoreResult int

const (
	Created    StoreResult = iota + 1 // newly stored
	Duplicate                         // the same request was already stored
	Tombstoned                        // refused: an event for it came first (the error says which)
)

// Store validates, encrypts and stores an order's shipping PII. The same
// request again is Duplicate; a different request for a held order is
// Conflict; any request for a purged order is Conflict (its PII must not
// come back). Nothing is written unless everything is.
func (s *Store) Store(ctx context.Context, req Request) (Receipt, StoreResult, error) {
	return s.StoreNoting(ctx, req, nil)
}

// StoreNoting is Store that also appends note to the shard's outbox in the
// same atomic step, when (and only when) the order is newly stored: the
// caller's audit record, so no store goes unrecorded.
func (s *Store) StoreNoting(ctx context.Context, req Request, note []byte) (Receipt, StoreResult, error) {
	if err := req.Validate(); err != nil {
		return Receipt{}, 0, err
	}
	k := keysOf(req.OrderID)

	canon, err := json.Marshal(req)
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("canonical request: %w", err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return Receipt{}, 0, fmt.Errorf("nonce: %w", err)
	}
	plain, err := json.Marshal(envelope{Nonce: nonce, Shipping: req.Shipping})
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("envelope: %w", err)
	}
	mnonce := make([]byte, 16)
	if _, err := rand.Read(mnonce); err != nil {
		return Receipt{}, 0, fmt.Errorf("nonce: %w", err)
	}
	maskedPlain, err := json.Marshal(envelope{Nonce: mnonce, Shipping: req.Shipping.Masked()})
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("envelope: %w", err)
	}
	ad := []byte(req.OrderID)
	// The blind-index HMACs, the encryption and the masked copy's are
	// independent Vault calls: run them side by side.
	var (
		macs, menc     []vault.Result
		macErr, menErr error
		wg             sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		macs, macErr = s.sealer.HMAC(ctx, [][]byte{
			append([]byte("request\x00"), canon...),
			[]byte("email\x00" + NormalizeEmail(req.Shipping.Email)),
		})
	}()
	go func() {
		defer wg.Done()
		menc, menErr = s.sealer.EncryptMasked(ctx, []vault.Plaintext{{Plaintext: maskedPlain, AssociatedData: ad}})
	}()
	enc, err := s.sealer.Encrypt(ctx, []vault.Plaintext{{Plaintext: plain, AssociatedData: ad}})
	wg.Wait()
	if macErr != nil {
		return Receipt{}, 0, fmt.Errorf("blind index: %w", macErr)
	}
	for _, m := range macs {
		if m.Err != nil {
			return Receipt{}, 0, fmt.Errorf("blind index: %w", m.Err)
		}
	}
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("encrypt: %w", err)
	}
	if enc[0].Err != nil {
		return Receipt{}, 0, fmt.Errorf("encrypt: %w", enc[0].Err)
	}
	if menErr == nil {
		menErr = menc[0].Err
	}
	if menErr != nil {
		return Receipt{}, 0, fmt.Errorf("encrypt masked copy: %w", menErr)
	}
	digest, bidx := macs[0].Value, macs[1].Value

	now := s.now().UTC().Truncate(time.Millisecond) // Redis keeps milliseconds
	expires := now.Add(s.retention)
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	version, mversion := CiphertextVersion(enc[0].Value), CiphertextVersion(menc[0].Value)
	if version == 0 || mversion == 0 {
		return Receipt{}, 0, fmt.Errorf("encrypt: vault returned a ciphertext without a key version")
	}
	res, err := storeScript.Run(rctx, s.rdb,
		[]string{k.ref, k.pii, k.expiry, k.mailPrefix + bidx, k.payrefPrefix + req.PaymentRef, k.keyver, k.keyverMasked,
			k.outbox, k.tomb, k.shopPrefix + req.ShopDomain},
		req.OrderID, enc[0].Value, menc[0].Value, bidx, digest, req.PaymentRef,
		strconv.FormatInt(now.UnixMilli(), 10), expires.UnixMilli(), version, mversion, note, req.ShopDomain,
		now.Format(time.RFC3339Nano)).Result()
	if err != nil {
		return Receipt{}, 0, storeErr(err)
	}
	code, tombNote := scriptCode(res)
	switch code {
	case 1:
		return Receipt{OrderID: req.OrderID, Status: StatusHeld, ExpiresAt: expires}, Created, nil
	case 2: // the same request again: answer with what is stored
		ref, err := s.Get(ctx, req.OrderID)
		if err != nil {
			return Receipt{}, 0, err
		}
		return Receipt{OrderID: ref.OrderID, Status: ref.Status, ExpiresAt: ref.ExpiresAt}, Duplicate, nil
	case 3:
		return Receipt{}, 0, apperr.New(apperr.Conflict, "order already stored with different data")
	case 5:
		ref, err := s.Get(ctx, req.OrderID)
		if err != nil {
			return Receipt{}, 0, err
		}
		e := goneError(ref)
		e.Code, e.Message = apperr.Conflict, "an event for this order (shipped or cancelled) arrived before it: its PII is not stored"
		return Receipt{OrderID: req.OrderID, Status: ref.Status, Note: tombNote}, Tombstoned, e
	default:
		return Receipt{}, 0, apperr.New(apperr.Conflict, "order was already purged; its PII cannot be stored again")
	}
}

// Get returns an order's purchase reference, or NotFound.
func (s *Store) Get(ctx context.Context, orderID string) (Reference, error) {
	if !ValidOrderID(orderID) {
		return Reference{}, apperr.New(apperr.NotFound, "no such order")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, keysOf(orderID).ref).Result()
	if err != nil {
		return Reference{}, storeErr(err)
	}
	if len(m) == 0 {
		return Reference{}, apperr.New(apperr.NotFound, "no such order")
	}
	return parseRef(m), nil
}

func parseRef(m map[string]string) Reference {
	r := Reference{
		OrderID:    m["order_id"],
		PaymentRef: m["payment_ref"],
		Status:     Status(m["status"]),
		CreatedAt:  msTime(m["created_at"]),
		ExpiresAt:  msTime(m["expires_at"]),
	}
	if v := m["purged_at"]; v != "" {
		t := msTime(v)
		r.PurgedAt = &t
	}
	if v := m["purge_reason"]; v != "" {
		r.PurgeReason = &v
	}
	return r
}

func msTime(v string) time.Time {
	ms, _ := strconv.ParseInt(v, 10, 64)
	return time.UnixMilli(ms).UTC()
}

// goneError is the answer to a read of purged PII; it carries the reason.
func goneError(ref Reference) *apperr.Error {
	reason := ReasonRetention
	if ref.PurgeReason != nil {
		reason = *ref.PurgeReason
	}
	e := apperr.New(apperr.Gone, "the shipping data of this order was purged")
	e.Detail = map[string]any{"purge_reason": reason}
	if ref.PurgedAt != nil {
		e.Detail["purged_at"] = ref.PurgedAt
	}
	return e
}

// Reveal decrypts an order's shipping block with the caller's own Vault
// token: the full block, or with masked the masked copy (the only one a
// support token can open: Vault refuses it the full one). Purged or
// expired → Gone (with the reason); unknown → NotFound; a token without
// the decrypt policy → Forbidden (Vault's own refusal).
func (s *Store) Reveal(ctx context.Context, orderID, token string, masked bool) (Shipping, error) {
	if !ValidOrderID(orderID) {
		return Shipping{}, apperr.New(apperr.NotFound, "no such order")
	}
	field, decrypt := "ct", s.opener.Decrypt
	if masked {
		field, decrypt = "mct", s.opener.DecryptMasked
	}
	// The reference and the ciphertext in one round trip.
	k := keysOf(orderID)
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	refCmd := pipe.HGetAll(rctx, k.ref)
	ctCmd := pipe.HGet(rctx, k.pii, field)
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		return Shipping{}, storeErr(err)
	}
	if len(refCmd.Val()) == 0 {
		return Shipping{}, apperr.New(apperr.NotFound, "no such order")
	}
	ref := parseRef(refCmd.Val())
	if ref.Status != StatusHeld {
		return Shipping{}, goneError(ref)
	}
	ct := ctCmd.Val()
	if ct == "" {
		return Shipping{}, goneError(ref) // expired by TTL; the next sweep stamps the reference
	}
	plain, err := decrypt(ctx, token, ct, []byte(orderID))
	if err != nil {
		if apperr.Is(err, apperr.Gone) {
			return Shipping{}, goneError(ref)
		}
		return Shipping{}, err
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return Shipping{}, fmt.Errorf("decode envelope: %w", err)
	}
	return env.Shipping, nil
}

// Purge destroys an order's PII for reason and stamps its reference. It
// returns true when this call purged it, false when it was already purged
// (idempotent), NotFound for an unknown order.
func (s *Store) Purge(ctx context.Context, orderID, reason string) (bool, error) {
	return s.PurgeNoting(ctx, orderID, reason, nil)
}

// PurgeNoting is Purge that also appends note to the shard's outbox in the
// same atomic step, when (and only when) this call purges. The purge
// package puts the audit record there, so no purge can go unrecorded.
func (s *Store) PurgeNoting(ctx context.Context, orderID, reason string, note []byte) (bool, error) {
	return s.PurgePaidNoting(ctx, orderID, reason, nil, note)
}

// PurgePaidNoting is PurgeNoting for an event bound to a payment: the order
// is purged only if it was stored with one of payments (any payment when
// none are given), else ErrOtherPayment and nothing changes.
func (s *Store) PurgePaidNoting(ctx context.Context, orderID, reason string, payments []string, note []byte) (bool, error) {
	if !ValidOrderID(orderID) {
		return false, apperr.New(apperr.NotFound, "no such order")
	}
	k := keysOf(orderID)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// The index keys are named by fields that never change once stored.
	// The email's HMAC is on the PII hash (gone with it when the TTL came
	// first: then the order's link expires with its score); references of
	// earlier versions kept it too.
	pipe := s.rdb.Pipeline()
	refFields := pipe.HMGet(ctx, k.ref, "bidx", "payment_ref", "shop")
	piiBidx := pipe.HGet(ctx, k.pii, "bidx")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, storeErr(err)
	}
	vals := refFields.Val()
	bidx, _ := vals[0].(string)
	payref, _ := vals[1].(string)
	shop, _ := vals[2].(string)
	if bidx == "" {
		bidx = piiBidx.Val()
	}
	n, err := purgeScript.Run(ctx, s.rdb, []string{k.ref, k.pii, k.expiry, k.mailPrefix + bidx,
		k.payrefPrefix + payref, k.keyver, k.keyverMasked, k.outbox, k.shopPrefix + shop, k.legacyEmailPrefix + bidx, k.mailOf},
		orderID, string(StatusAfter(reason)), reason, strconv.FormatInt(s.now().UnixMilli(), 10), note,
		strings.Join(payments, "\n"), bidx).Int()
	if err != nil {
		return false, storeErr(err)
	}
	switch n {
	case -1:
		return false, apperr.New(apperr.NotFound, "no such order")
	case -2:
		return false, ErrOtherPayment
	}
	return n == 1, nil
}

// PurgeMany purges several orders for reason in three round trips in all
// (their index fields, their purge scripts, pipelined), each still one
// atomic script with its own outbox note. It returns, per order, 1 purged
// now, 0 already purged, -1 unknown; a failed round trip fails them all.
func (s *Store) PurgeMany(ctx context.Context, ids []string, reason string, notes [][]byte) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.timeout)
	defer cancel()
	out := make([]int, len(ids))
	pipe := s.rdb.Pipeline()
	refs := make([]*redis.SliceCmd, len(ids))
	piis := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		if !ValidOrderID(id) {
			out[i] = -1
			continue
		}
		k := keysOf(id)
		refs[i], piis[i] = pipe.HMGet(ctx, k.ref, "bidx", "payment_ref", "shop"), pipe.HGet(ctx, k.pii, "bidx")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	if err := purgeScript.Load(ctx, s.rdb).Err(); err != nil {
		return nil, storeErr(err)
	}
	now := strconv.FormatInt(s.now().UnixMilli(), 10)
	status := string(StatusAfter(reason))
	pipe = s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		if refs[i] == nil {
			continue
		}
		vals := refs[i].Val()
		bidx, _ := vals[0].(string)
		payref, _ := vals[1].(string)
		shop, _ := vals[2].(string)
		if bidx == "" {
			bidx = piis[i].Val()
		}
		k := keysOf(id)
		cmds[i] = purgeScript.EvalSha(ctx, pipe, []string{k.ref, k.pii, k.expiry, k.mailPrefix + bidx,
			k.payrefPrefix + payref, k.keyver, k.keyverMasked, k.outbox, k.shopPrefix + shop, k.legacyEmailPrefix + bidx, k.mailOf},
			id, status, reason, now, notes[i], "", bidx)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		n, err := c.Int()
		if err != nil {
			return nil, storeErr(err)
		}
		out[i] = n
	}
	return out, nil
}

// AckNotes removes recorded notes in one round trip.
func (s *Store) AckNotes(ctx context.Context, notes []Note) error {
	if len(notes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for _, n := range notes {
		pipe.LRem(ctx, tag(n.Shard)+"outbox:notes", 1, n.Body)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return storeErr(err)
	}
	return nil
}

// FindByEmail returns the held orders whose email normalises to the same
// blind index as email.
func (s *Store) FindByEmail(ctx context.Context, email string) ([]string, error) {
	bidx, err := s.blindIndex(ctx, email)
	if err != nil {
		return nil, err
	}
	ids, err := s.mailLinks(ctx, bidx)
	if err != nil {
		return nil, err
	}
	// Held orders stored by earlier versions are in their email set until
	// it expires (at most the retention after this version started).
	legacy, err := s.members(ctx, "email:"+bidx)
	if err != nil {
		return nil, err
	}
	ids = slices.Compact(slices.Sorted(slices.Values(append(ids, legacy...))))
	return s.heldOnly(ctx, ids)
}

// History returns every order of an email, held or purged, whose retention
// is not over yet: the customer's orders an access report by email lists.
// Older orders are found by their id only (nothing derived from an email
// outlives an order's retention).
func (s *Store) History(ctx context.Context, email string) ([]string, error) {
	bidx, err := s.blindIndex(ctx, email)
	if err != nil {
		return nil, err
	}
	return s.mailLinks(ctx, bidx)
}

// mailLinks returns the orders linked to an email's blind index whose
// retention is not over, from every shard.
func (s *Store) mailLinks(ctx context.Context, bidx string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	min := "(" + strconv.FormatInt(s.now().UnixMilli(), 10)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.ZRangeByScore(ctx, tag(i)+"mail:"+bidx, &redis.ZRangeBy{Min: min, Max: "+inf"})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	sort.Strings(ids)
	return ids, nil
}

// heldOnly keeps the ids whose reference says held.
func (s *Store) heldOnly(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return ids, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, keysOf(id).ref, "status")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	out := ids[:0]
	for i, c := range cmds {
		if c.Val() == string(StatusHeld) {
			out = append(out, ids[i])
		}
	}
	return out, nil
}

// ForgetLegacyEmailLinks deletes what earlier versions kept derived from
// an email beyond an order's retention: the emailhist:<bidx> sets (kept 13
// months) and the bidx field of purchase references (kept for good). It is
// idempotent and visits each key once (SCAN, on every primary of a
// Cluster); serve runs it at start-up. It returns how many it changed.
func (s *Store) ForgetLegacyEmailLinks(ctx context.Context) (int, error) {
	n := 0
	err := s.eachNode(ctx, func(ctx context.Context, c *redis.Client) error {
		for _, pattern := range []string{"piivault:{s*}:emailhist:*", "piivault:{s*}:ref:*"} {
			iter := c.Scan(ctx, 0, pattern, 500).Iterator()
			for iter.Next(ctx) {
				k := iter.Val()
				var err error
				var changed int64
				if strings.Contains(k, ":emailhist:") {
					changed, err = c.Unlink(ctx, k).Result()
				} else {
					changed, err = c.HDel(ctx, k, "bidx").Result()
				}
				if err != nil {
					return storeErr(err)
				}
				n += int(changed)
			}
			if err := iter.Err(); err != nil {
				return storeErr(err)
			}
		}
		return nil
	})
	return n, err
}

// eachNode calls fn with the single Redis, or with every primary of a
// Cluster one after another (keys are SCANned where they live).
func (s *Store) eachNode(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(ctx, n)
		})
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("orders: unsupported redis client %T", s.rdb)
}

// blindIndex is the keyed HMAC (computed by Vault) of a normalised email.
func (s *Store) blindIndex(ctx context.Context, email string) (string, error) {
	macs, err := s.sealer.HMAC(ctx, [][]byte{[]byte("email\x00" + NormalizeEmail(email))})
	if err != nil {
		return "", fmt.Errorf("blind index: %w", err)
	}
	if macs[0].Err != nil {
		return "", fmt.Errorf("blind index: %w", macs[0].Err)
	}
	return macs[0].Value, nil
}

// Held is a held order as the fulfillment queue and the sweep see it.
type Held struct {
	OrderID   string    `json:"order_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Due returns up to limit held orders whose expiry is at or before t, from
// every shard, soonest first. Its cost grows with the due orders only.
func (s *Store) Due(ctx context.Context, t time.Time, limit int) ([]Held, error) {
	return s.scan(ctx, "-inf", strconv.FormatInt(t.UnixMilli(), 10), limit)
}

// DueEach returns up to perShard held orders of every shard whose expiry is
// at or before t, in no particular order, and whether any shard has more.
// The sweep needs no global order, so nothing is read only to be dropped.
func (s *Store) DueEach(ctx context.Context, t time.Time, perShard int) ([]Held, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, Shards)
	max := strconv.FormatInt(t.UnixMilli(), 10)
	for i := range cmds {
		cmds[i] = pipe.ZRangeByScoreWithScores(ctx, tag(i)+"expiry", &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(perShard)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, storeErr(err)
	}
	var out []Held
	more := false
	for _, c := range cmds {
		zs := c.Val()
		more = more || len(zs) == perShard
		for _, z := range zs {
			id, _ := z.Member.(string)
			out = append(out, Held{OrderID: id, ExpiresAt: time.UnixMilli(int64(z.Score)).UTC()})
		}
	}
	return out, more, nil
}

// Oldest returns up to limit held orders after the cursor (expiry ms and
// order id of the last item seen; zero values start at the beginning),
// oldest first.
func (s *Store) Oldest(ctx context.Context, afterMS int64, afterID string, limit int) ([]Held, error) {
	items, err := s.scan(ctx, strconv.FormatInt(afterMS, 10), "+inf", limit+Shards)
	if err != nil {
		return nil, err
	}
	out := items[:0]
	for _, h := range items {
		ms := h.ExpiresAt.UnixMilli()
		if ms < afterMS || (ms == afterMS && h.OrderID <= afterID) {
			continue
		}
		out = append(out, h)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, s.fillCreated(ctx, out)
}

// fillCreated reads the creation times of held orders from their references.
func (s *Store) fillCreated(ctx context.Context, hs []Held) error {
	if len(hs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(hs))
	for i, h := range hs {
		cmds[i] = pipe.HGet(ctx, keysOf(h.OrderID).ref, "created_at")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return storeErr(err)
	}
	for i, c := range cmds {
		hs[i].CreatedAt = msTime(c.Val())
	}
	return nil
}

func (s *Store) scan(ctx context.Context, min, max string, limit int) ([]Held, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.ZRangeByScoreWithScores(ctx, tag(i)+"expiry", &redis.ZRangeBy{Min: min, Max: max, Count: int64(limit)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	var out []Held
	for _, c := range cmds {
		for _, z := range c.Val() {
			id, _ := z.Member.(string)
			out = append(out, Held{OrderID: id, ExpiresAt: time.UnixMilli(int64(z.Score)).UTC()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ExpiresAt.Equal(out[j].ExpiresAt) {
			return out[i].ExpiresAt.Before(out[j].ExpiresAt)
		}
		return out[i].OrderID < out[j].OrderID
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// HeldCount returns the number of held orders.
func (s *Store) HeldCount(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.ZCard(ctx, tag(i)+"expiry")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, storeErr(err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// storeErr translates a Redis error: anything but redis.Nil means the store
// is out of reach (down, slow, or refusing writes).
func storeErr(err error) error {
	if errors.Is(err, redis.Nil) {
		return apperr.Wrap(apperr.NotFound, err, "not found")
	}
	return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
}

// OldestKeyVersion returns the lowest transit key version any held order's
// ciphertext was made with (0 when nothing is held). Orders whose
// ciphertext Redis already expired count until the sweep stamps them: the
// answer errs on the side of keeping a version.
func (s *Store) OldestKeyVersion(ctx context.Context) (int, error) {
	return s.oldestVersion(ctx, "keyver")
}

// OldestMaskedKeyVersion is OldestKeyVersion for the masked copies' key.
func (s *Store) OldestMaskedKeyVersion(ctx context.Context) (int, error) {
	return s.oldestVersion(ctx, "keyver:masked")
}

func (s *Store) oldestVersion(ctx context.Context, index string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.ZRangeWithScores(ctx, tag(i)+index, 0, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, storeErr(err)
	}
	oldest := 0
	for _, c := range cmds {
		for _, z := range c.Val() {
			if v := int(z.Score); oldest == 0 || v < oldest {
				oldest = v
			}
		}
	}
	return oldest, nil
}

// CiphertextVersion reads N from a transit ciphertext "vault:vN:...", or 0.
func CiphertextVersion(ct string) int {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return 0
	}
	end := strings.IndexByte(rest, ':')
	if end <= 0 {
		return 0
	}
	n, _ := strconv.Atoi(rest[:end])
	return n
}

// FindByPaymentRef returns every held order stored with a payment
// reference (normally one; a refund of a shared payment concerns all).
func (s *Store) FindByPaymentRef(ctx context.Context, paymentRef string) ([]string, error) {
	if !idPattern.MatchString(paymentRef) {
		return nil, nil
	}
	return s.members(ctx, "payref:"+paymentRef)
}

// tombScript leaves a tombstone for an order not stored yet; 0 when the
// order exists (the caller purges it instead).
var tombScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

// TombstoneFor is how long an early event waits for its order.
const TombstoneFor = 72 * time.Hour

// Tombstone records a shipping or cancellation event for an order that is
// not stored yet, so a store that comes later (a moment, or up to
// TombstoneFor) is refused and the order recorded as purged for reason.
// paymentRef, when set, limits it to a store with that payment reference
// (a Stripe event binds only its own payment). It returns false when the
// order exists after all: the caller purges it.
func (s *Store) Tombstone(ctx context.Context, orderID, reason, paymentRef, actor string) (bool, error) {
	if !ValidOrderID(orderID) {
		return false, apperr.New(apperr.NotFound, "no such order")
	}
	k := keysOf(orderID)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := tombScript.Run(ctx, s.rdb, []string{k.ref, k.tomb}, reason+"\n"+paymentRef+"\n"+actor,
		TombstoneFor.Milliseconds()).Int()
	if err != nil {
		return false, storeErr(err)
	}
	return n == 1, nil
}

// FindByShop returns the held orders of a Shopify shop.
func (s *Store) FindByShop(ctx context.Context, domain string) ([]string, error) {
	if !ValidShopDomain(domain) {
		return nil, nil
	}
	return s.members(ctx, "shop:"+domain)
}

// members unions one index set over every shard.
func (s *Store) members(ctx context.Context, index string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.SMembers(ctx, tag(i)+index)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	sort.Strings(ids)
	return ids, nil
}

// Revealed is one reveal as the access report tells it: when, by which
// role, for which reason; never who.
type Revealed struct {
	Time   time.Time `json:"time"`
	Role   string    `json:"role"`
	Reason string    `json:"reason"`
}

// NoteReveals keeps the reveals of orders (same time, role and reason)
// for their access reports.
func (s *Store) NoteReveals(ctx context.Context, ids []string, at time.Time, role, reason string) error {
	if len(ids) == 0 {
		return nil
	}
	writes.Mark(ctx)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	v := strconv.FormatInt(at.UnixMilli(), 10) + " " + role + " " + reason
	for _, id := range ids {
		k := keysOf(id).reveals
		pipe.RPush(ctx, k, v)
		pipe.PExpire(ctx, k, HistoryFor)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return storeErr(err)
	}
	return nil
}

// Reveals returns the reveals kept for each order.
func (s *Store) Reveals(ctx context.Context, ids []string) (map[string][]Revealed, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.LRange(ctx, keysOf(id).reveals, 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	out := make(map[string][]Revealed, len(ids))
	for i, c := range cmds {
		for _, v := range c.Val() {
			f := strings.Fields(v)
			if len(f) != 3 {
				continue
			}
			out[ids[i]] = append(out[ids[i]], Revealed{Time: msTime(f[0]), Role: f[1], Reason: f[2]})
		}
	}
	return out, nil
}

// BlindIndexes returns the email blind index (a keyed HMAC, never the
// email) of each order that still has one, for counting distinct
// customers: held orders, and purged ones until their own expiry (nothing
// derived from an email outlives an order's retention).
func (s *Store) BlindIndexes(ctx context.Context, ids []string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	held := make([]*redis.StringCmd, len(ids))
	purged := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		k := keysOf(id)
		held[i], purged[i] = pipe.HGet(ctx, k.pii, "bidx"), pipe.Get(ctx, k.mailOf)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	out := make(map[string]string, len(ids))
	for i := range ids {
		if v := cmp.Or(held[i].Val(), purged[i].Val()); v != "" {
			out[ids[i]] = v
		}
	}
	return out, nil
}

// Label is one order of a pick-list: its shipping block or why not.
type Label struct {
	OrderID  string
	Shipping Shipping
	Err      error
}

// RevealMany decrypts the full shipping blocks of several orders in one
// Vault call with the caller's own token. Unknown, purged or expired orders
// come back with their error (NotFound, Gone with the reason); only a
// failure of the whole call (Vault, Redis, a token without decrypt) is an
// error of RevealMany.
func (s *Store) RevealMany(ctx context.Context, ids []string, token string) ([]Label, error) {
	out := make([]Label, len(ids))
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	refs := make([]*redis.MapStringStringCmd, len(ids))
	cts := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		out[i].OrderID = id
		if !ValidOrderID(id) {
			continue
		}
		k := keysOf(id)
		refs[i], cts[i] = pipe.HGetAll(rctx, k.ref), pipe.HGet(rctx, k.pii, "ct")
	}
	if _, err := pipe.Exec(rctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	var batch []vault.Ciphertext
	var at []int
	for i := range ids {
		if refs[i] == nil || len(refs[i].Val()) == 0 {
			out[i].Err = apperr.New(apperr.NotFound, "no such order")
			continue
		}
		ref := parseRef(refs[i].Val())
		if ref.Status != StatusHeld || cts[i].Val() == "" {
			out[i].Err = goneError(ref)
			continue
		}
		batch = append(batch, vault.Ciphertext{Ciphertext: cts[i].Val(), AssociatedData: []byte(ids[i])})
		at = append(at, i)
	}
	if len(batch) == 0 {
		return out, nil
	}
	res, err := s.opener.DecryptBatch(ctx, token, batch)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		i := at[j]
		if r.Err != nil {
			out[i].Err = r.Err
			continue
		}
		var env envelope
		if err := json.Unmarshal([]byte(r.Value), &env); err != nil {
			out[i].Err = fmt.Errorf("decode envelope: %w", err)
			continue
		}
		out[i].Shipping = env.Shipping
	}
	return out, nil
}

// Overdue counts held orders whose deadline passed before t: references the
// sweep has not stamped yet.
func (s *Store) Overdue(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, Shards)
	for i := range cmds {
		cmds[i] = pipe.ZCount(ctx, tag(i)+"expiry", "-inf", "("+strconv.FormatInt(t.UnixMilli(), 10))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, storeErr(err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// ExpiringBetween counts held orders for each window [edges[i], edges[i+1]),
// by deadline: len(edges)-1 counts, one ZCOUNT per shard and window.
func (s *Store) ExpiringBetween(ctx context.Context, edges []time.Time) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([][]*redis.IntCmd, len(edges)-1)
	for b := range cmds {
		lo, hi := strconv.FormatInt(edges[b].UnixMilli(), 10), "("+strconv.FormatInt(edges[b+1].UnixMilli(), 10)
		for i := 0; i < Shards; i++ {
			cmds[b] = append(cmds[b], pipe.ZCount(ctx, tag(i)+"expiry", lo, hi))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, storeErr(err)
	}
	out := make([]int64, len(cmds))
	for b, cs := range cmds {
		for _, c := range cs {
			out[b] += c.Val()
		}
	}
	return out, nil
}

// EachReference calls fn with every purchase reference, in no order
// (SCAN, a page at a time, on every primary of a Cluster).
func (s *Store) EachReference(ctx context.Context, fn func(Reference) error) error {
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, "piivault:{s*}:ref:*", 500).Iterator()
		for iter.Next(ctx) {
			m, err := c.HGetAll(ctx, iter.Val()).Result()
			if err != nil {
				return storeErr(err)
			}
			if len(m) > 0 {
				if err := fn(parseRef(m)); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return storeErr(err)
		}
		return nil
	}
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		var mu sync.Mutex // primaries are scanned at once; fn sees one reference at a time
		each := fn
		fn = func(r Reference) error { mu.Lock(); defer mu.Unlock(); return each(r) }
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	case *redis.Client:
		return scan(ctx, c)
	}
	return fmt.Errorf("orders: unsupported redis client %T", s.rdb)
}
