package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
)

// The trail's life cycle on real Vault, Redis and a real directory.

// archivedLog is a trail with an archive in a fresh directory and small
// segments (so a few hundred entries make several).
func archivedLog(t *testing.T, env *testenv.Env, segmentMax int) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	l := NewLog(env.Redis, env.Service, env.Service, WithArchive(dir))
	l.segmentMax = segmentMax
	return l, dir
}

// fill appends n entries in groups, as a busy service would.
func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 250 {
		var group []Entry
		for j := i; j < min(i+250, n); j++ {
			group = append(group, Entry{Actor: "alice", Action: ActionReveal, OrderID: fmt.Sprintf("ord-%d", j), IP: "192.0.2.1"})
		}
		require.NoError(t, l.RecordAll(ctx, group))
	}
}

// boundary is a cutoff after everything recorded so far and before
// anything recorded next (stream ids are milliseconds).
func boundary() time.Time {
	t := time.Now()
	time.Sleep(5 * time.Millisecond)
	return t.Add(time.Millisecond)
}

func usedMemory(t *testing.T, env *testenv.Env) int64 {
	t.Helper()
	info := env.Redis.Info(context.Background(), "memory").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}

func TestTenThousandEntriesMoveToSegmentsAndVerifyEndToEnd(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l, dir := archivedLog(t, env, SegmentEntries)
	fill(t, l, 10_000)
	cutoff := boundary()
	fill(t, l, 20) // the hot window
	before := usedMemory(t, env)

	res, err := l.Archive(ctx, cutoff)
	require.NoError(t, err)
	require.Equal(t, ArchiveResult{Segments: 1, Entries: 10_000, Trimmed: 10_000}, res)
	require.EqualValues(t, 20, env.Redis.XLen(ctx, logKey).Val(), "only the hot window stays in Redis")
	require.LessOrEqual(t, usedMemory(t, env), before)
	names, err := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "audit-000000000001-000000010000.jsonl")}, names)

	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, 10_020, v.Entries)
	require.Equal(t, 1, v.Segments)

	// Reports read the archive too: every entry, once.
	seen := map[int64]bool{}
	require.NoError(t, l.Each(ctx, time.Time{}, time.Time{}, func(e Entry) error {
		require.False(t, seen[e.Seq], "entry %d given twice", e.Seq)
		seen[e.Seq] = true
		return nil
	}))
	require.Len(t, seen, 10_020)
	page, err := l.List(ctx, Filter{})
	require.NoError(t, err)
	require.NotNil(t, page.HotFrom, "the API says where the hot window starts")
	require.EqualValues(t, 10_001, page.Entries[0].Seq)

	// Nothing more is due: a second run does nothing.
	res, err = l.Archive(ctx, cutoff)
	require.NoError(t, err)
	require.Zero(t, res)
}

func TestAnArchiverKilledMidRunLeavesNoGapAndNoDuplicate(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l, dir := archivedLog(t, env, 100)
	fill(t, l, 250)
	cutoff := boundary()
	fill(t, l, 5)

	// Killed after writing the first segment, before trimming it.
	msgs := env.Redis.XRangeN(ctx, logKey, "-", "+", 100).Val()
	var first []Entry
	for _, m := range msgs {
		e, err := decode(m)
		require.NoError(t, err)
		first = append(first, e)
	}
	require.NoError(t, l.writeSegment(ctx, first))
	require.EqualValues(t, 255, env.Redis.XLen(ctx, logKey).Val(), "nothing trimmed yet")
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "segment on disk and entries in Redis: %+v", v.Broken)
	require.EqualValues(t, 255, v.Entries, "entries in both are counted once")

	// The next run only trims the first, and archives the rest.
	res, err := l.Archive(ctx, cutoff)
	require.NoError(t, err)
	require.Equal(t, ArchiveResult{Segments: 2, Entries: 150, Trimmed: 250}, res)
	names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	require.Len(t, names, 3)
	// Killed after trimming: the run after has nothing to do.
	res, err = l.Archive(ctx, cutoff)
	require.NoError(t, err)
	require.Zero(t, res)
	v, err = l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, 255, v.Entries)
	require.Equal(t, 3, v.Segments)
}

