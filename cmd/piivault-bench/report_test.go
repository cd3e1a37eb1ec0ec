package main

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A throughput goal's ceiling: the cores' time divided by what every
// process but serve spends per operation, plus serve's cost of answering
// at all (its GET /healthz), against the bare loop's throughput.
func TestCeilingIsTheCoresOverTheCPUServeCannotSave(t *testing.T) {
	for name, tt := range map[string]struct {
		l      level
		cores  int
		floor  float64
		expect float64
	}{
		"two cores": {level{CPU: cpuShare{Vault: 0.2, Redis: 0.05, Serve: 0.3, Load: 0.05}, Bare: latency{PerSecond: 4000}},
			2, 0.033, 2000 / 0.333 / 4000},
		"serve's own share does not count": {level{CPU: cpuShare{Vault: 0.5, Serve: 9}, Bare: latency{PerSecond: 1000}},
			1, 0, 2},
		"Vault not read": {level{CPU: cpuShare{Redis: 0.1}, Bare: latency{PerSecond: 1000}}, 2, 0.03, 0},
		"no bare run":    {level{CPU: cpuShare{Vault: 0.1}}, 2, 0.03, 0},
	} {
		require.InDelta(t, tt.expect, tt.l.ceiling(tt.cores, tt.floor), 1e-9, name)
	}
}

// A reveal's ceiling holds serve to its GET /healthz cost plus one decrypt
// call's cost to the process that makes it (the bare loop's own CPU per
// call), since every reveal makes that call with its member's token;
// ingest's holds it to GET /healthz alone.
func TestARevealsCeilingCountsTheDecryptItMustMake(t *testing.T) {
	l := func(c int) level {
		return level{Concurrency: c, CPU: cpuShare{Vault: 0.3, Redis: 0.05, Serve: 0.3, Load: 0.08},
			BareCPU: cpuShare{Vault: 0.2, Load: 0.07}, Bare: latency{PerSecond: 5000}}
	}
	r := &results{Ingest: []level{l(64)}, Reveal: []level{l(16)}, ServeCPUFloorMicros: 30}
	cores := float64(runtime.NumCPU())
	for path, tt := range map[string]struct {
		perOp float64
		floor string
	}{
		"ingest c=64, throughput ÷ bare":         {0.3 + 0.05 + 0.08 + 0.03, floorHealthz},
		"reveal c=16, throughput ÷ bare decrypt": {0.3 + 0.05 + 0.08 + 0.03 + 0.07, floorDecrypt},
	} {
		g := goalOf(judge(r), path)
		require.NotNil(t, g, path)
		require.InDelta(t, cores*1000/tt.perOp/5000, g.Bound, 1e-9, path)
		require.Equal(t, tt.floor, g.Assumes, path)
	}
}

// A concurrency-1 latency goal's bound is its floor: the series of its
// calls and a stub's hop against the bare one where it ran, else its calls
// alone; without either, no bound.
func TestALatencyGoalsFloorIsItsCallsAndAStubsHop(t *testing.T) {
	bare := latency{P50ms: 0.5, P99ms: 1.0, PerSecond: 1800}
	for name, tt := range map[string]struct {
		calls, stub *measured
		p50, p99    float64
		assumes     string
		cell        string
	}{
		"calls and a stub's hop": {&measured{lat: latency{P50ms: 1.1, P99ms: 1.5}}, &measured{lat: latency{P50ms: 1.3, P99ms: 2.4}},
			2.6, 2.4, floorStub, "| 2.60× (serve at a stub: its calls, then GET /healthz) |"},
		"calls alone (no stub series)": {&measured{lat: latency{P50ms: 1.1, P99ms: 1.5}}, nil,
			2.2, 1.5, floorCalls, "| 2.20× (serve at nothing: its calls alone) |"},
	} {
		ingest := level{Concurrency: 1, Bare: bare, P50: 3.2, P99: 3.1}
		ingest.Calls = ingest.floorOf(*tt.calls)
		if tt.stub != nil {
			ingest.Stub = ingest.floorOf(*tt.stub)
		}
		reveal := level{Concurrency: 1, Bare: bare, P50: 3.3}
		r := &results{Ingest: []level{ingest}, Reveal: []level{reveal}}
		r.Goals = judge(r)
		got := map[string]goal{}
		for _, g := range r.Goals {
			got[g.Path] = g
		}
		require.InDelta(t, tt.p50, got["ingest c=1, p50 ÷ bare p50"].Bound, 1e-9, name)
		require.InDelta(t, tt.p99, got["ingest c=1, p99 ÷ bare p99"].Bound, 1e-9, name)
		require.Equal(t, tt.assumes, got["ingest c=1, p50 ÷ bare p50"].Assumes, name)
		require.Zero(t, got["reveal c=1, p50 ÷ bare decrypt p50"].Bound, "%s: no floor series, no floor", name)
		require.Contains(t, goalsTable(r), tt.cell, name)
	}
}

