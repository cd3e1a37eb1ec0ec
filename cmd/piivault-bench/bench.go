package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/client"
	"piivault/orders"
	"piivault/purge"
	"piivault/vault"
	"piivault/webhooks"
)

// cmdRun: `run` measures a built piivault binary next to the bare pipeline
// (one transit call and one Redis write per order) in the same run.
func cmdRun(ctx context.Context, e *env) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	bin := fs.String("piivault", defaultPiivault(), "the piivault binary to measure")
	perLevel := fs.Int("orders", 3000, "orders per concurrency level (each for piivault and for the bare pipeline)")
	levelsFlag := fs.String("levels", "1,4,16,64", "concurrency levels of every phase (ingest, reveal, webhook)")
	reveals := fs.Int("reveals", 1000, "reveals to time at each level")
	hooks := fs.Int("webhooks", 500, "shipping webhooks to time at each level")
	due := fs.Int("due", 100_000, "due orders the sweep purges (0: no sweep)")
	stored := fs.Int("stored", 1_000_000, "not-yet-due orders stored beside them in the second sweep (0: no second sweep)")
	out := fs.String("out", "bench/results.json", "where to write the results")
	profiles := fs.String("profiles", "bench/profiles", "where to write CPU profiles of each phase (\"\": none)")
	memOrders := fs.Int("memory", 2000, "orders stored, before anything else, to measure Redis memory and keys per held order (0: skip)")
	readme := fs.String("readme", "", "a README whose goals table (between <!-- bench:goals --> and <!-- /bench:goals -->) this run rewrites")
	if done, err := e.parseFlags(fs); done || err != nil {
		return err
	}
	var levels []int
	for _, l := range strings.Split(*levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil || n < 1 || n > 1024 {
			return errors.New("run: --levels wants numbers from 1 to 1024")
		}
		levels = append(levels, n)
	}
	if *perLevel < 1 || *reveals < 0 || *hooks < 0 || *due < 0 || *stored < 0 || *memOrders < 0 {
		return errors.New("run: --orders wants a number above 0; --reveals, --webhooks, --due and --stored 0 or more")
	}
	path, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	say := func(format string, args ...any) { fmt.Fprintf(e.stderr, "bench: "+format+"\n", args...) }

	st, err := startStack(ctx, path, e.getenv, say)
	if err != nil {
		return err
	}
	defer st.stop()
	b, err := newBench(ctx, st, say, slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer b.rdb.Close()

	b.res.When, b.res.Machine = time.Now().UTC(), machine()
	b.res.Settings.OrdersPerLevel, b.res.Settings.Levels = *perLevel, levels
	b.res.Settings.Due, b.res.Settings.Stored = *due, *stored
	b.reqs = make([]orders.Request, *perLevel*len(levels))
	b.orders = make([]client.OrderRequest, len(b.reqs))
	for i := range b.reqs {
		b.reqs[i] = fakeOrder("bench", i)
		b.orders[i] = clientOrder(b.reqs[i])
	}

	if *memOrders > 0 {
		if err := b.memory(*memOrders); err != nil {
			return err
		}
	}
	if err := b.ingest(levels, *perLevel); err != nil {
		return err
	}
	// Reveals cycle through the first n orders; each level's webhooks
	// take orders after them, which no reveal touches.
	n := min(*reveals, len(b.reqs))
	w := min(*hooks, (len(b.reqs)-n)/len(levels))
	if err := b.reveal(levels, n, *reveals); err != nil {
		return err
	}
	if err := b.webhooks(levels, n, w); err != nil {
		return err
	}
	b.res.ServePeakRSSMiB = st.servePeakRSS()
	if *profiles != "" {
		if err := b.profile(*profiles, n); err != nil {
			return err
		}
	}
	if *due > 0 {
		if err := b.purge(*due, *stored, *profiles); err != nil {
			return err
		}
	}

	b.res.Goals = judge(&b.res)
	printResults(e.stdout, &b.res)
	if *readme != "" {
		if err := writeReadme(*readme, &b.res); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(b.res, "", "  ")
	return os.WriteFile(*out, append(raw, '\n'), 0o644)
}

// defaultPiivault is the piivault binary beside this one (bin/piivault
// for bin/piivault-bench), else bin/piivault under the current directory.
func defaultPiivault() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "piivault")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return filepath.Join("bin", "piivault")
}

