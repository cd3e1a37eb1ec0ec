package orders_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/testenv"
	"piivault/orders"
)

// The one audited write path (audited.go): a change and its entry's note
// are written together; the entry is appended; the note is removed. A
// crash between any two steps leaves the outbox to finish the work, and
// never a change without its entry or an entry twice.

// crashingTrail is the real trail with a crash placed around its append:
// before (nothing appended) or after (appended, but the process died
// before it could remove the note).
type crashingTrail struct {
	real  *audit.Log
	after bool
}

var errCrash = errors.New("the process died here")

func (c crashingTrail) Record(ctx context.Context, e audit.Entry) error {
	return c.RecordAll(ctx, []audit.Entry{e})
}

func (c crashingTrail) RecordAll(ctx context.Context, es []audit.Entry) error {
	if c.after {
		if err := c.real.RecordAll(ctx, es); err != nil {
			return err
		}
	}
	return errCrash
}

// entries reads the trail's entries of action.
func entries(t *testing.T, trail *audit.Log, action string) []audit.Entry {
	t.Helper()
	page, err := trail.List(context.Background(), audit.Filter{Action: action, Limit: 500})
	require.NoError(t, err)
	return page.Entries
}

func TestEveryAuditedWriteSurvivesACrashBetweenItsSteps(t *testing.T) {
	for _, after := range []bool{false, true} {
		name := map[bool]string{false: "crash before the append", true: "crash after the append, before the note is removed"}[after]
		t.Run(name, func(t *testing.T) {
			env := testenv.Shared(t)
			ctx := context.Background()
			trail := audit.NewLog(env.Redis, env.Service, env.Service)
			crashing := newStore(t, env, crashingTrail{real: trail, after: after})
			store := newStore(t, env, trail) // the next run, same Redis

			// Store, purge and a sweep's batch purge, each through a crash.
			_, res, err := crashing.StoreAudited(ctx, order("ord-crash-1", "pi_1", "Jane Doe"),
				audit.Entry{Actor: "client:shop", IP: "192.0.2.5"})
			require.ErrorIs(t, err, errCrash)
			var deferred *orders.DeferredError
			require.ErrorAs(t, err, &deferred, "the change was made; only its entry waits")
			require.Equal(t, orders.Created, res)
			for _, id := range []string{"ord-crash-2", "ord-crash-3"} {
				_, _, err = store.StoreAudited(ctx, order(id, "pi_"+id, "Jane Doe"), audit.Entry{Actor: "client:shop"})
				require.NoError(t, err)
			}
			done, err := crashing.PurgeAudited(ctx, "ord-crash-2", orders.ReasonShipped, nil, audit.Entry{Actor: "fulfil", IP: "192.0.2.6"})
			require.ErrorAs(t, err, &deferred)
			require.True(t, done)
			res2, err := crashing.PurgeManyAudited(ctx, []string{"ord-crash-3", "ord-none"}, orders.ReasonRetention, "system")
			require.ErrorAs(t, err, &deferred)
			require.Equal(t, []int{1, -1}, res2)

			// Every change is made, and each one's note waits in the outbox.
			ref, err := store.Get(ctx, "ord-crash-1")
			require.NoError(t, err)
			require.Equal(t, orders.StatusHeld, ref.Status)
			for _, id := range []string{"ord-crash-2", "ord-crash-3"} {
				ref, err = store.Get(ctx, id)
				require.NoError(t, err)
				require.NotEqual(t, orders.StatusHeld, ref.Status, id)
			}
			notes, err := store.Notes(ctx, 10)
			require.NoError(t, err)
			require.Len(t, notes, 3)

			// A drain within the grace period leaves them (their writers may
			// be recording them right now); the next sweep's drain records them.
			n, err := store.DrainOutbox(ctx, time.Now().Add(-time.Minute))
			require.NoError(t, err)
			require.Zero(t, n)
			n, err = store.DrainOutbox(ctx, time.Now().Add(time.Minute))
			require.NoError(t, err)
			require.Equal(t, 3, n)
			notes, err = store.Notes(ctx, 10)
			require.NoError(t, err)
			require.Empty(t, notes)

			stored := entries(t, trail, audit.ActionStore)
			var crashStore []audit.Entry
			for _, e := range stored {
				if e.OrderID == "ord-crash-1" {
					crashStore = append(crashStore, e)
				}
			}
			require.Len(t, crashStore, 1, "recorded once, whether or not the crash came after the append")
			require.Equal(t, "client:shop", crashStore[0].Actor)
			require.Equal(t, "192.0.2.5", crashStore[0].IP)
			purges := entries(t, trail, audit.ActionPurge)
			require.Len(t, purges, 2, "one entry per purge, none twice: %+v", purges)
			for _, e := range purges {
				ref, err := store.Get(ctx, e.OrderID)
				require.NoError(t, err)
				require.Equal(t, *ref.PurgeReason, e.Detail["reason"])
				require.WithinDuration(t, *ref.PurgedAt, e.Time, time.Second, "the entry keeps the purge's own time")
			}
			v, err := trail.Verify(ctx)
			require.NoError(t, err)
			require.True(t, v.Intact)
		})
	}
}

