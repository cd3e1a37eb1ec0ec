package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recorder, suspender and notifier stand in for the audit log, the staff
// service and the alerter: the monitor's own state is in the real Redis.
type recorder struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (r *recorder) Record(_ context.Context, e audit.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.entries {
		out = append(out, e.Action)
	}
	return out
}

type suspender struct{ names []string }

func (s *suspender) Suspend(_ context.Context, name string) error {
	s.names = append(s.names, name)
	return nil
}

type notifier struct{ kinds []string }

func (n *notifier) Notify(kind, _ string) { n.kinds = append(n.kinds, kind) }

func newMonitor(rdb redis.UniversalClient, limits Thresholds) (*Monitor, *recorder, *suspender, *notifier) {
	rec, sus, note := &recorder{}, &suspender{}, &notifier{}
	return NewMonitor(rdb, rec, sus, note, limits, testenv.Logger()), rec, sus, note
}

// secondClient is another connection to the same Redis, as a second
// instance of piivault would have.
func secondClient(t *testing.T, env *testenv.Env) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: env.Redis.Options().Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFailedAuthBlocksOnEveryInstanceUntilUnblocked(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	limits := Thresholds{FailedAuth: 3, FailedAuthWindow: time.Minute, RevealsPerHour: 10, BadSignatures: 5, BadSigWindow: time.Minute}
	one, rec, _, note := newMonitor(env.Redis, limits)
	two, _, _, _ := newMonitor(secondClient(t, env), limits)
	const ip = "192.0.2.7"

	for i := 1; i < limits.FailedAuth; i++ {
		one.AuthFailed(ctx, ip)
	}
	blocked, err := isBlocked(ctx, two, ip)
	require.NoError(t, err)
	require.False(t, blocked, "blocked before the threshold")

	one.AuthFailed(ctx, ip)
	blocked, err = isBlocked(ctx, two, ip)
	require.NoError(t, err)
	require.True(t, blocked, "the other instance must see the block")
	other, err := isBlocked(ctx, two, "192.0.2.8")
	require.NoError(t, err)
	require.False(t, other, "only the failing IP is blocked")
	require.Equal(t, []string{audit.ActionBlock}, rec.actions())
	require.Equal(t, []string{"ip_blocked"}, note.kinds)

	bs, err := two.Blocks(ctx)
	require.NoError(t, err)
	require.Len(t, bs, 1)
	require.Equal(t, ip, bs[0].IP)
	require.Contains(t, bs[0].Reason, "3 failed authentications")

	require.NoError(t, two.Unblock(ctx, "admin", ip, "192.0.2.1"))
	blocked, err = isBlocked(ctx, one, ip)
	require.NoError(t, err)
	require.False(t, blocked)
	// The failure count starts again: one more failure does not re-block.
	one.AuthFailed(ctx, ip)
	blocked, err = isBlocked(ctx, one, ip)
	require.NoError(t, err)
	require.False(t, blocked)

	err = two.Unblock(ctx, "admin", ip, "192.0.2.1")
	require.True(t, apperr.Is(err, apperr.NotFound), "unblocking twice: %v", err)
}

func TestBlockIPRefusesWhatIsNotAnIP(t *testing.T) {
	env := testenv.Shared(t)
	m, rec, _, _ := newMonitor(env.Redis, DefaultThresholds)
	for _, bad := range []string{"", "example.com", "192.0.2.300", "192.0.2.0/24"} {
		err := m.BlockIP(context.Background(), "admin", bad, "test")
		require.True(t, apperr.Is(err, apperr.Validation), "%q: %v", bad, err)
	}
	bs, err := m.Blocks(context.Background())
	require.NoError(t, err)
	require.Empty(t, bs)
	require.Empty(t, rec.actions())
}

func TestRevealThresholdSuspendsOnce(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	m, rec, sus, note := newMonitor(env.Redis, Thresholds{FailedAuth: 10, FailedAuthWindow: time.Minute, RevealsPerHour: 2, BadSignatures: 5, BadSigWindow: time.Minute})

	revealed(ctx, m, "alice", "192.0.2.1")
	revealed(ctx, m, "alice", "192.0.2.1")
	revealed(ctx, m, "bob", "192.0.2.2")
	require.Empty(t, sus.names, "at the threshold nobody is suspended")

	revealed(ctx, m, "alice", "192.0.2.1")
	require.Equal(t, []string{"alice"}, sus.names)
	require.Equal(t, []string{audit.ActionStaffSuspend}, rec.actions())
	require.Equal(t, []string{"staff_suspended"}, note.kinds)
}