// bench is one run against a started stack: piivault over HTTP, and the
// bare pipeline with the service's own Vault identity and Redis.
type bench struct {
	ctx   context.Context
	say   func(string, ...any)
	log   *slog.Logger
	st    *stack
	hc    *http.Client
	svc   *vault.Client // the service AppRole, as serve uses it
	rdb   *redis.Client
	key   string // a storefront API key
	token string // a fulfillment member's token
	// store and staff are piivault's Go client (client/) with the
	// storefront key and the fulfillment token: the load is what a
	// storefront and a staff tool send.
	store, staff *client.Client
	reqs         []orders.Request
	orders       []client.OrderRequest
	res          results
}

func newBench(ctx context.Context, st *stack, say func(string, ...any), log *slog.Logger) (*bench, error) {
	b := &bench{ctx: ctx, say: say, log: log, st: st,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}}
	var err error
	if b.svc, err = vault.New(ctx, vault.Config{Addr: st.dev.VaultAddr, RoleID: st.roleID, SecretID: st.secretID}, log); err != nil {
		return nil, err
	}
	say("piivault clients add, piivault staff add, login")
	if b.key, err = st.addClient(ctx, "bench"); err != nil {
		return nil, err
	}
	if b.token, err = st.staffToken(ctx, b.hc, "bench-fulfillment", "fulfillment"); err != nil {
		return nil, err
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: st.dev.RedisAddr, PoolSize: 256})
	b.store = client.New(st.base, b.key, client.WithHTTPClient(b.hc))
	b.staff = client.New(st.base, b.token, client.WithHTTPClient(b.hc))
	return b, nil
}

// clientOrder is an order as the client sends it (the same JSON).
func clientOrder(r orders.Request) client.OrderRequest {
	var o client.OrderRequest
	raw, _ := json.Marshal(r)
	_ = json.Unmarshal(raw, &o)
	return o
}

// create stores an order through the client (201, or 200 for a repeat).
func (b *bench) create(o client.OrderRequest) error {
	_, err := b.store.CreateOrder(b.ctx, o)
	return err
}

func (b *bench) post(path, token string, body []byte, want int, hdr map[string]string) error {
	return expect(b.ctx, b.hc, "POST", b.st.base+path, token, body, want, hdr)
}

// revealStatus reveals id through the client and checks the status it got
// (200, or the error's: 410 for a purged order).
func (b *bench) revealStatus(id string, want int) error {
	_, _, err := b.staff.RevealShipping(b.ctx, id, "label")
	status := http.StatusOK
	var e *client.Error
	switch {
	case errors.As(err, &e):
		status = e.Status
	case err != nil:
		return err
	}
	if status != want {
		return fmt.Errorf("reveal %s: status %d, want %d", id, status, want)
	}
	return nil
}

// shipped is a signed shipping webhook for order id.
func (b *bench) shipped(event, id string) error {
	body := []byte(`{"event_id":"` + event + `","order_id":"` + id + `","status":"shipped"}`)
	sig := webhooks.SignShipping(hookSecret, time.Now(), body)
	return b.post("/v1/webhooks/shipping", "", body, http.StatusOK, map[string]string{"X-Piivault-Signature": sig})
}

