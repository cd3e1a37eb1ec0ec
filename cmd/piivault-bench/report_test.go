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
		require.InDelta(t, cores*1000/tt.perOp/5000, g.Ceiling, 1e-9, path)
		require.Equal(t, tt.floor, g.Floor, path)
	}
}
