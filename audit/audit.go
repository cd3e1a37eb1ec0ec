// Package audit owns the append-only, hash-chained audit trail: who
// revealed, purged, logged in, changed staff or clients, and from which IP.
// Entries never hold PII: actors are staff usernames, client names,
// `webhook:<provider>` or `system`; orders are named by id.
//
//	piivault:{audit}:log    stream  one entry per event, kept forever
//	piivault:{audit}:head   string  "<seq>:<hash>" of the newest entry
//
// Each entry carries the SHA-256 of the previous entry (prev) and its own
// (hash, over every other field). Editing, deleting or reordering an entry
// breaks the chain at that point, and Verify reports the first break. Each
// hash is also sealed by Vault (a transit HMAC with a key that never leaves
// Vault), so someone who can write to Redis cannot rebuild a consistent
// chain after editing it.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
	"piivault/vault"
)

const (
	logKey  = "piivault:{audit}:log"
	headKey = "piivault:{audit}:head"
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
	ActionClientAdd       = "client.add"
	ActionClientRevoke    = "client.revoke"
	ActionDeletionRequest = "deletion_request"
	ActionWebhook         = "webhook"
	ActionDataRequest     = "webhook.data_request"
	ActionBlock           = "ip.block"
	ActionUnblock         = "ip.unblock"
	ActionKeyRotate       = "key.rotate"
	ActionKeyTrim         = "key.trim"
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
	Prev    string            `json:"prev"`
	Hash    string            `json:"hash"`
	Seal    string            `json:"seal,omitempty"` // Vault's HMAC of Hash
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
	fmt.Fprintf(&b, "prev=%s\n", e.Prev)
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// Log is the audit trail in Redis.
type Log struct {
	rdb     redis.UniversalClient
	sealer  Sealer
	now     func() time.Time
	timeout time.Duration

	// Group commit: concurrent Record calls queue their entries; whoever
	// finds no flush running appends the whole queue in one script call,
	// chained in order, and hands each caller its result.
	mu       sync.Mutex
	queue    []*pending
	flushing bool

	// cached is the head this process last wrote (guarded by flushing):
	// appending onto it saves a read; the script refuses it if another
	// instance has moved the head since, and then the head is read again.
	cached    string
	cachedSeq int64
}

type pending struct {
	e    Entry
	done chan error
}

// maxGroup bounds the entries appended by one script call.
const maxGroup = 256

// NewLog builds a Log that seals entries with sealer.
func NewLog(rdb redis.UniversalClient, sealer Sealer) *Log {
	return &Log{rdb: rdb, sealer: sealer, now: time.Now, timeout: 3 * time.Second}
}

// appendScript appends the entries only if the head is still the one the
// caller chained onto; otherwise it returns false and the caller retries.
// ARGV: genesis head, expected head, new head, entries...
var appendScript = redis.NewScript(`
local head = redis.call('GET', KEYS[2]) or ARGV[1]
if head ~= ARGV[2] then return false end
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'entry', ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[3])
return ids
`)

// Record appends e to the trail. It fails (StoreUnavailable) rather than
// losing an entry; callers that reveal PII must not reveal without it.
// An entry that already has a time (recorded late from an outbox) keeps it.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	p := &pending{e: e, done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, p)
	if !l.flushing {
		l.flushing = true
		for len(l.queue) > 0 {
			n := min(len(l.queue), maxGroup)
			group := l.queue[:n:n]
			l.queue = l.queue[n:]
			l.mu.Unlock()
			err := l.appendGroup(group)
			for _, g := range group {
				g.done <- err
			}
			l.mu.Lock()
		}
		l.flushing = false
	}
	l.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return apperr.Wrap(apperr.StoreUnavailable, ctx.Err(), "the audit trail did not answer in time")
	}
}

