package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/internal/writes"
	"piivault/vault"
)

// Log is the audit trail in Redis.
type Log struct {
	rdb     redis.UniversalClient
	sealer  Sealer
	anchor  AnchorStore // nil: no anchor (tests of the chain alone)
	now     func() time.Time
	timeout time.Duration

	// Group commit: Record queues its entry and waits for it, bounded by
	// its own context; a flusher goroutine (started while the queue is not
	// empty) appends up to maxGroup entries per script call, chained in
	// order, and hands each caller its own result.
	mu       sync.Mutex
	queue    []*pending
	flushing bool

	// cached is the head this process last wrote (written by the flusher
	// only; Begin reads it under mu while no flusher runs):
	// appending onto it saves a read; the script refuses it if another
	// instance has moved the head since, and then the head is read again.
	cached    string
	cachedSeq int64

	// early is the entry whose seal Begin started and which is not yet
	// committed or cancelled: one at a time, and only while nothing else
	// is queued, so the guess at its place in the chain usually holds.
	early *Early
	// guessAfter: Begin makes no guess before then (see guessPause).
	guessAfter time.Time

	// latest is the newest entry this process appended, for the anchor.
	latest      vault.Anchor
	anchorC     chan struct{}
	anchorEvery time.Duration
	// anchored and anchorVer are the anchor this process last read or
	// wrote and its KV version (guarded by anchorMu): the next write
	// goes check-and-set on that version without reading it again; if
	// another instance moved it, the write fails and it is read afresh.
	anchorMu  sync.Mutex
	anchored  vault.Anchor
	anchorVer int

	// replicas, when set, must hold an entry before it is anchored: an
	// anchor ahead of what a promoted replica holds would be a false alarm.
	replicas Replicas

	// archive is the directory of sealed segments ("" for none), each of
	// at most segmentMax entries.
	archive    string
	segmentMax int

	// acksInScript: outbox notes are removed by the append script (see
	// Ack); false on a Redis Cluster.
	acksInScript bool
}

// Replicas waits until Redis replicas hold every write made so far
// (PIIVAULT_REDIS_WAIT).
type Replicas interface {
	Wait(ctx context.Context) error
}

// Option configures a Log.
type Option func(*Log)

// AnchorAfterReplicas makes the anchor wait for r before it moves, so that
// with PIIVAULT_REDIS_WAIT a failover never leaves the anchor ahead of the
// trail. A nil r changes nothing.
func AnchorAfterReplicas(r Replicas) Option {
	return func(l *Log) {
		if r != nil {
			l.replicas = r
		}
	}
}

type pending struct {
	e     Entry
	done  chan error
	taken bool   // in a group being appended (guarded by Log.mu)
	early *Early // its seal may have been started early (see Begin)
	// also queues writes that ride in the round trip of the entry's
	// append (CommitWith); the flusher sends them once and clears it.
	also func(p redis.Pipeliner)
	// alsoRan says also queued its writes on a pipeline that was then
	// sent; set before done, like acked.
	alsoRan bool
	// ack is an outbox note the append script removes with the entry
	// (CommitAcking); acked says it did, set by the flusher before done.
	ack   *Ack
	acked bool
}

// Ack names an outbox note (a member of a Redis list) that records the
// entry for the sweep in case the append is lost: appended and removed by
// one script, there is no moment when the entry is in the trail and its
// note still waits, and no round trip of its own. A Redis Cluster cannot
// run one script over both (they live in different slots): there the
// caller removes the note itself, after the append.
type Ack struct {
	Key   string
	Value []byte
}

// maxGroup bounds the entries appended by one script call.
const maxGroup = 256

// NewLog builds a Log that seals entries with sealer and anchors the trail
// in anchor (nil for none).
func NewLog(rdb redis.UniversalClient, sealer Sealer, anchor AnchorStore, opts ...Option) *Log {
	l := &Log{rdb: rdb, sealer: sealer, anchor: anchor, now: time.Now, timeout: 3 * time.Second,
		anchorC: make(chan struct{}, 1), anchorEvery: DefaultAnchorEvery, segmentMax: SegmentEntries}
	_, cluster := rdb.(*redis.ClusterClient)
	l.acksInScript = !cluster
	for _, o := range opts {
		o(l)
	}
	return l
}

