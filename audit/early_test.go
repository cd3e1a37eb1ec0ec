package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
	"piivault/vault"
)

// countingSealer is Vault's sealer, counting the hashes it is asked to
// seal; failEarly makes single-hash calls fail, as an early seal is one.
type countingSealer struct {
	Sealer
	mu        sync.Mutex
	sealed    []string
	failEarly bool
}

func (c *countingSealer) Seal(ctx context.Context, inputs [][]byte) ([]vault.Result, error) {
	c.mu.Lock()
	for _, in := range inputs {
		c.sealed = append(c.sealed, string(in))
	}
	fail := c.failEarly && len(inputs) == 1
	c.failEarly = false
	c.mu.Unlock()
	if fail {
		return nil, errors.New("vault is briefly away")
	}
	return c.Sealer.Seal(ctx, inputs)
}

func (c *countingSealer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sealed)
}

// An early seal is used only when the entry lands exactly where it was
// guessed; otherwise the entry is sealed again with its group. Either way
// the trail verifies: no entry ever carries a seal of another hash.
func TestAnEarlySealIsUsedOnlyForTheEntryItWasMadeFor(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	s := &countingSealer{Sealer: env.Service}
	l := NewLog(env.Redis, s, nil)
	reveal := func(id string) Entry {
		return Entry{Actor: "alice", Action: ActionReveal, OrderID: id, IP: "192.0.2.1"}
	}
	require.NoError(t, l.Record(ctx, reveal("ord-first"))) // the head is now known
	require.Equal(t, 1, s.count())

	// Idle: the seal starts at Begin and Commit takes it, no second call.
	x := l.Begin(reveal("ord-early"))
	require.NoError(t, x.Commit(ctx))
	require.Equal(t, 2, s.count(), "one seal for the early entry, made before its commit")

	// Another entry lands first: the guess is wrong, the entry is sealed anew.
	x = l.Begin(reveal("ord-overtaken"))
	require.NoError(t, l.Record(ctx, reveal("ord-first-past-the-post")))
	require.NoError(t, x.Commit(ctx))
	require.Equal(t, 5, s.count(), "the wasted early seal, the other entry's, and the entry's own")

	// After a wasted guess Begin guesses nothing for a while…
	x = l.Begin(reveal("ord-right-after"))
	require.NoError(t, x.Commit(ctx))
	require.Equal(t, 6, s.count(), "sealed at its commit, as Record does")
	time.Sleep(guessPause + 20*time.Millisecond) // …then again.

	// A cancelled entry is never appended, and the next Begin guesses again.
	x = l.Begin(reveal("ord-cancelled"))
	x.Cancel()
	x = l.Begin(reveal("ord-after-cancel"))
	require.NoError(t, x.Commit(ctx))
	require.Equal(t, 8, s.count())

	// A failed early seal is made again at commit.
	s.mu.Lock()
	s.failEarly = true
	s.mu.Unlock()
	x = l.Begin(reveal("ord-early-failed"))
	require.NoError(t, x.Commit(ctx))
	require.Equal(t, 10, s.count())

	page, err := l.List(ctx, Filter{Limit: 50})
	require.NoError(t, err)
	var ids []string
	for _, e := range page.Entries {
		ids = append(ids, e.OrderID)
		require.NotEmpty(t, e.Seal, "entry %d", e.Seq)
	}
	require.ElementsMatch(t, []string{"ord-first", "ord-early", "ord-first-past-the-post", "ord-overtaken",
		"ord-right-after", "ord-after-cancel", "ord-early-failed"}, ids, "the cancelled entry is not in the trail")
	requireIntact(t, l, 7)
}

// Entries begun and committed concurrently all land, each with its own
// valid seal, whichever of them (if any) got an early one.
func TestConcurrentEarlyEntriesAllVerify(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, nil)
	require.NoError(t, l.Record(ctx, Entry{Actor: "system", Action: ActionKeyRotate}))
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := l.Begin(Entry{Actor: "alice", Action: ActionReveal, OrderID: fmt.Sprintf("ord-c%d", i), IP: "192.0.2.1"})
			if i%5 == 0 {
				x.Cancel()
				return
			}
			errs[i] = x.Commit(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "entry %d", i)
	}
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, 1+32, v.Entries)
}

