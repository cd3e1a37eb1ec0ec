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
	"sync"
	"time"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/orders"
)

// Store is what purging needs from the order store.
type Store interface {
	PurgeNoting(ctx context.Context, orderID, reason string, note []byte) (bool, error)
	Notes(ctx context.Context, limit int) ([]orders.Note, error)
	AckNote(ctx context.Context, n orders.Note) error
	Due(ctx context.Context, t time.Time, limit int) ([]orders.Held, error)
	FindByEmail(ctx context.Context, email string) ([]string, error)
	Oldest(ctx context.Context, afterMS int64, afterID string, limit int) ([]orders.Held, error)
	HeldCount(ctx context.Context) (int64, error)
	Retention() time.Duration
}

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
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
	e := audit.Entry{Time: p.now().UTC(), Actor: actor, Action: audit.ActionPurge, OrderID: orderID, IP: ip,
		Detail: map[string]string{"reason": reason}, Event: audit.NewEventID()}
	note, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("purge note: %w", err)
	}
	done, err := p.store.PurgeNoting(ctx, orderID, reason, note)
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

// SweepBatch is how many due orders one step of a sweep takes, and
// sweepWorkers how many of them are purged at once. Each purge is one
// independent atomic script, so they parallelise; and their audit entries
// arrive together, so the trail seals them in one Vault call per group
// (with 8 workers the sweep ran at about 2,200 purges/s, with 64 at 5,800).
const (
	SweepBatch   = 500
	sweepWorkers = 64
)

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
	var errs []error
	for {
		due, err := p.store.Due(ctx, p.now(), SweepBatch)
		if err != nil {
			return total, fmt.Errorf("sweep: list due orders: %w", err)
		}
		purged, failed := p.purgeAll(ctx, due)
		total += purged
		errs = append(errs, failed...)
		if len(due) < SweepBatch || len(failed) == len(due) {
			break
		}
	}
	p.observe(ctx)
	if len(errs) > 0 {
		return total, fmt.Errorf("sweep: %d of the due orders failed, first: %w", len(errs), errs[0])
	}
	p.log.Info("retention sweep", slog.Int("purged", total), slog.Duration("took", time.Since(start)))
	return total, nil
}

// purgeAll purges due orders for retention on a few workers; an order gone
// already (unknown) counts as done.
func (p *Purger) purgeAll(ctx context.Context, due []orders.Held) (int, []error) {
	var (
		mu     sync.Mutex
		purged int
		errs   []error
		wg     sync.WaitGroup
	)
	next := make(chan string)
	for w := 0; w < sweepWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				done, err := p.Purge(pctx, "system", "", id, orders.ReasonRetention)
				cancel()
				mu.Lock()
				switch {
				case err != nil && !apperr.Is(err, apperr.NotFound):
					errs = append(errs, err)
				case done:
					purged++
				}
				mu.Unlock()
			}
		}()
	}
	for _, h := range due {
		next <- h.OrderID
	}
	close(next)
	wg.Wait()
	return purged, errs
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
