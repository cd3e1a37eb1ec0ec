package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// results is what bench/results.json holds.
type results struct {
	When     time.Time `json:"when"`
	Machine  string    `json:"machine"`
	Settings struct {
		OrdersPerLevel int   `json:"orders_per_level"`
		Levels         []int `json:"levels"`
		Due            int   `json:"due"`
		Stored         int   `json:"stored_not_due"`
	} `json:"settings"`
	Ingest []ingestResult `json:"ingest"`
	Reveal struct {
		Piivault latency `json:"piivault"`
		Bare     latency `json:"bare_decrypt"`
	} `json:"reveal"`
	WebhookToGone latency `json:"webhook_to_pii_gone"`
	Purge         struct {
		DueOnlySeconds    float64 `json:"sweep_due_only_seconds"`
		WithStoredSeconds float64 `json:"sweep_with_stored_seconds"`
		SeedPerSecond     float64 `json:"seed_orders_per_second"`
		PurgedDueOnly     int     `json:"purged_due_only"`
		PurgedWithStored  int     `json:"purged_with_stored"`
	} `json:"purge"`
	ServePeakRSSMiB float64 `json:"serve_peak_rss_mib"`
	// Memory is Redis's cost of a held order (goal: 2 KB or less).
	Memory struct {
		Orders             int     `json:"orders"`
		BytesPerOrder      float64 `json:"redis_bytes_per_held_order"`
		OrderBytesPerOrder float64 `json:"order_keys_bytes_per_held_order"`
		AuditBytesPerOrder float64 `json:"audit_stream_bytes_per_held_order"`
		// The request's access log line (capped by count, not per order).
		AccessLogBytesPerOrder float64 `json:"access_log_bytes_per_held_order"`
		KeysPerOrder           float64 `json:"redis_keys_per_held_order"`
	} `json:"memory"`
	// Profiles holds the top functions (flat CPU share) of each phase.
	Profiles map[string][]profileEntry `json:"profiles,omitempty"`
}

// ingestResult is one concurrency level of the ingest phase.
type ingestResult struct {
	Concurrency int     `json:"concurrency"`
	Piivault    latency `json:"piivault"`
	Bare        latency `json:"bare"`
	Ratio       float64 `json:"throughput_ratio"`
}

func printResults(w io.Writer, r *results) {
	fmt.Fprintf(w, "piivault bench — %s — %s\n\n", r.When.Format(time.RFC3339), r.Machine)
	fmt.Fprintf(w, "%-28s %12s %9s %9s   %12s %9s %9s   %6s\n", "ingest (orders)", "piivault/s", "p50 ms", "p99 ms", "bare/s", "p50 ms", "p99 ms", "ratio")
	for _, in := range r.Ingest {
		fmt.Fprintf(w, "%-28s %12.0f %9.2f %9.2f   %12.0f %9.2f %9.2f   %5.2fx\n", fmt.Sprintf("concurrency %d", in.Concurrency),
			in.Piivault.PerSecond, in.Piivault.P50ms, in.Piivault.P99ms, in.Bare.PerSecond, in.Bare.P50ms, in.Bare.P99ms, in.Ratio)
	}
	fmt.Fprintf(w, "%-28s %12.0f %9.2f %9.2f   %12.0f %9.2f %9.2f   (bare: transit decrypt)\n", "reveal (concurrency 16)",
		r.Reveal.Piivault.PerSecond, r.Reveal.Piivault.P50ms, r.Reveal.Piivault.P99ms, r.Reveal.Bare.PerSecond, r.Reveal.Bare.P50ms, r.Reveal.Bare.P99ms)
	fmt.Fprintf(w, "%-28s %12.0f %9.2f %9.2f\n", "webhook → PII gone (c=16)", r.WebhookToGone.PerSecond, r.WebhookToGone.P50ms, r.WebhookToGone.P99ms)
	if r.Memory.Orders > 0 {
		fmt.Fprintf(w, "\nRedis per held order (%d stored): %.0f bytes (%.0f the order's keys, %.0f its audit entry, %.0f its request's access line), %.2f keys   goal <= 2048 bytes\n",
			r.Memory.Orders, r.Memory.BytesPerOrder, r.Memory.OrderBytesPerOrder, r.Memory.AuditBytesPerOrder, r.Memory.AccessLogBytesPerOrder, r.Memory.KeysPerOrder)
	}
	if r.Settings.Due > 0 {
		fmt.Fprintf(w, "\nsweep of %d due orders:              %7.2f s (%d purged)\n", r.Settings.Due, r.Purge.DueOnlySeconds, r.Purge.PurgedDueOnly)
		if r.Settings.Stored > 0 {
			fmt.Fprintf(w, "same, beside %d not-yet-due orders: %7.2f s (%d purged)\n", r.Settings.Stored, r.Purge.WithStoredSeconds, r.Purge.PurgedWithStored)
		}
		fmt.Fprintf(w, "seeding through the store:               %7.0f orders/s\n", r.Purge.SeedPerSecond)
	}
	fmt.Fprintf(w, "peak RSS of serve:                       %7.1f MiB\n", r.ServePeakRSSMiB)
}

// peakRSS reads a process's high-water resident set size (Linux).
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	cores := strings.Count(string(b), "processor\t:")
	model := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
			break
		}
	}
	return fmt.Sprintf("%d cores, %s", cores, model)
}
