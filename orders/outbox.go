package orders

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
)

// recordNoted appends the audit entry e, which storeNoting or purgeNoting
// also put in the outbox as note, and removes the note once it is in the
// trail. If the trail is unavailable the note stays in the outbox and the
// sweep records it later (DrainOutbox): the error says so, as a
// DeferredError.
func (s *Store) recordNoted(ctx context.Context, orderID string, e Entry, note []byte) error {
	n := orderNote(orderID, note)
	acked, err := e.CommitAcking(ctx, audit.Ack{Key: n.key(), Value: n.Body})
	if err != nil {
		return &DeferredError{Err: err}
	}
	if acked {
		return nil // removed by the append itself
	}
	if err := s.acks.ack(ctx, n); err != nil {
		return &DeferredError{Err: fmt.Errorf("outbox note not removed (the sweep sees it is in the trail): %w", err)}
	}
	return nil
}

// noteAcker removes recorded notes for concurrent writers, sharing round
// trips the way the audit trail shares group commits: a writer with
// nobody ahead removes its note itself, at once; notes that arrive while a
// removal is in flight wait, and go together in the next pipeline. Each
// writer still waits for its own note's removal before it answers.
type noteAcker struct {
	s     *Store
	mu    sync.Mutex
	busy  bool
	queue []ackWait
}

type ackWait struct {
	note Note
	done chan error
}

func (a *noteAcker) ack(ctx context.Context, n Note) error {
	a.mu.Lock()
	if a.busy {
		w := ackWait{note: n, done: make(chan error, 1)}
		a.queue = append(a.queue, w)
		a.mu.Unlock()
		select {
		case err := <-w.done:
			return err
		case <-ctx.Done():
			return storeErr(ctx.Err())
		}
	}
	a.busy = true
	a.mu.Unlock()
	err := a.s.ackNotes(ctx, []Note{n})
	a.next()
	return err
}

// next hands the notes that queued meanwhile to a goroutine, or ends the
// busy spell when there are none.
func (a *noteAcker) next() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		a.busy = false
		return
	}
	go a.drain()
}

func (a *noteAcker) drain() {
	for {
		a.mu.Lock()
		batch := a.queue
		a.queue = nil
		if len(batch) == 0 {
			a.busy = false
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		notes := make([]Note, len(batch))
		for i, w := range batch {
			notes[i] = w.note
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.s.timeout)
		err := a.s.ackNotes(ctx, notes)
		cancel()
		for _, w := range batch {
			w.done <- err
		}
	}
}

// recordNote appends the audit entry an outbox note holds (one a script
// wrote itself, such as an early event's purge) and removes the note.
func (s *Store) recordNote(ctx context.Context, orderID string, note []byte) error {
	var e audit.Entry
	if err := json.Unmarshal(note, &e); err != nil {
		return fmt.Errorf("outbox note: %w", err)
	}
	return s.recordNoted(ctx, orderID, s.later(e), note)
}

// Note is one outbox entry: an audit entry of a change already made.
type Note struct {
	Shard int
	Body  []byte
}

func orderNote(orderID string, body []byte) Note { return Note{Shard: ShardOf(orderID), Body: body} }

// key is the outbox list that holds n.
func (n Note) key() string { return tag(n.Shard) + "outbox:notes" }

// Notes returns up to limit outbox notes per shard, oldest first.
func (s *Store) Notes(ctx context.Context, limit int) ([]Note, error) {
	cmds, err := perShard(ctx, s, func(ctx context.Context, p redis.Pipeliner, k shardKey) *redis.StringSliceCmd {
		return p.LRange(ctx, k.outbox, 0, int64(limit-1))
	})
	if err != nil {
		return nil, err
	}
	var out []Note
	for i, c := range cmds {
		for _, b := range c.Val() {
			out = append(out, Note{Shard: i, Body: []byte(b)})
		}
	}
	return out, nil
}

// ackNote removes a note once it has been recorded.
func (s *Store) ackNote(ctx context.Context, n Note) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.LRem(ctx, n.key(), 1, n.Body).Err(); err != nil {
		return storeErr(err)
	}
	return nil
}

// DeferAudit keeps an audit entry the trail could not take in the outbox
// (the shard of its order, if any), where the retention sweep records it.
// Give e an Event, so an entry that did land after all is not written twice.
func (s *Store) DeferAudit(ctx context.Context, e audit.Entry) error {
	note, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("outbox note: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.RPush(ctx, tag(ShardOf(e.OrderID))+"outbox:notes", note).Err(); err != nil {
		return storeErr(err)
	}
	return nil
}

// ackNotes removes recorded notes in one round trip.
func (s *Store) ackNotes(ctx context.Context, notes []Note) error {
	if len(notes) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	for _, n := range notes {
		pipe.LRem(ctx, n.key(), 1, n.Body)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return storeErr(err)
	}
	return nil
}

// DrainOutbox records the audit entries of changes whose entry could not be
// written at the time, and removes their notes: those whose entry time is
// before olderThan, so it does not race a write that is recording its own
// entry right now (callers pass now minus a grace period). Each entry keeps
// its original time, and its event id keeps one that did land after all
// from being written twice. It returns how many it recorded.
func (s *Store) DrainOutbox(ctx context.Context, olderThan time.Time) (int, error) {
	notes, err := s.Notes(ctx, 200)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, note := range notes {
		var e audit.Entry
		if err := json.Unmarshal(note.Body, &e); err != nil {
			// Not an entry: it can never be recorded, and keeping it would
			// hide nothing. Only piivault's own scripts write here.
			if err := s.ackNote(ctx, note); err != nil {
				return n, err
			}
			continue
		}
		if !e.Time.Before(olderThan) {
			continue
		}
		if err := s.trail.Record(ctx, e); err != nil {
			return n, err
		}
		if err := s.ackNote(ctx, note); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
