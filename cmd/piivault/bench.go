package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	rpprof "runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brianvoe/gofakeit/v7"
	"github.com/google/pprof/profile"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/clients"
	"piivault/internal/devstack"
	"piivault/orders"
	"piivault/purge"
	"piivault/vault"
	"piivault/webhooks"
)

// latency summarises one measured series.
type latency struct {
	Count     int     `json:"count"`
	PerSecond float64 `json:"per_second"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
}

func summarise(d []time.Duration, wall time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return latency{Count: len(d), PerSecond: float64(len(d)) / wall.Seconds(), P50ms: pct(0.50), P99ms: pct(0.99)}
}

// measure runs n operations on c workers and returns their latencies.
func measure(n, c int, op func(i int) error) (latency, error) {
	lat := make([]time.Duration, n)
	next := make(chan int)
	errc := make(chan error, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				if err := op(i); err != nil {
					errc <- err
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	var err error
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return summarise(lat, time.Since(start)), err
}

// benchResults is what bench/results.json holds.
type benchResults struct {
	When     time.Time `json:"when"`
	Machine  string    `json:"machine"`
	Settings struct {
		OrdersPerLevel int   `json:"orders_per_level"`
		Levels         []int `json:"levels"`
		Due            int   `json:"due"`
		Stored         int   `json:"stored_not_due"`
	} `json:"settings"`
	Ingest []struct {
		Concurrency int     `json:"concurrency"`
		Piivault    latency `json:"piivault"`
		Bare        latency `json:"bare"`
		Ratio       float64 `json:"throughput_ratio"`
	} `json:"ingest"`
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
	// Profiles holds the top functions (flat CPU share) of each phase.
	Profiles map[string][]profileEntry `json:"profiles,omitempty"`
}

func cmdBench(ctx context.Context, e *env) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	perLevel := fs.Int("orders", 3000, "orders per concurrency level (each for piivault and for the bare pipeline)")
	levelsFlag := fs.String("levels", "1,16,64", "ingest concurrency levels")
	reveals := fs.Int("reveals", 1000, "reveals to time")
	hooks := fs.Int("webhooks", 500, "shipping webhooks to time")
	due := fs.Int("due", 100_000, "due orders the sweep purges")
	stored := fs.Int("stored", 1_000_000, "not-yet-due orders stored beside them in the second sweep")
	out := fs.String("out", "bench/results.json", "where to write the results")
	profiles := fs.String("profiles", "bench/profiles", "where to write CPU profiles of each phase (\"\": none)")
	if _, err := parse(fs, e.args, false); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	var levels []int
	for _, l := range splitList(*levelsFlag) {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1024 {
			return fmt.Errorf("bench: --levels wants numbers from 1 to 1024")
		}
		levels = append(levels, n)
	}
	say := func(format string, args ...any) { fmt.Fprintf(e.stderr, "bench: "+format+"\n", args...) }

	say("starting Vault (dev) and Redis on loopback")
	stack, err := devstack.Start()
	if err != nil {
		return err
	}
	defer stack.Stop()
	root, err := vault.NewOperator(ctx, vault.Config{Addr: stack.VaultAddr, Token: stack.RootToken}, e.log)
	if err != nil {
		return err
	}
	if _, err := root.Setup(ctx); err != nil {
		return err
	}
	roleID, secretID, err := root.AppRoleCredentials(ctx)
	if err != nil {
		return err
	}
	svc, err := vault.New(ctx, vault.Config{Addr: stack.VaultAddr, RoleID: roleID, SecretID: secretID}, e.log)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(&redis.Options{Addr: stack.RedisAddr, PoolSize: 256})
	defer rdb.Close()

	port, err := devstack.FreePort()
	if err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	debugPort, err := devstack.FreePort()
	if err != nil {
		return err
	}
	debug := fmt.Sprintf("http://127.0.0.1:%d", debugPort)
	const hookSecret = "bench-shipping-secret"
	self, err := os.Executable()
	if err != nil {
		return err
	}
	serve := exec.CommandContext(ctx, self, "serve")
	serve.Env = append(os.Environ(), "VAULT_ADDR="+stack.VaultAddr, "PIIVAULT_VAULT_ROLE_ID="+roleID,
		"PIIVAULT_VAULT_SECRET_ID="+secretID, "REDIS_URL="+stack.RedisURL, "PIIVAULT_LISTEN="+base[len("http://"):],
		"PIIVAULT_RATE_LIMIT=0", "PIIVAULT_LOGIN_RATE_LIMIT=0", "PIIVAULT_REVEAL_LIMIT=1000000",
		"PIIVAULT_WEBHOOK_SECRET="+hookSecret, "PIIVAULT_SWEEP_INTERVAL=24h", "VAULT_TOKEN=",
		"PIIVAULT_DEBUG_LISTEN="+debug[len("http://"):])
	if err := serve.Start(); err != nil {
		return fmt.Errorf("start serve: %w", err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	if err := waitReady(hc, base+"/readyz"); err != nil {
		return err
	}

	key, err := clients.NewRegistry(rdb).Add(ctx, "bench")
	if err != nil {
		return err
	}
	token, err := benchStaffToken(ctx, root, hc, base)
	if err != nil {
		return err
	}

	var res benchResults
	res.When = time.Now().UTC()
	res.Machine = machine()
	res.Settings.OrdersPerLevel, res.Settings.Levels = *perLevel, levels
	res.Settings.Due, res.Settings.Stored = *due, *stored
	faker := gofakeit.New(7)
	bodies := make([][]byte, *perLevel*len(levels))
	reqs := make([]orders.Request, len(bodies))
	for i := range bodies {
		reqs[i] = fakeOrder(faker, "bench", i)
		bodies[i], _ = json.Marshal(reqs[i])
	}

	// Ingest: piivault over HTTP next to the bare pipeline (one transit
	// encrypt + one Redis write per order), at the same concurrency.
	for li, c := range levels {
		say("ingest at concurrency %d", c)
		off := li * *perLevel
		bare, err := measure(*perLevel, c, func(i int) error {
			r := reqs[off+i]
			plain, _ := json.Marshal(r.Shipping)
			enc, err := svc.Encrypt(ctx, []vault.Plaintext{{Plaintext: plain, AssociatedData: []byte(r.OrderID)}})
			if err != nil {
				return err
			}
			return rdb.Set(ctx, "bare:"+r.OrderID, enc[0].Value, orders.MaxRetention).Err()
		})
		if err != nil {
			return fmt.Errorf("bare ingest: %w", err)
		}
		pv, err := measure(*perLevel, c, func(i int) error {
			return expect(hc, "POST", base+"/v1/orders", key, bodies[off+i], 201, nil)
		})
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		res.Ingest = append(res.Ingest, struct {
			Concurrency int     `json:"concurrency"`
			Piivault    latency `json:"piivault"`
			Bare        latency `json:"bare"`
			Ratio       float64 `json:"throughput_ratio"`
		}{c, pv, bare, pv.PerSecond / bare.PerSecond})
	}

	// Reveal with a fulfillment token, next to a bare transit decrypt with it.
	n := min(*reveals, len(reqs))
	say("reveal")
	cts := make([]string, n)
	for i := 0; i < n; i++ {
		cts[i], _ = rdb.Get(ctx, "bare:"+reqs[i].OrderID).Result()
	}
	if res.Reveal.Bare, err = measure(n, 16, func(i int) error {
		_, err := svc.Decrypt(ctx, token, cts[i], []byte(reqs[i].OrderID))
		return err
	}); err != nil {
		return fmt.Errorf("bare decrypt: %w", err)
	}
	if res.Reveal.Piivault, err = measure(n, 16, func(i int) error {
		return expect(hc, "GET", base+"/v1/orders/"+reqs[i].OrderID+"/shipping?reason=label", token, nil, 200, nil)
	}); err != nil {
		return fmt.Errorf("reveal: %w", err)
	}

	// Webhook → PII gone: the webhook's answer is the moment the PII is gone.
	w := min(*hooks, len(reqs)-n)
	say("shipping webhooks")
	if res.WebhookToGone, err = measure(w, 16, func(i int) error {
		id := reqs[n+i].OrderID
		body := []byte(`{"event_id":"bench-` + id + `","order_id":"` + id + `","status":"shipped"}`)
		sig := webhooks.SignShipping(hookSecret, time.Now(), body)
		return expect(hc, "POST", base+"/v1/webhooks/shipping", "", body, 200, map[string]string{"X-Piivault-Signature": sig})
	}); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	for i := 0; i < w; i++ {
		if err := expect(hc, "GET", base+"/v1/orders/"+reqs[n+i].OrderID+"/shipping?reason=label", token, nil, 410, nil); err != nil {
			return fmt.Errorf("after the shipping webhook: %w", err)
		}
	}
	res.ServePeakRSSMiB = peakRSS(serve.Process.Pid)

	// Profiles: each phase again, unmeasured, while serve's CPU profile runs.
	if *profiles != "" {
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			return err
		}
		res.Profiles = map[string][]profileEntry{}
		next := len(reqs)
		fresh := func() orders.Request { next++; return fakeOrder(faker, "prof", next) }
		var mu sync.Mutex
		say("profiling ingest (c=64)")
		if res.Profiles["ingest_c64"], err = profilePhase(hc, debug, filepath.Join(*profiles, "ingest_c64.pprof"), 64, func() error {
			mu.Lock()
			body, _ := json.Marshal(fresh())
			mu.Unlock()
			return expect(hc, "POST", base+"/v1/orders", key, body, 201, nil)
		}); err != nil {
			return fmt.Errorf("profile ingest: %w", err)
		}
		say("profiling reveal (c=16)")
		var ri atomic.Int64
		if res.Profiles["reveal_c16"], err = profilePhase(hc, debug, filepath.Join(*profiles, "reveal_c16.pprof"), 16, func() error {
			id := reqs[int(ri.Add(1))%n].OrderID
			return expect(hc, "GET", base+"/v1/orders/"+id+"/shipping?reason=label", token, nil, 200, nil)
		}); err != nil {
			return fmt.Errorf("profile reveal: %w", err)
		}
		say("profiling shipping webhooks (c=16)")
		held := make([]string, 4000)
		for i := range held {
			r := fresh()
			body, _ := json.Marshal(r)
			if err := expect(hc, "POST", base+"/v1/orders", key, body, 201, nil); err != nil {
				return err
			}
			held[i] = r.OrderID
		}
		var wi atomic.Int64
		if res.Profiles["webhook_c16"], err = profilePhase(hc, debug, filepath.Join(*profiles, "webhook_c16.pprof"), 16, func() error {
			i := int(wi.Add(1))
			if i >= len(held) {
				return nil // ran out of held orders: idle until the profile ends
			}
			body := []byte(`{"event_id":"prof-` + held[i] + `","order_id":"` + held[i] + `","status":"shipped"}`)
			sig := webhooks.SignShipping(hookSecret, time.Now(), body)
			return expect(hc, "POST", base+"/v1/webhooks/shipping", "", body, 200, map[string]string{"X-Piivault-Signature": sig})
		}); err != nil {
			return fmt.Errorf("profile webhooks: %w", err)
		}
	}

	// Purge: the sweep over due orders alone, then beside many not-due ones.
	if *due > 0 {
		if err := benchPurge(ctx, &res, say, svc, rdb, *due, *stored, *profiles); err != nil {
			return err
		}
	}

	printBench(e.stdout, &res)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

func benchPurge(ctx context.Context, res *benchResults, say func(string, ...any), svc *vault.Client, rdb *redis.Client, due, stored int, profiles string) error {
	batcher := orders.NewBatcher(svc, orders.BatchConfig{MaxItems: 128, MaxWait: 2 * time.Millisecond})
	defer batcher.Close()
	short, err := orders.NewStore(rdb, batcher, svc, orders.Config{Retention: time.Second})
	if err != nil {
		return err
	}
	long, err := orders.NewStore(rdb, batcher, svc, orders.Config{Retention: orders.MaxRetention})
	if err != nil {
		return err
	}
	purger := purge.NewPurger(short, audit.NewLog(rdb, svc, svc), discardLogger())
	sweep := func() (int, float64, error) {
		time.Sleep(1100 * time.Millisecond) // let the 1s retention pass
		t := time.Now()
		n, err := purger.Sweep(ctx)
		return n, time.Since(t).Seconds(), err
	}

	say("seeding %d due orders", due)
	t := time.Now()
	if _, err := seedOrders(ctx, short, "due1", due, 128); err != nil {
		return err
	}
	res.Purge.SeedPerSecond = float64(due) / time.Since(t).Seconds()
	say("sweeping %d due orders", due)
	// The sweep runs in this process: its CPU profile is this process's.
	var prof bytes.Buffer
	if profiles != "" {
		if err := rpprof.StartCPUProfile(&prof); err != nil {
			return err
		}
	}
	res.Purge.PurgedDueOnly, res.Purge.DueOnlySeconds, err = sweep()
	if profiles != "" {
		rpprof.StopCPUProfile()
		if werr := os.WriteFile(filepath.Join(profiles, "sweep.pprof"), prof.Bytes(), 0o644); werr != nil {
			return werr
		}
		if res.Profiles == nil {
			res.Profiles = map[string][]profileEntry{}
		}
		res.Profiles["sweep"], _ = topOf(prof.Bytes())
	}
	if err != nil {
		return err
	}
	if stored > 0 {
		say("seeding %d not-yet-due orders and %d due ones (this is the long part)", stored, due)
		if _, err := seedOrders(ctx, long, "held", stored, 128); err != nil {
			return err
		}
		if _, err := seedOrders(ctx, short, "due2", due, 128); err != nil {
			return err
		}
		say("sweeping %d due orders beside %d stored", due, stored)
		if res.Purge.PurgedWithStored, res.Purge.WithStoredSeconds, err = sweep(); err != nil {
			return err
		}
	}
	return nil
}

func benchStaffToken(ctx context.Context, root *vault.Operator, hc *http.Client, base string) (string, error) {
	pw, err := root.GeneratePassword(ctx)
	if err != nil {
		return "", err
	}
	enr, err := root.CreateStaff(ctx, "bench-fulfillment", "fulfillment", pw)
	if err != nil {
		return "", err
	}
	k, err := otp.NewKeyFromURL(enr.TOTPURL)
	if err != nil {
		return "", err
	}
	code, err := totp.GenerateCode(k.Secret(), time.Now())
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"username": "bench-fulfillment", "password": pw, "totp": code})
	var out struct {
		Token string `json:"token"`
	}
	if err := expect(hc, "POST", base+"/v1/auth/login", "", body, 200, nil, &out); err != nil {
		return "", fmt.Errorf("bench login: %w", err)
	}
	return out.Token, nil
}

// expect sends a request and checks the status; into, when given, gets the JSON body.
func expect(hc *http.Client, method, url, token string, body []byte, want int, hdr map[string]string, into ...any) error {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	if len(into) > 0 {
		return json.Unmarshal(raw, into[0])
	}
	return nil
}

func waitReady(hc *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("piivault serve did not become ready")
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

func printBench(w io.Writer, r *benchResults) {
	fmt.Fprintf(w, "piivault bench — %s — %s\n\n", r.When.Format(time.RFC3339), r.Machine)
	fmt.Fprintf(w, "%-28s %12s %9s %9s   %12s %9s %9s   %6s\n", "ingest (orders)", "piivault/s", "p50 ms", "p99 ms", "bare/s", "p50 ms", "p99 ms", "ratio")
	for _, in := range r.Ingest {
		fmt.Fprintf(w, "%-28s %12.0f %9.2f %9.2f   %12.0f %9.2f %9.2f   %5.2fx\n", fmt.Sprintf("concurrency %d", in.Concurrency),
			in.Piivault.PerSecond, in.Piivault.P50ms, in.Piivault.P99ms, in.Bare.PerSecond, in.Bare.P50ms, in.Bare.P99ms, in.Ratio)
	}
	fmt.Fprintf(w, "%-28s %12.0f %9.2f %9.2f   %12.0f %9.2f %9.2f   (bare: transit decrypt)\n", "reveal (concurrency 16)",
		r.Reveal.Piivault.PerSecond, r.Reveal.Piivault.P50ms, r.Reveal.Piivault.P99ms, r.Reveal.Bare.PerSecond, r.Reveal.Bare.P50ms, r.Reveal.Bare.P99ms)
	fmt.Fprintf(w, "%-28s %12.0f %9.2f %9.2f\n", "webhook → PII gone (c=16)", r.WebhookToGone.PerSecond, r.WebhookToGone.P50ms, r.WebhookToGone.P99ms)
	if r.Settings.Due > 0 {
		fmt.Fprintf(w, "\nsweep of %d due orders:              %7.2f s (%d purged)\n", r.Settings.Due, r.Purge.DueOnlySeconds, r.Purge.PurgedDueOnly)
		if r.Settings.Stored > 0 {
			fmt.Fprintf(w, "same, beside %d not-yet-due orders: %7.2f s (%d purged)\n", r.Settings.Stored, r.Purge.WithStoredSeconds, r.Purge.PurgedWithStored)
		}
		fmt.Fprintf(w, "seeding through the store:               %7.0f orders/s\n", r.Purge.SeedPerSecond)
	}
	fmt.Fprintf(w, "peak RSS of serve:                       %7.1f MiB\n", r.ServePeakRSSMiB)
}

// profileEntry is one function of a profile's top list.
type profileEntry struct {
	Function string  `json:"function"`
	FlatPct  float64 `json:"flat_pct"`
	CumPct   float64 `json:"cum_pct"`
}

// profilePhase runs op with concurrency c while serve's CPU profile (its
// loopback pprof listener) records 5 seconds, writes the profile to path
// and returns its top entries.
func profilePhase(hc *http.Client, debug, path string, c int, op func() error) ([]profileEntry, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := hc.Get(debug + "/debug/pprof/profile?seconds=5")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{b, err}
	}()
	stop := make(chan struct{})
	errc := make(chan error, c)
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := op(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	r := <-done
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if r.err != nil {
		return nil, r.err
	}
	if err := os.WriteFile(path, r.b, 0o644); err != nil {
		return nil, err
	}
	return topOf(r.b)
}

// topOf lists a CPU profile's ten hottest functions by flat samples.
func topOf(raw []byte) ([]profileEntry, error) {
	p, err := profile.ParseData(raw)
	if err != nil {
		return nil, err
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	flat, cum := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		seen := map[string]bool{}
		for li, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				f := line.Function.Name
				if li == 0 {
					flat[f] += v
				}
				if !seen[f] {
					cum[f] += v
					seen[f] = true
				}
			}
		}
	}
	if total == 0 {
		return nil, nil
	}
	out := make([]profileEntry, 0, len(flat))
	for f, v := range flat {
		out = append(out, profileEntry{Function: f, FlatPct: 100 * float64(v) / float64(total), CumPct: 100 * float64(cum[f]) / float64(total)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FlatPct > out[j].FlatPct })
	if len(out) > 10 {
		out = out[:10]
	}
	return out, nil
}
