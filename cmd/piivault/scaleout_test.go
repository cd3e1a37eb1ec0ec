package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/devstack"
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

// TestRedisFailoverAndAcknowledgedChanges replays the failover that loses
// acknowledged writes: the replicas lose their link to the primary (a
// partition), the primary goes on answering, then dies, and the Sentinels
// promote a replica that never saw the last changes. Steady ingest and
// shipping webhooks run throughout, and every answer is counted.
//
// Reveals run throughout too: a reveal writes its audit entry, reveal list
// and counter while answering a GET.
//
// With PIIVAULT_REDIS_WAIT=1 nothing is acknowledged during the partition
// (503, retried by the caller afterwards): no order answered 201 is lost,
// no purge answered 200 comes back, no address is revealed without its
// audit entry surviving the failover, and the audit trail verifies. Without
// it, what is lost is bounded as the README says: only changes acknowledged
// after the replicas' link broke, and the audit anchor in Vault reports
// the trail's lost tail.
func TestRedisFailoverAndAcknowledgedChanges(t *testing.T) {
	for _, wait := range []string{"1", ""} {
		t.Run("PIIVAULT_REDIS_WAIT="+wait, func(t *testing.T) {
			ctx := context.Background()
			s, err := devstack.StartSentinel(2)
			require.NoError(t, err)
			t.Cleanup(s.Stop)
			h := newHarness(t, nil, map[string]string{"REDIS_URL": s.URL, "PIIVAULT_REDIS_WAIT": wait, "PIIVAULT_RATE_LIMIT": "0",
				"PIIVAULT_REVEAL_LIMIT": "1000000"})
			var pre, looked []string
			for i := 0; i < 60; i++ {
				id := fmt.Sprintf("pre-%02d", i)
				h.storeOrder(id)
				pre = append(pre, id)
			}
			for i := 0; i < 8; i++ {
				id := fmt.Sprintf("look-%02d", i)
				h.storeOrder(id)
				looked = append(looked, id)
			}
			_, ful := h.login("fulfillment")
			primary := redis.NewClient(&redis.Options{Addr: s.Primary})
			require.NoError(t, primary.Do(ctx, "WAIT", 2, 5000).Err())
			primary.Close()

			l := newLoad()
			l.ingest(h.url, h.apiKey, "rf-a")
			l.ingest(h.url, h.apiKey, "rf-b")
			l.ship(h.url, pre)
			l.reveal(h.url, ful, looked)
			time.Sleep(time.Second)
			cut := time.Now()
			require.NoError(t, s.CutReplicas(ctx))
			time.Sleep(2 * time.Second)
			killed := time.Now()
			s.StopPrimary()
			require.NoError(t, s.HealReplicas(ctx))
			if !assert.Eventually(t, func() bool {
				l.mu.Lock()
				defer l.mu.Unlock()
				_, last := refusedWindow(append(slices.Clone(l.orders), l.purges...))
				return time.Since(killed) > 3*time.Second && time.Since(last) > 2*time.Second
			}, 45*time.Second, 200*time.Millisecond, "writes never resumed after the failover") {
				l.halt()
				t.Log(s.Describe(ctx))
				l.mu.Lock()
				t.Logf("last answers: %v", l.orders[max(0, len(l.orders)-5):])
				l.mu.Unlock()
				t.Logf("piivault's last errors:\n%s", tail([]byte(h.logs.String()), 3000))
				t.FailNow()
			}
			l.halt()
			t.Logf("orders: %v, purges: %v", statuses(l.orders), statuses(l.purges))
			var lostOrders, lostPurges []string
			for _, id := range sortedKeys(l.created) {
				if r := h.call("GET", "/v1/orders/"+id, h.apiKey, nil); r.Status != 200 {
					require.Equal(t, 404, r.Status, string(r.Raw))
					lostOrders = append(lostOrders, id)
				}
			}
			for _, id := range sortedKeys(l.shipped) {
				r := h.call("GET", "/v1/orders/"+id, h.apiKey, nil)
				require.Equal(t, 200, r.Status, string(r.Raw))
				if r.Body["status"] != "shipped" {
					lostPurges = append(lostPurges, id)
				}
			}
			// A reveal answered 200 whose audit entry did not survive.
			var unrecorded []string
			for _, id := range looked {
				page, err := h.app.audit.List(ctx, audit.Filter{OrderID: id, Action: audit.ActionReveal, Limit: 500})
				require.NoError(t, err)
				if len(page.Entries) < l.revealed[id] {
					unrecorded = append(unrecorded, fmt.Sprintf("%s: %d answered, %d recorded", id, l.revealed[id], len(page.Entries)))
				}
			}
			v, err := h.app.audit.Verify(ctx)
			require.NoError(t, err)
			t.Logf("lost: %d of %d orders, %d of %d purges; reveals %v, unrecorded %v; trail intact: %v",
				len(lostOrders), len(l.created), len(lostPurges), len(l.shipped), statuses(l.reveals), unrecorded, v.Intact)

			if wait != "" {
				require.Empty(t, lostOrders, "orders answered 201 and lost")
				require.Empty(t, lostPurges, "purges answered 200 and undone: PII came back")
				require.Empty(t, unrecorded, "addresses revealed whose audit entries the failover lost")
				_, last := refusedWindow(l.orders)
				require.True(t, last.After(cut), "the partition must have refused changes")
				_, lastReveal := refusedWindow(l.reveals)
				require.True(t, lastReveal.After(cut), "the partition must have refused reveals")
				require.True(t, v.Intact, "the anchor never moves past what replicas hold: %+v", v.Broken)
				return
			}
			require.NotEmpty(t, append(lostOrders, lostPurges...), "without WAIT this failover loses acknowledged changes")
			for _, id := range lostOrders {
				require.True(t, l.created[id].After(cut), "order %s acknowledged before the link broke was lost", id)
			}
			for _, id := range lostPurges {
				require.True(t, l.shipped[id].After(cut), "purge of %s acknowledged before the link broke was lost", id)
			}
			require.False(t, v.Intact, "verify must report the trail's lost tail")
		})
	}
}

