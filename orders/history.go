package orders

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/writes"
)

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
	min := "(" + strconv.FormatInt(s.now().UnixMilli(), 10)
	return idsPerShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.StringSliceCmd {
		return p.ZRangeByScore(ctx, k.tag+"mail:"+bidx, &redis.ZRangeBy{Min: min, Max: "+inf"})
	})
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

// Revealed is one reveal as the access report tells it: when, by which
// role, for which reason; never who.
type Revealed struct {
	Time   time.Time `json:"time"`
	Role   string    `json:"role"`
	Reason string    `json:"reason"`
	// DisclosedTo names who received the plaintext when it was not the
	// person ("easypost": sent to the carrier for a label).
	DisclosedTo string `json:"disclosed_to,omitempty"`
}

// NoteReveals keeps the reveals of orders (same time, role and reason;
// disclosedTo as in Revealed, or "") for their access reports.
func (s *Store) NoteReveals(ctx context.Context, ids []string, at time.Time, role, reason, disclosedTo string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	noted := s.noteRevealsIn(ctx, pipe, ids, at, role, reason, disclosedTo)
	_, _ = pipe.Exec(ctx) // each command's own error is read by noted
	return noted()
}

// noteRevealsIn queues NoteReveals's writes on p; the returned function,
// called after p ran, answers as NoteReveals does.
func (s *Store) noteRevealsIn(ctx context.Context, p redis.Pipeliner, ids []string, at time.Time, role, reason, disclosedTo string) func() error {
	writes.Mark(ctx)
	v := strconv.FormatInt(at.UnixMilli(), 10) + " " + role + " " + reason
	if disclosedTo != "" {
		v += " " + disclosedTo
	}
	cmds := make([]redis.Cmder, 0, 2*len(ids))
	for _, id := range ids {
		k := keysOf(id).reveals
		cmds = append(cmds, p.RPush(ctx, k, v), p.PExpire(ctx, k, HistoryFor))
	}
	return func() error {
		for _, c := range cmds {
			if err := c.Err(); err != nil {
				return storeErr(err)
			}
		}
		return nil
	}
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
			if len(f) != 3 && len(f) != 4 {
				continue
			}
			r := Revealed{Time: msTime(f[0]), Role: f[1], Reason: f[2]}
			if len(f) == 4 {
				r.DisclosedTo = f[3]
			}
			out[ids[i]] = append(out[ids[i]], r)
		}
	}
	return out, nil
}