// A write the store refuses (a conflict, an invalid order, a purge of a
// purged order) notes and records nothing.
func TestARefusedWriteNotesNothing(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	store := newStore(t, env, trail)
	actor := audit.Entry{Actor: "client:shop"}
	_, _, err := store.StoreAudited(ctx, order("ord-ref", "pi_1", "Jane Doe"), actor)
	require.NoError(t, err)
	_, _, err = store.StoreAudited(ctx, order("ord-ref", "pi_1", "Jane Doe"), actor) // duplicate
	require.NoError(t, err)
	_, _, err = store.StoreAudited(ctx, order("ord-ref", "pi_1", "John Roe"), actor) // conflict
	require.Error(t, err)
	_, _, err = store.StoreAudited(ctx, order("bad id!", "pi_1", "Jane Doe"), actor) // invalid
	require.Error(t, err)
	done, err := store.PurgeAudited(ctx, "ord-ref", orders.ReasonShipped, []string{"pi_other"}, actor)
	require.ErrorIs(t, err, orders.ErrOtherPayment)
	require.False(t, done)
	done, err = store.PurgeAudited(ctx, "ord-ref", orders.ReasonShipped, nil, actor)
	require.NoError(t, err)
	require.True(t, done)
	done, err = store.PurgeAudited(ctx, "ord-ref", orders.ReasonShipped, nil, actor) // already purged
	require.NoError(t, err)
	require.False(t, done)

	require.Len(t, entries(t, trail, audit.ActionStore), 1)
	require.Len(t, entries(t, trail, audit.ActionPurge), 1)
	notes, err := store.Notes(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, notes)
}

// An early event's purge, written by the store script itself when the
// order arrives, is recorded like any purge.
func TestATombstonedStoreRecordsTheEventsPurge(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	store := newStore(t, env, trail)
	ok, err := store.Tombstone(ctx, "ord-early", orders.ReasonShipped, "", "webhook:shipping")
	require.NoError(t, err)
	require.True(t, ok)
	_, res, err := store.StoreAudited(ctx, order("ord-early", "pi_1", "Jane Doe"), audit.Entry{Actor: "client:shop"})
	require.Error(t, err)
	require.Equal(t, orders.Tombstoned, res)
	purges := entries(t, trail, audit.ActionPurge)
	require.Len(t, purges, 1)
	require.Equal(t, "webhook:shipping", purges[0].Actor)
	require.Equal(t, "true", purges[0].Detail["before_store"])
	require.Empty(t, entries(t, trail, audit.ActionStore), "nothing was stored")
	notes, err := store.Notes(ctx, 10)
	require.NoError(t, err)
	require.Empty(t, notes)
}

// Concurrent writers share the round trips that remove their notes, but
// each answers only once its own note is gone: right after every answer,
// the outbox is empty and every entry is in the trail once.
func TestConcurrentWritesLeaveNoNoteBehindTheirAnswers(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	trail := audit.NewLog(env.Redis, env.Service, env.Service)
	store := newStore(t, env, trail)
	const writers = 40
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("ord-many-%d", i)
			if _, _, errs[i] = store.StoreAudited(ctx, order(id, "pi_"+id, "Jane Doe"), audit.Entry{Actor: "client:shop"}); errs[i] != nil {
				return
			}
			if i%2 == 0 {
				_, errs[i] = store.PurgeAudited(ctx, id, orders.ReasonShipped, nil, audit.Entry{Actor: "webhook:shipping"})
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}
	notes, err := store.Notes(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, notes)
	require.Len(t, entries(t, trail, audit.ActionStore), writers)
	require.Len(t, entries(t, trail, audit.ActionPurge), writers/2)
}
