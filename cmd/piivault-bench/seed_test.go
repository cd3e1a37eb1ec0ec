package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"piivault/orders"
)

// startTestStack starts bin/piivault on its own Vault and Redis.
func startTestStack(t *testing.T) *stack {
	t.Helper()
	bin := piivaultBin(t)
	st, err := startStack(context.Background(), bin, os.Getenv, t.Logf)
	require.NoError(t, err)
	t.Cleanup(st.stop)
	return st
}

// TestSeed seeds a running piivault through its API, as `make run`'s
// stack is seeded, and reads the orders back.
func TestSeed(t *testing.T) {
	st := startTestStack(t)
	ctx := context.Background()
	key, err := st.addClient(ctx, "seed-test")
	require.NoError(t, err)
	env := mapEnv(map[string]string{"PIIVAULT_URL": st.base, "PIIVAULT_API_KEY": key})

	var stdout bytes.Buffer
	require.NoError(t, realMain(ctx, []string{"seed", "--fake", "5", "--prefix", "seeded"}, &stdout, &bytes.Buffer{}, env))
	require.Contains(t, stdout.String(), "stored 5 fake orders")

	// The fulfillment view of an order is the fake order that was sent.
	hc := &http.Client{}
	token, err := st.staffToken(ctx, hc, "seed-fulfillment", "fulfillment")
	require.NoError(t, err)
	for _, i := range []int{0, 4} {
		want := fakeOrder("seeded", i)
		var got orders.Shipping
		require.NoError(t, expect(ctx, hc, "GET", st.base+"/v1/orders/"+want.OrderID+"/shipping?reason=label", token, nil, http.StatusOK, nil, &got))
		require.Equal(t, want.Shipping, got)
	}
	require.NoError(t, expect(ctx, hc, "GET", st.base+"/v1/orders/seeded-0000005", key, nil, http.StatusNotFound, nil))

	// The same orders again are already there, not errors.
	stdout.Reset()
	require.NoError(t, realMain(ctx, []string{"seed", "--fake", "5", "--prefix", "seeded"}, &stdout, &bytes.Buffer{}, env))
	require.Contains(t, stdout.String(), "stored 0 fake orders (seeded-…), 5 were already there")

	// A wrong key fails with the API's answer.
	bad := mapEnv(map[string]string{"PIIVAULT_URL": st.base, "PIIVAULT_API_KEY": "pv_wrong"})
	require.ErrorContains(t, realMain(ctx, []string{"seed", "--fake", "1"}, &stdout, &bytes.Buffer{}, bad), "status 401")
}

// TestRun runs a small benchmark end to end against the built binary.
func TestRun(t *testing.T) {
	bin := piivaultBin(t)
	dir := t.TempDir()
	out := dir + "/results.json"
	var stdout, stderr bytes.Buffer
	err := realMain(context.Background(), []string{"run", "--piivault", bin, "--orders", "20", "--levels", "1,4",
		"--reveals", "10", "--webhooks", "5", "--due", "50", "--stored", "30", "--profiles", dir + "/profiles", "--out", out},
		&stdout, &stderr, os.Getenv)
	require.NoError(t, err, stderr.String())
	require.Contains(t, stderr.String(), "bench: piivault serve on 127.0.0.1:")
	require.Contains(t, stdout.String(), "piivault bench")

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var r results
	require.NoError(t, json.Unmarshal(raw, &r))
	require.Len(t, r.Ingest, 2)
	for _, in := range r.Ingest {
		require.Equal(t, 20, in.Piivault.Count)
		require.Equal(t, 20, in.Bare.Count)
	}
	require.Equal(t, 10, r.Reveal.Piivault.Count)
	require.Equal(t, 5, r.WebhookToGone.Count)
	require.Equal(t, 50, r.Purge.PurgedDueOnly)
	require.Equal(t, 50, r.Purge.PurgedWithStored)
	require.Greater(t, r.ServePeakRSSMiB, 0.0)
	for _, p := range []string{"ingest_c64", "reveal_c16", "webhook_c16", "sweep"} {
		require.FileExists(t, dir+"/profiles/"+p+".pprof")
	}
}
