package monitoring

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package globals by design (the one exception to "no globals"):
// Prometheus collectors are process-wide. No label ever holds an id, an IP or
// a name: routes are templates, roles and reasons are closed sets.
var (
	requests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_http_requests_total", Help: "HTTP requests by route template, method and status.",
	}, []string{"route", "method", "status"})
	requestSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "piivault_http_request_duration_seconds", Help: "HTTP request latency by route template.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"route"})
	blocksActive = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_blocked_ips", Help: "IPs currently blocked by the intrusion monitor.",
	})
	alertsSent = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_alerts_total", Help: "Alerts by kind and outcome.",
	}, []string{"kind", "outcome"})
	accessDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "piivault_access_log_dropped_total", Help: "Access lines not kept in Redis (queue full or Redis down).",
	})
	rateLimited = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_rate_limited_total", Help: "Requests refused by a rate limit, by limit.",
	}, []string{"limit"})
	// Suspensions are counted without the member's name: who it was is in
	// the audit trail and the alert, never in a label.
	staffSuspended = promauto.NewCounter(prometheus.CounterOpts{
		Name: "piivault_staff_suspensions_total",
		Help: "Staff accounts suspended by the intrusion monitor for more than PIIVAULT_REVEAL_LIMIT reveals in an hour.",
	})
	buildInfo = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "piivault_build_info", Help: "Always 1: the running build's version (as `piivault version` prints it), Go version and commit.",
	}, []string{"version", "go_version", "commit"})
)

// SetBuildInfo publishes piivault_build_info for this build.
func SetBuildInfo(version, goVersion, commit string) {
	buildInfo.Reset()
	buildInfo.WithLabelValues(version, goVersion, commit).Set(1)
}

// ObserveBlocks refreshes piivault_blocked_ips from Redis: blocks made by
// other instances, and blocks that ended on their own, show up within a
// minute on every instance.
func (m *Monitor) ObserveBlocks(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m.refreshGauge(ctx)
}
