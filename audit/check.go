package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"piivault/internal/apperr"
	"piivault/vault"
)

// TailEntries is how many of the newest entries CheckTail holds to the
// chain: one page, so one Vault call for their seals.
const TailEntries = verifyPage

// TailCheck is what CheckTail found.
type TailCheck struct {
	Intact  bool
	Checked int    // entries whose chain, hash and seal were checked
	Broken  *Break // the first problem found, when not Intact
	Anchor  vault.Anchor
	// AnchorTime is the time of the entry the anchor names (zero when
	// nothing is anchored yet, or the entry was not found).
	AnchorTime time.Time
	HeadSeq    int64
}

// Unanchored is how many entries stand past the anchor: those a Redis
// writer could still remove without Verify noticing.
func (c TailCheck) Unanchored() int64 { return max(c.HeadSeq-c.Anchor.Seq, 0) }

// CheckTail is the cheap check serve runs every minute on every instance,
// between full Verify runs (which read the whole trail): the newest n
// entries' chain, hashes and Vault seals; the head against the newest
// entry; where the stream meets the archive, when n covers the whole
// stream; and the entry the anchor in Vault names, present with its hash.
// It costs one anchor read, two or three Redis reads and one Vault call.
// What it cannot see (an edit deeper in the trail) is Verify's.
//
// A problem found is looked at again at once before it is reported, so an
// append landing between the reads never reads as a break.
func (l *Log) CheckTail(ctx context.Context, n int) (TailCheck, error) {
	c, err := l.checkTail(ctx, n)
	if err != nil || c.Intact {
		return c, err
	}
	return l.checkTail(ctx, n)
}