// Serve's CPU per stored order has a floor only when both its parts were
// profiled: the store path alone (in the bench's process) and serve's GET
// /healthz; the floor is their sum.
func TestServesCPUFloorIsItsStorePathAndAStubsHop(t *testing.T) {
	for name, tt := range map[string]struct {
		store, healthz float64
		bound          float64
		cell           string
	}{
		"both profiled":                {180, 50, 230, "| 230 µs (serve at a stub: its store path alone, plus GET /healthz) |"},
		"a floor under the goal stays": {60, 50, 110, "| 110 µs (serve at a stub: its store path alone, plus GET /healthz) |"},
		"no store path":                {0, 50, 0, "| 300 µs | ≤ 150 µs | no | — |"},
		"no GET /healthz":              {180, 0, 0, "| 300 µs | ≤ 150 µs | no | — |"},
	} {
		r := &results{ServeCPUPerOrderMicros: 300, ServeCPUFloorMicros: tt.healthz, StorePathCPUPerOrderMicros: tt.store}
		r.Goals = judge(r)
		require.Len(t, r.Goals, 1, name)
		g := r.Goals[0]
		require.Equal(t, "serve CPU per stored order at c=64", g.Path, name)
		require.False(t, g.Met, name)
		require.InDelta(t, tt.bound, g.Bound, 1e-9, name)
		if tt.bound > 0 {
			require.Equal(t, floorStorePath, g.Assumes, name)
		}
		require.Contains(t, goalsTable(r), tt.cell, name)
	}
}

// A bound past the measured value (a floor above it, a ceiling below it)
// contradicts the run it comes from: it is kept apart as discarded, and
// the goal has no bound, so that it is never taken to be out of reach on it.
// A latency goal falls back to its calls alone, the lower floor, when that
// one is not past the measured value too.
func TestABoundPastTheMeasuredValueIsDiscarded(t *testing.T) {
	bare := latency{P50ms: 0.5, P99ms: 1.0, PerSecond: 1000}
	for name, tt := range map[string]struct {
		r                *results
		path             string
		bound, discarded float64
		cell             string
	}{
		"a latency floor under the measured ratio": {&results{Ingest: []level{{Concurrency: 1, Bare: bare, P50: 3.2, P99: 3.1,
			Stub: &floorSeries{P50: 2.6, P99: 2.4}}}}, "ingest c=1, p50 ÷ bare p50", 2.6, 0,
			"| 2.60× (serve at a stub: its calls, then GET /healthz) |"},
		"a latency floor above the measured ratio": {&results{Ingest: []level{{Concurrency: 1, Bare: bare, P50: 3.2, P99: 3.1,
			Stub: &floorSeries{P50: 3.6, P99: 2.4}}}}, "ingest c=1, p50 ÷ bare p50", 0, 3.6,
			"| 3.20× | ≤ 2.00× | no | none (its floor, 3.60×, was past the measured value: discarded) |"},
		"a stub's floor above the measured ratio, the calls alone under it": {&results{Ingest: []level{{Concurrency: 1, Bare: bare, P50: 3.2, P99: 3.1,
			Stub: &floorSeries{P50: 2.6, P99: 3.2}, Calls: &floorSeries{P50: 2.2, P99: 2.7}}}}, "ingest c=1, p99 ÷ bare p99", 2.7, 0,
			"| 3.10× | ≤ 2.00× | no | 2.70× (serve at nothing: its calls alone) |"},
		"both floors above the measured ratio": {&results{Ingest: []level{{Concurrency: 1, Bare: bare, P50: 3.2, P99: 3.1,
			Stub: &floorSeries{P50: 2.6, P99: 3.4}, Calls: &floorSeries{P50: 2.2, P99: 3.3}}}}, "ingest c=1, p99 ÷ bare p99", 0, 3.4,
			"| 3.10× | ≤ 2.00× | no | none (its floor, 3.40×, was past the measured value: discarded) |"},
		"a throughput ceiling below the measured ratio": {&results{Ingest: []level{{Concurrency: 64, Bare: bare, Throughput: 0.9,
			CPU: cpuShare{Vault: 1, Redis: 1, Load: 1}}}}, "ingest c=64, throughput ÷ bare", 0, float64(runtime.NumCPU()) / 3,
			"| 0.90× | ≥ 1.50× | no | none (its ceiling, "},
		"a CPU floor above the measured value": {&results{ServeCPUPerOrderMicros: 200, ServeCPUFloorMicros: 50,
			StorePathCPUPerOrderMicros: 170}, "serve CPU per stored order at c=64", 0, 220,
			"| 200 µs | ≤ 150 µs | no | none (its floor, 220 µs, was past the measured value: discarded) |"},
	} {
		tt.r.Goals = judge(tt.r)
		g := goalOf(tt.r.Goals, tt.path)
		require.NotNil(t, g, name)
		require.InDelta(t, tt.bound, g.Bound, 1e-9, name)
		require.InDelta(t, tt.discarded, g.Discarded, 1e-9, name)
		require.Contains(t, goalsTable(tt.r), tt.cell, name)
	}
}

