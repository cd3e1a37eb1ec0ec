package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
	"piivault/vault"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRebuiltChainIsCaughtBySeals plays an attacker with write access to
// Redis (and piivault's source): they edit an entry, recompute every hash
// and the head so the SHA-256 chain is consistent again, but cannot make
// Vault's seals.
func TestRebuiltChainIsCaughtBySeals(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, env.Service)
	for i := 1; i <= 5; i++ {
		require.NoError(t, l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: fmt.Sprintf("ord-%d", i), IP: "192.0.2.1"}))
	}
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, 5, v.Entries)

	msgs := env.Redis.XRange(ctx, logKey, "-", "+").Val()
	require.NoError(t, env.Redis.Del(ctx, logKey).Err())
	prev := genesis
	for i, m := range msgs {
		var e Entry
		require.NoError(t, json.Unmarshal([]byte(m.Values["entry"].(string)), &e))
		if i == 2 {
			e.Actor = "mallory" // the edit the attacker wants to hide
		}
		e.Prev = prev
		e.Hash = e.digest() // the unkeyed chain is rebuilt…
		prev = e.Hash
		body, _ := json.Marshal(e) // …but the seal stays the old one
		require.NoError(t, env.Redis.XAdd(ctx, &redis.XAddArgs{Stream: logKey, ID: m.ID, Values: map[string]any{"entry": string(body)}}).Err())
	}
	require.NoError(t, env.Redis.Set(ctx, headKey, headValue(int64(len(msgs)), prev), 0).Err())

	v, err = l.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact)
	require.EqualValues(t, 3, v.Broken.Seq)
	require.Contains(t, v.Broken.Reason, "seal")
}

func TestEntriesAreSealed(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, env.Service)
	require.NoError(t, l.Record(ctx, Entry{Actor: "system", Action: ActionKeyRotate}))
	page, err := l.List(ctx, Filter{})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	require.Regexp(t, `^vault:v1:`, page.Entries[0].Seal)
}

// slowSealer stands in for Vault only to stall sealing on purpose: a real
// Vault cannot be made slow for one call.
type slowSealer struct {
	Sealer
	delay time.Duration
}

func (s slowSealer) Seal(ctx context.Context, in [][]byte) ([]vault.Result, error) {
	time.Sleep(s.delay)
	return s.Sealer.Seal(ctx, in)
}

func TestRecordWaitsNoLongerThanItsOwnContext(t *testing.T) {
	env := testenv.Shared(t)
	// A seal that takes seconds against a caller who waits a fifth of one:
	// the bound holds with room to spare on a loaded machine.
	l := NewLog(env.Redis, slowSealer{Sealer: env.Service, delay: 2 * time.Second}, nil)
	// Keep the flusher busy with other callers' entries.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.Record(context.Background(), Entry{Actor: "system", Action: ActionKeyRotate})
		}()
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-ctx"})
	require.Error(t, err)
	require.Less(t, time.Since(start), 1500*time.Millisecond, "a caller is bounded by its own context, not by the 2 s seal")
	wg.Wait()
	v, err := l.Verify(context.Background())
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
}

func TestAnEventIsNeverWrittenTwice(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, env.Service)
	e := Entry{Actor: "client:shop", Action: ActionStore, OrderID: "ord-once", Event: NewEventID(), Time: time.Now().UTC()}
	require.NoError(t, l.Record(ctx, e))
	// The same record again, as the outbox drain would after a caller gave
	// up waiting, in a group with a new entry.
	group := []Entry{e, {Actor: "system", Action: ActionKeyRotate}}
	errs := make([]error, len(group)) // asserted here: only the test goroutine may fail the test
	var wg sync.WaitGroup
	for i, en := range group {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = l.Record(ctx, en) }()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "entry %d", i)
	}
	n, err := l.Length(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.NoError(t, l.Anchor(ctx))
	a, _, err := env.Service.ReadAnchor(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, a.Seq)
}

// TestReorderedEntriesAreReported swaps two entries of the stream, each kept
// whole (its seq, prev, hash and Vault seal untouched) but stored under the
// other's stream id, as someone who can write to Redis but not to Vault
// could: every entry still hashes and seals correctly, so only the order of
// the chain shows the swap, and Verify reports the first entry out of place.
func TestReorderedEntriesAreReported(t *testing.T) {
	tests := []struct {
		name string
		i, j int // positions (0-based) of the two entries swapped
		// The break reported: the position whose entry is out of place,
		// and the seq of the entry standing there.
		at, seq int
	}{
		// The stream may begin past entry 1 (older entries archived to
		// segments), so entry 2 in front is a plausible beginning: the
		// chain breaks where entry 1 stands behind it.
		{"the first two", 0, 1, 1, 1},
		{"two in the middle", 1, 2, 1, 3},
		{"two apart", 1, 3, 1, 4},
		{"the newest two", 3, 4, 3, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.Shared(t)
			ctx := context.Background()
			l := NewLog(env.Redis, env.Service, env.Service)
			for i := 1; i <= 5; i++ {
				require.NoError(t, l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: fmt.Sprintf("ord-swap-%d", i), IP: "192.0.2.1"}))
			}
			v, err := l.Verify(ctx)
			require.NoError(t, err)
			require.True(t, v.Intact, "%+v", v.Broken)

			msgs := env.Redis.XRange(ctx, logKey, "-", "+").Val()
			require.Len(t, msgs, 5)
			require.NoError(t, env.Redis.Del(ctx, logKey).Err())
			for k, m := range msgs {
				from := k
				switch k {
				case tt.i:
					from = tt.j
				case tt.j:
					from = tt.i
				}
				require.NoError(t, env.Redis.XAdd(ctx, &redis.XAddArgs{Stream: logKey, ID: m.ID,
					Values: map[string]any{"entry": msgs[from].Values["entry"]}}).Err())
			}

			v, err = l.Verify(ctx)
			require.NoError(t, err)
			require.False(t, v.Intact, "a reordered trail is not intact")
			require.NotNil(t, v.Broken)
			require.Equal(t, msgs[tt.at].ID, v.Broken.ID, "%+v", v.Broken)
			require.EqualValues(t, tt.seq, v.Broken.Seq, "%+v", v.Broken)
			require.NotEmpty(t, v.Broken.Reason)
		})
	}
}
