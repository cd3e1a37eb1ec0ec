package audit

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package globals by design (Prometheus collectors are
// process-wide).
var (
	hotEntries = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_hot_entries", Help: "Audit entries held in Redis (the hot window).",
	})
	archiveLastSuccess = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_archive_last_success_timestamp_seconds",
		Help: "When the audit archiver last finished without error (Unix seconds).",
	})
	segmentsOnDisk = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_segments", Help: "Sealed audit segments in the archive directory.",
	})
)
