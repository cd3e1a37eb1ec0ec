package monitoring

import (
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
	// Reveals counts shipping reveals by staff role.
	Reveals = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_reveals_total", Help: "Shipping blocks revealed, by staff role.",
	}, []string{"role"})
	// LabelBatches counts pick-lists decrypted in one Vault call, and
	// LabelItems the orders in each.
	LabelBatches = promauto.NewCounter(prometheus.CounterOpts{
		Name: "piivault_label_batch_decrypts_total", Help: "Label pick-lists decrypted in one batched Vault call.",
	})
	LabelItems = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "piivault_label_batch_items", Help: "Orders decrypted per label pick-list call.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100},
	})
	// DependencySeconds is the latency of calls to Vault and Redis.
	DependencySeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "piivault_dependency_duration_seconds", Help: "Latency of calls to Vault and Redis.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"dependency", "op"})
	blocksActive = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_blocked_ips", Help: "IPs currently blocked by the intrusion monitor.",
	})
	alertsSent = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_alerts_total", Help: "Alerts by kind and outcome.",
	}, []string{"kind", "outcome"})
	// AuditLength is the number of entries in the audit trail.
	AuditLength = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_entries", Help: "Entries in the audit trail.",
	})
	accessDropped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "piivault_access_log_dropped_total", Help: "Access lines not kept in Redis (queue full or Redis down).",
	})
	rateLimited = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_rate_limited_total", Help: "Requests refused by a rate limit, by limit.",
	}, []string{"limit"})
)
