// Package purge destroys PII when its purpose ends: on shipment, on a
// customer's request, and when the retention runs out. It runs the
// retention sweep and the key shredding on a schedule (gocron, with a Redis
// lock so one instance sweeps at a time), and handles deletion requests.
//
//	piivault:{deletion}:<request_id>   string  JSON receipt: order ids, times — never the email
//	piivault:{deletion}:index          list    receipt ids, newest first (the latest 1,000)
//	piivault:{lock}:<job>              string  scheduler lease (SET NX PX), frees itself when its holder dies
package purge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"piivault/audit"
	"piivault/orders"
)

// Store is what purging needs from the order store.
type Store interface {
	PurgePaidNoting(ctx context.Context, orderID, reason string, payments []string, note []byte) (bool, error)
	PurgeMany(ctx context.Context, ids []string, reason string, notes [][]byte) ([]int, error)
	AckNotes(ctx context.Context, notes []orders.Note) error
	Notes(ctx context.Context, limit int) ([]orders.Note, error)
	AckNote(ctx context.Context, n orders.Note) error
	Due(ctx context.Context, t time.Time, limit int) ([]orders.Held, error)
	DueEach(ctx context.Context, t time.Time, perShard int) ([]orders.Held, bool, error)
	FindByEmail(ctx context.Context, email string) ([]string, error)
	Oldest(ctx context.Context, afterMS int64, afterID string, limit int) ([]orders.Held, error)
	HeldCount(ctx context.Context) (int64, error)
	Retention() time.Duration
}

// Recorder appends to the audit trail: one entry, or a group together.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
	RecordAll(ctx context.Context, entries []audit.Entry) error
}

// Purger purges orders and records each purge in the audit trail.
type Purger struct {
	store Store
	audit Recorder
	log   *slog.Logger
	now   func() time.Time
	// outboxGrace is how old an outbox note must be before the drain
	// records it, so it does not race the purge that is recording it now.
	outboxGrace time.Duration
}

// NewPurger builds a Purger.
func NewPurger(store Store, rec Recorder, log *slog.Logger) *Purger {
	return &Purger{store: store, audit: rec, log: log, now: time.Now, outboxGrace: 30 * time.Second}
}

// Purge destroys one order's PII for reason on behalf of actor. It returns
// true when this call purged it; purging a purged order is not an error.
// The audit record travels with the purge itself (the store's outbox, in
// the same atomic step), so a purge is recorded even if the audit trail is
// unavailable at that moment: the next sweep drains what is left.
func (p *Purger) Purge(ctx context.Context, actor, ip, orderID, reason string) (bool, error) {
	return p.PurgePaid(ctx, actor, ip, orderID, reason, nil)
}

// PurgePaid is Purge for an event bound to a payment (a refund, a
// cancellation): the order is purged only if it was stored with one of
// payments, else orders.ErrOtherPayment and nothing changes. The store
// compares them in the purge's own atomic step.
func (p *Purger) PurgePaid(ctx context.Context, actor, ip, orderID, reason string, payments []string) (bool, error) {
	e := audit.Entry{Time: p.now().UTC(), Actor: actor, Action: audit.ActionPurge, OrderID: orderID, IP: ip,
		Detail: map[string]string{"reason": reason}, Event: audit.NewEventID()}
	note, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("purge note: %w", err)
	}
	done, err := p.store.PurgePaidNoting(ctx, orderID, reason, payments, note)
	if err != nil {
		return false, err
	}
	if done {
		purged.WithLabelValues(reason).Inc()
		if err := p.audit.Record(ctx, e); err != nil {
			p.log.Error("purge audit deferred to the outbox", "order_id", orderID, "err", err)
		} else if err := p.store.AckNote(ctx, orders.OrderNote(orderID, note)); err != nil {
			p.log.Warn("purge outbox note not removed; it may be recorded twice", "order_id", orderID, "err", err)
		}
	}
	return done, nil
}

