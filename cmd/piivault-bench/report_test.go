package main

import (
	"runtime"
	"testing"

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
		var g *goal
		for _, j := range judge(r) {
			if j.Path == path {
				g = &j
			}
		}
		require.NotNil(t, g, path)
		require.InDelta(t, cores*1000/tt.perOp/5000, g.Bound, 1e-9, path)
		require.Equal(t, tt.floor, g.Assumes, path)
	}
}

// A concurrency-1 latency goal's bound is its floor: the calls-alone
// series against the bare one, where it ran; without it, no bound.
func TestALatencyGoalsFloorIsItsCallsAlone(t *testing.T) {
	bare := latency{P50ms: 0.5, P99ms: 1.0, PerSecond: 1800}
	ingest := level{Concurrency: 1, Bare: bare, P50: 3.2, P99: 3.1}
	ingest.setCalls(&callsAlone{Latency: latency{P50ms: 1.1, P99ms: 1.5}})
	reveal := level{Concurrency: 1, Bare: bare, P50: 3.3}
	r := &results{Ingest: []level{ingest}, Reveal: []level{reveal}}
	r.Goals = judge(r)
	got := map[string]goal{}
	for _, g := range r.Goals {
		got[g.Path] = g
	}
	require.InDelta(t, 2.2, got["ingest c=1, p50 ÷ bare p50"].Bound, 1e-9)
	require.InDelta(t, 1.5, got["ingest c=1, p99 ÷ bare p99"].Bound, 1e-9)
	require.Equal(t, floorCalls, got["ingest c=1, p50 ÷ bare p50"].Assumes)
	require.Zero(t, got["reveal c=1, p50 ÷ bare decrypt p50"].Bound, "no calls-alone series, no floor")
	require.Contains(t, goalsTable(r), "| 2.20× (serve at nothing: its calls alone) |")
}