// memory: Redis memory and keys per held order, in its own run on the
// empty store before any other phase (so no bare-pipeline keys count):
// INFO used_memory and DBSIZE before and after storing n orders through
// the API, divided by n. The audit stream's share is measured apart
// (MEMORY USAGE), since PIIVAULT_AUDIT_HOT, not the order, bounds it.
func (b *bench) memory(n int) error {
	b.say("memory: storing %d orders", n)
	used := func() (int64, int64, int64, int64, error) {
		info, err := b.rdb.Info(b.ctx, "memory").Result()
		if err != nil {
			return 0, 0, 0, 0, err
		}
		var mem int64
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				mem, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		keys, err := b.rdb.DBSize(b.ctx).Result()
		if err != nil {
			return 0, 0, 0, 0, err
		}
		trail, _ := b.rdb.MemoryUsage(b.ctx, "piivault:{audit}:log", 0).Result()
		access, _ := b.rdb.MemoryUsage(b.ctx, "piivault:{access}:log", 0).Result()
		return mem, keys, trail, access, nil
	}
	mem0, keys0, trail0, access0, err := used()
	if err != nil {
		return err
	}
	mem := make([]client.OrderRequest, n)
	for i := range mem {
		mem[i] = clientOrder(fakeOrder("mem", i))
	}
	if _, err := measure(n, 16, func(i int) error { return b.create(mem[i]) }); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // the access log's writer catches up
	mem1, keys1, trail1, access1, err := used()
	if err != nil {
		return err
	}
	m := &b.res.Memory
	m.Orders = n
	m.BytesPerOrder = float64(mem1-mem0) / float64(n)
	m.KeysPerOrder = float64(keys1-keys0) / float64(n)
	m.AuditBytesPerOrder = float64(trail1-trail0) / float64(n)
	m.AccessLogBytesPerOrder = float64(access1-access0) / float64(n)
	m.OrderBytesPerOrder = m.BytesPerOrder - m.AuditBytesPerOrder - m.AccessLogBytesPerOrder
	return nil
}

// ingest: piivault over HTTP next to the bare pipeline (one transit encrypt
// and one Redis write per order), at the same concurrency.
func (b *bench) ingest(levels []int, perLevel int) error {
	for li, c := range levels {
		b.say("ingest at concurrency %d", c)
		off := li * perLevel
		series := []named{{"bare ingest", func(i int) error {
			r := b.reqs[off+i]
			plain, _ := json.Marshal(r.Shipping)
			enc, err := b.svc.Encrypt(b.ctx, []vault.Plaintext{{Plaintext: plain, AssociatedData: []byte(r.OrderID)}})
			if err != nil {
				return err
			}
			return b.rdb.Set(b.ctx, "bare:"+r.OrderID, enc[0].Value, orders.MaxRetention).Err()
		}}, {"ingest", func(i int) error {
			return b.create(b.orders[off+i])
		}}}
		if c == 1 {
			series = append(series, floorSeriesOf("ingest", func(i int) error { return b.ingestCalls(b.reqs[off+i]) }, b.healthz)...)
		}
		m, err := turns(perLevel, c, b.cpuMeter(), series...)
		if err != nil {
			return err
		}
		b.res.Ingest = append(b.res.Ingest, levelOf(c, m))
	}
	return nil
}

// levelOf is a level's comparison from its series: the bare loop's, then
// piivault's, then (at concurrency 1) piivault's calls alone and its calls
// with a stub's hop.
func levelOf(c int, m []measured) level {
	l := compare(c, m[1].lat, m[0].lat)
	l.setCPU(m[1].cpu, m[0].cpu)
	if len(m) > 3 {
		l.Calls = l.floorOf(m[2])
		l.Stub = l.floorOf(m[3])
	}
	return l
}

