package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
)

// anchoredTrail is a trail of n entries, anchored in Vault as serve would.
func anchoredTrail(t *testing.T, env *testenv.Env, n int, opts ...Option) *Log {
	t.Helper()
	ctx := context.Background()
	l := NewLog(env.Redis, env.Service, env.Service, opts...)
	for i := 1; i <= n; i++ {
		require.NoError(t, l.Record(ctx, Entry{Actor: "alice", Action: ActionReveal, OrderID: fmt.Sprintf("ord-%d", i), IP: "192.0.2.1"}))
	}
	require.NoError(t, l.Anchor(ctx))
	return l
}

// rewrite replaces the stream entry with seq by what edit makes of it,
// keeping its stream id, as someone who can write to Redis could.
func rewrite(t *testing.T, env *testenv.Env, seq int64, edit func(e *Entry)) {
	t.Helper()
	ctx := context.Background()
	msgs := env.Redis.XRange(ctx, logKey, "-", "+").Val()
	require.NoError(t, env.Redis.Del(ctx, logKey).Err())
	for _, m := range msgs {
		var e Entry
		require.NoError(t, json.Unmarshal([]byte(m.Values["entry"].(string)), &e))
		if e.Seq == seq {
			edit(&e)
		}
		body, _ := json.Marshal(e)
		require.NoError(t, env.Redis.XAdd(ctx, &redis.XAddArgs{Stream: logKey, ID: m.ID, Values: map[string]any{"entry": string(body)}}).Err())
	}
}

// cut removes the stream's newest k entries and moves the head back onto
// the entry before them: a chain that is consistent in Redis alone.
func cut(t *testing.T, env *testenv.Env, k int) {
	t.Helper()
	ctx := context.Background()
	msgs := env.Redis.XRevRangeN(ctx, logKey, "+", "-", int64(k+1)).Val()
	for _, m := range msgs[:k] {
		require.NoError(t, env.Redis.XDel(ctx, logKey, m.ID).Err())
	}
	var e Entry
	require.NoError(t, json.Unmarshal([]byte(msgs[k].Values["entry"].(string)), &e))
	require.NoError(t, env.Redis.Set(ctx, headKey, headValue(e.Seq, e.Hash), 0).Err())
}

func TestCheckTailFindsWhatARedisWriterDid(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, env *testenv.Env)
		seq    int64
		reason string
	}{
		{"an entry edited", func(t *testing.T, env *testenv.Env) {
			rewrite(t, env, 4, func(e *Entry) { e.Actor = "mallory" })
		}, 4, "modified"},
		{"the chain rebuilt around an edit", func(t *testing.T, env *testenv.Env) {
			rewrite(t, env, 4, func(e *Entry) { e.Actor = "mallory"; e.Hash = e.digest() })
		}, 4, "seal"},
		{"an entry removed", func(t *testing.T, env *testenv.Env) {
			msgs := env.Redis.XRange(context.Background(), logKey, "-", "+").Val()
			require.NoError(t, env.Redis.XDel(context.Background(), logKey, msgs[2].ID).Err())
		}, 4, "sequence jumps from 2 to 4"},
		{"the newest entries cut, head moved back", func(t *testing.T, env *testenv.Env) { cut(t, env, 2) }, 6, "anchor records entry 6"},
		{"the head deleted", func(t *testing.T, env *testenv.Env) {
			require.NoError(t, env.Redis.Del(context.Background(), headKey).Err())
		}, 6, "head is missing"},
		{"the whole trail deleted", func(t *testing.T, env *testenv.Env) {
			require.NoError(t, env.Redis.Del(context.Background(), logKey, headKey).Err())
		}, 6, "anchor records entry 6"},
		{"the head moved back under a sealed entry", func(t *testing.T, env *testenv.Env) {
			ctx := context.Background()
			head := env.Redis.Get(ctx, headKey).Val()
			require.NoError(t, NewLog(env.Redis, env.Service, nil).Record(ctx, Entry{Actor: "system", Action: ActionKeyRotate}))
			require.NoError(t, env.Redis.Set(ctx, headKey, head, 0).Err())
		}, 7, "beyond the head"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testenv.Shared(t)
			ctx := context.Background()
			l := anchoredTrail(t, env, 6)
			before, err := l.CheckTail(ctx, TailEntries)
			require.NoError(t, err)
			require.True(t, before.Intact, "%+v", before.Broken)
			require.Equal(t, 6, before.Checked)

			c.tamper(t, env)
			got, err := l.CheckTail(ctx, TailEntries)
			require.NoError(t, err)
			require.False(t, got.Intact)
			require.Equal(t, c.seq, got.Broken.Seq, got.Broken.Reason)
			require.Contains(t, got.Broken.Reason, c.reason)
			v, err := l.Verify(ctx)
			require.NoError(t, err)
			require.False(t, v.Intact, "the full verify agrees")
		})
	}
}