func TestBadSignaturesAlertOncePerWindow(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	m, _, _, note := newMonitor(env.Redis, Thresholds{FailedAuth: 10, FailedAuthWindow: time.Minute, RevealsPerHour: 10, BadSignatures: 3, BadSigWindow: time.Minute})
	for i := 0; i < 10; i++ {
		m.BadSignature(ctx, "stripe")
	}
	m.BadSignature(ctx, "shopify")
	require.Equal(t, []string{"bad_webhook_signatures"}, note.kinds)
}

func TestMonitorFailsOpenWithoutRedisButBlockedReportsIt(t *testing.T) {
	env := testenv.Start(t)
	m, rec, _, _ := newMonitor(env.Redis, DefaultThresholds)
	env.StopRedis(t)
	m.timeout = 500 * time.Millisecond
	m.AuthFailed(context.Background(), "192.0.2.9") // logged, not fatal
	require.Empty(t, rec.actions())
	_, err := isBlocked(context.Background(), m, "192.0.2.9")
	require.True(t, apperr.Is(err, apperr.StoreUnavailable), "%v", err)
}

func TestLimiter(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	l := NewLimiter(env.Redis, "test", 3, time.Minute)
	other := NewLimiter(secondClient(t, env), "test", 3, time.Minute)

	tests := []struct {
		name    string
		lim     *Limiter
		who     string
		limited bool
	}{
		{"first", l, "client-a", false},
		{"second", l, "client-a", false},
		{"third, from another instance", other, "client-a", false},
		{"fourth is over the shared limit", l, "client-a", true},
		{"another caller has its own window", l, "client-b", false},
	}
	for _, tt := range tests {
		err := tt.lim.Allow(ctx, tt.who)
		if !tt.limited {
			require.NoError(t, err, tt.name)
			continue
		}
		require.True(t, apperr.Is(err, apperr.RateLimited), "%s: %v", tt.name, err)
		var e *apperr.Error
		require.ErrorAs(t, err, &e)
		retry, _ := e.Detail["retry_after_seconds"].(int)
		require.True(t, retry >= 1 && retry <= 60, "%s: retry after %v", tt.name, e.Detail)
	}
}

func TestAlerterRetriesUntilDelivered(t *testing.T) {
	// The receiver runs on the server's goroutines: it only hands what it
	// got to the test goroutine, which asserts.
	type delivery struct {
		call int
		body map[string]string
		err  error
	}
	var calls atomic.Int64
	got := make(chan delivery, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		d := delivery{call: int(n)}
		d.err = json.NewDecoder(r.Body).Decode(&d.body)
		got <- d
	}))
	defer recv.Close()

	a := NewAlerter(recv.URL, testenv.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	a.Notify("ip_blocked", "piivault: blocked 192.0.2.7")

	var d delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("alert not delivered")
	}
	require.NoError(t, d.err)
	require.Equal(t, 2, d.call, "one failure, one retry")
	require.Equal(t, "piivault: blocked 192.0.2.7", d.body["text"], "Slack-compatible text field")
}

func TestAlerterNeverBlocksTheCaller(t *testing.T) {
	// Nobody runs the queue: Notify must still return at once, also when
	// the queue is full.
	a := NewAlerter("http://127.0.0.1:1/", testenv.Logger())
	start := time.Now()
	for i := 0; i < cap(a.queue)+10; i++ {
		a.Notify("test", "text")
	}
	require.Less(t, time.Since(start), 5*time.Second)
	require.Len(t, a.queue, cap(a.queue))
}

