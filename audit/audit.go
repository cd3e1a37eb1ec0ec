// Package audit owns the append-only, hash-chained audit trail: who
// revealed, purged, logged in, changed staff or clients, and from which IP.
// Entries never hold PII: actors are staff usernames, client names,
// `webhook:<provider>` or `system`; orders are named by id.
//
//	piivault:{audit}:log          stream  one entry per event, kept forever
//	piivault:{audit}:head         string  "<seq>:<hash>" of the newest entry
//	piivault:{audit}:ev:<event>   string  an event already in the trail (3 days): a store or purge
//	                                      recorded again from its outbox note is not written twice
//
// Each entry carries the SHA-256 of the previous entry (prev) and its own
// (hash, over every other field). Editing, deleting or reordering an entry
// breaks the chain at that point, and Verify reports the first break. Each
// hash is also sealed by Vault (a transit HMAC with a key that never leaves
// Vault), so someone who can write to Redis cannot rebuild a consistent
// chain after editing it.
//
// Cutting the newest entries (or the whole trail) leaves a consistent
// chain behind, so the head is anchored outside Redis as well: after every
// group commit the service writes the newest entry's seq, hash and id to
// Vault's KV (check-and-set, writable by the service identity only), and
// Verify holds the trail to that anchor. Only the entries appended since the
// last anchor write (about one Vault round trip) could vanish unnoticed.
package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/internal/writes"
	"piivault/vault"
)

const (
	logKey  = "piivault:{audit}:log"
	headKey = "piivault:{audit}:head"
	// eventPrefix keys remember events already appended, so a store or
	// purge recorded from its outbox note after its first append was in
	// doubt (the caller gave up waiting) is not written twice.
	eventPrefix = "piivault:{audit}:ev:"
	eventMemory = 3 * 24 * time.Hour
	// genesis is the prev of the first entry.
	genesis = "0000000000000000000000000000000000000000000000000000000000000000"
)

// Actions recorded in the trail.
const (
	ActionStore           = "order.store"
	ActionReveal          = "order.reveal"
	ActionPurge           = "order.purge"
	ActionLogin           = "staff.login"
	ActionLoginFailed     = "staff.login_failed"
	ActionLogout          = "staff.logout"
	ActionStaffAdd        = "staff.add"
	ActionStaffRemove     = "staff.remove"
	ActionStaffSuspend    = "staff.suspend"
	ActionStaffUnsuspend  = "staff.unsuspend"
	ActionStaffUnlock     = "staff.unlock"
	ActionClientAdd       = "client.add"
	ActionClientRevoke    = "client.revoke"
	ActionDeletionRequest = "deletion_request"
	ActionWebhook         = "webhook"
	ActionDataRequest     = "webhook.data_request"
	ActionWebhookConflict = "webhook.conflict"
	ActionTrackingLink    = "order.tracking_link"
	ActionBlock           = "ip.block"
	ActionUnblock         = "ip.unblock"
	ActionKeyRotate       = "key.rotate"
	ActionKeyTrim         = "key.trim"
	ActionLockdown        = "lockdown"
	ActionAccessRequest   = "access_request"
	ActionExport          = "export.refs"
)

// Entry is one audit event.
type Entry struct {
	ID      string            `json:"id,omitempty"` // stream id, set when stored
	Seq     int64             `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	OrderID string            `json:"order_id,omitempty"`
	IP      string            `json:"ip,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
	// Event identifies one event across retries (stores and purges, whose
	// record can also come from an outbox note); empty for the rest.
	Event string `json:"event,omitempty"`
	Prev  string `json:"prev"`
	Hash  string `json:"hash"`
	Seal  string `json:"seal,omitempty"` // Vault's HMAC of Hash
}

// Sealer seals entry hashes and checks seals (vault.Client).
type Sealer interface {
	Seal(ctx context.Context, inputs [][]byte) ([]vault.Result, error)
	VerifySeals(ctx context.Context, inputs [][]byte, seals []string) ([]bool, error)
}

// digest is the entry's hash over every field but ID and Hash, in a fixed form.
func (e Entry) digest() string {
	keys := make([]string, 0, len(e.Detail))
	for k := range e.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "seq=%d\ntime=%s\nactor=%q\naction=%q\norder=%q\nip=%q\n",
		e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.OrderID, e.IP)
	for _, k := range keys {
		fmt.Fprintf(&b, "detail.%q=%q\n", k, e.Detail[k])
	}
	if e.Event != "" {
		fmt.Fprintf(&b, "event=%q\n", e.Event)
	}
	fmt.Fprintf(&b, "prev=%s\n", e.Prev)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// AnchorStore keeps the trail's anchor outside Redis (vault.Client).