// DrainOutbox records purges whose audit entry could not be written at the
// time (older than the grace period) and removes their notes.
func (p *Purger) DrainOutbox(ctx context.Context) (int, error) {
	notes, err := p.store.Notes(ctx, 200)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, note := range notes {
		var e audit.Entry
		if err := json.Unmarshal(note.Body, &e); err != nil {
			p.log.Error("unreadable purge outbox note dropped")
			_ = p.store.AckNote(ctx, note)
			continue
		}
		if p.now().Sub(e.Time) < p.outboxGrace {
			continue
		}
		if err := p.audit.Record(ctx, e); err != nil {
			return n, err
		}
		if err := p.store.AckNote(ctx, note); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// SweepBatch is how many due orders one step of a sweep takes from each
// shard (so up to 32 times as many in all). A step is a few round trips
// whatever its size: the due orders' purge scripts go
// to Redis in one pipeline (each still atomic, each with its own outbox
// note), their audit entries are appended as one group (sealed by Vault in
// a few calls), and their notes are removed in one more pipeline.
const SweepBatch = 64

// Sweep purges every order whose retention has ended, including those whose
// ciphertext Redis already expired by TTL. It returns how many it purged.
// Each step reads at most SweepBatch due entries, so its cost grows with the
// number due, not with the number stored.
func (p *Purger) Sweep(ctx context.Context) (int, error) {
	start := time.Now()
	defer func() { sweepSeconds.Observe(time.Since(start).Seconds()) }()
	if n, err := p.DrainOutbox(ctx); err != nil {
		p.log.Error("purge outbox not drained", "err", err)
	} else if n > 0 {
		p.log.Warn("recorded purges from the outbox", slog.Int("entries", n))
	}
	total := 0
	for {
		due, more, err := p.store.DueEach(ctx, p.now(), SweepBatch)
		if err != nil {
			return total, fmt.Errorf("sweep: list due orders: %w", err)
		}
		n, err := p.purgeBatch(ctx, due, orders.ReasonRetention)
		total += n
		if err != nil {
			p.observe(ctx)
			return total, fmt.Errorf("sweep: %w", err)
		}
		if !more {
			break
		}
	}
	p.observe(ctx)
	p.log.Info("retention sweep", slog.Int("purged", total), slog.Duration("took", time.Since(start)))
	return total, nil
}

// purgeBatch purges orders for reason as the system, in one pipelined
// step. The audit records travel with the purges (the outbox), so if the
// trail fails here they are recorded by the next drain.
func (p *Purger) purgeBatch(ctx context.Context, due []orders.Held, reason string) (int, error) {
	if len(due) == 0 {
		return 0, nil
	}
	ids := make([]string, len(due))
	entries := make([]audit.Entry, len(due))
	notes := make([][]byte, len(due))
	now := p.now().UTC()
	for i, h := range due {
		ids[i] = h.OrderID
		entries[i] = audit.Entry{Time: now, Actor: "system", Action: audit.ActionPurge, OrderID: h.OrderID,
			Detail: map[string]string{"reason": reason}, Event: audit.NewEventID()}
		var err error
		if notes[i], err = json.Marshal(entries[i]); err != nil {
			return 0, fmt.Errorf("purge note: %w", err)
		}
	}
	res, err := p.store.PurgeMany(ctx, ids, reason, notes)
	if err != nil {
		return 0, err
	}
	var done []audit.Entry
	var acks []orders.Note
	for i, r := range res {
		if r == 1 {
			done = append(done, entries[i])
			acks = append(acks, orders.OrderNote(ids[i], notes[i]))
		}
	}
	purged.WithLabelValues(reason).Add(float64(len(done)))
	if err := p.audit.RecordAll(ctx, done); err != nil {
		p.log.Error("sweep audit deferred to the outbox", slog.Int("entries", len(done)), "err", err)
		return len(done), nil
	}
	if err := p.store.AckNotes(ctx, acks); err != nil {
		p.log.Warn("sweep outbox notes not removed; they may be recorded twice", "err", err)
	}
	return len(done), nil
}

// observe refreshes the backlog and age gauges.
func (p *Purger) observe(ctx context.Context) {
	if due, err := p.store.Due(ctx, p.now(), SweepBatch); err == nil {
		dueBacklog.Set(float64(len(due)))
	}
	if n, err := p.store.HeldCount(ctx); err == nil {
		heldOrders.Set(float64(n))
	}
	oldest, err := p.store.Oldest(ctx, 0, "", 1)
	if err != nil {
		return
	}
	age := 0.0
	if len(oldest) == 1 {
		created := oldest[0].ExpiresAt.Add(-p.store.Retention())
		age = p.now().Sub(created).Seconds()
	}
	oldestHeldAge.Set(age)
}
