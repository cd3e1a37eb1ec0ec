package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"piivault/internal/apperr"
	"piivault/vault"
)

// Verification is the result of Verify.
type Verification struct {
	Intact  bool   `json:"intact"`
	Entries int64  `json:"entries"`
	Broken  *Break `json:"first_broken,omitempty"`
	// Segments is how many archived segments were checked.
	Segments int `json:"segments"`
	// Begins says where the trail begins when its oldest entries were
	// deleted after PIIVAULT_AUDIT_KEEP, as recorded in the trail.
	Begins *Beginning `json:"begins,omitempty"`
}

// Break locates the first entry where the chain does not hold.
type Break struct {
	ID      string `json:"id,omitempty"`
	Segment string `json:"segment,omitempty"` // the archived segment file, when the break is in one
	Seq     int64  `json:"seq"`
	Reason  string `json:"reason"`
}

// Beginning is the trail's first entry after a recorded deletion.
type Beginning struct {
	Seq    int64  `json:"seq"`
	Reason string `json:"reason"`
}

// verifyPage is how many entries Verify reads, and has Vault check, at once.
const verifyPage = 1000

// walk is Verify's position in the chain, carried from segment to segment
// and on into the stream.
type walk struct {
	prev    string
	seq     int64
	started bool
	// startSeq and startPrev are the first entry read: the trail's
	// beginning, which is genesis or a recorded deletion's end.
	startSeq  int64
	startPrev string
	// deleted maps a recorded deletion's last hash to its last seq.
	deleted map[string]int64
	anchor  vault.Anchor
	entries int64
}

// check holds one entry to the chain and returns why it breaks it ("" if
// it does not); sealOK is Vault's word on its seal.
func (w *walk) check(e Entry, sealOK bool) string {
	if !w.started {
		w.started, w.startSeq, w.startPrev = true, e.Seq, e.Prev
		if e.Seq != 1 || e.Prev != genesis {
			// Not the genesis entry: checked at the end against the
			// deletions the trail records.
			w.seq, w.prev = e.Seq-1, e.Prev
		}
	}
	switch {
	case e.Seq != w.seq+1:
		return fmt.Sprintf("sequence jumps from %d to %d: entries were removed", w.seq, e.Seq)
	case e.Prev != w.prev:
		return "prev does not match the hash of the entry before it"
	case e.digest() != e.Hash:
		return "entry was modified: its hash does not match its content"
	case !sealOK:
		return "entry's seal is not Vault's: the trail was rewritten outside piivault"
	case w.anchor.Seq == e.Seq && w.anchor.Hash != e.Hash:
		return "entry is not the one anchored in Vault: the trail was rebuilt or lost entries"
	}
	if e.Action == ActionAuditSegmentsDeleted {
		if n, err := strconv.ParseInt(e.Detail["last_seq"], 10, 64); err == nil {
			w.deleted[e.Detail["last_hash"]] = n
		}
	}
	w.prev, w.seq = e.Hash, e.Seq
	w.entries++
	return ""
}