// countingAnchor is Vault's anchor store, counting writes.
type countingAnchor struct {
	AnchorStore
	mu     sync.Mutex
	writes int
}

func (c *countingAnchor) WriteAnchor(ctx context.Context, a vault.Anchor, cas int) error {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.AnchorStore.WriteAnchor(ctx, a, cas)
}

// The anchor moves on its own pace, not once per group commit: many
// groups in a short time cost a few anchor writes, a clean stop anchors
// the newest entry, and a cut of anchored entries is still reported.
func TestTheAnchorMovesAtItsOwnPaceAndStillCatchesACut(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	anchor := &countingAnchor{AnchorStore: env.Service}
	l := NewLog(env.Redis, env.Service, anchor, AnchorEvery(200*time.Millisecond))
	run, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.RunAnchor(run, testenv.Logger(), func(string) {})
	}()
	start := time.Now()
	for i := 0; i < 30; i++ {
		require.NoError(t, l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: fmt.Sprintf("ord-pace-%d", i), IP: "192.0.2.1"}))
	}
	elapsed := time.Since(start)
	stop()
	<-done
	anchor.mu.Lock()
	writes := anchor.writes
	anchor.mu.Unlock()
	// One write at the start of each 200 ms window, plus the final one.
	require.LessOrEqual(t, writes, int(elapsed/(200*time.Millisecond))+2, "30 groups in %v", elapsed)
	a, _, err := env.Service.ReadAnchor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 30, a.Seq, "a clean stop anchors the newest entry")

	// The newest entries cut and the head moved back: Verify reports it.
	msgs := env.Redis.XRange(ctx, logKey, "-", "+").Val()
	for _, m := range msgs[len(msgs)-3:] {
		env.Redis.XDel(ctx, logKey, m.ID)
	}
	kept, err := decode(msgs[len(msgs)-4])
	require.NoError(t, err)
	require.NoError(t, env.Redis.Set(ctx, headKey, headValue(kept.Seq, kept.Hash), 0).Err())
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact)
	require.Contains(t, v.Broken.Reason, "newest entries were removed")
}

// A group holding an entry already in the trail (its event recorded
// before) and new ones: the old one is left out, the others land, and
// every caller is answered.
func TestAGroupWithAnEventAlreadyInTheTrail(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, env.Service)
	old := Entry{Actor: "client:shop", Action: ActionStore, OrderID: "ord-old", Event: NewEventID(), Time: time.Now().UTC()}
	require.NoError(t, l.Record(ctx, old))
	done := make(chan error, 1)
	go func() {
		done <- l.RecordAll(ctx, []Entry{{Actor: "system", Action: ActionKeyRotate}, old,
			{Actor: "client:shop", Action: ActionStore, OrderID: "ord-new", Event: NewEventID()}})
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("a caller of the group was never answered")
	}
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, 3, v.Entries, "the old event once, the two new entries")
}

// failingSealer is a Vault that refuses every seal.
type failingSealer struct{ Sealer }

func (failingSealer) Seal(context.Context, [][]byte) ([]vault.Result, error) {
	return nil, errors.New("vault is away")
}