func (l *Log) checkTail(ctx context.Context, n int) (TailCheck, error) {
	var c TailCheck
	brk := func(id string, seq int64, reason string) (TailCheck, error) {
		c.Broken = &Break{ID: id, Seq: seq, Reason: reason}
		return c, nil
	}
	// The anchor first, then the tail, then the head: the anchor never runs
	// ahead of what was appended before it was written, and the head moves
	// with each append in the same script, so the tail's newest entry is at
	// or past the anchor and at or before the head.
	if l.anchor != nil {
		a, _, err := l.anchor.ReadAnchor(ctx)
		if err != nil {
			return c, fmt.Errorf("read the audit anchor: %w", err)
		}
		c.Anchor = a
	}
	msgs, err := l.rdb.XRevRangeN(ctx, logKey, "+", "-", int64(n)).Result()
	if err != nil {
		return c, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	head, headSeq, headExists, err := l.readHead(ctx)
	if err != nil {
		return c, err
	}
	c.HeadSeq = headSeq

	entries := make([]Entry, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		e, err := decode(msgs[i])
		if err != nil {
			return brk(msgs[i].ID, 0, "entry is not valid JSON")
		}
		entries = append(entries, e)
	}
	valid, err := l.verifySeals(ctx, entries)
	if err != nil {
		return c, err
	}
	for i, e := range entries {
		reason := ""
		switch {
		case i > 0 && e.Seq != entries[i-1].Seq+1:
			reason = fmt.Sprintf("sequence jumps from %d to %d: entries were removed", entries[i-1].Seq, e.Seq)
		case i > 0 && e.Prev != entries[i-1].Hash:
			reason = "prev does not match the hash of the entry before it"
		case e.digest() != e.Hash:
			reason = "entry was modified: its hash does not match its content"
		case !valid[i]:
			reason = "entry's seal is not Vault's: the trail was rewritten outside piivault"
		}
		if reason != "" {
			return brk(e.ID, e.Seq, reason)
		}
		c.Checked++
	}

	// The head against the newest entry. A head past it is an append made
	// since the tail was read.
	if len(entries) > 0 {
		newest := entries[len(entries)-1]
		switch {
		case !headExists:
			return brk(newest.ID, newest.Seq, "the head is missing while the trail holds entries")
		case newest.Seq > headSeq:
			return brk(newest.ID, newest.Seq, "entries stand beyond the head: they were added or the head was moved back")
		case newest.Seq == headSeq && newest.Hash != head:
			return brk(newest.ID, newest.Seq, "the head names an entry that is not in the trail")
		}
	}

	// Where the stream begins, when the tail holds all of it: right after
	// the archive's last entry, or at the genesis entry.
	if len(msgs) < n {
		last, ok, err := l.lastSegment()
		if err != nil {
			return c, err
		}
		archived, archivedHash := int64(0), genesis
		if ok {
			archived, archivedHash = last.LastSeq, last.LastHash
		}
		switch {
		case len(entries) == 0:
			if headSeq != archived || (headExists && head != archivedHash) {
				return brk("", headSeq, fmt.Sprintf(
					"the trail in Redis is empty but its head names entry %d and the archive ends at %d: entries were removed or the head was moved", headSeq, archived))
			}
		case ok && entries[0].Seq > archived+1:
			return brk(entries[0].ID, entries[0].Seq, fmt.Sprintf(
				"entries %d to %d are neither in Redis nor in the archive: entries were removed", archived+1, entries[0].Seq-1))
		case ok && entries[0].Seq == archived+1 && entries[0].Prev != archivedHash:
			return brk(entries[0].ID, entries[0].Seq, "the oldest entry in Redis does not follow the archive's last entry")
		case ok && entries[len(entries)-1].Seq < archived:
			// Archiving trims the oldest entries only: the newest ones
			// cannot be older than the archive's last.
			return brk("", archived, fmt.Sprintf(
				"the archive ends at entry %d but Redis ends at %d: the newest entries were removed", archived, entries[len(entries)-1].Seq))
		case ok && entries[0].Seq <= archived:
			// Archived already, not yet trimmed (an archive run died in
			// between): the copy in Redis must be the archived one.
			if e := entries[archived-entries[0].Seq]; e.Hash != archivedHash {
				return brk(e.ID, e.Seq, "entry differs from its archived copy")
			}
		case !ok && entries[0].Seq == 1 && entries[0].Prev != genesis:
			return brk(entries[0].ID, 1, "the first entry does not start the chain")
		}
		// No archive and a first entry past 1: segments deleted after
		// PIIVAULT_AUDIT_KEEP, or a cut beginning. Verify tells which
		// from the deletions the trail records.
	}

	// The entry the anchor names: still there, with the hash Vault holds.
	if a := c.Anchor; a.Seq > 0 {
		if a.Seq > headSeq {
			return brk(a.ID, a.Seq, fmt.Sprintf(
				"the newest entries were removed: Vault's anchor records entry %d, the trail's head is at %d", a.Seq, headSeq))
		}
		e, found, err := l.anchoredEntry(ctx, a, entries)
		if err != nil {
			return c, err
		}
		switch {
		case !found:
			return brk(a.ID, a.Seq, "the entry anchored in Vault is not in the trail: the trail was cut or rebuilt")
		case e.Hash != a.Hash:
			return brk(a.ID, a.Seq, "entry is not the one anchored in Vault: the trail was rebuilt or lost entries")
		}
		c.AnchorTime = e.Time
	}
	c.Intact = true
	return c, nil
}

// anchoredEntry finds the entry a names: among the tail's entries, by its
// stream id, or in the archive when it has been archived since.
func (l *Log) anchoredEntry(ctx context.Context, a vault.Anchor, tail []Entry) (Entry, bool, error) {
	if len(tail) > 0 && a.Seq >= tail[0].Seq && a.Seq <= tail[len(tail)-1].Seq {
		return tail[a.Seq-tail[0].Seq], true, nil
	}
	e, ok, err := l.entryAt(ctx, a.ID)
	if err != nil || (ok && e.Seq == a.Seq) {
		return e, ok, err
	}
	return l.archivedEntry(a.Seq)
}

// lastSegment reads the header of the archive's newest segment (false
// when there is no archive or no segment). Segment names sort by seq.
func (l *Log) lastSegment() (SegmentHeader, bool, error) {
	if l.archive == "" {
		return SegmentHeader{}, false, nil
	}
	des, err := os.ReadDir(l.archive)
	if err != nil {
		return SegmentHeader{}, false, fmt.Errorf("audit archive %s: %w", l.archive, err)
	}
	for i := len(des) - 1; i >= 0; i-- {
		if segmentName.MatchString(des[i].Name()) && des[i].Type().IsRegular() {
			h, err := readHeader(filepath.Join(l.archive, des[i].Name()))
			if err != nil {
				return SegmentHeader{}, false, fmt.Errorf("audit segment %s: %w (run audit verify)", des[i].Name(), err)
			}
			return h, true, nil
		}
	}
	return SegmentHeader{}, false, nil
}

// archivedEntry reads entry seq from the segment whose name covers it.
func (l *Log) archivedEntry(seq int64) (Entry, bool, error) {
	if l.archive == "" {
		return Entry{}, false, nil
	}
	des, err := os.ReadDir(l.archive)
	if err != nil {
		return Entry{}, false, fmt.Errorf("audit archive %s: %w", l.archive, err)
	}
	for _, de := range des {
		m := segmentName.FindStringSubmatch(de.Name())
		if m == nil {
			continue
		}
		first, _ := strconv.ParseInt(m[1], 10, 64)
		last, _ := strconv.ParseInt(m[2], 10, 64)
		if seq < first || seq > last {
			continue
		}
		var found Entry
		err := l.eachSegmentEntry(de.Name(), func(_ int, e Entry, err error) error {
			if err == nil && e.Seq == seq {
				found = e
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return Entry{}, false, fmt.Errorf("read audit segment %s: %w", de.Name(), err)
		}
		return found, found.Seq == seq, nil
	}
	return Entry{}, false, nil
}

// WatchTail runs CheckTail now and then every `every` until ctx ends,
// keeping the chain and anchor gauges, and tells onBroken once when the
// tail is found broken (and again only after it was found intact since).
// A check that cannot run (Vault or Redis down) leaves the gauges as they
// were: piivault_audit_chain_last_check_timestamp_seconds says how old
// they are.
func (l *Log) WatchTail(ctx context.Context, every time.Duration, log *slog.Logger, onBroken func(text string)) {
	t := time.NewTicker(every)
	defer t.Stop()
	reported := false
	for {
		c, err := l.CheckTail(ctx, TailEntries)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("audit tail not checked", "err", err)
		default:
			observeTail(c, time.Now())
			if c.Intact {
				reported = false
			} else if !reported {
				log.Error("audit trail broken", "seq", c.Broken.Seq, "reason", c.Broken.Reason)
				onBroken(fmt.Sprintf("piivault: the audit trail's newest entries do not hold at entry %d: %s. Run `piivault audit verify`.",
					c.Broken.Seq, c.Broken.Reason))
				reported = true
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
