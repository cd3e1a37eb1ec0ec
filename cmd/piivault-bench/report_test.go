package main

import (
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
