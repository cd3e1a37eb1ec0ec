package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

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

// ErrOtherPayment is PurgeAudited's answer for an order stored with
// another payment: nothing changed.
var ErrOtherPayment = apperr.New(apperr.Conflict, "the order was stored with another payment")

// Result of Store.
type StoreResult int

const (
	Created    StoreResult = iota + 1 // newly stored
	Duplicate                         // the same request was already stored
	Tombstoned                        // refused: an event for it came first (the error says which)
)

// storeNoting validates, encrypts and stores an order's shipping PII, and
// appends note (its audit entry) to the shard's outbox in the same atomic
// step when, and only when, the order is newly stored. The same request
// again is Duplicate; a different request for a held order is Conflict;
// any request for a purged order is Conflict (its PII must not come back).
// Nothing is written unless everything is. StoreAudited is the only caller.
func (s *Store) storeNoting(ctx context.Context, req Request, note []byte) (Receipt, StoreResult, error) {
	if err := req.Validate(); err != nil {
		return Receipt{}, 0, err
	}
	k := keysOf(req.OrderID)

	canon, err := json.Marshal(req)
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("canonical request: %w", err)
	}
	sealed, err := s.seal(ctx, req.OrderID, req.Shipping, canon)
	if err != nil {
		return Receipt{}, 0, err
	}
	digest, bidx := sealed.digest, sealed.bidx

	now := s.now().UTC().Truncate(time.Millisecond) // Redis keeps milliseconds
	expires := now.Add(s.retention)
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	version, mversion := CiphertextVersion(sealed.ct), CiphertextVersion(sealed.mct)
	keys := []string{k.ref, k.pii, k.expiry, k.mailPrefix + bidx, k.payrefPrefix + req.PaymentRef, k.keyver, k.keyverMasked,
		k.outbox, k.tomb, k.shopPrefix + req.ShopDomain}
	args := []any{req.OrderID, sealed.ct, sealed.mct, bidx, digest, req.PaymentRef,
		strconv.FormatInt(now.UnixMilli(), 10), expires.UnixMilli(), version, mversion, note, req.ShopDomain,
		now.Format(time.RFC3339Nano)}
	res, err := s.runShared(rctx, storeScript, keys, args).Result()
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

// purgeNoting destroys an order's PII for reason, stamps its reference and
// appends note (its audit entry) to the shard's outbox in the same atomic
// step, when (and only when) this call purges. It returns true when this
// call purged it, false when it was already purged (idempotent), NotFound
// for an unknown order. With payments, the order is purged only if it was
// stored with one of them, else ErrOtherPayment and nothing changes.
// PurgeAudited is the only caller.
func (s *Store) purgeNoting(ctx context.Context, orderID, reason string, payments []string, note []byte) (bool, error) {
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
	var refFields *redis.SliceCmd
	var piiBidx *redis.StringCmd
	if err := s.pipe.Do(ctx, func(pipe redis.Pipeliner) {
		refFields = pipe.HMGet(ctx, k.ref, "bidx", "payment_ref", "shop")
		piiBidx = pipe.HGet(ctx, k.pii, "bidx")
	}); err != nil {
		return false, storeErr(err)
	}
	if err := readErr(refFields, piiBidx); err != nil {
		return false, err
	}
	vals := refFields.Val()
	bidx, _ := vals[0].(string)
	payref, _ := vals[1].(string)
	shop, _ := vals[2].(string)
	if bidx == "" {
		bidx = piiBidx.Val()
	}
	n, err := s.runShared(ctx, purgeScript, []string{k.ref, k.pii, k.expiry, k.mailPrefix + bidx,
		k.payrefPrefix + payref, k.keyver, k.keyverMasked, k.outbox, k.shopPrefix + shop, k.legacyEmailPrefix + bidx, k.mailOf},
		[]any{orderID, string(StatusAfter(reason)), reason, strconv.FormatInt(s.now().UnixMilli(), 10), note,
			strings.Join(payments, "\n"), bidx}).Int()
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

// purgeMany purges several orders for reason in three round trips in all
// (their index fields, their purge scripts, pipelined), each still one
// atomic script with its own outbox note. It returns, per order, 1 purged
// now, 0 already purged, -1 unknown; a failed round trip fails them all.
func (s *Store) purgeMany(ctx context.Context, ids []string, reason string, notes [][]byte) ([]int, error) {
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