// TestThreeInstancesShareOneSweepBlocksRevocationsAndIdempotency runs three
// serve processes on one Redis and one Vault: retention sweeps never
// overlap and purge each order once; an order sent to two instances is
// stored once; a block made by one instance and a revocation are enforced
// by the others on the very next request.
func TestThreeInstancesShareOneSweepBlocksRevocationsAndIdempotency(t *testing.T) {
	ctx := context.Background()
	env := testenv.Shared(t)
	h := newHarness(t, env, nil)
	vars := baseEnv(env)
	vars["PIIVAULT_RETENTION"] = "3s"
	vars["PIIVAULT_SWEEP_INTERVAL"] = "1s"
	vars["PIIVAULT_RATE_LIMIT"] = "0"
	ins := startInstances(t, 3, vars)
	at := func(i int) *harness { c := *h; c.url = ins[i].url; return &c }

	// Idempotent ingest across instances: each order goes to two of them,
	// concurrently; one stores it, the other answers 200.
	const n = 600
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string][]int{}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 6 {
				id := fmt.Sprintf("multi-%04d", i)
				body, _ := json.Marshal(orderBody(id))
				var got [2]int
				var pair sync.WaitGroup
				for k := 0; k < 2; k++ {
					pair.Add(1)
					go func() {
						defer pair.Done()
						got[k] = send("POST", ins[(i+k)%3].url+"/v1/orders", h.apiKey, body)
					}()
				}
				pair.Wait()
				mu.Lock()
				codes[id] = []int{got[0], got[1]}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for id, c := range codes {
		slices.Sort(c)
		require.Equal(t, []int{200, 201}, c, "order %s: one instance stores it, the other sees the same order", id)
	}
	other := orderBody("multi-0000")
	other["payment_ref"] = "pi_different"
	require.Equal(t, 409, at(2).call("POST", "/v1/orders", h.apiKey, other).Status)

	// Blocks: ten wrong API keys at instance 0 block the IP; instances 1
	// and 2 refuse it on its very next request.
	bad := *at(0)
	bad.ip = "203.0.113.77"
	for i := 0; i < 10; i++ {
		bad.call("GET", "/v1/orders/multi-0001", fmt.Sprintf("pvk_wrong%d", i), nil)
	}
	for _, i := range []int{1, 2} {
		c := *at(i)
		c.ip = bad.ip
		require.Equal(t, 403, c.call("GET", "/v1/orders/multi-0001", h.apiKey, nil).Status, "instance %d enforces the block", i)
	}

	// Revocation: a member logged in through instance 0 and removed by the
	// operator is refused by instances 1 and 2 on the next request.
	name, pw, key := h.staffMember("fulfillment")
	r := at(0).call("POST", "/v1/auth/login", "", map[string]any{"username": name, "password": pw, "totp": freshCode(t, key, time.Now())})
	require.Equal(t, 200, r.Status, string(r.Raw))
	tok, _ := r.Body["token"].(string)
	require.Equal(t, 200, at(1).call("GET", "/v1/fulfillment/queue", tok, nil).Status)
	require.NoError(t, env.Root.RemoveStaff(ctx, name))
	require.Equal(t, 401, at(1).call("GET", "/v1/fulfillment/queue", tok, nil).Status)
	require.Equal(t, 401, at(2).call("GET", "/v1/orders/multi-0002/shipping?reason=label", tok, nil).Status)

	// Sweeps: every order is purged by retention, exactly once, and no two
	// instances' sweeps ever ran at the same time.
	pollUntil(t, 40*time.Second, 500*time.Millisecond, func() bool {
		for i := 0; i < n; i += 37 {
			if at(0).call("GET", fmt.Sprintf("/v1/orders/multi-%04d", i), h.apiKey, nil).Body["status"] != "purged" {
				return false
			}
		}
		return at(0).call("GET", fmt.Sprintf("/v1/orders/multi-%04d", n-1), h.apiKey, nil).Body["status"] == "purged"
	}, "the sweeps never purged every order")
	time.Sleep(1500 * time.Millisecond) // let a sweep in flight log its end
	purges := map[string]int{}
	require.NoError(t, h.app.audit.Each(ctx, time.Time{}, time.Time{}, func(e audit.Entry) error {
		if e.Action == audit.ActionPurge {
			purges[e.OrderID]++
		}
		return nil
	}))
	for i := 0; i < n; i++ {
		require.Equal(t, 1, purges[fmt.Sprintf("multi-%04d", i)], "order multi-%04d purged once", i)
	}
	type span struct {
		from, to time.Time
		who      int
	}
	var spans []span
	busy := map[int]bool{}
	for i, in := range ins {
		for _, line := range in.logLines(t, "retention sweep") {
			end, err := time.Parse(time.RFC3339Nano, line["time"].(string))
			require.NoError(t, err)
			took := time.Duration(line["took"].(float64))
			spans = append(spans, span{end.Add(-took), end, i})
			if line["purged"].(float64) > 0 {
				busy[i] = true
			}
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	for i := 1; i < len(spans); i++ {
		require.False(t, spans[i].from.Before(spans[i-1].to),
			"sweeps overlapped: instance %d from %s, instance %d until %s", spans[i].who, spans[i].from, spans[i-1].who, spans[i-1].to)
	}
	t.Logf("%d sweeps, one at a time; instances that purged: %v", len(spans), busy)
}
