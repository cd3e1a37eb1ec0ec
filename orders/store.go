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
//	piivault:{sNN}:label:<order>   hash  the state of the order's postage purchase (labels.go); no PII
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
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/internal/redispipe"
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
	pipe      *redispipe.Shared // a request's reads and writes, sent with other requests'
	sealer    Sealer
	opener    Opener
	trail     Trail
	retention time.Duration
	timeout   time.Duration
	now       func() time.Time
	acks      *noteAcker
}

// Config holds a Store's settings.
type Config struct {
	Retention time.Duration // how long PII is kept; at most MaxRetention
	Timeout   time.Duration // bound on each Redis round trip group (default 3s)
	Now       func() time.Time
	// Pipe shares the hot paths' round trips with other requests' (serve
	// passes the one its middleware uses); nil: the store makes its own.
	Pipe *redispipe.Shared
}

// NewStore builds a Store whose every change is recorded in trail.
// Retention above MaxRetention is an error.
func NewStore(rdb redis.UniversalClient, sealer Sealer, opener Opener, trail Trail, cfg Config) (*Store, error) {
	if cfg.Retention <= 0 || cfg.Retention > MaxRetention {
		return nil, fmt.Errorf("orders: retention %s is outside (0, %s]", cfg.Retention, MaxRetention)
	}
	if trail == nil {
		return nil, fmt.Errorf("orders: a store needs an audit trail")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Pipe == nil {
		cfg.Pipe = redispipe.New(rdb, redispipe.Config{Timeout: cfg.Timeout})
	}
	s := &Store{rdb: rdb, pipe: cfg.Pipe, sealer: sealer, opener: opener, trail: trail, retention: cfg.Retention, timeout: cfg.Timeout, now: cfg.Now}
	s.acks = &noteAcker{s: s}
	return s, nil
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

// shardKey names a shard's index keys (the per-order ones are in keysOf).
type shardKey struct {
	expiry, outbox, keyver, keyverMasked string
	tag                                  string // the shard's prefix, for keys named by a value (mail:<bidx>, payref:<ref>)
}

func shardKeys(i int) shardKey {
	t := tag(i)
	return shardKey{tag: t, expiry: t + "expiry", outbox: t + "outbox:notes", keyver: t + "keyver", keyverMasked: t + "keyver:masked"}
}

// idsPerShard runs cmd on every shard and returns the ids they name, sorted.
func idsPerShard(ctx context.Context, s *Store, cmd func(context.Context, redis.Pipeliner, shardKey) *redis.StringSliceCmd) ([]string, error) {
	cmds, err := perShard(ctx, s, cmd)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	sort.Strings(ids)
	return ids, nil
}

// countPerShard runs cmd on every shard and sums the counts.
func countPerShard(ctx context.Context, s *Store, cmd func(context.Context, redis.Pipeliner, shardKey) *redis.IntCmd) (int64, error) {
	cmds, err := perShard(ctx, s, cmd)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// perShard sends one command per shard in one pipeline (bounded by the
// store's timeout) and returns them in shard order: every cross-order read
// visits the shards this way. A missing key is not an error.
func perShard[C any](ctx context.Context, s *Store, cmd func(ctx context.Context, p redis.Pipeliner, k shardKey) C) ([]C, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]C, Shards)
	for i := range cmds {
		cmds[i] = cmd(ctx, pipe, shardKeys(i))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeErr(err)
	}
	return cmds, nil
}

type keys struct {
	pii, ref, tomb, reveals, label, expiry, keyver, keyverMasked, outbox, mailPrefix, mailOf, legacyEmailPrefix, payrefPrefix, shopPrefix string
}

func keysOf(orderID string) keys {
	sk := shardKeys(ShardOf(orderID))
	t := sk.tag
	return keys{pii: t + "pii:" + orderID, ref: t + "ref:" + orderID, tomb: t + "tomb:" + orderID,
		reveals: t + "reveals:" + orderID, label: t + "label:" + orderID, expiry: sk.expiry, mailPrefix: t + "mail:", mailOf: t + "mailof:" + orderID,
		legacyEmailPrefix: t + "email:", keyver: sk.keyver, keyverMasked: sk.keyverMasked, outbox: sk.outbox,
		payrefPrefix: t + "payref:", shopPrefix: t + "shop:"}
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

// storeErr translates a Redis error: anything but redis.Nil means the store
// is out of reach (down, slow, or refusing writes).
func storeErr(err error) error {
	if errors.Is(err, redis.Nil) {
		return apperr.Wrap(apperr.NotFound, err, "not found")
	}
	return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
}

// readErr is the first failure among reads sent together, as a store
// error; an absent key (redis.Nil) is an answer, not a failure.
func readErr(cmds ...redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return storeErr(err)
		}
	}
	return nil
}

// runShared runs script in a pipeline shared with other requests' (one
// round trip for all of them), and once more on its own when Redis lost
// the script (NOSCRIPT: nothing ran).
func (s *Store) runShared(ctx context.Context, script *redis.Script, keys []string, args []any) *redis.Cmd {
	var cmd *redis.Cmd
	if err := s.pipe.Do(ctx, func(p redis.Pipeliner) { cmd = script.EvalSha(ctx, p, keys, args...) }); err != nil {
		cmd = redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return script.Eval(ctx, s.rdb, keys, args...)
	}
	return cmd
}