// appendScript appends the entries only if the head is still the one the
// caller chained onto (else false: the caller re-chains and retries), and
// only if none of their events is in the trail already (else the list of
// 1-based positions of those entries: the caller drops them and retries).
// With each appended entry it removes the entry's outbox note, if any.
// KEYS: log, head, then event and note-list keys.  ARGV: genesis head,
// expected head, new head, event memory (ms), then for each entry its
// event-key index (0: none), its JSON, its note-list key index (0: none)
// and the note.
var appendScript = redis.NewScript(`
local head = redis.call('GET', KEYS[2]) or ARGV[1]
if head ~= ARGV[2] then return false end
local dups = {}
local n = 0
for i = 5, #ARGV, 4 do
  n = n + 1
  local k = tonumber(ARGV[i])
  if k > 0 and redis.call('EXISTS', KEYS[2 + k]) == 1 then dups[#dups + 1] = n end
end
if #dups > 0 then return {'dup', unpack(dups)} end
local ids = {}
for i = 5, #ARGV, 4 do
  local k = tonumber(ARGV[i])
  if k > 0 then redis.call('SET', KEYS[2 + k], '1', 'PX', ARGV[4]) end
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[i + 1])
  local a = tonumber(ARGV[i + 2])
  if a > 0 then redis.call('LREM', KEYS[2 + a], 1, ARGV[i + 3]) end
end
redis.call('SET', KEYS[2], ARGV[3])
return ids
`)

// Record appends e to the trail. It fails (StoreUnavailable) rather than
// losing an entry; callers that reveal PII must not reveal without it.
// It waits for its own entry's group at most as long as ctx allows: an
// entry not yet sent when ctx ends is withdrawn; one already sent may
// still land (its Event, when set, keeps a later retry from writing it
// twice). An entry that already has a time (recorded late from an outbox)
// keeps it.
func (l *Log) Record(ctx context.Context, e Entry) error {
	return l.RecordAll(ctx, []Entry{e})
}

// RecordAcking is Record for an entry whose outbox note ack names: the
// note is removed by the same script that appends the entry, and acked
// says so. When acked is false (a Redis Cluster, or the entry was in the
// trail already), the caller removes the note itself.
func (l *Log) RecordAcking(ctx context.Context, e Entry, ack Ack) (acked bool, err error) {
	p := &pending{e: e, done: make(chan error, 1), ack: &ack}
	return l.appendAcking(ctx, p)
}

// appendAcking appends p and reports whether its note was removed with it.
func (l *Log) appendAcking(ctx context.Context, p *pending) (bool, error) {
	if _, err := l.append(ctx, []*pending{p}); err != nil {
		return false, err
	}
	return p.acked, nil // set before p.done was sent, which append received
}

// RecordAll appends entries together (one group commit for all of them,
// in order) and returns the first error. Like Record, it waits no longer
// than ctx allows.
func (l *Log) RecordAll(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ps := make([]*pending, len(entries))
	for i, e := range entries {
		ps[i] = &pending{e: e, done: make(chan error, 1)}
	}
	_, err := l.append(ctx, ps)
	return err
}

// append appends ps and waits for their group, no longer than ctx
// allows. When nobody is appending, the caller appends its own entries
// itself, at once, bounded by its ctx (and the trail's timeout): no
// hand-off to a flusher goroutine on the way in or back; entries that
// queued meanwhile go to a flusher after. Otherwise ps queue for the
// flusher. delivered says their group answered: their results, and what
// the append wrote into them (acked, alsoRan), may be read; an error
// without it means ctx ended first (an entry already sent may still land).
func (l *Log) append(ctx context.Context, ps []*pending) (delivered bool, err error) {
	// Marked before the append: an entry that may have landed is one the
	// answer must wait for, whatever the request's method.
	writes.Mark(ctx)
	l.mu.Lock()
	for _, p := range ps {
		if p.e.Time.IsZero() {
			p.e.Time = l.now().UTC()
		}
	}
	if !l.flushing && len(ps) <= maxGroup {
		l.flushing = true // the queue is empty whenever nobody flushes
		for _, p := range ps {
			p.taken = true
		}
		l.mu.Unlock()
		if !l.appendAndAnswer(ctx, ps) {
			go l.flush()
		}
	} else {
		l.queue = append(l.queue, ps...)
		if !l.flushing {
			l.flushing = true
			go l.flush()
		}
		l.mu.Unlock()
	}
	var first error
	for _, p := range ps {
		var err error
		select {
		case err = <-p.done: // answered already (the caller's own group): ctx is moot
		default:
			select {
			case err = <-p.done:
			case <-ctx.Done():
				l.mu.Lock()
				for _, q := range ps {
					if i := slices.Index(l.queue, q); i >= 0 && !q.taken {
						l.queue = slices.Delete(l.queue, i, i+1)
					}
				}
				l.mu.Unlock()
				return false, apperr.Wrap(apperr.StoreUnavailable, ctx.Err(), "the audit trail did not answer in time")
			}
		}
		if first == nil {
			first = err
		}
	}
	return true, first
}

