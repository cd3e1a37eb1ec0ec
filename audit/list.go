package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

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
	// HotFrom is when the entries still in Redis begin, when older ones
	// were archived: a page never reaches past it (audit verify, and
	// reports, read the archive too).
	HotFrom *time.Time `json:"hot_window_starts,omitempty"`
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

// List returns entries oldest first, filtered, paginated by stream id,
// from the entries in Redis; when older ones were archived, the page says
// where the hot window starts.
func (l *Log) List(ctx context.Context, f Filter) (Page, error) {
	if err := f.validate(); err != nil {
		return Page{}, err
	}
	page, err := l.list(ctx, f)
	if err != nil || l.archive == "" {
		return page, err
	}
	if segs, err := l.segments(); err != nil || len(segs) == 0 {
		return page, err
	}
	hot, err := l.HotStart(ctx)
	if err != nil {
		return page, err
	}
	if !hot.IsZero() {
		page.HotFrom = &hot
	}
	return page, nil
}

func (l *Log) list(ctx context.Context, f Filter) (Page, error) {
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
	page := Page{Entries: []Entry{}} // an empty page is [], never null
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
	// The archived segments first (their entries in the window), then the
	// stream past what they hold.
	segs, err := l.segments()
	if err != nil {
		return err
	}
	var archived int64
	for _, sg := range segs {
		if sg.headerReadError != nil {
			return fmt.Errorf("audit segment %s: %w", sg.name, sg.headerReadError)
		}
		archived = sg.header.LastSeq
		if (!since.IsZero() && sg.header.LastTime.Before(since)) || (!until.IsZero() && sg.header.FirstTime.After(until)) {
			continue
		}
		err := l.eachSegmentEntry(sg.name, func(_ int, e Entry, err error) error {
			if err != nil {
				return fmt.Errorf("audit segment %s: %w", sg.name, err)
			}
			if (!since.IsZero() && e.Time.Before(since)) || (!until.IsZero() && e.Time.After(until)) {
				return nil
			}
			return fn(e)
		})
		if err != nil {
			return err
		}
	}
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
			if e.Seq <= archived {
				continue // archived, not yet trimmed: already given
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
