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
	l := NewLog(env.Redis, slowSealer{Sealer: env.Service, delay: 300 * time.Millisecond}, nil)
	// Keep the flusher busy with other callers' entries.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.Record(context.Background(), Entry{Actor: "system", Action: ActionKeyRotate})
		}()
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: "ord-ctx"})
	require.Error(t, err)
	require.Less(t, time.Since(start), 250*time.Millisecond, "a caller is bounded by its own context")
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
	var wg sync.WaitGroup
	for _, en := range []Entry{e, {Actor: "system", Action: ActionKeyRotate}} {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, l.Record(ctx, en)) }()
	}
	wg.Wait()
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