// TestAccessLogHoldsNoRequestData sends a request whose path, query,
// headers and body all carry canaries, and checks that neither the log
// line nor the kept stream entry holds any of them.
func TestAccessLogHoldsNoRequestData(t *testing.T) {
	env := testenv.Shared(t)
	gin.SetMode(gin.TestMode)
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	keep := NewAccessStore(env.Redis, 1000, testenv.Logger())
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { keep.Run(ctx); close(stopped) }()

	r := gin.New()
	r.Use(AccessLog(log, keep))
	r.POST("/v1/orders/:id/shipped", func(c *gin.Context) {
		_, _ = io.ReadAll(c.Request.Body)
		c.JSON(http.StatusAccepted, gin.H{"ok": true})
	})
	canaries := []string{"ord-CANARY-1", "CANARY-QUERY", "CANARY-TOKEN", "canary.person@example.com", "CANARY-STREET"}
	req := httptest.NewRequest(http.MethodPost, "/v1/orders/ord-CANARY-1/shipped?q=CANARY-QUERY",
		strings.NewReader(`{"email":"canary.person@example.com","line1":"CANARY-STREET"}`))
	req.Header.Set("Authorization", "Bearer CANARY-TOKEN")
	req.RemoteAddr = "192.0.2.55:4000"
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	require.Equal(t, http.StatusAccepted, w.Code)

	cancel()
	<-stopped // Run writes what is queued before it returns
	entries := env.Redis.XRange(context.Background(), accessKey, "-", "+").Val()
	require.Len(t, entries, 1)
	kept, _ := json.Marshal(entries[0].Values)

	var line map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &line))
	assert.Equal(t, "/v1/orders/:id/shipped", line["route"])
	assert.Equal(t, "192.0.2.55", line["ip"])
	assert.EqualValues(t, 202, line["status"])
	assert.Equal(t, "/v1/orders/:id/shipped", entries[0].Values["route"])
	for _, c := range canaries {
		assert.NotContains(t, out.String(), c, "log line")
		assert.NotContains(t, string(kept), c, "kept entry")
	}
}

func TestBlocksExpireAndCanBeMadeAgain(t *testing.T) {
	env := testenv.Shared(t)
	ctx := context.Background()
	limits := Thresholds{FailedAuth: 2, FailedAuthWindow: time.Minute, BlockFor: time.Hour}
	m, rec, _, note := newMonitor(env.Redis, limits)
	// The monitor's clock, moved by hand: a block's end is exact, whatever
	// the machine's load.
	start := time.Now()
	now := start
	m.now = func() time.Time { return now }
	const ip = "192.0.2.9"
	m.AuthFailed(ctx, ip)
	m.AuthFailed(ctx, ip)
	m.AuthFailed(ctx, ip) // past the threshold while blocked: no second block
	blocked, err := isBlocked(ctx, m, ip)
	require.NoError(t, err)
	require.True(t, blocked)
	require.Equal(t, []string{audit.ActionBlock}, rec.actions())
	require.Equal(t, []string{"ip_blocked"}, note.kinds)

	now = start.Add(limits.BlockFor - time.Millisecond)
	blocked, err = isBlocked(ctx, m, ip)
	require.NoError(t, err)
	require.True(t, blocked, "blocked until the very end of BlockFor")
	bs, err := m.Blocks(ctx)
	require.NoError(t, err)
	require.Len(t, bs, 1)

	now = start.Add(limits.BlockFor)
	blocked, err = isBlocked(ctx, m, ip)
	require.NoError(t, err)
	require.False(t, blocked, "the block ended by itself")
	bs, err = m.Blocks(ctx)
	require.NoError(t, err)
	require.Empty(t, bs)
	m.AuthFailed(ctx, ip)
	blocked, err = isBlocked(ctx, m, ip)
	require.NoError(t, err)
	require.True(t, blocked, "a new failure after the block ended blocks again")
	require.Equal(t, []string{audit.ActionBlock, audit.ActionBlock}, rec.actions())
	require.Equal(t, []string{"ip_blocked", "ip_blocked"}, note.kinds)
}

// revealed counts one reveal as the Revealer does: on a pipeline of its
// own here.
// isBlocked reads a block as serve does, through BlockedIn.
func isBlocked(ctx context.Context, m *Monitor, ip string) (bool, error) {
	p := m.rdb.Pipeline()
	answer := m.BlockedIn(ctx, p, ip)
	_, _ = p.Exec(ctx)
	return answer()
}

func revealed(ctx context.Context, m *Monitor, username, ip string) {
	p := m.rdb.Pipeline()
	done := m.RevealedIn(ctx, p, username, ip)
	_, _ = p.Exec(ctx)
	done()
}