type AnchorStore interface {
	ReadAnchor(ctx context.Context) (vault.Anchor, int, error)
	WriteAnchor(ctx context.Context, a vault.Anchor, cas int) error
}

// NewEventID returns a fresh Entry.Event.
func NewEventID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

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

	// cached is the head this process last wrote (used by the flusher only):
	// appending onto it saves a read; the script refuses it if another
	// instance has moved the head since, and then the head is read again.
	cached    string
	cachedSeq int64

	// latest is the newest entry this process appended, for the anchor.
	latest  vault.Anchor
	anchorC chan struct{}
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
}

// Replicas waits until Redis replicas hold every write made so far
// (PIIVAULT_REDIS_WAIT).
type Replicas interface {
	Wait(ctx context.Context) error
}

// AnchorAfterReplicas makes the anchor wait for r before it moves, so that
// with PIIVAULT_REDIS_WAIT a failover never leaves the anchor ahead of the
// trail.
func (l *Log) AnchorAfterReplicas(r Replicas) { l.replicas = r }

type pending struct {
	e     Entry
	done  chan error
	taken bool // in a group being appended (guarded by Log.mu)
}

// maxGroup bounds the entries appended by one script call.
const maxGroup = 256

// NewLog builds a Log that seals entries with sealer and anchors the trail
// in anchor (nil for none).
func NewLog(rdb redis.UniversalClient, sealer Sealer, anchor AnchorStore) *Log {
	return &Log{rdb: rdb, sealer: sealer, anchor: anchor, now: time.Now, timeout: 3 * time.Second,
		anchorC: make(chan struct{}, 1)}
}

