package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/testenv"
)

// vaultElectionBound is the README's figure for how long piivault answers
// 503 after Vault's active node dies (raft with performance_multiplier 1).
const vaultElectionBound = 15 * time.Second

// revealAll reveals ids in pick lists of at most 100 as a fulfillment
// member and requires each to come back with its shipping block.
func revealAll(t *testing.T, h *harness, token string, ids []string) {
	t.Helper()
	for len(ids) > 0 {
		n := min(len(ids), 100)
		r := h.call("POST", "/v1/fulfillment/labels", token, map[string]any{"order_ids": ids[:n], "reason": "label"})
		require.Equal(t, 200, r.Status, string(r.Raw))
		labels, _ := r.Body["labels"].([]any)
		require.Len(t, labels, n)
		for _, l := range labels {
			m, _ := l.(map[string]any)
			require.NotNil(t, m["shipping"], "order %v not revealable: %v", m["order_id"], m["error"])
		}
		ids = ids[n:]
	}
}

// TestVaultActiveNodeDiesUnderLoadFromThreeInstances: three serve
// processes ingest steadily against a three-node Vault raft cluster; the
// active node is killed. Callers see only 503s, only for a bounded time
// after the kill, and every order answered 201 is stored and revealable.
func TestVaultActiveNodeDiesUnderLoadFromThreeInstances(t *testing.T) {
	env, cluster := testenv.StartHA(t)
	vars := baseEnv(env)
	vars["PIIVAULT_RATE_LIMIT"] = "0"
	h := newHarness(t, env, map[string]string{"PIIVAULT_REVEAL_LIMIT": "100000", "PIIVAULT_RATE_LIMIT": "0"})
	ins := startInstances(t, 3, vars)
	_, ful := h.login("fulfillment")

	l := newLoad()
	for i, in := range ins {
		l.ingest(in.url, h.apiKey, fmt.Sprintf("ha%d", i))
	}
	time.Sleep(2 * time.Second)
	active := cluster.Active()
	require.GreaterOrEqual(t, active, 0, "no active Vault node")
	killed := time.Now()
	cluster.StopNode(active)

	// Run until every instance has been storing again for two seconds.
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		first, last := refusedWindow(l.orders)
		return time.Since(killed) > 3*time.Second && (first.IsZero() || time.Since(last) > 2*time.Second)
	}, 45*time.Second, 200*time.Millisecond, "ingest never recovered after the election")
	l.halt()

	st := statuses(l.orders)
	t.Logf("answers: %v", st)
	for code := range st {
		require.Contains(t, []int{200, 201, 503}, code, "only 503 may refuse an order during an election")
	}
	require.Greater(t, st[201], 100, "the load must be real")
	if first, last := refusedWindow(l.orders); !first.IsZero() {
		t.Logf("503s from %s to %s after the kill", first.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond))
		require.False(t, first.Before(killed), "no 503 before the active node died")
		require.LessOrEqual(t, last.Sub(killed), vaultElectionBound, "503s for longer than the README says")
	}
	newActive := cluster.Active()
	require.GreaterOrEqual(t, newActive, 0)
	require.NotEqual(t, active, newActive)

	ids := sortedKeys(l.created)
	revealAll(t, h, ful, ids)
	t.Logf("%d orders answered 201 (or 200 on retry) all revealable after the election", len(ids))
}
