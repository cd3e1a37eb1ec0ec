package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsListen reads PIIVAULT_METRICS_LISTEN: the host:port of a listener
// of its own for /metrics, so the scrape endpoint need not be reachable
// wherever the API is (loopback, a private interface, or any address the
// operator chooses; its network policy is theirs). "" keeps /metrics on
// the API's listener.
func metricsListen(v, listen string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	bad := &configError{"PIIVAULT_METRICS_LISTEN", "want host:port, e.g. 127.0.0.1:9464 (or :9464 for every interface)"}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", bad
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad
	}
	if v == listen {
		return "", &configError{"PIIVAULT_METRICS_LISTEN", "is PIIVAULT_LISTEN's address: give /metrics a listener of its own, or leave it unset to serve it on the API's"}
	}
	return v, nil
}

// metricsServer serves /metrics (Prometheus text format) and nothing else.
func metricsServer(log *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// runMetrics serves srv on ln until ctx ends.
func runMetrics(ctx context.Context, srv *http.Server, ln net.Listener, log *slog.Logger) {
	log.Info("metrics serving", "addr", ln.Addr().String())
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics listener", "err", err)
	}
}

// observeEvery is how often every instance refreshes the gauges that do
// not follow a request: the audit trail's newest entries against the
// anchor, held orders, the hot window, blocks and the lockdown.
const observeEvery = time.Minute

// observe keeps those gauges until ctx ends. The sweep and the archiver
// run on one instance at a time (the scheduler's lease); these run on
// every instance, so any one scraped reports current figures.
func (a *app) observe(ctx context.Context) {
	t := time.NewTicker(observeEvery)
	defer t.Stop()
	for {
		a.purger.Observe(ctx)
		a.audit.ObserveHot(ctx, time.Now(), a.cfg.AuditHot)
		a.monitor.ObserveBlocks(ctx)
		_, _ = a.lockdown.Status(ctx) // sets piivault_lockdown
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchAudit checks the audit trail's newest entries against the anchor
// every observeEvery (piivault_audit_chain_intact, piivault_anchor_age_seconds)
// and alerts once when they do not hold.
func (a *app) watchAudit(ctx context.Context) {
	a.audit.WatchTail(ctx, observeEvery, a.log, func(text string) { a.alerter.Notify("audit_trail_broken", text) })
}
