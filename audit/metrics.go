package audit

import (
	"context"
	"time"

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
	hotOldestAge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_oldest_hot_entry_age_seconds",
		Help: "Age of the oldest audit entry still in Redis; past the hot window, the archiver is behind (or PIIVAULT_AUDIT_ARCHIVE is unset).",
	})
	// earlySeals counts the entries begun early (Begin) by what became of
	// their seal: used (it ran alongside the work and was kept), wasted
	// (another entry took its place first; sealed again with its group) or
	// none (the trail was busy: sealed with its group, as Record does).
	earlySeals = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "piivault_audit_early_seals_total",
		Help: "Audit entries committed after Begin, by their early seal: used, wasted (sealed again) or none (the trail was busy).",
	}, []string{"seal"})
	hotWindow = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_hot_window_seconds", Help: "PIIVAULT_AUDIT_HOT: how long audit entries stay in Redis.",
	})
	// chainIntact is a vector without labels so that it is exported only
	// once a check has run: a process that has not checked yet claims
	// neither a broken (0) nor an intact (1) trail.
	chainIntact = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "piivault_audit_chain_intact",
		Help: "1 when the newest audit entries hold (chain, hashes, Vault seals, head) and the entry the anchor in Vault names is there with its hash; 0 when not.",
	}, nil)
	chainChecked = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_chain_last_check_timestamp_seconds",
		Help: "When this instance last checked the audit trail's newest entries against the anchor (Unix seconds).",
	})
	anchorAge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_anchor_age_seconds",
		Help: "Age of the audit entry the anchor in Vault names: how long ago the anchor last moved to a new entry.",
	})
	unanchored = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "piivault_audit_unanchored_entries",
		Help: "Audit entries appended past the anchor in Vault: the ones a Redis writer could remove unnoticed.",
	})
)

// observeTail records a CheckTail result made at now.
func observeTail(c TailCheck, now time.Time) {
	intact := 0.0
	if c.Intact {
		intact = 1
	}
	chainIntact.WithLabelValues().Set(intact)
	chainChecked.Set(float64(now.Unix()))
	unanchored.Set(float64(c.Unanchored()))
	if !c.AnchorTime.IsZero() {
		anchorAge.Set(max(now.Sub(c.AnchorTime).Seconds(), 0))
	}
}

// ObserveHot refreshes the hot window's gauges (entries in Redis, the
// oldest one's age, the window itself), cheaply enough for every instance
// to run it every minute, whichever holds the archiver's lease.
func (l *Log) ObserveHot(ctx context.Context, now time.Time, hot time.Duration) {
	hotWindow.Set(hot.Seconds())
	if n, err := l.Length(ctx); err == nil {
		hotEntries.Set(float64(n))
	}
	if oldest, err := l.HotStart(ctx); err == nil {
		age := 0.0
		if !oldest.IsZero() {
			age = max(now.Sub(oldest).Seconds(), 0)
		}
		hotOldestAge.Set(age)
	}
}