// goalOf is the goal of goals with path, nil when none has it.
func goalOf(goals []goal, path string) *goal {
	for i := range goals {
		if goals[i].Path == path {
			return &goals[i]
		}
	}
	return nil
}

// countingMeter charges each operation run since its last reading 1 ms of
// the load generator's CPU.
type countingMeter struct{ ops *atomic.Int64 }

func (m countingMeter) take() cpuUse {
	var u cpuUse
	u.cpu[3] = time.Duration(m.ops.Swap(0)) * time.Millisecond
	u.unread = true
	return u
}

// The series take turns, a block of each at a time, so a slow spell falls
// on all of them alike: at concurrency 1 in ten blocks, above it in blocks
// that give each worker blockPerWorker operations at least (at most ten),
// and a level too small for two such blocks runs each series whole in
// turn. Either way each series is charged the CPU of its own runs alone.
func TestSeriesTakeTurns(t *testing.T) {
	tests := []struct {
		n, c int
		want string // the runs of one series' operations, in order
	}{
		{20, 1, "a2 b2 a2 b2 a2 b2 a2 b2 a2 b2 a2 b2 a2 b2 a2 b2 a2 b2 a2 b2"},
		{20, 4, "a20 b20"},
		{63, 2, "a63 b63"},
		{64, 2, "a32 b32 a32 b32"},
		{128, 2, "a32 b32 a32 b32 a32 b32 a32 b32"},
		{640, 2, "a64 b64 a64 b64 a64 b64 a64 b64 a64 b64 a64 b64 a64 b64 a64 b64 a64 b64 a64 b64"},
	}
	for _, tt := range tests {
		var mu sync.Mutex
		var order []byte
		var ops atomic.Int64
		ops.Store(7) // before the series: nobody's
		op := func(name byte) named {
			return named{string(name), func(int) error {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				ops.Add(1)
				return nil
			}}
		}
		m, err := turns(tt.n, tt.c, countingMeter{&ops}, op('a'), op('b'))
		require.NoError(t, err)
		require.Equal(t, tt.want, runsOf(order), "n=%d c=%d", tt.n, tt.c)
		for _, s := range m {
			require.Equal(t, tt.n, s.lat.Count)
			require.InDelta(t, 1.0, s.cpu.Load, 1e-9, "n=%d c=%d: each series is charged its own runs", tt.n, tt.c)
		}
	}
	_, err := turns(4, 1, countingMeter{new(atomic.Int64)}, named{"bare", func(int) error { return nil }},
		named{"reveal", func(int) error { return errors.New("refused") }})
	require.ErrorContains(t, err, "reveal: refused")
}

// runsOf writes s as its runs of one letter: "aab" as "a2 b1".
func runsOf(s []byte) string {
	var out []string
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%c%d", s[i], j-i))
		i = j
	}
	return strings.Join(out, " ")
}