// reveal: count reveals at each level, cycling through the first n orders
// with a fulfillment token, next to a bare transit decrypt of the same
// orders' bare ciphertexts with the same token.
func (b *bench) reveal(levels []int, n, count int) error {
	if n == 0 {
		return nil
	}
	cts := make([]string, n)
	for i := range cts {
		cts[i], _ = b.rdb.Get(b.ctx, "bare:"+b.reqs[i].OrderID).Result()
	}
	for _, c := range levels {
		b.say("reveal at concurrency %d", c)
		series := []named{{"bare decrypt", func(i int) error {
			_, err := b.svc.Decrypt(b.ctx, b.token, cts[i%n], []byte(b.reqs[i%n].OrderID))
			return err
		}}, {"reveal", func(i int) error {
			return b.revealStatus(b.reqs[i%n].OrderID, http.StatusOK)
		}}}
		if c == 1 {
			series = append(series, floorSeriesOf("reveal", func(i int) error { return b.revealCalls(b.reqs[i%n].OrderID, cts[i%n]) }, b.healthz)...)
		}
		m, err := turns(count, c, b.cpuMeter(), series...)
		if err != nil {
			return err
		}
		b.res.Reveal = append(b.res.Reveal, levelOf(c, m))
	}
	return nil
}

// cpuMeter reads, between series, the CPU time of every process a series
// keeps busy: Vault, Redis, serve and this load generator.
type cpuMeter struct {
	pids      [4]int
	last      [4]time.Duration
	reads     func() int64 // Redis's read events so far
	lastReads int64
}

func (b *bench) cpuMeter() *cpuMeter {
	m := &cpuMeter{pids: [4]int{b.st.dev.VaultPID(), b.st.dev.RedisPID(), b.st.serve.Process.Pid, os.Getpid()},
		reads: func() int64 { return redisReads(b.ctx, b.rdb) }}
	for i, pid := range m.pids {
		m.last[i] = processCPU(pid)
	}
	m.lastReads = m.reads()
	return m
}

// redisReads is Redis's count of read events (INFO stats
// total_reads_processed): every round trip of every client is at least one.
func redisReads(ctx context.Context, rdb redis.UniversalClient) int64 {
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_reads_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// cpuUse is each process's CPU time and Redis's read events over some
// stretch of a run.
type cpuUse struct {
	cpu   [4]time.Duration
	reads int64
	// unread: Redis's read count could not be read for some of it.
	unread bool
}

func (u *cpuUse) add(v cpuUse) {
	for i := range u.cpu {
		u.cpu[i] += v.cpu[i]
	}
	u.reads += v.reads
	u.unread = u.unread || v.unread
}

// share is u in ms per operation, for ops operations.
func (u cpuUse) share(ops int) cpuShare {
	if ops <= 0 {
		return cpuShare{}
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(ops) }
	share := cpuShare{Vault: per(u.cpu[0]), Redis: per(u.cpu[1]), Serve: per(u.cpu[2]), Load: per(u.cpu[3])}
	if !u.unread {
		share.RedisReads = float64(u.reads) / float64(ops)
	}
	return share
}

// take is each process's CPU time since the last reading.
func (m *cpuMeter) take() cpuUse {
	var u cpuUse
	for i, pid := range m.pids {
		now := processCPU(pid)
		u.cpu[i], m.last[i] = now-m.last[i], now
	}
	reads := m.reads() // 0: unread
	u.reads, u.unread = reads-m.lastReads, reads == 0 || m.lastReads == 0
	m.lastReads = reads
	return u
}

// bareGone is the bare pipeline's shipping event: the ciphertext is
// deleted and the order marked, in one script.
var bareGone = redis.NewScript(`
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
`)

// webhooks: w shipping webhooks at each level for orders after the first
// skip (none of them revealed); the webhook's answer is the moment the PII
// is gone, which a reveal after it (410) proves. The bare pipeline checks
// the same signature (one HMAC) and runs one Redis script on the same
// orders' bare ciphertexts. At concurrency 1 the fewest calls a webhook
// that audits its purge can make are timed too, alone and with a stub's
// hop (webhookCalls): the goal's floor.
func (b *bench) webhooks(levels []int, skip, w int) error {
	if w == 0 {
		return nil
	}
	for li, c := range levels {
		b.say("shipping webhooks at concurrency %d", c)
		off := skip + li*w
		series := []named{{"bare webhook", func(i int) error {
			id := b.reqs[off+i].OrderID
			if err := signedShipping("bare-"+id, id); err != nil {
				return err
			}
			n, err := bareGone.Run(b.ctx, b.rdb, []string{"bare:" + id, "bare:gone:" + id}, "shipped", orders.MaxRetention.Milliseconds()).Int()
			if err == nil && n != 1 {
				err = fmt.Errorf("no ciphertext for %s", id)
			}
			return err
		}}, {"webhook", func(i int) error {
			id := b.reqs[off+i].OrderID
			return b.shipped("bench-"+id, id)
		}}}
		if c == 1 {
			series = append(series, floorSeriesOf("webhook", func(i int) error { return b.webhookCalls(b.reqs[off+i].OrderID) }, b.healthz)...)
		}
		m, err := turns(w, c, b.cpuMeter(), series...)
		if err != nil {
			return err
		}
		l := levelOf(c, m)
		for i := 0; i < w; i++ {
			if err := b.revealStatus(b.reqs[off+i].OrderID, http.StatusGone); err != nil {
				return fmt.Errorf("after the shipping webhook: %w", err)
			}
		}
		b.res.Webhook = append(b.res.Webhook, l)
	}
	return nil
}

// signedShipping signs a shipping event for the order id and checks its
// signature, as the bare pipeline does before its script: one HMAC each
// way, the check the webhook handler makes.
func signedShipping(eventID, id string) error {
	body := []byte(`{"event_id":"` + eventID + `","order_id":"` + id + `","status":"shipped"}`)
	now := time.Now()
	if !checkShipping(webhooks.SignShipping(hookSecret, now, body), body, now) {
		return errors.New("signature does not verify")
	}
	return nil
}

// checkShipping is the bare pipeline's signature check: the HMAC the
// webhook handler computes, compared in constant time.
func checkShipping(header string, body []byte, at time.Time) bool {
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(hookSecret))
	m.Write([]byte(ts + "." + string(body)))
	want := "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(want), []byte(header))
}

