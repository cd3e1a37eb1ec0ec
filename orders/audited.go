package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
)

// Nothing changes without its audit entry: this file is the one place that
// holds the rule. Every store and purge goes through StoreAudited,
// PurgeAudited or PurgeManyAudited, which run the whole protocol (the
// sweep's PurgeManyNoted runs step 1 and leaves 2 and 3 to Noted.Record):
//
//  1. the change and its audit entry (as an outbox note) are written by one
//     atomic script: there is never a change without its note;
//  2. the entry is appended to the audit trail;
//  3. the note is removed: by the append's own script where Redis allows
//     one script both keys (audit.Ack), else right after it (a Cluster).
//
// A crash or a trail outage after step 1 leaves the note, and the sweep
// records it (DrainOutbox) with its original time; after step 2, the note's
// event id keeps the drain from writing the entry twice. Only step 1 can
// fail a write: a failure of 2 or 3 is a DeferredError, which says the
// change was made and its entry will follow. Callers log it and answer as
// for success.

// DeferredError says a change was made but its audit entry could not be
// appended now: it waits in the outbox, and the next sweep records it.
type DeferredError struct{ Err error }

func (e *DeferredError) Error() string { return "audit entry deferred to the outbox: " + e.Err.Error() }
func (e *DeferredError) Unwrap() error { return e.Err }

// LogDeferred logs err if it is a *DeferredError (the change was made; its
// entry waits in the outbox) and returns nil then; any other error is
// returned as it is. Callers of the audited writes pass their error here.
func LogDeferred(log *slog.Logger, orderID string, err error) error {
	var d *DeferredError
	if errors.As(err, &d) {
		log.Warn("audit entry deferred to the outbox; the sweep records it", "order_id", orderID, "err", d.Err)
		return nil
	}
	return err
}

// stamped gives e its time and event id (the drain's guard against writing
// it twice) when the caller did not.
func (s *Store) stamped(e audit.Entry) audit.Entry {
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	if e.Event == "" {
		e.Event = audit.NewEventID()
	}
	return e
}

// Entry is an audit entry started before the change it records, whose
// seal may run alongside the change (audit.Early). Commit appends it once
// the change is made; CommitWith also sends writes in the append's round
// trip (see audit.Early.CommitWith); Cancel drops it when nothing changed.
type Entry interface {
	Commit(ctx context.Context) error
	CommitWith(ctx context.Context, also func(p redis.Pipeliner)) (sent bool, err error)
	// CommitAcking appends the entry and, where the trail can, removes its
	// outbox note in the same script (acked; see audit.Ack).
	CommitAcking(ctx context.Context, ack audit.Ack) (acked bool, err error)
	Cancel()
}

// earlyTrail is a Trail that can start an entry's seal early (*audit.Log).
type earlyTrail interface {
	Begin(e audit.Entry) *audit.Early
}

// begin starts e on the store's trail: early when the trail can, else as
// a plain Record at Commit.
func (s *Store) begin(e audit.Entry) Entry {
	if t, ok := s.trail.(earlyTrail); ok {
		return t.Begin(e)
	}
	return s.later(e)
}

// recordLater is an Entry on a trail that cannot seal early.
type recordLater struct {
	s *Store
	e audit.Entry
}

// later is e as an Entry recorded at Commit, for changes that have no
// work of their own to overlap its seal with.
func (s *Store) later(e audit.Entry) Entry { return recordLater{s: s, e: e} }

func (r recordLater) Commit(ctx context.Context) error { return r.s.trail.Record(ctx, r.e) }
func (r recordLater) Cancel()                          {}

// ackingTrail is a Trail that can remove an outbox note with the append
// (*audit.Log).
type ackingTrail interface {
	RecordAcking(ctx context.Context, e audit.Entry, ack audit.Ack) (bool, error)
}

func (r recordLater) CommitAcking(ctx context.Context, ack audit.Ack) (bool, error) {
	if t, ok := r.s.trail.(ackingTrail); ok {
		return t.RecordAcking(ctx, r.e, ack)
	}
	return false, r.Commit(ctx)
}

// CommitWith records the entry, then sends also's writes in a round trip
// of their own.
func (r recordLater) CommitWith(ctx context.Context, also func(p redis.Pipeliner)) (bool, error) {
	if err := r.Commit(ctx); err != nil || also == nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.s.timeout)
	defer cancel()
	pipe := r.s.rdb.Pipeline()
	also(pipe)
	_, _ = pipe.Exec(ctx) // the caller reads each command's own result
	return true, nil
}

