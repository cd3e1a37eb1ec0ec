package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
	"piivault/internal/testenv"
)

func TestMetricsListenIsParsed(t *testing.T) {
	for _, c := range []struct {
		name, value, want, problem string
	}{
		{name: "unset: /metrics stays on the API's listener", value: "", want: ""},
		{name: "loopback", value: "127.0.0.1:9464", want: "127.0.0.1:9464"},
		{name: "every interface", value: ":9464", want: ":9464"},
		{name: "a private address", value: "10.1.2.3:9464", want: "10.1.2.3:9464"},
		{name: "no port", value: "127.0.0.1", problem: "want host:port"},
		{name: "a port out of range", value: "127.0.0.1:70000", problem: "want host:port"},
		{name: "the API's own address", value: "127.0.0.1:8080", problem: "PIIVAULT_LISTEN's address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(envOf(map[string]string{"VAULT_TOKEN": "x", "PIIVAULT_METRICS_LISTEN": c.value}))
			if c.problem != "" {
				require.ErrorContains(t, err, "PIIVAULT_METRICS_LISTEN: ")
				require.ErrorContains(t, err, c.problem)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, cfg.MetricsListen)
		})
	}
}

// TestMetricsOnTheirOwnListener runs serve with PIIVAULT_METRICS_LISTEN:
// /metrics answers there, with the build and the gauges every instance
// keeps, and the API's listener answers it 404.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	env := testenv.Shared(t) // no harness: the gauges are serve's alone
	start := time.Now()
	port, err := devstack.FreePort()
	require.NoError(t, err)
	metricsPort, err := devstack.FreePort()
	require.NoError(t, err)
	vars := baseEnv(env)
	vars["PIIVAULT_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", port)
	vars["PIIVAULT_METRICS_LISTEN"] = fmt.Sprintf("127.0.0.1:%d", metricsPort)

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stdout := &syncBuffer{}
	go func() { done <- realMain(ctx, []string{"serve"}, nil, stdout, io.Discard, envOf(vars)) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not shut down")
		}
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	api := fmt.Sprintf("http://127.0.0.1:%d", port)
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	require.Eventually(t, func() bool { s, _ := get(api + "/readyz"); return s == 200 }, 15*time.Second, 100*time.Millisecond)

	status, body := get(api + "/metrics")
	require.Equal(t, 404, status, "the API's listener does not serve /metrics")
	require.Contains(t, body, `"code":"not_found"`)

	// The first audit check, sweep and gauge refresh run at start.
	b := readBuildInfo()
	var page string
	require.Eventually(t, func() bool {
		status, page = get(metrics)
		return status == 200 && promValue(page, "piivault_audit_chain_last_check_timestamp_seconds") >= float64(start.Unix()) &&
			promValue(page, "piivault_sweep_last_success_timestamp_seconds") >= float64(start.Unix())
	}, 15*time.Second, 100*time.Millisecond, page)
	require.Contains(t, page, fmt.Sprintf(`piivault_build_info{commit=%q,go_version=%q,version=%q} 1`, b.Commit, b.GoVersion, b.Version))
	for name, want := range map[string]float64{
		"piivault_audit_chain_intact":       1,
		"piivault_audit_unanchored_entries": 0,
		"piivault_lockdown":                 0,
		"piivault_blocked_ips":              0,
		"piivault_retention_seconds":        720 * 3600,
		"piivault_sweep_interval_seconds":   60,
		"piivault_audit_hot_window_seconds": 720 * 3600,
	} {
		require.Equal(t, want, promValue(page, name), name)
	}
	require.Contains(t, page, "piivault_anchor_age_seconds ")
	require.Contains(t, page, "piivault_oldest_held_order_age_seconds ")
	require.Contains(t, stdout.String(), `"msg":"metrics serving"`)

	status, _ = get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", metricsPort))
	require.Equal(t, 404, status, "the metrics listener serves /metrics and nothing else")
}

// TestMetricsCountRevealsAndSuspensionsByRoleNeverByName reveals past the
// limit: the reveal counter moves by role and reason, the suspension
// counter by one, and no metric names the member.
func TestMetricsCountRevealsAndSuspensionsByRoleNeverByName(t *testing.T) {
	h := newHarness(t, nil, map[string]string{"PIIVAULT_REVEAL_LIMIT": "2"})
	for i := 0; i < 3; i++ {
		h.storeOrder(fmt.Sprintf("ord-m%d", i))
	}
	const reveals = `piivault_reveals_total{reason="delivery_issue",role="fulfillment"}`
	revealsBefore, suspensionsBefore := h.metric(reveals), h.metric("piivault_staff_suspensions_total")
	name, pw, key := h.staffMember("fulfillment")
	tok := h.loginAs(name, pw, key, time.Now()).Body["token"].(string)
	for i := 0; i < 3; i++ {
		require.Equal(t, 200, h.call("GET", fmt.Sprintf("/v1/orders/ord-m%d/shipping?reason=delivery_issue", i), tok, nil).Status)
	}
	require.Equal(t, revealsBefore+3, h.metric(reveals))
	require.Equal(t, suspensionsBefore+1, h.metric("piivault_staff_suspensions_total"), "the third reveal crossed the limit of 2")
	page := string(h.call("GET", "/metrics", "", nil).Raw)
	require.NotContains(t, page, name)
	requireNoPII(t, "metrics", page)
}

// TestMetricsFollowTheLockdown: the gauge follows a switch at once, on the
// instance that made it (others within a minute).
func TestMetricsFollowTheLockdown(t *testing.T) {
	h := newHarness(t, nil, nil)
	ctx := context.Background()
	_, err := h.app.lockdown.Set(ctx, true, "ops", "192.0.2.1")
	require.NoError(t, err)
	require.Equal(t, 1.0, h.metric("piivault_lockdown"))
	_, err = h.app.lockdown.Set(ctx, false, "ops", "192.0.2.1")
	require.NoError(t, err)
	require.Equal(t, 0.0, h.metric("piivault_lockdown"))
}

// promValue is the value of the unlabelled series name in an exposition
// page (-1 when absent).
func promValue(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