// profile runs each phase again, unmeasured, while serve's CPU profile
// runs, and serve's store path alone in this process under this
// process's profile (storepath.go); reveals cycle through the first n
// orders (still held).
func (b *bench) profile(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b.res.Profiles = map[string][]profileEntry{}
	var next atomic.Int64
	fresh := func() orders.Request { return fakeOrder("prof", int(next.Add(1))) }
	serve := serveProfile(b.ctx, b.hc, b.st.debug)
	// phaseOf profiles one phase with record: serve's profile, or this
	// process's (ownProfile).
	phaseOf := func(name string, c int, record func() ([]byte, error), op func() error) error {
		b.say("profiling %s", name)
		p, err := profilePhase(filepath.Join(dir, name+".pprof"), c, record, op)
		if err != nil {
			return fmt.Errorf("profile %s: %w", name, err)
		}
		b.res.Profiles[name] = p.top
		if p.ops > 0 {
			perOp := float64(p.cpu.Microseconds()) / float64(p.ops)
			switch name {
			case "ingest_c64":
				b.res.ServeCPUPerOrderMicros = perOp
			case "healthz_c64":
				b.res.ServeCPUFloorMicros = perOp
			case "store_path_c64":
				b.res.StorePathCPUPerOrderMicros = perOp
			}
		}
		return nil
	}
	phase := func(name string, c int, op func() error) error { return phaseOf(name, c, serve, op) }

	if err := phase("ingest_c64", 64, func() error { return b.create(clientOrder(fresh())) }); err != nil {
		return err
	}
	if err := phase("healthz_c64", 64, b.healthz); err != nil {
		return err
	}
	store, stop, err := b.storePath()
	if err != nil {
		return err
	}
	err = phaseOf("store_path_c64", 64, ownProfile, store)
	stop()
	if err != nil {
		return err
	}
	var ri atomic.Int64
	if n > 0 {
		// c=1 for the latency goal (every wait is the runtime's to wake
		// up from), c=16 for the throughput one.
		for _, c := range []int{1, 16} {
			if err := phase(fmt.Sprintf("reveal_c%d", c), c, func() error {
				return b.revealStatus(b.reqs[int(ri.Add(1))%n].OrderID, http.StatusOK)
			}); err != nil {
				return err
			}
		}
	}
	held := make([]string, 4000)
	if _, err := measure(len(held), 64, func(i int) error {
		r := fresh()
		held[i] = r.OrderID
		return b.create(clientOrder(r))
	}); err != nil {
		return fmt.Errorf("orders for the webhook profile: %w", err)
	}
	var wi atomic.Int64
	return phase("webhook_c16", 16, func() error {
		i := int(wi.Add(1))
		if i >= len(held) {
			return nil // ran out of held orders: idle until the profile ends
		}
		return b.shipped("prof-"+held[i], held[i])
	})
}

