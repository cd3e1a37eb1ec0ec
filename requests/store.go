package requests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/inbound"
	"piivault/internal/apperr"
	"piivault/orders"
	"piivault/vault"
)

const (
	keyPrefix = "piivault:{inbound}:"
	indexKey  = keyPrefix + "pending"
	// replayFor is how long an inbound message is remembered (at most the
	// retention): longer than Postmark's and SendGrid's retries.
	replayFor = 7 * 24 * time.Hour
	// receiveLease bounds how long a message is marked as being handled;
	// the handling gets half of it, so the lease never ends under it, and a
	// marker whose "done" never came holds retries off for a minute at most.
	receiveLease = time.Minute
	// claimLease is how long a request being confirmed or rejected is
	// left to that person before another may take it.
	claimLease = 2 * time.Minute
	// MaxList bounds the pending requests listed, oldest first: each costs
	// a Vault decrypt with the caller's token.
	MaxList = 200

	statusPending    = "pending"
	statusProcessing = "processing"
)

func reqKey(id string) string      { return keyPrefix + "req:" + id }
func seenKey(digest string) string { return keyPrefix + "seen:" + digest }

var idPattern = regexp.MustCompile(`^pr_[0-9a-f]{24}$`)

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "pr_" + hex.EncodeToString(b), nil
}

var errNoRequest = apperr.New(apperr.NotFound, "no such pending request")

func storeErr(err error) error {
	return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
}

// record is a stored pending request. Sender is the sealed address and
// Excerpt the transit ciphertext: neither is readable from here.
type record struct {
	ID         string
	Sender     string
	Masked     string
	DKIM       string
	Kind       inbound.Kind
	Reason     string
	Provider   string
	ReceivedAt time.Time
	Excerpt    string
	Status     string
}

// LogValue names the request only.
func (r record) LogValue() slog.Value { return slog.StringValue(r.ID) }

// storePending seals and stores m as a pending request and returns its id.
func (s *Service) storePending(ctx context.Context, provider string, m inbound.Message, v inbound.Verdict, kind inbound.Kind, reason string) (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	sealed, err := s.sealer.Seal(ctx, []byte(m.From))
	if err != nil {
		return "", fmt.Errorf("requests: seal the sender of %s: %w", id, err)
	}
	var excerpt string
	if text := inbound.Excerpt(m.Text, ExcerptChars); text != "" {
		// Transit refuses an empty plaintext; an empty body keeps no excerpt.
		res, err := s.excerpts.EncryptMasked(ctx, []vault.Plaintext{{Plaintext: []byte(text), AssociatedData: []byte(id)}})
		if err != nil {
			return "", err
		}
		if len(res) != 1 {
			return "", fmt.Errorf("requests: encrypt the excerpt of %s: %d results", id, len(res))
		}
		if res[0].Err != nil {
			return "", fmt.Errorf("requests: encrypt the excerpt of %s: %w", id, res[0].Err)
		}
		excerpt = res[0].Value
	}
	now := s.now()
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, reqKey(id), map[string]any{
		"sender": sealed, "masked": orders.Shipping{Email: m.From}.Masked().Email,
		"dkim": v.DKIM, "kind": string(kind), "reason": reason, "provider": provider,
		"received": now.UnixMilli(), "excerpt": excerpt, "status": statusPending, "claimed": 0,
	})
	pipe.Expire(ctx, reqKey(id), s.cfg.Retention)
	pipe.ZAdd(ctx, indexKey, redis.Z{Score: float64(now.UnixMilli()), Member: id})
	pipe.ZRemRangeByScore(ctx, indexKey, "-inf", "("+strconv.FormatInt(now.Add(-s.cfg.Retention).UnixMilli(), 10))
	pipe.Expire(ctx, indexKey, s.cfg.Retention)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", storeErr(err)
	}
	return id, nil
}