// flush appends queued entries, a group at a time, until the queue is
// empty.
func (l *Log) flush() {
	for {
		l.mu.Lock()
		n := min(len(l.queue), maxGroup)
		group := slices.Clone(l.queue[:n])
		l.queue = slices.Delete(l.queue, 0, n)
		for _, g := range group {
			g.taken = true
		}
		l.mu.Unlock()
		if l.appendAndAnswer(context.Background(), group) {
			return
		}
	}
}

// errAppendPanicked answers a group whose append panicked.
var errAppendPanicked = errors.New("audit: the append failed unexpectedly")

// appendAndAnswer appends group (bounded by ctx and the trail's timeout)
// and answers its callers; it reports whether the queue is then empty,
// which ends the flushing spell. The trail is marked idle before the
// callers are answered, so a caller's next entry (a request right after
// its answer) finds it idle and can be sealed early (Begin). Should the
// append panic (in a caller's also, the sealer), the group fails and the
// trail goes on, rather than wait for a flusher that is gone; the panic
// goes on too.
func (l *Log) appendAndAnswer(ctx context.Context, group []*pending) (idle bool) {
	var results []error
	defer func() {
		if results != nil {
			return
		}
		failed := make([]error, len(group))
		for i := range failed {
			failed[i] = errAppendPanicked
		}
		if !l.answer(group, failed) {
			go l.flush()
		}
	}()
	results = l.appendGroup(ctx, group)
	return l.answer(group, results)
}

// answer ends the flushing spell if the queue is empty, then hands each
// entry of group its result; it reports whether the spell ended.
func (l *Log) answer(group []*pending, results []error) (idle bool) {
	l.mu.Lock()
	idle = len(l.queue) == 0
	if idle {
		l.flushing = false
	}
	l.mu.Unlock()
	for i, g := range group {
		g.done <- results[i]
	}
	return idle
}

// appendGroup chains and appends entries in one round trip, retrying when
// another instance moved the head first, and returns each entry's result.
func (l *Log) appendGroup(parent context.Context, group []*pending) []error {
	results := make([]error, len(group))
	group = slices.Clone(group) // shrunk below; the caller's stays whole
	ctx, cancel := context.WithTimeout(parent, l.timeout)
	defer cancel()
	at := make(map[*pending]int, len(group))
	for i, g := range group {
		at[g] = i
	}
	for attempt := 0; attempt < 50 && len(group) > 0; attempt++ {
		ids, dups, err := l.tryAppend(ctx, group, attempt > 0)
		switch {
		case err != nil:
			for _, g := range group {
				results[at[g]] = err
			}
			return results
		case dups != nil:
			// Already in the trail: done, and left out of this chain.
			kept := group[:0]
			for i, g := range group {
				if !slices.Contains(dups, i+1) {
					kept = append(kept, g)
				}
			}
			group = kept
		case ids == nil:
			// another instance appended first: chain onto theirs
		default:
			for _, g := range group {
				g.acked = g.ack != nil && l.acksInScript
			}
			last := group[len(group)-1].e
			l.mu.Lock()
			l.latest = vault.Anchor{Seq: last.Seq, Hash: last.Hash, ID: ids[len(ids)-1]}
			l.mu.Unlock()
			select {
			case l.anchorC <- struct{}{}:
			default:
			}
			return results
		}
	}
	for _, g := range group {
		results[at[g]] = apperr.New(apperr.StoreUnavailable, "the audit trail is too busy")
	}
	return results
}

