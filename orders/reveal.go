package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/vault"
)

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
	o, err := s.readSealed(ctx, orderID, masked, nil)
	if err != nil {
		return Shipping{}, err
	}
	return s.open(ctx, o, token)
}

// gate is a check queued on the pipeline that reads the order, which must
// pass before the ciphertext goes to Vault (the Revealer's IP block and
// lockdown).
type gate func(p redis.Pipeliner) func() error

// sealedOrder is a held order's ciphertext, read for a reveal.
type sealedOrder struct {
	id     string
	ref    Reference
	ct     string
	masked bool
}

// readSealed reads a held order's ciphertext (with masked, the masked
// copy) in one round trip with gate g (nil: none), whose answer comes
// first. Purged or expired → Gone (with the reason); unknown → NotFound.
func (s *Store) readSealed(ctx context.Context, orderID string, masked bool, g gate) (sealedOrder, error) {
	if g == nil {
		g = func(redis.Pipeliner) func() error { return func() error { return nil } }
	}
	if !ValidOrderID(orderID) {
		if err := s.check(ctx, g); err != nil {
			return sealedOrder{}, err
		}
		return sealedOrder{}, apperr.New(apperr.NotFound, "no such order")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	field := "ct"
	if masked {
		field = "mct"
	}
	k := keysOf(orderID)
	var pass func() error
	var refCmd *redis.MapStringStringCmd
	var ctCmd *redis.StringCmd
	if err := s.pipe.Do(ctx, func(pipe redis.Pipeliner) {
		pass = g(pipe)
		refCmd = pipe.HGetAll(ctx, k.ref)
		ctCmd = pipe.HGet(ctx, k.pii, field)
	}); err != nil {
		return sealedOrder{}, storeErr(err)
	}
	if gerr := pass(); gerr != nil {
		return sealedOrder{}, gerr
	}
	if err := readErr(refCmd, ctCmd); err != nil {
		return sealedOrder{}, err
	}
	if len(refCmd.Val()) == 0 {
		return sealedOrder{}, apperr.New(apperr.NotFound, "no such order")
	}
	ref := parseRef(refCmd.Val())
	if ref.Status != StatusHeld {
		return sealedOrder{}, goneError(ref)
	}
	if ctCmd.Val() == "" {
		return sealedOrder{}, goneError(ref) // expired by TTL; the next sweep stamps the reference
	}
	return sealedOrder{id: orderID, ref: ref, ct: ctCmd.Val(), masked: masked}, nil
}

// open decrypts o with the caller's own Vault token; a token without the
// decrypt policy → Forbidden (Vault's own refusal).
func (s *Store) open(ctx context.Context, o sealedOrder, token string) (Shipping, error) {
	decrypt := s.opener.Decrypt
	if o.masked {
		decrypt = s.opener.DecryptMasked
	}
	plain, err := decrypt(ctx, token, o.ct, []byte(o.id))
	if err != nil {
		if apperr.Is(err, apperr.Gone) {
			return Shipping{}, goneError(o.ref)
		}
		return Shipping{}, err
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return Shipping{}, fmt.Errorf("decode envelope: %w", err)
	}
	return env.Shipping, nil
}

// check runs gate g on its own, for an answer that reads nothing else.
func (s *Store) check(ctx context.Context, g gate) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var pass func() error
	if err := s.pipe.Do(ctx, func(pipe redis.Pipeliner) { pass = g(pipe) }); err != nil {
		return storeErr(err)
	}
	return pass() // the gate's own error is read by pass
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