// CommitWith sends the caller's writes in the round trip of the entry's
// append, once the entry is sealed; an entry that cannot be sealed sends
// nothing, so its writes never say more than the trail could.
func TestCommitWithSendsItsWritesOnlyWithASealedEntry(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, nil)
	require.NoError(t, l.Record(ctx, Entry{Actor: "alice", Action: ActionLogin}))

	var sets []*redis.StatusCmd
	also := func(key string) func(p redis.Pipeliner) {
		return func(p redis.Pipeliner) { sets = append(sets, p.Set(ctx, key, "1", time.Minute)) }
	}
	x := l.Begin(Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-with"})
	sent, err := x.CommitWith(ctx, also("test:commitwith:sealed"))
	require.NoError(t, err)
	require.True(t, sent)
	require.Len(t, sets, 1, "sent once")
	require.NoError(t, sets[0].Err())
	require.Equal(t, "1", env.Redis.Get(ctx, "test:commitwith:sealed").Val())

	// A Redis that forgot the script (a restart, a failover) still gets
	// the entry, and the writes once.
	require.NoError(t, env.Redis.ScriptFlush(ctx).Err())
	x = l.Begin(Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-noscript"})
	sent, err = x.CommitWith(ctx, also("test:commitwith:noscript"))
	require.NoError(t, err)
	require.True(t, sent)
	require.Len(t, sets, 2)
	require.Equal(t, "1", env.Redis.Get(ctx, "test:commitwith:noscript").Val())

	down := NewLog(env.Redis, failingSealer{}, nil)
	x = down.Begin(Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-unsealed"})
	sent, err = x.CommitWith(ctx, also("test:commitwith:unsealed"))
	require.Error(t, err)
	require.False(t, sent)
	require.Len(t, sets, 2, "an unsealed entry's writes are never queued")
	require.Zero(t, env.Redis.Exists(ctx, "test:commitwith:unsealed").Val())
	requireIntact(t, l, 3)
}

// An entry's outbox note is removed by the script that appends the entry:
// never before the entry is in the trail, never left behind by it. An
// entry whose event is in the trail already leaves its note to the caller,
// and one that cannot be sealed leaves it for the sweep.
func TestTheAppendRemovesTheEntrysOutboxNote(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, nil)
	const list = "test:acking:outbox"
	e := Entry{Actor: "client:shop", Action: ActionPurge, OrderID: "ord-ack", Event: NewEventID()}
	note := []byte(`{"note":"ord-ack"}`)
	require.NoError(t, env.Redis.RPush(ctx, list, "another note", note).Err())

	acked, err := l.Begin(e).CommitAcking(ctx, Ack{Key: list, Value: note})
	require.NoError(t, err)
	require.True(t, acked)
	require.Equal(t, []string{"another note"}, env.Redis.LRange(ctx, list, 0, -1).Val(), "only its own note")

	require.NoError(t, env.Redis.RPush(ctx, list, note).Err())
	acked, err = l.RecordAcking(ctx, e, Ack{Key: list, Value: note})
	require.NoError(t, err, "in the trail already: done")
	require.False(t, acked, "the caller removes the note of an entry that was in the trail already")
	require.Len(t, env.Redis.LRange(ctx, list, 0, -1).Val(), 2)

	down := NewLog(env.Redis, failingSealer{}, nil)
	e.Event = NewEventID()
	_, err = down.RecordAcking(ctx, e, Ack{Key: list, Value: note})
	require.Error(t, err)
	require.Len(t, env.Redis.LRange(ctx, list, 0, -1).Val(), 2, "an entry not appended keeps its note")

	requireIntact(t, l, 1)
}

// requireIntact verifies l's trail: intact, with entries entries.
func requireIntact(t *testing.T, l *Log, entries int) {
	t.Helper()
	v, err := l.Verify(context.Background())
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, entries, v.Entries)
}

// unhurriedSealer is a Vault that takes d to seal, or gives up with ctx.
type unhurriedSealer struct {
	Sealer
	d time.Duration
}

func (s unhurriedSealer) Seal(ctx context.Context, in [][]byte) ([]vault.Result, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Sealer.Seal(ctx, in)
}

// A caller that appends its own entry (the trail was idle) still stops at
// its own deadline, as Record promises, and an entry not sent by then is
// not in the trail; the trail goes on.
func TestACallerAppendingItsOwnEntryStopsAtItsDeadline(t *testing.T) {
	env := testenv.Shared(t)
	l := NewLog(env.Redis, unhurriedSealer{Sealer: env.Service, d: 2 * time.Second}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.Error(t, l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-late"}))
	require.Less(t, time.Since(start), time.Second, "not the sealer's two seconds")
	page, err := l.List(context.Background(), Filter{OrderID: "ord-late"})
	require.NoError(t, err)
	require.Empty(t, page.Entries)

	fast := NewLog(env.Redis, env.Service, nil)
	require.NoError(t, fast.Record(context.Background(), Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-in-time"}))
	requireIntact(t, fast, 1)
}