// appendGroup chains and appends entries in one round trip, retrying when
// another instance moved the head first.
func (l *Log) appendGroup(group []*pending) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	for attempt := 0; attempt < 50; attempt++ {
		head, seq := l.cached, l.cachedSeq
		if head == "" || attempt > 0 {
			var err error
			if head, seq, err = l.head(ctx); err != nil {
				return err
			}
		}
		args := []any{headValue(0, genesis), headValue(seq, head), ""}
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
			return fmt.Errorf("seal audit entries: %w", err)
		}
		for i, g := range group {
			if seals[i].Err != nil {
				return fmt.Errorf("seal audit entry: %w", seals[i].Err)
			}
			g.e.Seal = seals[i].Value
			body, err := json.Marshal(g.e)
			if err != nil {
				return fmt.Errorf("audit entry: %w", err)
			}
			args = append(args, body)
		}
		args[2] = headValue(seq, prev)
		ids, err := appendScript.Run(ctx, l.rdb, []string{logKey, headKey}, args...).StringSlice()
		if errors.Is(err, redis.Nil) {
			continue // another instance appended first: chain onto theirs
		}
		if err != nil {
			l.cached = ""
			return apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		l.cached, l.cachedSeq = prev, seq
		if len(ids) != len(group) {
			return fmt.Errorf("audit: %d ids for %d entries", len(ids), len(group))
		}
		return nil
	}
	return apperr.New(apperr.StoreUnavailable, "the audit trail is too busy")
}

// head returns the newest entry's hash and sequence number, from the head
// key: the stream itself may have been tampered with, the head moves only here.
func (l *Log) head(ctx context.Context) (string, int64, error) {
	v, err := l.rdb.Get(ctx, headKey).Result()
	if errors.Is(err, redis.Nil) {
		return genesis, 0, nil
	}
	if err != nil {
		return "", 0, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	seqStr, hash, ok := strings.Cut(v, ":")
	seq, perr := strconv.ParseInt(seqStr, 10, 64)
	if !ok || perr != nil {
		return "", 0, fmt.Errorf("audit head %q is malformed", v)
	}
	return hash, seq, nil
}

func headValue(seq int64, hash string) string { return strconv.FormatInt(seq, 10) + ":" + hash }

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

// List returns entries oldest first, filtered, paginated by stream id.
func (l *Log) List(ctx context.Context, f Filter) (Page, error) {
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

// Verify walks the trail up to the head it reads first (entries appended
// meanwhile are left for the next run) and reports the first broken link.
func (l *Log) Verify(ctx context.Context) (Verification, error) {
	var v Verification
	head, headSeq, err := l.head(ctx)
	if err != nil {
		return v, err
	}
	prev, seq, start := genesis, int64(0), "-"
	for seq < headSeq {
		msgs, err := l.rdb.XRangeN(ctx, logKey, start, "+", 500).Result()
		if err != nil {
			return v, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		if len(msgs) == 0 {
			break
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
			brk := func(reason string) (Verification, error) {
				v.Broken = &Break{ID: m.ID, Seq: e.Seq, Reason: reason}
				return v, nil
			}
			switch {
			case decodeErr[i] != nil:
				return brk("entry is not valid JSON")
			case e.Seq != seq+1:
				return brk(fmt.Sprintf("sequence jumps from %d to %d: entries were removed", seq, e.Seq))
			case e.Prev != prev:
				return brk("prev does not match the hash of the entry before it")
			case e.digest() != e.Hash:
				return brk("entry was modified: its hash does not match its content")
			case !valid[i]:
				return brk("entry's seal is not Vault's: the trail was rewritten outside piivault")
			}
			prev, seq = e.Hash, e.Seq
			v.Entries++
			if seq == headSeq {
				break
			}
		}
		if len(msgs) < 500 || seq == headSeq {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	if head != prev || headSeq != seq {
		v.Broken = &Break{Seq: seq + 1, Reason: "the newest entries were removed: the head hash matches no entry"}
		return v, nil
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