// purge: the sweep over due orders alone, then beside many not-due ones.
// The orders go straight through the store (a one-second retention no
// server accepts, at the store's speed) and the sweep runs in this
// process with the service's identity, so its CPU profile is this
// process's.
func (b *bench) purge(due, stored int, profiles string) error {
	batcher := orders.NewBatcher(b.svc, orders.BatchConfig{MaxItems: 128, MaxWait: 2 * time.Millisecond})
	defer batcher.Close()
	trail := audit.NewLog(b.rdb, b.svc, b.svc)
	short, err := orders.NewStore(b.rdb, batcher, b.svc, trail, orders.Config{Retention: time.Second})
	if err != nil {
		return err
	}
	long, err := orders.NewStore(b.rdb, batcher, b.svc, trail, orders.Config{Retention: orders.MaxRetention})
	if err != nil {
		return err
	}
	purger := purge.NewPurger(short, trail, b.log)
	sweep := func() (int, float64, error) {
		time.Sleep(1100 * time.Millisecond) // let the 1s retention pass
		t := time.Now()
		n, err := purger.Sweep(b.ctx)
		return n, time.Since(t).Seconds(), err
	}

	b.say("seeding %d due orders", due)
	seeded, err := seedStore(b.ctx, short, "due1", due, 128)
	if err != nil {
		return err
	}
	b.res.Purge.SeedPerSecond = seeded.PerSecond
	b.say("sweeping %d due orders", due)
	var prof bytes.Buffer
	if profiles != "" {
		if err := rpprof.StartCPUProfile(&prof); err != nil {
			return err
		}
	}
	b.res.Purge.PurgedDueOnly, b.res.Purge.DueOnlySeconds, err = sweep()
	if profiles != "" {
		rpprof.StopCPUProfile()
		if werr := os.WriteFile(filepath.Join(profiles, "sweep.pprof"), prof.Bytes(), 0o644); werr != nil {
			return werr
		}
		if b.res.Profiles == nil {
			b.res.Profiles = map[string][]profileEntry{}
		}
		b.res.Profiles["sweep"], _ = topOf(prof.Bytes())
	}
	if err != nil {
		return err
	}
	if stored > 0 {
		b.say("seeding %d not-yet-due orders and %d due ones (this is the long part)", stored, due)
		if _, err := seedStore(b.ctx, long, "held", stored, 128); err != nil {
			return err
		}
		if _, err := seedStore(b.ctx, short, "due2", due, 128); err != nil {
			return err
		}
		b.say("sweeping %d due orders beside %d stored", due, stored)
		if b.res.Purge.PurgedWithStored, b.res.Purge.WithStoredSeconds, err = sweep(); err != nil {
			return err
		}
	}
	return nil
}