// appendScript appends the entries only if the head is still the one the
// caller chained onto (else false: the caller re-chains and retries), and
// only if none of their events is in the trail already (else the list of
// 1-based positions of those entries: the caller drops them and retries).
// KEYS: log, head, event keys...  ARGV: genesis head, expected head, new
// head, event-key count, then for each entry its event-key index (0: none)
// and its JSON.
var appendScript = redis.NewScript(`
local head = redis.call('GET', KEYS[2]) or ARGV[1]
if head ~= ARGV[2] then return false end
local dups = {}
local n = 0
for i = 5, #ARGV, 2 do
  n = n + 1
  local k = tonumber(ARGV[i])
  if k > 0 and redis.call('EXISTS', KEYS[2 + k]) == 1 then dups[#dups + 1] = n end
end
if #dups > 0 then return {'dup', unpack(dups)} end
local ids = {}
for i = 5, #ARGV, 2 do
  local k = tonumber(ARGV[i])
  if k > 0 then redis.call('SET', KEYS[2 + k], '1', 'PX', ARGV[4]) end
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[i + 1])
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

// RecordAll appends entries together (one group commit for all of them,
// in order) and returns the first error. Like Record, it waits no longer
// than ctx allows.
func (l *Log) RecordAll(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	// Marked before the append: an entry that may have landed is one the
	// answer must wait for, whatever the request's method.
	writes.Mark(ctx)
	ps := make([]*pending, len(entries))
	l.mu.Lock()
	for i, e := range entries {
		if e.Time.IsZero() {
			e.Time = l.now().UTC()
		}
		ps[i] = &pending{e: e, done: make(chan error, 1)}
	}
	l.queue = append(l.queue, ps...)
	if !l.flushing {
		l.flushing = true
		go l.flush()
	}
	l.mu.Unlock()
	var first error
	for _, p := range ps {
		select {
		case err := <-p.done:
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			l.mu.Lock()
			for _, q := range ps {
				if i := slices.Index(l.queue, q); i >= 0 && !q.taken {
					l.queue = slices.Delete(l.queue, i, i+1)
				}
			}
			l.mu.Unlock()
			return apperr.Wrap(apperr.StoreUnavailable, ctx.Err(), "the audit trail did not answer in time")
		}
	}
	return first
}

// flush appends queued entries, a group at a time, until the queue is empty.
func (l *Log) flush() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.flushing = false
			l.mu.Unlock()
			return
		}
		n := min(len(l.queue), maxGroup)
		group := slices.Clone(l.queue[:n])
		l.queue = slices.Delete(l.queue, 0, n)
		for _, g := range group {
			g.taken = true
		}
		l.mu.Unlock()
		l.appendGroup(group)
	}
}

// appendGroup chains and appends entries in one round trip, retrying when
// another instance moved the head first, and answers every entry's caller.
func (l *Log) appendGroup(group []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	for attempt := 0; attempt < 50 && len(group) > 0; attempt++ {
		ids, dups, err := l.tryAppend(ctx, group, attempt > 0)
		switch {
		case err != nil:
			for _, g := range group {
				g.done <- err
			}
			return
		case dups != nil:
			// Already in the trail: done, and left out of this chain.
			kept := group[:0]
			for i, g := range group {
				if slices.Contains(dups, i+1) {
					g.done <- nil
				} else {
					kept = append(kept, g)
				}
			}
			group = kept
		case ids == nil:
			// another instance appended first: chain onto theirs
		default:
			last := group[len(group)-1].e
			l.mu.Lock()
			l.latest = vault.Anchor{Seq: last.Seq, Hash: last.Hash, ID: ids[len(ids)-1]}
			l.mu.Unlock()
			select {
			case l.anchorC <- struct{}{}:
			default:
			}
			for _, g := range group {
				g.done <- nil
			}
			return
		}
	}
	for _, g := range group {
		g.done <- apperr.New(apperr.StoreUnavailable, "the audit trail is too busy")
	}
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
	seals, err := l.sealer.Seal(ctx, hashes)
	if err != nil {
		return nil, nil, fmt.Errorf("seal audit entries: %w", err)
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
		args = append(args, k, body)
	}
	args[2] = headValue(seq, prev)
	res, err := appendScript.Run(ctx, l.rdb, keys, args...).Slice()
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

// RunAnchor keeps the anchor in Vault up with what this process appends,
// until ctx ends. A trail that no longer holds the anchored entry (cut,
// rebuilt, or lost in a Redis failover) is never anchored over: the anchor
// stays where it is, so Verify keeps reporting it, and onProblem is told.
func (l *Log) RunAnchor(ctx context.Context, log *slog.Logger, onProblem func(text string)) {
	if l.anchor == nil {
		return
	}
	reported := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.anchorC:
		}
		err := l.Anchor(ctx)
		switch {
		case errors.Is(err, ErrDiverged):
			if !reported {
				log.Error("audit trail does not hold its anchored entry", "err", err)
				onProblem("piivault: the audit trail no longer holds the entry anchored in Vault: " +
					"entries were removed or lost (a Redis failover?). Run `piivault audit verify`.")
				reported = true
			}
		case err != nil:
			log.Warn("audit anchor not advanced", "err", err)
		default:
			reported = false
		}
	}
}

// ErrDiverged means the trail in Redis no longer holds the anchored entry.
var ErrDiverged = errors.New("the audit trail does not hold the entry anchored in Vault")

// Anchor moves the anchor in Vault up to the newest entry this process
// appended, if it is ahead of it. Commands that append and exit call it
// before they return; serve's RunAnchor calls it after every group commit.
func (l *Log) Anchor(ctx context.Context) error {
	if l.anchor == nil {
		return nil
	}
	l.mu.Lock()
	target := l.latest
	l.mu.Unlock()
	if target.Seq == 0 {
		return nil
	}
	if l.replicas != nil {
		if err := l.replicas.Wait(ctx); err != nil {
			return fmt.Errorf("audit anchor waits for Redis replicas: %w", err)
		}
	}
	l.anchorMu.Lock()
	defer l.anchorMu.Unlock()
	cur, version, known := l.anchored, l.anchorVer, l.anchorVer > 0
	for attempt := 0; attempt < 10; attempt++ {
		if !known {
			var err error
			if cur, version, err = l.anchor.ReadAnchor(ctx); err != nil {
				return err
			}
		}
		if cur.Seq >= target.Seq {
			l.anchored, l.anchorVer = cur, version
			return nil
		}
		if cur.Seq > 0 {
			e, ok, err := l.entryAt(ctx, cur.ID)
			if err != nil {
				return err
			}
			if !ok || e.Seq != cur.Seq || e.Hash != cur.Hash {
				l.anchorVer = 0 // read it again next time
				return fmt.Errorf("%w (entry %d)", ErrDiverged, cur.Seq)
			}
		}
		err := l.anchor.WriteAnchor(ctx, target, version)
		if errors.Is(err, vault.ErrAnchorMoved) {
			known = false
			continue
		}
		if err != nil {
			l.anchorVer = 0
			return err
		}
		l.anchored, l.anchorVer = target, version+1
		return nil
	}
	return errors.New("audit anchor: too many concurrent writers")
}

// entryAt reads one entry by stream id.
func (l *Log) entryAt(ctx context.Context, id string) (Entry, bool, error) {
	msgs, err := l.rdb.XRangeN(ctx, logKey, id, id, 1).Result()
	if err != nil {
		return Entry{}, false, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	if len(msgs) == 0 {
		return Entry{}, false, nil
	}
	e, err := decode(msgs[0])
	return e, err == nil, nil
}

func decode(m redis.XMessage) (Entry, error) {
	raw, _ := m.Values["entry"].(string)
	var e Entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return Entry{ID: m.ID}, fmt.Errorf("audit entry %s: %w", m.ID, err)
	}
	e.ID = m.ID
	return e, nil
}

// Filter selects entries for List.
type Filter struct {
	Actor   string
	OrderID string
	Action  string
	Since   time.Time
	Until   time.Time
	After   string // stream id cursor: entries strictly after it
	Limit   int
}

// Page is one page of entries and the cursor for the next.
type Page struct {
	Entries []Entry `json:"entries"`
	Next    string  `json:"next,omitempty"`
}

// validate refuses what Redis would (a malformed cursor, a time outside
// what stream ids hold) with a Validation error naming the fields.
func (f Filter) validate() error {
	var bad []string
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"since", f.Since}, {"until", f.Until}} {
		if !t.t.IsZero() && !validTime(t.t) {
			bad = append(bad, t.name)
		}
	}
	if f.After != "" && !ValidCursor(f.After) {
		bad = append(bad, "after")
	}
	if len(bad) == 0 {
		return nil
	}
	return &apperr.Error{Code: apperr.Validation, Fields: bad, Message: "invalid query parameters: " +
		strings.Join(bad, ", ") + " (since/until: RFC 3339 from 1970; after: a cursor from this trail)"}
}

// ValidCursor reports whether after is a Redis stream id ("<ms>-<seq>",
// both unsigned 64-bit numbers): the shape of a page cursor.
func ValidCursor(after string) bool {
	ms, seq, ok := strings.Cut(after, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return ok && err1 == nil && err2 == nil
}

// validTime is a since/until the trail can hold: from 1970 (stream ids
// are Unix milliseconds) to 9999.
func validTime(t time.Time) bool { return t.Year() >= 1970 && t.Year() <= 9999 }

// List returns entries oldest first, filtered, paginated by stream id.
func (l *Log) List(ctx context.Context, f Filter) (Page, error) {
	if err := f.validate(); err != nil {
		return Page{}, err
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	start := "-"
	if !f.Since.IsZero() {
		start = strconv.FormatInt(f.Since.UnixMilli(), 10)
	}
	if f.After != "" {
		start = "(" + f.After
	}
	end := "+"
	if !f.Until.IsZero() {
		end = strconv.FormatInt(f.Until.UnixMilli(), 10)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var page Page
	for {
		msgs, err := l.rdb.XRangeN(ctx, logKey, start, end, 500).Result()
		if err != nil {
			return Page{}, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		for _, m := range msgs {
			e, err := decode(m)
			if err != nil {
				return Page{}, err
			}
			if (f.Actor != "" && e.Actor != f.Actor) || (f.OrderID != "" && e.OrderID != f.OrderID) ||
				(f.Action != "" && e.Action != f.Action) {
				continue
			}
			page.Entries = append(page.Entries, e)
			if len(page.Entries) == f.Limit {
				page.Next = e.ID
				return page, nil
			}
		}
		if len(msgs) < 500 {
			return page, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// Each calls fn with every entry from since to until (zero: unbounded),
// oldest first, reading a page at a time.
func (l *Log) Each(ctx context.Context, since, until time.Time, fn func(Entry) error) error {
	start, end := "-", "+"
	if !since.IsZero() {
		start = strconv.FormatInt(since.UnixMilli(), 10)
	}
	if !until.IsZero() {
		end = strconv.FormatInt(until.UnixMilli(), 10)
	}
	for {
		msgs, err := l.rdb.XRangeN(ctx, logKey, start, end, verifyPage).Result()
		if err != nil {
			return apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		for _, m := range msgs {
			e, err := decode(m)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(msgs) < verifyPage {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// Verification is the result of Verify.
type Verification struct {
	Intact  bool   `json:"intact"`
	Entries int64  `json:"entries"`
	Broken  *Break `json:"first_broken,omitempty"`
}

// Break locates the first entry where the chain does not hold.
type Break struct {
	ID     string `json:"id"`
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

// verifyPage is how many entries Verify reads, and has Vault check, at once.
const verifyPage = 1000

// Verify walks the trail up to the head it reads first (entries appended
// meanwhile are left for the next run) and reports the first broken link:
// an edited, removed, reordered or re-forged entry; a head that is missing
// or points past the entries; entries beyond the head; and, against the
// anchor in Vault, newest entries that were cut or a trail that was
// rebuilt. It reads a page at a time, so memory stays flat on any length.
func (l *Log) Verify(ctx context.Context) (Verification, error) {
	var v Verification
	var anchor vault.Anchor
	if l.anchor != nil {
		// Read before the head: the anchor never runs ahead of the head it
		// was written after, so an anchor past the head read next is a cut.
		a, _, err := l.anchor.ReadAnchor(ctx)
		if err != nil {
			return v, fmt.Errorf("read the audit anchor: %w", err)
		}
		anchor = a
	}
	head, headSeq, headExists, err := l.readHead(ctx)
	if err != nil {
		return v, err
	}
	brk := func(id string, seq int64, reason string) (Verification, error) {
		v.Broken = &Break{ID: id, Seq: seq, Reason: reason}
		return v, nil
	}
	if anchor.Seq > headSeq {
		return brk(anchor.ID, anchor.Seq, fmt.Sprintf(
			"the newest entries were removed: Vault's anchor records entry %d, the trail's head is at %d", anchor.Seq, headSeq))
	}
	prev, seq, start := genesis, int64(0), "-"
	for seq < headSeq {
		msgs, err := l.rdb.XRangeN(ctx, logKey, start, "+", verifyPage).Result()
		if err != nil {
			return v, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		if len(msgs) == 0 {
			break
		}
		if n := int(headSeq - seq); len(msgs) > n {
			msgs = msgs[:n] // beyond the head read first: the next run's
		}
		entries := make([]Entry, len(msgs))
		decodeErr := make([]error, len(msgs))
		hashes, seals := make([][]byte, len(msgs)), make([]string, len(msgs))
		for i, m := range msgs {
			entries[i], decodeErr[i] = decode(m)
			hashes[i], seals[i] = []byte(entries[i].Hash), entries[i].Seal
		}
		valid, err := l.sealer.VerifySeals(ctx, hashes, seals)
		if err != nil {
			return v, fmt.Errorf("verify audit seals: %w", err)
		}
		for i, m := range msgs {
			e := entries[i]
			switch {
			case decodeErr[i] != nil:
				return brk(m.ID, e.Seq, "entry is not valid JSON")
			case e.Seq != seq+1:
				return brk(m.ID, e.Seq, fmt.Sprintf("sequence jumps from %d to %d: entries were removed", seq, e.Seq))
			case e.Prev != prev:
				return brk(m.ID, e.Seq, "prev does not match the hash of the entry before it")
			case e.digest() != e.Hash:
				return brk(m.ID, e.Seq, "entry was modified: its hash does not match its content")
			case !valid[i]:
				return brk(m.ID, e.Seq, "entry's seal is not Vault's: the trail was rewritten outside piivault")
			case anchor.Seq == e.Seq && anchor.Hash != e.Hash:
				return brk(m.ID, e.Seq, "entry is not the one anchored in Vault: the trail was rebuilt or lost entries")
			}
			prev, seq = e.Hash, e.Seq
			v.Entries++
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	if head != prev || headSeq != seq {
		return brk("", seq+1, "the head names an entry that is not in the trail: entries were removed")
	}
	// Entries past the head: appended since the head was read (fine), or
	// added by hand, or left behind a head that was deleted or moved back.
	last, err := l.rdb.XRevRangeN(ctx, logKey, "+", "-", 1).Result()
	if err != nil {
		return v, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	if len(last) == 1 && "("+last[0].ID != start {
		nowHash, nowSeq, nowExists, err := l.readHead(ctx)
		if err != nil {
			return v, err
		}
		e, _ := decode(last[0])
		switch {
		case !headExists && !nowExists:
			return brk(last[0].ID, e.Seq, "the head is missing while the trail holds entries")
		case nowSeq == headSeq && nowHash == head:
			return brk(last[0].ID, e.Seq, "entries stand beyond the head: they were added or the head was moved back")
		}
	}
	v.Intact = true
	return v, nil
}

// Length returns the number of entries.
func (l *Log) Length(ctx context.Context) (int64, error) {
	n, err := l.rdb.XLen(ctx, logKey).Result()
	if err != nil {
		return 0, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	return n, nil
}