func TestCheckTailReportsTheAnchor(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	start := time.Now()
	l := anchoredTrail(t, env, 3)
	c, err := l.CheckTail(ctx, TailEntries)
	require.NoError(t, err)
	require.True(t, c.Intact, "%+v", c.Broken)
	require.EqualValues(t, 3, c.Anchor.Seq)
	require.EqualValues(t, 0, c.Unanchored())
	require.WithinRange(t, c.AnchorTime, start.Add(-time.Second), time.Now())

	// Appended but not anchored yet: counted, and still intact (serve
	// anchors within a Vault round trip; the alert waits for it).
	other := NewLog(env.Redis, env.Service, nil)
	require.NoError(t, other.Record(ctx, Entry{Actor: "system", Action: ActionKeyRotate}))
	c, err = l.CheckTail(ctx, TailEntries)
	require.NoError(t, err)
	require.True(t, c.Intact, "%+v", c.Broken)
	require.EqualValues(t, 1, c.Unanchored())
}

// TestCheckTailLooksAtTheNewestOnly pins down what the cheap check does not
// do: an edit older than its n entries is the full verify's to find.
func TestCheckTailLooksAtTheNewestOnly(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := anchoredTrail(t, env, 10)
	rewrite(t, env, 2, func(e *Entry) { e.Actor = "mallory" })
	c, err := l.CheckTail(ctx, 5)
	require.NoError(t, err)
	require.True(t, c.Intact, "%+v", c.Broken)
	require.Equal(t, 5, c.Checked)
	c, err = l.CheckTail(ctx, TailEntries)
	require.NoError(t, err)
	require.False(t, c.Intact)
	require.EqualValues(t, 2, c.Broken.Seq)
}

func TestCheckTailFollowsTheTrailIntoTheArchive(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	dir := t.TempDir()
	l := anchoredTrail(t, env, 30, WithArchive(dir))
	l.segmentMax = 10

	// Everything archived (an idle trail past its hot window): the anchored
	// entry is the archive's last.
	_, err := l.Archive(ctx, boundary())
	require.NoError(t, err)
	require.Zero(t, env.Redis.XLen(ctx, logKey).Val())
	c, err := l.CheckTail(ctx, TailEntries)
	require.NoError(t, err)
	require.True(t, c.Intact, "%+v", c.Broken)
	require.False(t, c.AnchorTime.IsZero(), "the anchored entry's time is read from its segment")

	// New entries after the archive: the anchor moves on from an entry
	// that is only in the archive now, and the stream follows the archive.
	for i := 0; i < 5; i++ {
		require.NoError(t, l.Record(ctx, Entry{Actor: "bob", Action: ActionReveal, OrderID: "ord-x" + strconv.Itoa(i)}))
	}
	require.NoError(t, l.Anchor(ctx))
	c, err = l.CheckTail(ctx, TailEntries)
	require.NoError(t, err)
	require.True(t, c.Intact, "%+v", c.Broken)
	require.Equal(t, 5, c.Checked)

	// The oldest entry in Redis removed: a gap between archive and stream.
	first := env.Redis.XRangeN(ctx, logKey, "-", "+", 1).Val()
	require.NoError(t, env.Redis.XDel(ctx, logKey, first[0].ID).Err())
	c, err = l.CheckTail(ctx, TailEntries)
	require.NoError(t, err)
	require.False(t, c.Intact)
	require.Contains(t, c.Broken.Reason, "neither in Redis nor in the archive")
}

func TestWatchTailKeepsTheGaugesAndAlertsOnce(t *testing.T) {
	env := testenv.Shared(t)
	l := anchoredTrail(t, env, 4)
	ctx, stop := context.WithCancel(context.Background())
	alerts := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		l.WatchTail(ctx, 50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), func(text string) { alerts <- text })
		close(done)
	}()
	defer func() { stop(); <-done }()
	require.Eventually(t, func() bool { return testutil.ToFloat64(chainIntact.WithLabelValues()) == 1 },
		10*time.Second, 20*time.Millisecond)
	require.InDelta(t, 0, testutil.ToFloat64(unanchored), 0)
	require.Less(t, testutil.ToFloat64(anchorAge), 60.0)

	cut(t, env, 1)
	var text string
	select {
	case text = <-alerts:
	case <-time.After(10 * time.Second):
		t.Fatal("no alert for a broken trail")
	}
	require.Contains(t, text, "audit verify")
	require.Equal(t, 0.0, testutil.ToFloat64(chainIntact.WithLabelValues()))
	time.Sleep(300 * time.Millisecond) // several more checks, still broken
	require.Empty(t, alerts, "one alert per break")
}
