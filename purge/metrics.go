package purge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package globals by design (Prometheus collectors are
// process-wide). Labels are closed sets: purge reasons, never ids.
var (
	purged = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_orders_purged_total", Help: "Orders whose PII was purged, by reason.",
	}, []string{"reason"})
	sweepSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "piivault_sweep_duration_seconds", Help: "Duration of retention sweeps.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	})
	dueBacklog = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_sweep_due_backlog", Help: "Orders past retention still waiting for the sweep (capped at one batch).",
	})
	heldOrders = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_orders_held", Help: "Orders whose PII is held.",
	})
	oldestHeldAge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_oldest_held_order_age_seconds", Help: "Age of the oldest held order; alert when it nears the retention.",
	})
	keyVersionsRetired = promauto.NewCounter(prometheus.CounterOpts{
		Name: "piivault_key_versions_retired_total", Help: "Transit key versions trimmed (crypto-shredded).",
	})
	sweepLastSuccess = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_sweep_last_success_timestamp_seconds",
		Help: "When this instance last finished a retention sweep without error (Unix seconds); one instance sweeps at a time, so take the max over instances.",
	})
	sweepInterval = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_sweep_interval_seconds", Help: "PIIVAULT_SWEEP_INTERVAL: how often the retention sweep runs.",
	})
	retention = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_retention_seconds", Help: "PIIVAULT_RETENTION: how long PII may be held.",
	})
)
