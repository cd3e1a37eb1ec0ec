package audit

import (
	"context"
	"fmt"

	"piivault/internal/apperr"
	"piivault/vault"
)

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
