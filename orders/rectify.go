package orders

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/vault"
)

// ValidateShipping checks a shipping block as ingest does; the fields are
// named as in a request ("shipping.address.city").
func ValidateShipping(s Shipping) error {
	r := Request{OrderID: "x", PaymentRef: "x", Shipping: s}
	return r.Validate()
}

// rectifyScript replaces a held order's ciphertexts, moves its email link
// and queues its audit note, in one step: 1 done; -1 unknown; -2 no longer
// held (shipped, purged or expired); -3 a label was bought; -4 a label is
// being bought; -5 the email index changed since it was read (retry).
// expires_at, the PII key's TTL and every index score stay as they are: a
// correction never extends retention.
var rectifyScript = redis.NewScript(`
local ref, pii, oldmail, newmail, keyver, keyverm, outbox, label = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local id, ct, mct, bidx, oldbidx, version, mversion, note = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local status = redis.call('HGET', ref, 'status')
if not status then return -1 end
if status ~= 'held' or redis.call('EXISTS', pii) == 0 then return -2 end
if redis.call('HGET', ref, 'label_tracking_code') then return -3 end
if redis.call('HGET', label, 'state') then return -4 end
if (redis.call('HGET', pii, 'bidx') or '') ~= oldbidx then return -5 end
local expires = tonumber(redis.call('HGET', ref, 'expires_at'))
redis.call('HSET', pii, 'ct', ct, 'mct', mct, 'bidx', bidx)
if oldmail ~= newmail then
  redis.call('ZREM', oldmail, id)
  redis.call('ZADD', newmail, expires, id)
  local top = redis.call('ZRANGE', newmail, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', newmail, math.max(expires, tonumber(top[2])))
end
redis.call('ZADD', keyver, version, id)
redis.call('ZADD', keyverm, mversion, id)
redis.call('RPUSH', outbox, note)
return 1
`)

// RectifyAudited replaces the shipping block of a held order with ship,
// without anyone reading the old one: validated as at ingest, encrypted
// again (the full block and the masked copy), its email re-indexed, its
// expires_at kept, and its audit entry e (actor, IP and channel set by the
// caller) recorded through the outbox, in one atomic step. A shipped or
// purged order is Gone; one with a label bought (the address is on it) is
// a LabelBought conflict. The error is a *DeferredError when the order was
// corrected and only its entry waits.
func (s *Store) RectifyAudited(ctx context.Context, orderID string, ship Shipping, e audit.Entry) (Reference, error) {
	if !ValidOrderID(orderID) {
		return Reference{}, apperr.New(apperr.NotFound, "no such order")
	}
	if err := ValidateShipping(ship); err != nil {
		return Reference{}, err
	}
	e.Action, e.OrderID = audit.ActionRectify, orderID
	e = s.stamped(e)
	note, err := json.Marshal(e)
	if err != nil {
		return Reference{}, fmt.Errorf("audit note: %w", err)
	}
	sealed, err := s.seal(ctx, orderID, ship, nil)
	if err != nil {
		return Reference{}, err
	}
	ct, mct, bidx := sealed.ct, sealed.mct, sealed.bidx
	k := keysOf(orderID)
	for attempt := 0; ; attempt++ {
		old, err := s.rdb.HGet(ctx, k.pii, "bidx").Result()
		if err != nil && err != redis.Nil {
			return Reference{}, storeErr(err)
		}
		rctx, cancel := context.WithTimeout(ctx, s.timeout)
		n, err := rectifyScript.Run(rctx, s.rdb,
			[]string{k.ref, k.pii, k.mailPrefix + old, k.mailPrefix + bidx, k.keyver, k.keyverMasked, k.outbox, k.label},
			orderID, ct, mct, bidx, old, CiphertextVersion(ct), CiphertextVersion(mct), note).Int()
		cancel()
		if err != nil {
			return Reference{}, storeErr(err)
		}
		switch n {
		case 1:
			ref, gerr := s.Get(ctx, orderID)
			if gerr != nil {
				return Reference{}, gerr
			}
			return ref, s.recordNoted(ctx, orderID, s.later(e), note)
		case -1:
			return Reference{}, apperr.New(apperr.NotFound, "no such order")
		case -2:
			ref, gerr := s.Get(ctx, orderID)
			if gerr != nil {
				return Reference{}, gerr
			}
			return Reference{}, goneError(ref)
		case -3:
			return Reference{}, apperr.New(apperr.LabelBought,
				"a postage label was bought for this order: the old address is printed on it; refund the label first")
		case -4:
			return Reference{}, apperr.New(apperr.LabelInProgress, "a postage label is being bought for this order; try again in a moment")
		}
		if attempt == 3 {
			return Reference{}, apperr.New(apperr.Conflict, "the order changed while it was being corrected; try again")
		}
	}
}

// sealed is a shipping block as Redis keeps it.
type sealed struct {
	ct, mct string // the full block and the masked copy, transit ciphertexts
	bidx    string // the email's blind index
	digest  string // the request's HMAC, when a request was given
}

// seal encrypts ship for orderID (the full block and the masked copy,
// bound to the order id as associated data, each with a random nonce so
// that equal addresses never encrypt alike) and computes its email's blind
// index and, with canon (a canonical request), the request's HMAC. The
// three Vault calls are independent: they run side by side.
func (s *Store) seal(ctx context.Context, orderID string, ship Shipping, canon []byte) (sealed, error) {
	envelopeOf := func(sh Shipping) ([]byte, error) {
		nonce := make([]byte, 16)
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("nonce: %w", err)
		}
		return json.Marshal(envelope{Nonce: nonce, Shipping: sh})
	}
	plain, err := envelopeOf(ship)
	if err != nil {
		return sealed{}, err
	}
	maskedPlain, err := envelopeOf(ship.Masked())
	if err != nil {
		return sealed{}, err
	}
	inputs := [][]byte{[]byte("email\x00" + NormalizeEmail(ship.Email))}
	if canon != nil {
		inputs = append(inputs, append([]byte("request\x00"), canon...))
	}
	ad := []byte(orderID)
	var (
		macs, menc     []vault.Result
		macErr, menErr error
		wg             sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		macs, macErr = s.sealer.HMAC(ctx, inputs)
	}()
	go func() {
		defer wg.Done()
		menc, menErr = s.sealer.EncryptMasked(ctx, []vault.Plaintext{{Plaintext: maskedPlain, AssociatedData: ad}})
	}()
	enc, encErr := s.sealer.Encrypt(ctx, []vault.Plaintext{{Plaintext: plain, AssociatedData: ad}})
	wg.Wait()
	for _, c := range []struct {
		what string
		err  error
		res  []vault.Result
	}{{"blind index", macErr, macs}, {"encrypt masked copy", menErr, menc}, {"encrypt", encErr, enc}} {
		if c.err == nil {
			for _, r := range c.res {
				if r.Err != nil {
					c.err = r.Err
					break
				}
			}
		}
		if c.err != nil {
			return sealed{}, fmt.Errorf("%s: %w", c.what, c.err)
		}
	}
	out := sealed{ct: enc[0].Value, mct: menc[0].Value, bidx: macs[0].Value}
	if canon != nil {
		out.digest = macs[1].Value
	}
	if CiphertextVersion(out.ct) == 0 || CiphertextVersion(out.mct) == 0 {
		return sealed{}, fmt.Errorf("encrypt: vault returned a ciphertext without a key version")
	}
	return out, nil
}