// tryAppend makes one attempt. It returns the new stream ids; or dups, the
// 1-based positions of entries whose event is in the trail already; or
// neither when the head moved.
func (l *Log) tryAppend(ctx context.Context, group []*pending, reread bool) (ids []string, dups []int, err error) {
	head, seq := l.cached, l.cachedSeq
	if head == "" || reread {
		if head, seq, err = l.head(ctx); err != nil {
			return nil, nil, err
		}
	}
	keys := []string{logKey, headKey}
	args := []any{headValue(0, genesis), headValue(seq, head), "", eventMemory.Milliseconds()}
	prev := head
	hashes := make([][]byte, len(group))
	for i, g := range group {
		seq++
		g.e.Prev, g.e.Seq, g.e.Seal = prev, seq, ""
		g.e.Hash = g.e.digest()
		prev = g.e.Hash
		hashes[i] = []byte(g.e.Hash)
	}
	seals, err := l.seals(ctx, group, hashes)
	if err != nil {
		return nil, nil, err
	}
	for i, g := range group {
		if seals[i].Err != nil {
			return nil, nil, fmt.Errorf("seal audit entry: %w", seals[i].Err)
		}
		g.e.Seal = seals[i].Value
		body, err := json.Marshal(g.e)
		if err != nil {
			return nil, nil, fmt.Errorf("audit entry: %w", err)
		}
		k := 0
		if g.e.Event != "" {
			keys = append(keys, eventPrefix+g.e.Event)
			k = len(keys) - 2
		}
		a, note := 0, []byte(nil)
		if g.ack != nil && l.acksInScript {
			keys = append(keys, g.ack.Key)
			a, note = len(keys)-2, g.ack.Value
		}
		args = append(args, k, body, a, note)
	}
	args[2] = headValue(seq, prev)
	res, err := l.runAppend(ctx, group, keys, args).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil, nil
	}
	if err != nil {
		l.cached = ""
		return nil, nil, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	if len(res) > 0 && res[0] == "dup" {
		for _, v := range res[1:] {
			if n, ok := v.(int64); ok {
				dups = append(dups, int(n))
			}
		}
		return nil, dups, nil
	}
	l.cached, l.cachedSeq = prev, seq
	if len(res) != len(group) {
		return nil, nil, fmt.Errorf("audit: %d ids for %d entries", len(res), len(group))
	}
	for _, v := range res {
		id, _ := v.(string)
		ids = append(ids, id)
	}
	return ids, nil, nil
}

// runAppend runs the append script. Entries committed with CommitWith
// have their writes sent in the same round trip, after the script, once:
// the first attempt that reaches Redis carries them, whatever the script
// answers (an entry's writes are never sent before it was sealed).
func (l *Log) runAppend(ctx context.Context, group []*pending, keys []string, args []any) *redis.Cmd {
	var also []*pending
	for _, g := range group {
		if g.also != nil {
			also = append(also, g)
		}
	}
	if len(also) == 0 {
		return appendScript.Run(ctx, l.rdb, keys, args...)
	}
	pipe := l.rdb.Pipeline()
	cmd := appendScript.EvalSha(ctx, pipe, keys, args...)
	for _, g := range also {
		g.also(pipe)
		g.also, g.alsoRan = nil, true
	}
	_, _ = pipe.Exec(ctx) // cmd carries the script's own answer
	if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return appendScript.Eval(ctx, l.rdb, keys, args...)
	}
	return cmd
}

// seals seals the group's hashes: an entry whose seal Begin started for
// the very hash it now has takes that one, the rest go to Vault together.
func (l *Log) seals(ctx context.Context, group []*pending, hashes [][]byte) ([]vault.Result, error) {
	out := make([]vault.Result, len(group))
	var ask [][]byte
	var at []int
	for i, g := range group {
		r, ok := g.early.sealOf(ctx, g.e.Hash)
		g.early.count(ok)
		if ok {
			out[i] = r
			continue
		}
		ask, at = append(ask, hashes[i]), append(at, i)
	}
	if len(ask) == 0 {
		return out, nil
	}
	res, err := l.sealer.Seal(ctx, ask)
	if err == nil && len(res) != len(ask) {
		err = fmt.Errorf("%d seals for %d entries", len(res), len(ask))
	}
	if err != nil {
		return nil, fmt.Errorf("seal audit entries: %w", err)
	}
	for j, i := range at {
		out[i] = res[j]
	}
	return out, nil
}

// head returns the newest entry's hash and sequence number, from the head
// key: the stream itself may have been tampered with, the head moves only here.
func (l *Log) head(ctx context.Context) (string, int64, error) {
	hash, seq, _, err := l.readHead(ctx)
	return hash, seq, err
}

// readHead is head that also says whether the head key exists.
func (l *Log) readHead(ctx context.Context) (string, int64, bool, error) {
	v, err := l.rdb.Get(ctx, headKey).Result()
	if errors.Is(err, redis.Nil) {
		return genesis, 0, false, nil
	}
	if err != nil {
		return "", 0, false, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	seqStr, hash, ok := strings.Cut(v, ":")
	seq, perr := strconv.ParseInt(seqStr, 10, 64)
	if !ok || perr != nil {
		return "", 0, true, fmt.Errorf("audit head %q is malformed", v)
	}
	return hash, seq, true, nil
}

func headValue(seq int64, hash string) string { return strconv.FormatInt(seq, 10) + ":" + hash }
