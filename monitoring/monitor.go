package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
)

const blocksKey = "piivault:{blocks}:ips"

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Suspender suspends a staff account on every instance.
type Suspender interface {
	Suspend(ctx context.Context, username string) error
}

// Notifier delivers an alert without blocking the caller.
type Notifier interface {
	Notify(kind, text string)
}

// Thresholds says when the monitor acts.
type Thresholds struct {
	FailedAuth       int           // failed authentications from one IP ...
	FailedAuthWindow time.Duration // ... within this window → block the IP
	RevealsPerHour   int           // reveals by one staff member in an hour → suspend
	BadSignatures    int           // bad webhook signatures ...
	BadSigWindow     time.Duration // ... within this window → alert
}

// DefaultThresholds are the defaults the issue names (10 in 5 minutes).
var DefaultThresholds = Thresholds{
	FailedAuth: 10, FailedAuthWindow: 5 * time.Minute,
	RevealsPerHour: 200, BadSignatures: 20, BadSigWindow: 5 * time.Minute,
}

// Monitor watches authentication failures, reveal volume and webhook
// signature failures, and blocks, suspends and alerts. State is in Redis so
// every instance sees the same counters and enforces the same blocks.
type Monitor struct {
	rdb     redis.UniversalClient
	audit   Recorder
	staff   Suspender
	alerts  Notifier
	log     *slog.Logger
	limits  Thresholds
	timeout time.Duration
}

// NewMonitor builds a Monitor.
func NewMonitor(rdb redis.UniversalClient, rec Recorder, staff Suspender, alerts Notifier, limits Thresholds, log *slog.Logger) *Monitor {
	return &Monitor{rdb: rdb, audit: rec, staff: staff, alerts: alerts, limits: limits, log: log, timeout: 2 * time.Second}
}

// Block is one blocked IP.
type Block struct {
	IP     string    `json:"ip"`
	Reason string    `json:"reason"`
	At     time.Time `json:"blocked_at"`
}

// count increments a windowed counter and returns its new value.
func (m *Monitor) count(ctx context.Context, key string, window time.Duration) (int64, error) {
	pipe := m.rdb.TxPipeline()
	incr := pipe.Incr(ctx, key)
	pipe.ExpireNX(ctx, key, window)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return incr.Val(), nil
}

// AuthFailed records a failed authentication (bad login, bad API key, bad
// token) from ip and blocks the ip once it crosses the threshold.
func (m *Monitor) AuthFailed(ctx context.Context, ip string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	n, err := m.count(ctx, "piivault:{mon}:fail:"+ip, m.limits.FailedAuthWindow)
	if err != nil {
		m.log.Warn("monitor: failure not counted", "err", err)
		return
	}
	// >= rather than ==: if blocking failed once at the threshold (a Redis
	// blip), the next failure tries again. Blocked IPs never get here.
	if n >= int64(m.limits.FailedAuth) {
		reason := fmt.Sprintf("%d failed authentications within %s", n, m.limits.FailedAuthWindow)
		if err := m.BlockIP(ctx, "system", ip, reason); err != nil {
			m.log.Error("monitor: block failed", "err", err)
		}
	}
}

// BadSignature records a webhook with a bad signature from provider and
// alerts once per window when they flood in. Webhook senders are not
// blocked: a provider's IPs are shared with legitimate deliveries.
func (m *Monitor) BadSignature(ctx context.Context, provider string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	n, err := m.count(ctx, "piivault:{mon}:badsig:"+provider, m.limits.BadSigWindow)
	if err != nil {
		m.log.Warn("monitor: bad signature not counted", "err", err)
		return
	}
	if n == int64(m.limits.BadSignatures) {
		m.alerts.Notify("bad_webhook_signatures", fmt.Sprintf(
			"piivault: %d webhook deliveries with bad signatures for %s within %s", n, provider, m.limits.BadSigWindow))
	}
}

// Revealed records a reveal by a staff member and suspends the account
// when it crosses the hourly threshold.
func (m *Monitor) Revealed(ctx context.Context, username, ip string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	n, err := m.count(ctx, "piivault:{mon}:reveal:"+username, time.Hour)
	if err != nil {
		m.log.Warn("monitor: reveal not counted", "err", err)
		return
	}
	if n <= int64(m.limits.RevealsPerHour) {
		return
	}
	if err := m.staff.Suspend(ctx, username); err != nil {
		m.log.Error("monitor: suspend failed", "err", err)
		return
	}
	reason := fmt.Sprintf("more than %d reveals within an hour", m.limits.RevealsPerHour)
	_ = m.audit.Record(ctx, audit.Entry{Actor: "system", Action: audit.ActionStaffSuspend, IP: ip,
		Detail: map[string]string{"staff": username, "reason": reason}})
	m.log.Warn("staff account suspended", "staff", username, "reason", reason)
	m.alerts.Notify("staff_suspended", fmt.Sprintf("piivault: staff account %s suspended pending review: %s", username, reason))
}

// BlockIP blocks ip on every instance, records it and alerts.
func (m *Monitor) BlockIP(ctx context.Context, actor, ip, reason string) error {
	if net.ParseIP(ip) == nil {
		return apperr.New(apperr.Validation, "not an IP address")
	}
	b, _ := json.Marshal(Block{IP: ip, Reason: reason, At: time.Now().UTC()})
	if err := m.rdb.HSet(ctx, blocksKey, ip, b).Err(); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	m.refreshGauge(ctx)
	if err := m.audit.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionBlock, IP: ip,
		Detail: map[string]string{"reason": reason}}); err != nil {
		m.log.Error("monitor: block not audited", "err", err)
	}
	m.log.Warn("ip blocked", "ip", ip, "reason", reason)
	m.alerts.Notify("ip_blocked", fmt.Sprintf("piivault: blocked %s: %s", ip, reason))
	return nil
}

// Unblock lifts a block and clears the IP's failure count.
func (m *Monitor) Unblock(ctx context.Context, actor, ip, fromIP string) error {
	n, err := m.rdb.HDel(ctx, blocksKey, ip).Result()
	if err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n == 0 {
		return apperr.New(apperr.NotFound, "that IP is not blocked")
	}
	m.rdb.Del(ctx, "piivault:{mon}:fail:"+ip)
	m.refreshGauge(ctx)
	return m.audit.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionUnblock, IP: fromIP,
		Detail: map[string]string{"ip": ip}})
}

// Blocked reports whether ip is blocked. It is checked on every request.
func (m *Monitor) Blocked(ctx context.Context, ip string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	ok, err := m.rdb.HExists(ctx, blocksKey, ip).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return ok, nil
}

// Blocks lists the blocked IPs.
func (m *Monitor) Blocks(ctx context.Context) ([]Block, error) {
	all, err := m.rdb.HGetAll(ctx, blocksKey).Result()
	if err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	out := make([]Block, 0, len(all))
	for _, v := range all {
		var b Block
		if json.Unmarshal([]byte(v), &b) == nil {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out, nil
}

func (m *Monitor) refreshGauge(ctx context.Context) {
	if n, err := m.rdb.HLen(ctx, blocksKey).Result(); err == nil {
		blocksActive.Set(float64(n))
	}
}