// load reads a pending request; errNoRequest if there is none.
func (s *Service) load(ctx context.Context, id string) (record, error) {
	if !idPattern.MatchString(id) {
		return record{}, errNoRequest
	}
	h, err := s.rdb.HGetAll(ctx, reqKey(id)).Result()
	if err != nil {
		return record{}, storeErr(err)
	}
	r, ok := parseRecord(id, h)
	if !ok {
		return record{}, errNoRequest
	}
	return r, nil
}

func parseRecord(id string, h map[string]string) (record, bool) {
	if h["status"] == "" || h["sender"] == "" {
		return record{}, false
	}
	ms, _ := strconv.ParseInt(h["received"], 10, 64)
	return record{ID: id, Sender: h["sender"], Masked: h["masked"], DKIM: h["dkim"], Kind: inbound.Kind(h["kind"]),
		Reason: h["reason"], Provider: h["provider"], ReceivedAt: time.UnixMilli(ms).UTC(),
		Excerpt: h["excerpt"], Status: h["status"]}, true
}

// pendingIDs returns the ids of pending requests within the retention,
// oldest first, and forgets the older ones.
func (s *Service) pendingIDs(ctx context.Context) ([]string, error) {
	cutoff := strconv.FormatInt(s.now().Add(-s.cfg.Retention).UnixMilli(), 10)
	pipe := s.rdb.TxPipeline()
	pipe.ZRemRangeByScore(ctx, indexKey, "-inf", "("+cutoff)
	ids := pipe.ZRangeByScore(ctx, indexKey, &redis.ZRangeBy{Min: cutoff, Max: "+inf", Count: MaxList})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	return ids.Val(), nil
}

// loadAll reads the given requests; ids whose record has expired are
// dropped from the index.
func (s *Service) loadAll(ctx context.Context, ids []string) ([]record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, reqKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, storeErr(err)
	}
	var out []record
	var gone []any
	for i, cmd := range cmds {
		r, ok := parseRecord(ids[i], cmd.Val())
		if !ok {
			gone = append(gone, ids[i])
			continue
		}
		out = append(out, r)
	}
	if len(gone) > 0 {
		if err := s.rdb.ZRem(ctx, indexKey, gone...).Err(); err != nil {
			s.log.Warn("expired pending requests not removed from the index", "count", len(gone), "err", err)
		}
	}
	return out, nil
}

// claimScript marks a request as being handled unless another person holds
// it: KEYS req; ARGV now (ms), lease start (ms). Returns -1 for no such
// request, 0 if held, 1 once claimed. It never creates the key.
var claimScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st == 'processing' and tonumber(redis.call('HGET', KEYS[1], 'claimed') or '0') > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'processing', 'claimed', ARGV[1])
return 1
`)

// releaseScript gives a claimed request back: KEYS req.
var releaseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'status', 'pending', 'claimed', '0') end
return 1
`)

// claim takes a request for one person: errNoRequest, or Conflict while
// another holds it.
func (s *Service) claim(ctx context.Context, id string) error {
	now := s.now()
	n, err := claimScript.Run(ctx, s.rdb, []string{reqKey(id)}, now.UnixMilli(), now.Add(-claimLease).UnixMilli()).Int()
	switch {
	case err != nil:
		return storeErr(err)
	case n < 0:
		return errNoRequest
	case n == 0:
		return apperr.New(apperr.Conflict, "someone else is handling this request; try again in a moment")
	}
	return nil
}

// release gives a claimed request back after a failure, so it can be tried
// again; it outlives the caller's context.
func (s *Service) release(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, s.rdb, []string{reqKey(id)}).Err(); err != nil {
		s.log.Warn("pending request not released; it is free again after the lease", "request_id", id, "err", err)
	}
}

// remove deletes a request and its index entry.
func (s *Service) remove(ctx context.Context, id string) error {
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, reqKey(id))
	pipe.ZRem(ctx, indexKey, id)
	if _, err := pipe.Exec(ctx); err != nil {
		return storeErr(err)
	}
	return nil
}

// replayTTL is how long a handled message is remembered: never longer than
// the retention.
func (s *Service) replayTTL() time.Duration { return min(replayFor, s.cfg.Retention) }
