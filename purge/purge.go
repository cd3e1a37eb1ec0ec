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
	"fmt"
	"log/slog"
	"time"

	"piivault/audit"
	"piivault/orders"
)

// Store is what purging needs from the order store. Its audited writes
// record every purge (orders.StoreAudited and friends hold the protocol).
type Store interface {
	PurgeAudited(ctx context.Context, orderID, reason string, payments []string, e audit.Entry) (bool, error)
	PurgeManyNoted(ctx context.Context, ids []string, reason, actor string) ([]int, *orders.Noted, error)
	DrainOutbox(ctx context.Context, olderThan time.Time) (int, error)
	DeferAudit(ctx context.Context, e audit.Entry) error
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
	// step is how many due orders a sweep step takes from each shard.
	step int
}

// NewPurger builds a Purger.
func NewPurger(store Store, rec Recorder, log *slog.Logger) *Purger {
	return &Purger{store: store, audit: rec, log: log, now: time.Now, outboxGrace: 30 * time.Second, step: SweepBatch}
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
	done, err := p.store.PurgeAudited(ctx, orderID, reason, payments, audit.Entry{Actor: actor, IP: ip})
	if err = orders.LogDeferred(p.log, orderID, err); err != nil {
		return false, err
	}
	if done {
		purged.WithLabelValues(reason).Inc()
	}
	return done, nil
}

// DrainOutbox records the audit entries of changes whose entry could not
// be written at the time and are older than the grace period (so it does
// not race a write recording its own entry now).
func (p *Purger) DrainOutbox(ctx context.Context) (int, error) {
	return p.store.DrainOutbox(ctx, p.now().Add(-p.outboxGrace))
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
//
// A step's entries are appended while the next step lists and purges its
// orders: Vault seals one step while Redis purges the next, instead of
// each waiting for the other. At most one step's entries are in flight, so
// they reach the trail in step order, and Sweep returns only once the last
// step's are appended. A step whose entries cannot be appended leaves them
// in the outbox, as any purge does, and the sweep goes on.
func (p *Purger) Sweep(ctx context.Context) (int, error) {
	start := time.Now()
	defer func() { sweepSeconds.Observe(time.Since(start).Seconds()) }()
	if n, err := p.DrainOutbox(ctx); err != nil {
		p.log.Error("purge outbox not drained", "err", err)
	} else if n > 0 {
		p.log.Warn("recorded purges from the outbox", slog.Int("entries", n))
	}
	var recording chan error // the previous step's entries, being appended
	recorded := func() {
		if recording != nil {
			_ = orders.LogDeferred(p.log, "", <-recording) // Record fails only as deferred
			recording = nil
		}
	}
	defer recorded() // on an error return; a sweep that ends well waits below
	total := 0
	for {
		due, more, err := p.store.DueEach(ctx, p.now(), p.step)
		if err != nil {
			return total, fmt.Errorf("sweep: list due orders: %w", err)
		}
		n, noted, err := p.purgeMany(ctx, due, orders.ReasonRetention)
		total += n
		if err != nil {
			p.Observe(ctx)
			return total, fmt.Errorf("sweep: %w", err)
		}
		recorded()
		if noted != nil {
			ch := make(chan error, 1)
			go func() { ch <- noted.Record(ctx) }()
			recording = ch
		}
		if !more {
			break
		}
	}
	recorded()
	p.Observe(ctx)
	sweepLastSuccess.Set(float64(time.Now().Unix()))
	p.log.Info("retention sweep", slog.Int("purged", total), slog.Duration("took", time.Since(start)))
	return total, nil
}

// purgeMany purges orders for reason as the system in one pipelined step,
// each with its outbox note; their entries are left to the returned Noted.
func (p *Purger) purgeMany(ctx context.Context, due []orders.Held, reason string) (int, *orders.Noted, error) {
	if len(due) == 0 {
		return 0, nil, nil
	}
	ids := make([]string, len(due))
	for i, h := range due {
		ids[i] = h.OrderID
	}
	res, noted, err := p.store.PurgeManyNoted(ctx, ids, reason, "system")
	if err != nil {
		return 0, nil, err
	}
	n := 0
	for _, r := range res {
		if r == 1 {
			n++
		}
	}
	purged.WithLabelValues(reason).Add(float64(n))
	return n, noted, nil
}

// Observe refreshes the held-order gauges (held, oldest held age against
// the retention, due backlog). The sweep does after each run; serve also
// runs it every minute on every instance, so each reports current figures
// whichever instance holds the sweep's lease.
func (p *Purger) Observe(ctx context.Context) {
	retention.Set(p.store.Retention().Seconds())
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