// Verify walks the whole trail, the archived segments first and then the
// stream up to the head it reads first (entries appended meanwhile are
// left for the next run), and reports the first broken link: an edited,
// removed, reordered or re-forged entry; a segment edited, cut, missing,
// swapped or forged; a gap between the segments and the stream; a
// beginning no recorded deletion explains; a head that is missing or
// points past the entries; entries beyond the head; and, against the
// anchor in Vault, newest entries that were cut or a trail that was
// rebuilt. It reads a page at a time, so memory stays flat on any length.
func (l *Log) Verify(ctx context.Context) (Verification, error) {
	var v Verification
	w := &walk{prev: genesis, deleted: map[string]int64{}}
	if l.anchor != nil {
		// Read before the head: the anchor never runs ahead of the head it
		// was written after, so an anchor past the head read next is a cut.
		a, _, err := l.anchor.ReadAnchor(ctx)
		if err != nil {
			return v, fmt.Errorf("read the audit anchor: %w", err)
		}
		w.anchor = a
	}
	head, headSeq, headExists, err := l.readHead(ctx)
	if err != nil {
		return v, err
	}
	brk := func(id string, seq int64, reason string) (Verification, error) {
		v.Broken = &Break{ID: id, Seq: seq, Reason: reason}
		v.Entries = w.entries
		return v, nil
	}
	if w.anchor.Seq > headSeq {
		return brk(w.anchor.ID, w.anchor.Seq, fmt.Sprintf(
			"the newest entries were removed: Vault's anchor records entry %d, the trail's head is at %d", w.anchor.Seq, headSeq))
	}
	segs, err := l.segments()
	if err != nil {
		return v, err
	}
	for _, s := range segs {
		b, err := l.verifySegment(ctx, s, w)
		if err != nil {
			return v, err
		}
		if b != nil {
			v.Broken, v.Entries = b, w.entries
			return v, nil
		}
		v.Segments++
	}
	start, streamed := "-", false
	for w.seq < headSeq {
		msgs, err := l.rdb.XRangeN(ctx, logKey, start, "+", verifyPage).Result()
		if err != nil {
			return v, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
		}
		if len(msgs) == 0 {
			break
		}
		entries := make([]Entry, 0, len(msgs))
		ids := make([]string, 0, len(msgs))
		pos := w.seq // the seq the entries of this page follow
		for _, m := range msgs {
			e, err := decode(m)
			if err != nil {
				return brk(m.ID, e.Seq, "entry is not valid JSON")
			}
			if !streamed && v.Segments > 0 && e.Seq <= w.seq {
				// The oldest entries of the stream, archived already and not
				// yet trimmed (an archive run died in between): the copy on
				// disk was checked. Anywhere else an old seq is a break.
				if e.Seq == w.seq && e.Hash != w.prev {
					return brk(m.ID, e.Seq, "entry differs from its archived copy")
				}
				start = "(" + m.ID
				continue
			}
			streamed = true
			if !w.started && len(entries) == 0 {
				pos = e.Seq - 1 // the walk begins here (see walk.check)
			}
			if int64(len(entries)) >= headSeq-pos {
				break // beyond the head read first: the next run's
			}
			entries, ids = append(entries, e), append(ids, m.ID)
			start = "(" + m.ID
		}
		valid, err := l.verifySeals(ctx, entries)
		if err != nil {
			return v, err
		}
		for i, e := range entries {
			if reason := w.check(e, valid[i]); reason != "" {
				return brk(ids[i], e.Seq, reason)
			}
		}
	}
	if head != w.prev || headSeq != w.seq {
		return brk("", w.seq+1, "the head names an entry that is not in the trail: entries were removed")
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
	if w.started && w.startPrev != genesis {
		n, ok := w.deleted[w.startPrev]
		if !ok || n != w.startSeq-1 {
			return brk("", w.startSeq, fmt.Sprintf(
				"the trail's beginning is missing: entries before %d were removed, and no recorded deletion says so", w.startSeq))
		}
		v.Begins = &Beginning{Seq: w.startSeq, Reason: fmt.Sprintf(
			"entries 1 to %d were deleted after PIIVAULT_AUDIT_KEEP, as the trail records", n)}
	}
	v.Entries = w.entries
	v.Intact = true
	return v, nil
}

// verifySeals asks Vault about entries' seals, a page at a time.
func (l *Log) verifySeals(ctx context.Context, entries []Entry) ([]bool, error) {
	out := make([]bool, 0, len(entries))
	for i := 0; i < len(entries); i += verifyPage {
		page := entries[i:min(i+verifyPage, len(entries))]
		hashes, seals := make([][]byte, len(page)), make([]string, len(page))
		for j, e := range page {
			hashes[j], seals[j] = []byte(e.Hash), e.Seal
		}
		if len(page) == 0 {
			continue
		}
		valid, err := l.sealer.VerifySeals(ctx, hashes, seals)
		if err != nil {
			return nil, fmt.Errorf("verify audit seals: %w", err)
		}
		out = append(out, valid...)
	}
	return out, nil
}

// verifySegment holds one archived segment to the chain: its header's
// seal, its place after the entry before it, each entry, and its count
// and last hash against the header.
func (l *Log) verifySegment(ctx context.Context, s segmentFile, w *walk) (*Break, error) {
	mk := func(seq int64, reason string) *Break { return &Break{Segment: s.name, Seq: seq, Reason: reason} }
	if s.headerReadError != nil {
		return mk(s.first, "the segment's header cannot be read: "+s.headerReadError.Error()), nil
	}
	h := s.header
	if h.FirstSeq != s.first || h.LastSeq != s.last {
		return mk(s.first, fmt.Sprintf("the file is named for entries %d to %d but holds %d to %d: segments were renamed or swapped",
			s.first, s.last, h.FirstSeq, h.LastSeq)), nil
	}
	ok, err := l.sealer.VerifySeals(ctx, [][]byte{[]byte(h.digest())}, []string{h.Seal})
	if err != nil {
		return nil, fmt.Errorf("verify audit segment seal: %w", err)
	}
	if !ok[0] {
		return mk(h.FirstSeq, "the segment's header is not sealed by Vault: it was edited or forged"), nil
	}
	if w.started && (h.FirstSeq != w.seq+1 || h.FirstPrev != w.prev) {
		return mk(h.FirstSeq, fmt.Sprintf("the segment does not follow entry %d: a segment is missing, reordered or altered", w.seq)), nil
	}
	var entries []Entry
	var bad *Break
	err = l.eachSegmentEntry(s.name, func(i int, e Entry, err error) error {
		if err != nil {
			bad = mk(h.FirstSeq+int64(i), fmt.Sprintf("line %d is not a valid entry", i+2))
			return errStop
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("read audit segment %s: %w", s.name, err)
	}
	if bad != nil {
		return bad, nil
	}
	if len(entries) > 0 && entries[0].Prev != h.FirstPrev {
		return mk(h.FirstSeq, "the segment's first entry is not the one its header names"), nil
	}
	valid, err := l.verifySeals(ctx, entries)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if reason := w.check(e, valid[i]); reason != "" {
			return mk(e.Seq, reason), nil
		}
	}
	if len(entries) != h.Count || w.seq != h.LastSeq || w.prev != h.LastHash {
		return mk(w.seq, fmt.Sprintf("the segment was cut: its header names %d entries up to %d, it holds %d up to %d",
			h.Count, h.LastSeq, len(entries), w.seq)), nil
	}
	return nil, nil
}

var errStop = errors.New("stop")

// Length returns the number of entries.
func (l *Log) Length(ctx context.Context) (int64, error) {
	n, err := l.rdb.XLen(ctx, logKey).Result()
	if err != nil {
		return 0, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	return n, nil
}