func TestTamperedSegmentsAreReportedByName(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l, dir := archivedLog(t, env, 100)
	fill(t, l, 300)
	cutoff := boundary()
	fill(t, l, 5)
	_, err := l.Archive(ctx, cutoff)
	require.NoError(t, err)
	seg := func(first, last int) string { return filepath.Join(dir, segmentFileName(int64(first), int64(last))) }
	save := map[string][]byte{}
	for _, p := range []string{seg(1, 100), seg(101, 200), seg(201, 300)} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		save[p] = b
	}
	restore := func() {
		names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
		for _, n := range names {
			require.NoError(t, os.Remove(n))
		}
		for p, b := range save {
			require.NoError(t, os.WriteFile(p, b, 0o600))
		}
	}
	lines := func(p string) []string { return strings.Split(strings.TrimSuffix(string(save[p]), "\n"), "\n") }
	tests := []struct {
		name    string
		tamper  func()
		segment string
		reason  string
	}{
		{"a line edited", func() {
			ls := lines(seg(101, 200))
			ls[5] = strings.Replace(ls[5], `"actor":"alice"`, `"actor":"mallory"`, 1)
			require.NoError(t, os.WriteFile(seg(101, 200), []byte(strings.Join(ls, "\n")+"\n"), 0o600))
		}, "audit-000000000101-000000000200.jsonl", "modified"},
		{"a segment deleted", func() { require.NoError(t, os.Remove(seg(101, 200))) },
			"audit-000000000201-000000000300.jsonl", "missing"},
		{"two segments swapped", func() {
			require.NoError(t, os.WriteFile(seg(101, 200), save[seg(201, 300)], 0o600))
			require.NoError(t, os.WriteFile(seg(201, 300), save[seg(101, 200)], 0o600))
		}, "audit-000000000101-000000000200.jsonl", "swapped"},
		{"a segment's tail cut", func() {
			ls := lines(seg(201, 300))
			require.NoError(t, os.WriteFile(seg(201, 300), []byte(strings.Join(ls[:len(ls)-10], "\n")+"\n"), 0o600))
		}, "audit-000000000201-000000000300.jsonl", "cut"},
		{"the first segment deleted", func() { require.NoError(t, os.Remove(seg(1, 100))) },
			"", "beginning is missing"},
		{"a header edited", func() {
			ls := lines(seg(1, 100))
			ls[0] = strings.Replace(ls[0], `"count":100`, `"count":99`, 1)
			require.NoError(t, os.WriteFile(seg(1, 100), []byte(strings.Join(ls, "\n")+"\n"), 0o600))
		}, "audit-000000000001-000000000100.jsonl", "not sealed by Vault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer restore()
			tt.tamper()
			v, err := l.Verify(ctx)
			require.NoError(t, err)
			require.False(t, v.Intact)
			require.Equal(t, tt.segment, v.Broken.Segment, "%+v", v.Broken)
			require.Contains(t, v.Broken.Reason, tt.reason)
		})
	}
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "restored: %+v", v.Broken)

	// A gap between the segments and the stream: the stream's oldest hot
	// entry removed by hand.
	oldest := env.Redis.XRangeN(ctx, logKey, "-", "+", 1).Val()[0]
	require.NoError(t, env.Redis.XDel(ctx, logKey, oldest.ID).Err())
	v, err = l.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact)
	require.Contains(t, v.Broken.Reason, "sequence jumps from 300 to 302")
}

func TestSegmentsPastKeepAreDeletedWithARecord(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l, dir := archivedLog(t, env, 100)
	fill(t, l, 200)
	cutoff := boundary()
	fill(t, l, 5)
	_, err := l.Archive(ctx, cutoff)
	require.NoError(t, err)

	n, err := l.DeleteSegments(ctx, time.Now())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	require.Empty(t, names)
	v, err := l.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.NotNil(t, v.Begins)
	require.EqualValues(t, 201, v.Begins.Seq, "verify names the new beginning")
	page, err := l.List(ctx, Filter{Action: ActionAuditSegmentsDeleted})
	require.NoError(t, err)
	require.Len(t, page.Entries, 1)
	require.Equal(t, "200", page.Entries[0].Detail["last_seq"])

	// A segment deleted without that record is a cut.
	l2, dir2 := archivedLog(t, testenv.Shared(t), 100)
	fill(t, l2, 200)
	cutoff = boundary()
	fill(t, l2, 5)
	_, err = l2.Archive(ctx, cutoff)
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir2, segmentFileName(1, 100))))
	v, err = l2.Verify(ctx)
	require.NoError(t, err)
	require.False(t, v.Intact)
	require.Contains(t, v.Broken.Reason, "no recorded deletion")
}

func TestTwoArchiversWriteEachSegmentOnce(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	a, dir := archivedLog(t, env, 100)
	b := NewLog(env.Redis, env.Service, env.Service, WithArchive(dir))
	b.segmentMax = 100
	fill(t, a, 400)
	cutoff := boundary()
	fill(t, a, 5)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, l := range []*Log{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Archive(ctx, cutoff)
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	require.Len(t, names, 4, "one file per range, none written twice")
	for _, n := range names {
		f, err := os.Open(n)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		count := 0
		for sc.Scan() {
			count++
		}
		f.Close()
		require.Equal(t, 101, count, "%s: header and 100 entries", n)
	}
	v, err := a.Verify(ctx)
	require.NoError(t, err)
	require.True(t, v.Intact, "%+v", v.Broken)
	require.EqualValues(t, 405, v.Entries)
}