// StoreAudited stores req (see storeNoting for the results) with its audit
// entry e, whose actor and IP the caller sets; the action and order are
// filled in. A request refused because an event for the order came first
// (Tombstoned) records that event's purge instead. The error is a
// *DeferredError when the order was stored and only its entry waits.
func (s *Store) StoreAudited(ctx context.Context, req Request, e audit.Entry) (Receipt, StoreResult, error) {
	e.Action, e.OrderID = audit.ActionStore, req.OrderID
	e = s.stamped(e)
	note, err := json.Marshal(e)
	if err != nil {
		return Receipt{}, 0, fmt.Errorf("audit note: %w", err)
	}
	entry := s.begin(e)
	defer entry.Cancel()
	rcpt, res, err := s.storeNoting(ctx, req, note)
	switch {
	case res == Tombstoned:
		// The early event's purge, whose note the script wrote: recorded
		// now, or by the sweep. The caller's answer is the refusal.
		_ = s.recordNote(ctx, req.OrderID, rcpt.Note)
		return rcpt, res, err
	case err != nil || res != Created:
		return rcpt, res, err
	}
	return rcpt, res, s.recordNoted(ctx, req.OrderID, entry, note)
}

// PurgeAudited destroys an order's PII for reason (see purgeNoting; with
// payments, only an order stored with one of them) with its audit entry e,
// whose actor and IP the caller sets. It returns true when this call
// purged it; the error is a *DeferredError when it did and only its entry
// waits.
func (s *Store) PurgeAudited(ctx context.Context, orderID, reason string, payments []string, e audit.Entry) (bool, error) {
	e.Action, e.OrderID = audit.ActionPurge, orderID
	e.Detail = map[string]string{"reason": reason}
	e = s.stamped(e)
	note, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("audit note: %w", err)
	}
	entry := s.begin(e)
	defer entry.Cancel()
	done, err := s.purgeNoting(ctx, orderID, reason, payments, note)
	if err != nil || !done {
		return done, err
	}
	return true, s.recordNoted(ctx, orderID, entry, note)
}

// PurgeManyAudited purges several orders for reason as actor in a few
// round trips (see purgeMany), each with its own audit entry, appended as
// one group. It returns, per order, 1 purged now, 0 already purged, -1
// unknown; the error is a *DeferredError when the purges were made and
// only their entries wait.
func (s *Store) PurgeManyAudited(ctx context.Context, ids []string, reason, actor string) ([]int, error) {
	res, noted, err := s.PurgeManyNoted(ctx, ids, reason, actor)
	if err != nil {
		return nil, err
	}
	return res, noted.Record(ctx)
}

// PurgeManyNoted is PurgeManyAudited up to step 1: the purges are made and
// their entries wait in the outbox, as after a crash, until the returned
// Noted's Record appends them. The sweep records one step's entries while
// its next step's purges go to Redis.
func (s *Store) PurgeManyNoted(ctx context.Context, ids []string, reason, actor string) ([]int, *Noted, error) {
	entries := make([]audit.Entry, len(ids))
	notes := make([][]byte, len(ids))
	for i, id := range ids {
		entries[i] = s.stamped(audit.Entry{Actor: actor, Action: audit.ActionPurge, OrderID: id,
			Detail: map[string]string{"reason": reason}})
		var err error
		if notes[i], err = json.Marshal(entries[i]); err != nil {
			return nil, nil, fmt.Errorf("audit note: %w", err)
		}
	}
	res, err := s.purgeMany(ctx, ids, reason, notes)
	if err != nil {
		return nil, nil, err
	}
	noted := &Noted{s: s}
	for i, r := range res {
		if r == 1 {
			noted.entries = append(noted.entries, entries[i])
			noted.acks = append(noted.acks, orderNote(ids[i], notes[i]))
		}
	}
	return res, noted, nil
}

// Noted holds the entries of purges already made (step 1), each waiting in
// the outbox as a note.
type Noted struct {
	s       *Store
	entries []audit.Entry
	acks    []Note
}

// Record runs steps 2 and 3: it appends the entries as one group and
// removes their notes. Its error is always a *DeferredError: the purges
// stand and their entries wait in the outbox for the sweep's drain.
func (n *Noted) Record(ctx context.Context) error {
	if err := n.s.trail.RecordAll(ctx, n.entries); err != nil {
		return &DeferredError{Err: err}
	}
	if err := n.s.ackNotes(ctx, n.acks); err != nil {
		return &DeferredError{Err: fmt.Errorf("outbox notes not removed (the sweep sees they are in the trail): %w", err)}
	}
	return nil
}
