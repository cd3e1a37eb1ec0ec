package orders

import (
	"cmp"
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

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
		Label:      labelOfRef(m),
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

// Held is a held order as the fulfillment queue and the sweep see it.
type Held struct {
	OrderID   string    `json:"order_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Label is set when a postage label was bought (the queue's "labelled").
	Label *PostageLabel `json:"label,omitempty"`
}

// Due returns up to limit held orders whose expiry is at or before t, from
// every shard, soonest first. Its cost grows with the due orders only.
func (s *Store) Due(ctx context.Context, t time.Time, limit int) ([]Held, error) {
	return s.scan(ctx, "-inf", strconv.FormatInt(t.UnixMilli(), 10), limit)
}

// DueEach returns up to limit held orders of every shard whose expiry is
// at or before t, in no particular order, and whether any shard has more.
// The sweep needs no global order, so nothing is read only to be dropped.
func (s *Store) DueEach(ctx context.Context, t time.Time, limit int) ([]Held, bool, error) {
	max := strconv.FormatInt(t.UnixMilli(), 10)
	cmds, err := perShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.ZSliceCmd {
		return p.ZRangeByScoreWithScores(ctx, k.expiry, &redis.ZRangeBy{Min: "-inf", Max: max, Count: int64(limit)})
	})
	if err != nil {
		return nil, false, err
	}
	var out []Held
	more := false
	for _, c := range cmds {
		zs := c.Val()
		more = more || len(zs) == limit
		for _, z := range zs {
			id, _ := z.Member.(string)
			out = append(out, Held{OrderID: id, ExpiresAt: time.UnixMilli(int64(z.Score)).UTC()})
		}
	}
	return out, more, nil
}

// QueueCursor is the page cursor after h in the oldest-first queue.
func QueueCursor(h Held) string {
	return strconv.FormatInt(h.ExpiresAt.UnixMilli(), 10) + ":" + h.OrderID
}

// ParseQueueCursor reads a QueueCursor for Oldest; empty starts at now
// (orders already past retention wait for the sweep and have nothing left
// to ship to). A malformed one is a Validation error on "after".
func ParseQueueCursor(v string, now time.Time) (int64, string, error) {
	if v == "" {
		return now.UnixMilli(), "", nil
	}
	ms, id, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || (id != "" && !ValidOrderID(id)) {
		return 0, "", &apperr.Error{Code: apperr.Validation, Message: "after is not a cursor from this queue", Fields: []string{"after"}}
	}
	return n, id, nil
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

// fillCreated reads the creation times and labels of held orders from their references.
func (s *Store) fillCreated(ctx context.Context, hs []Held) error {
	if len(hs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(hs))
	for i, h := range hs {
		cmds[i] = pipe.HMGet(ctx, keysOf(h.OrderID).ref, "created_at", "label_carrier", "label_tracking_code", "label_bought_at")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return storeErr(err)
	}
	for i, c := range cmds {
		v := c.Val()
		m := map[string]string{}
		for j, f := range []string{"created_at", "label_carrier", "label_tracking_code", "label_bought_at"} {
			m[f], _ = v[j].(string)
		}
		hs[i].CreatedAt = msTime(m["created_at"])
		hs[i].Label = labelOfRef(m)
	}
	return nil
}

func (s *Store) scan(ctx context.Context, min, max string, limit int) ([]Held, error) {
	cmds, err := perShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.ZSliceCmd {
		return p.ZRangeByScoreWithScores(ctx, k.expiry, &redis.ZRangeBy{Min: min, Max: max, Count: int64(limit)})
	})
	if err != nil {
		return nil, err
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
	return countPerShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.IntCmd {
		return p.ZCard(ctx, k.expiry)
	})
}

// OldestKeyVersion returns the lowest transit key version any held order's
// ciphertext was made with (0 when nothing is held). Orders whose
// ciphertext Redis already expired count until the sweep stamps them: the
// answer errs on the side of keeping a version.
func (s *Store) OldestKeyVersion(ctx context.Context) (int, error) {
	return s.oldestVersion(ctx, func(k shardKey) string { return k.keyver })
}

// OldestMaskedKeyVersion is OldestKeyVersion for the masked copies' key.
func (s *Store) OldestMaskedKeyVersion(ctx context.Context) (int, error) {
	return s.oldestVersion(ctx, func(k shardKey) string { return k.keyverMasked })
}

func (s *Store) oldestVersion(ctx context.Context, index func(shardKey) string) (int, error) {
	cmds, err := perShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.ZSliceCmd {
		return p.ZRangeWithScores(ctx, index(k), 0, 0)
	})
	if err != nil {
		return 0, err
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

// FindByShop returns the held orders of a Shopify shop.
func (s *Store) FindByShop(ctx context.Context, domain string) ([]string, error) {
	if !ValidShopDomain(domain) {
		return nil, nil
	}
	return s.members(ctx, "shop:"+domain)
}

// members unions one index set over every shard.
func (s *Store) members(ctx context.Context, index string) ([]string, error) {
	return idsPerShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.StringSliceCmd {
		return p.SMembers(ctx, k.tag+index)
	})
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

// Overdue counts held orders whose deadline passed before t: references the
// sweep has not stamped yet.
func (s *Store) Overdue(ctx context.Context, t time.Time) (int64, error) {
	before := "(" + strconv.FormatInt(t.UnixMilli(), 10)
	return countPerShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.IntCmd {
		return p.ZCount(ctx, k.expiry, "-inf", before)
	})
}

// ExpiringBetween counts held orders for each window [edges[i], edges[i+1]),
// by deadline: len(edges)-1 counts, one ZCOUNT per shard and window.
func (s *Store) ExpiringBetween(ctx context.Context, edges []time.Time) ([]int64, error) {
	windows := len(edges) - 1
	// One pipeline: per shard, a ZCOUNT per window.
	cmds, err := perShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) []*redis.IntCmd {
		var counts []*redis.IntCmd
		for b := 0; b < windows; b++ {
			lo, hi := strconv.FormatInt(edges[b].UnixMilli(), 10), "("+strconv.FormatInt(edges[b+1].UnixMilli(), 10)
			counts = append(counts, p.ZCount(ctx, k.expiry, lo, hi))
		}
		return counts
	})
	if err != nil {
		return nil, err
	}
	out := make([]int64, windows)
	for _, c := range cmds {
		for b, w := range c {
			out[b] += w.Val()
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
	return s.eachNode(ctx, scan)
}
