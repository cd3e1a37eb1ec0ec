package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
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
	// Each phase at each level, beside its bare baseline: ingest (one
	// transit encrypt, one Redis SET), reveal (one transit decrypt with
	// the same member token), webhook → PII gone (the signature's HMAC,
	// then one Redis script).
	Ingest  []level `json:"ingest"`
	Reveal  []level `json:"reveal"`
	Webhook []level `json:"webhook_to_pii_gone"`
	// ServeCPUPerOrderMicros is serve's CPU time per stored order at
	// concurrency 64 (its CPU profile's samples ÷ orders stored meanwhile).
	ServeCPUPerOrderMicros float64 `json:"serve_cpu_us_per_order_c64"`
	// ServeCPUFloorMicros is the same for GET /healthz at concurrency 64:
	// HTTP, the middleware chain and the access log around a handler that
	// does nothing (the floor under any route's CPU).
	ServeCPUFloorMicros float64 `json:"serve_cpu_us_per_healthz_c64"`
	// StorePathCPUPerOrderMicros is the CPU time per order of serve's
	// store path alone (StoreAudited) at concurrency 64, in this process
	// (storepath.go): with ServeCPUFloorMicros, the floor of
	// ServeCPUPerOrderMicros.
	StorePathCPUPerOrderMicros float64 `json:"store_path_cpu_us_per_order_c64"`
	Goals                      []goal  `json:"goals"`
	Purge                      struct {
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

// level is one phase at one concurrency, beside its bare baseline.
type level struct {
	Concurrency int     `json:"concurrency"`
	Piivault    latency `json:"piivault"`
	Bare        latency `json:"bare"`
	Throughput  float64 `json:"throughput_ratio"` // piivault/s ÷ bare/s
	P50         float64 `json:"p50_ratio"`        // piivault p50 ÷ bare p50
	P99         float64 `json:"p99_ratio"`
	// Vault's CPU time per operation, piivault's and the bare pipeline's
	// (read from its /proc entry around each series): Vault's own share
	// of the machine, which no change in piivault can make smaller than
	// its calls per operation allow.
	VaultCPUms     float64 `json:"vault_cpu_ms_per_op"`
	BareVaultCPUms float64 `json:"bare_vault_cpu_ms_per_op"`
	// Every busy process's CPU time per operation, piivault's series and
	// the bare one's (serve idles through the bare series).
	CPU     cpuShare `json:"cpu_ms_per_op"`
	BareCPU cpuShare `json:"bare_cpu_ms_per_op"`
	// Calls (concurrency 1 only): piivault's own calls with nothing of
	// serve around them (see calls.go).
	Calls *floorSeries `json:"calls_alone,omitempty"`
	// Stub (concurrency 1 only): the same calls, then one round trip to
	// serve answered by a stub (GET /healthz): the floor of a latency goal.
	Stub *floorSeries `json:"calls_and_stub_hop,omitempty"`
}

// floorSeries is a series that times less than piivault's request does
// (its calls alone; its calls and a stub's hop), with its ratios to the
// bare one.
type floorSeries struct {
	Latency latency  `json:"latency"`
	P50     float64  `json:"p50_ratio"` // its p50 ÷ bare p50
	P99     float64  `json:"p99_ratio"`
	CPU     cpuShare `json:"cpu_ms_per_op"` // Load is the calls' own process
}

// floorOf is m as a floor series of l, its ratios taken to l's bare series.
func (l level) floorOf(m measured) *floorSeries {
	return &floorSeries{Latency: m.lat, CPU: m.cpu,
		P50: ratio(m.lat.P50ms, l.Bare.P50ms), P99: ratio(m.lat.P99ms, l.Bare.P99ms)}
}

// floor is one of a latency goal's floors: its ratios (p50, p99) and
// what serve was held to in them.
type floor struct {
	p50, p99 float64
	assumes  string
}

// floors are a latency goal's floors, the closest first: its calls with a
// stub's hop, then its calls alone (no hop, so lower). Each is a floor on
// its own; judge takes the first that its run does not contradict.
func (l level) floors() []floor {
	var out []floor
	if l.Stub != nil {
		out = append(out, floor{l.Stub.P50, l.Stub.P99, floorStub})
	}
	if l.Calls != nil {
		out = append(out, floor{l.Calls.P50, l.Calls.P99, floorCalls})
	}
	return out
}

// cpuShare is CPU time per operation, in ms, of each process a series
// keeps busy (from /proc, in 10 ms ticks).
type cpuShare struct {
	Vault float64 `json:"vault"`
	Redis float64 `json:"redis"`
	Serve float64 `json:"serve"`
	Load  float64 `json:"load"` // this benchmark's own client
	// RedisReads is Redis's read events per operation (INFO stats
	// total_reads_processed), from every client: about its round trips,
	// the figure that sharing pipelines between requests lowers.
	RedisReads float64 `json:"redis_reads"`
}

// setCPU records both series' CPU shares.
func (l *level) setCPU(pv, bare cpuShare) {
	l.CPU, l.BareCPU = pv, bare
	l.VaultCPUms, l.BareVaultCPUms = pv.Vault, bare.Vault
}

// ceiling is the throughput ratio the machine's cores would allow if
// serve's handler cost nothing, its CPU per operation only what a GET
// /healthz costs it (floorMs): every other process's CPU per piivault
// operation stays as measured. 0 when unmeasured.
func (l level) ceiling(cores int, floorMs float64) float64 {
	per := l.CPU.Vault + l.CPU.Redis + l.CPU.Load + floorMs
	if per <= 0 || l.Bare.PerSecond <= 0 || l.CPU.Vault == 0 {
		return 0
	}
	return float64(cores) * 1000 / per / l.Bare.PerSecond
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func compare(c int, pv, bare latency) level {
	return level{Concurrency: c, Piivault: pv, Bare: bare, Throughput: ratio(pv.PerSecond, bare.PerSecond),
		P50: ratio(pv.P50ms, bare.P50ms), P99: ratio(pv.P99ms, bare.P99ms)}
}

// goal is one line of issue 27's table, judged on this run.
type goal struct {
	Path   string  `json:"path"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	AtMost bool    `json:"at_most"` // the value must be at most Limit (else at least)
	Unit   string  `json:"unit"`
	Met    bool    `json:"met"`
	// Bound is the best value this machine allows with piivault's calls
	// as they are, were serve's own work at its floor. For a throughput
	// goal, its ceiling (level.ceiling): serve's CPU per operation only
	// what its GET /healthz costs it, plus, for a reveal, the decrypt's own
	// cost to the process that makes it. For a latency goal at
	// concurrency 1, its floor: the ratio of the series of its calls and
	// a stub's hop (serve answering GET /healthz), or, where that did not
	// run or came out past the measured value, of its calls alone (no
	// serve at all). For serve's CPU per order, its floor: the store
	// path's CPU alone plus a GET /healthz's (serve's HTTP side, handler
	// and middleware at a stub's cost). A bound on the wrong side of
	// Limit means the goal is out of reach on this machine whatever serve
	// does around its calls (for the CPU goal, around its store path).
	Bound float64 `json:"bound,omitempty"`
	// Assumes says what serve's floor was in Bound's reckoning.
	Assumes string `json:"bound_assumes,omitempty"`
	// Discarded is a bound past the measured value (a floor above it, a
	// ceiling below it): one that contradicts the run, from noise or a
	// floor that was not one. It is kept apart from Bound, so that no goal
	// is taken to be out of reach on it.
	Discarded float64 `json:"bound_discarded,omitempty"`
}

// kind is what a goal's bound is: a floor under a value that must be
// small enough, a ceiling over one that must be large enough.
func (g goal) kind() string {
	if g.AtMost {
		return "floor"
	}
	return "ceiling"
}

// boundCell describes g's bound for a table ("—" for none).
func (g goal) boundCell() string {
	switch {
	case g.Bound > 0:
		return num(g.Bound, g.Unit) + " (serve at " + g.Assumes + ")"
	case g.Discarded > 0:
		return fmt.Sprintf("none (its %s, %s, was past the measured value: discarded)", g.kind(), num(g.Discarded, g.Unit))
	}
	return "—"
}

// judge compares the run with the goals; a goal whose level or phase was
// not run is left out.
func judge(r *results) []goal {
	var out []goal
	add := func(path string, v, limit float64, atMost bool, unit string) {
		met := v >= limit
		if atMost {
			met = v <= limit
		}
		out = append(out, goal{Path: path, Value: v, Limit: limit, AtMost: atMost, Unit: unit, Met: met})
	}
	at := func(ls []level, c int) (level, bool) {
		for _, l := range ls {
			if l.Concurrency == c {
				return l, true
			}
		}
		return level{}, false
	}
	// past says whether a bound contradicts the goal's run: a floor above
	// its measured value, a ceiling below it.
	past := func(g *goal, v float64) bool { return g.AtMost && v > g.Value || !g.AtMost && v < g.Value }
	bound := func(v float64, what string) {
		g := &out[len(out)-1]
		switch {
		case v <= 0:
		case past(g, v):
			g.Discarded = v
		default:
			g.Bound, g.Assumes = v, what
		}
	}
	// A latency goal's bound is its closest floor that its run does not
	// contradict: a tail's noise can lift the stub's series a hair above
	// serve's, and its calls alone, lower, are a floor all the same. When
	// every floor is past the measured value, the closest is discarded.
	floorOf := func(fs []floor, ratio func(floor) float64) {
		g := &out[len(out)-1]
		for _, f := range fs {
			if v := ratio(f); v > 0 && !past(g, v) {
				bound(v, f.assumes)
				return
			}
		}
		if len(fs) > 0 {
			bound(ratio(fs[0]), fs[0].assumes)
		}
	}
	p50 := func(f floor) float64 { return f.p50 }
	p99 := func(f floor) float64 { return f.p99 }
	if l, ok := at(r.Ingest, 1); ok {
		add("ingest c=1, p50 ÷ bare p50", l.P50, 2, true, "×")
		floorOf(l.floors(), p50)
		add("ingest c=1, p99 ÷ bare p99", l.P99, 2, true, "×")
		floorOf(l.floors(), p99)
	}
	cores, healthz := runtime.NumCPU(), r.ServeCPUFloorMicros/1000
	addTput := func(path string, l level, limit, floor float64, what string) {
		add(path, l.Throughput, limit, false, "×")
		bound(l.ceiling(cores, floor), what)
	}
	if l, ok := at(r.Ingest, 4); ok {
		addTput("ingest c=4, throughput ÷ bare", l, 0.8, healthz, floorHealthz)
	}
	if l, ok := at(r.Ingest, 64); ok {
		addTput("ingest c=64, throughput ÷ bare", l, 1.5, healthz, floorHealthz)
	}
	if l, ok := at(r.Reveal, 1); ok {
		add("reveal c=1, p50 ÷ bare decrypt p50", l.P50, 3, true, "×")
		floorOf(l.floors(), p50)
	}
	if l, ok := at(r.Reveal, 16); ok {
		// A reveal's decrypt is made with the revealing member's own
		// token, one call per reveal; the bare loop makes that same call
		// through the same client, and its CPU per call is what the call
		// costs serve too.
		addTput("reveal c=16, throughput ÷ bare decrypt", l, 0.6, healthz+l.BareCPU.Load, floorDecrypt)
	}
	if l, ok := at(r.Webhook, 1); ok {
		add("webhook → PII gone c=1, p50 ÷ bare (HMAC, one script)", l.P50, 2, true, "×")
		floorOf(l.floors(), p50)
	}
	if r.ServeCPUPerOrderMicros > 0 {
		add("serve CPU per stored order at c=64", r.ServeCPUPerOrderMicros, 150, true, "µs")
		if r.StorePathCPUPerOrderMicros > 0 && r.ServeCPUFloorMicros > 0 {
			bound(r.StorePathCPUPerOrderMicros+r.ServeCPUFloorMicros, floorStorePath)
		}
	}
	if r.Settings.Due > 0 {
		add(fmt.Sprintf("sweep %d due", r.Settings.Due), r.Purge.DueOnlySeconds, 10, true, "s")
		if r.Settings.Stored > 0 {
			add(fmt.Sprintf("sweep %d due beside %d stored", r.Settings.Due, r.Settings.Stored), r.Purge.WithStoredSeconds, 10, true, "s")
		}
	}
	return out
}

// What serve's floor was in a ceiling's reckoning.
const (
	floorHealthz = "GET /healthz"
	floorDecrypt = "GET /healthz + one decrypt call"
	floorCalls   = "nothing: its calls alone"
	floorStub    = "a stub: its calls, then GET /healthz"
	// A CPU goal's floor: what an order costs its store path alone, plus
	// what serve spends answering GET /healthz.
	floorStorePath = "a stub: its store path alone, plus GET /healthz"
)

// goalsTable is the goals as a Markdown table (the README's).
func goalsTable(r *results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| path | measured | goal | met | best possible were serve at its floor |\n| --- | --- | --- | --- | --- |\n")
	for _, g := range r.Goals {
		op := "≥"
		if g.AtMost {
			op = "≤"
		}
		met := "no"
		if g.Met {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %s |\n", g.Path, num(g.Value, g.Unit), op, num(g.Limit, g.Unit), met, g.boundCell())
	}
	return b.String()
}

func num(v float64, unit string) string {
	switch unit {
	case "×":
		return fmt.Sprintf("%.2f×", v)
	case "µs":
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

const readmeBegin, readmeEnd = "<!-- bench:goals -->", "<!-- /bench:goals -->"

// writeReadme replaces the README's goals table with this run's.
func writeReadme(path string, r *results) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(raw)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s block for the goals table", path, readmeBegin, readmeEnd)
	}
	table := fmt.Sprintf("%s\nLast `make bench` (%s, %s):\n\n%s%s", readmeBegin, r.When.Format("2006-01-02 15:04 MST"), r.Machine, goalsTable(r), readmeEnd)
	return os.WriteFile(path, []byte(s[:i]+table+s[j+len(readmeEnd):]), 0o644)
}

func printResults(w io.Writer, r *results) {
	fmt.Fprintf(w, "piivault bench — %s — %s\n\n", r.When.Format(time.RFC3339), r.Machine)
	phase := func(name, bare string, ls []level) {
		if len(ls) == 0 {
			return
		}
		fmt.Fprintf(w, "%-20s %10s %8s %8s   %10s %8s %8s   %7s %7s %7s\n", name, "piivault/s", "p50 ms", "p99 ms", bare+"/s", "p50 ms", "p99 ms", "tput", "p50", "p99")
		for _, l := range ls {
			fmt.Fprintf(w, "%-20s %10.0f %8.2f %8.2f   %10.0f %8.2f %8.2f   %6.2fx %6.2fx %6.2fx\n", fmt.Sprintf("  concurrency %d", l.Concurrency),
				l.Piivault.PerSecond, l.Piivault.P50ms, l.Piivault.P99ms, l.Bare.PerSecond, l.Bare.P50ms, l.Bare.P99ms, l.Throughput, l.P50, l.P99)
		}
	}
	calls := func(name string, ls []level) {
		for _, l := range ls {
			if c := l.Calls; c != nil {
				fmt.Fprintf(w, "%-20s %10.0f %8.2f %8.2f   (its calls alone, no serve: %.2fx / %.2fx bare; CPU ms per op: vault %.2f, redis %.2f, this process %.2f)\n",
					fmt.Sprintf("  %s c=%d calls", name, l.Concurrency), c.Latency.PerSecond, c.Latency.P50ms, c.Latency.P99ms, c.P50, c.P99, c.CPU.Vault, c.CPU.Redis, c.CPU.Load)
			}
			if c := l.Stub; c != nil {
				fmt.Fprintf(w, "%-20s %10.0f %8.2f %8.2f   (its calls, then GET /healthz: %.2fx / %.2fx bare; CPU ms per op: serve %.2f)\n",
					fmt.Sprintf("  %s c=%d stub", name, l.Concurrency), c.Latency.PerSecond, c.Latency.P50ms, c.Latency.P99ms, c.P50, c.P99, c.CPU.Serve)
			}
		}
	}
	phase("ingest", "bare", r.Ingest)
	calls("ingest", r.Ingest)
	phase("reveal", "decrypt", r.Reveal)
	calls("reveal", r.Reveal)
	phase("webhook → gone", "bare", r.Webhook)
	calls("webhook", r.Webhook)
	fmt.Fprintf(w, "\nCPU ms per operation        piivault: vault  redis  serve   load      bare: vault  redis   load\n")
	for _, p := range []struct {
		name string
		ls   []level
	}{{"ingest", r.Ingest}, {"reveal", r.Reveal}, {"webhook → gone", r.Webhook}} {
		for _, l := range p.ls {
			c, b := l.CPU, l.BareCPU
			fmt.Fprintf(w, "  %-16s c=%-3d %16.2f %6.2f %6.2f %6.2f %16.2f %6.2f %6.2f\n", p.name, l.Concurrency,
				c.Vault, c.Redis, c.Serve, c.Load, b.Vault, b.Redis, b.Load)
		}
	}
	if r.ServeCPUPerOrderMicros > 0 {
		fmt.Fprintf(w, "serve CPU per stored order at c=64: %.0f µs (per GET /healthz: %.0f µs", r.ServeCPUPerOrderMicros, r.ServeCPUFloorMicros)
		if r.StorePathCPUPerOrderMicros > 0 {
			fmt.Fprintf(w, "; the store path alone, per order: %.0f µs", r.StorePathCPUPerOrderMicros)
		}
		fmt.Fprintln(w, ")")
	}
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
	if len(r.Goals) > 0 {
		fmt.Fprintf(w, "\ngoals (issue 27), this run:\n")
		for _, g := range r.Goals {
			op, met := "≥", "MISSED"
			if g.AtMost {
				op = "≤"
			}
			if g.Met {
				met = "met"
			}
			bound := ""
			switch {
			case g.Bound > 0:
				bound = "   " + g.kind() + " " + g.boundCell()
			case g.Discarded > 0:
				bound = "   bound: " + g.boundCell()
			}
			fmt.Fprintf(w, "  %-56s %10s   goal %s %-8s %s%s\n", g.Path, num(g.Value, g.Unit), op, num(g.Limit, g.Unit), met, bound)
		}
	}
}

// processCPU is a process's CPU time so far, user and system (Linux; 0
// when unreadable).
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || pid == 0 {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
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
