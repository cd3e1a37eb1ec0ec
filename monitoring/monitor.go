package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
)

const (
	blocksKey     = "piivault:{blocks}:ips"
	blocksUntil   = "piivault:{blocks}:until"
	failPrefix    = "piivault:{mon}:fail:"
	loginAuditKey = "piivault:{mon}:loginaudit:"
)

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
	BlockFor         time.Duration // how long an automatic block lasts
}

// DefaultThresholds: 10 failed authentications in 5 minutes block an IP
// for an hour.
var DefaultThresholds = Thresholds{
	FailedAuth: 10, FailedAuthWindow: 5 * time.Minute,
	RevealsPerHour: 200, BadSignatures: 20, BadSigWindow: 5 * time.Minute, BlockFor: time.Hour,
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
	now     func() time.Time // when blocks start and end; tests move it
}

// NewMonitor builds a Monitor.
func NewMonitor(rdb redis.UniversalClient, rec Recorder, staff Suspender, alerts Notifier, limits Thresholds, log *slog.Logger) *Monitor {
	if limits.BlockFor <= 0 {
		limits.BlockFor = DefaultThresholds.BlockFor
	}
	return &Monitor{rdb: rdb, audit: rec, staff: staff, alerts: alerts, limits: limits, log: log, timeout: 2 * time.Second, now: time.Now}
}

// Block is one blocked IP.
type Block struct {
	IP      string    `json:"ip"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"blocked_at"`
	Expires time.Time `json:"expires_at"`
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

// AuthFailed records a presented-and-wrong bearer credential (an API key or
// a Vault token) from ip and blocks the ip once it reaches the threshold.
// A missing credential never comes here: no one can get an IP blocked
// without presenting credentials from it.
func (m *Monitor) AuthFailed(ctx context.Context, ip string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	n, err := m.count(ctx, failPrefix+ip, m.limits.FailedAuthWindow)
	if err != nil {
		m.log.Warn("monitor: failure not counted", "err", err)
		return
	}
	m.blockIfOver(ctx, ip, n)
}

// blockIfOver blocks ip once its failure count n reaches the threshold.
// BlockIP is idempotent, so concurrent failures past the threshold make
// one block, one alert and one audit entry.
func (m *Monitor) blockIfOver(ctx context.Context, ip string, n int64) {
	if n < int64(m.limits.FailedAuth) {
		return
	}
	reason := fmt.Sprintf("%d failed authentications within %s", n, m.limits.FailedAuthWindow)
	if err := m.BlockIP(ctx, "system", ip, reason); err != nil {
		m.log.Error("monitor: block failed", "err", err)
	}
}

// LoginAttempt is a login admitted by AdmitLogin; the caller says how it
// ended with exactly one of Succeeded or Failed.
type LoginAttempt struct {
	m  *Monitor
	ip string
}

// admitScript counts a login attempt before it is processed, and refuses
// it (taking the count back) when the IP has no tries left in its window.
var admitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return -1 end
return n
`)

// releaseScript takes back an attempt that did not fail.
var releaseScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
return 0
`)

// AdmitLogin counts a login attempt from ip before it reaches Vault. An IP
// whose failed and in-flight attempts already fill its window's allowance
// is refused (Blocked) without trying: concurrent guesses from one IP get
// exactly FailedAuth tries, not however many arrive before the block.
func (m *Monitor) AdmitLogin(ctx context.Context, ip string) (*LoginAttempt, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	n, err := admitScript.Run(ctx, m.rdb, []string{failPrefix + ip}, m.limits.FailedAuth,
		m.limits.FailedAuthWindow.Milliseconds()).Int64()
	if err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n < 0 {
		return nil, apperr.New(apperr.Blocked, "too many failed logins from this address; try again later")
	}
	return &LoginAttempt{m: m, ip: ip}, nil
}

// Succeeded takes the attempt back: it was not a failure.
func (a *LoginAttempt) Succeeded(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.m.timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, a.m.rdb, []string{failPrefix + a.ip}).Err(); err != nil {
		a.m.log.Warn("monitor: login attempt not released", "err", err)
	}
}

// Failed keeps the attempt as a failure, blocks the IP when it was the
// last try of its window, and records one audit entry per IP and window
// (the block's entry carries the count), so a flood of wrong logins does
// not become a flood of sealed entries.
func (a *LoginAttempt) Failed(ctx context.Context, username string) {
	m := a.m
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	first, err := m.rdb.SetNX(ctx, loginAuditKey+a.ip, 1, m.limits.FailedAuthWindow).Result()
	if err != nil {
		m.log.Warn("monitor: failed login not counted", "err", err)
	}
	if first {
		if err := m.audit.Record(ctx, audit.Entry{Actor: username, Action: audit.ActionLoginFailed, IP: a.ip,
			Detail: map[string]string{"aggregated": "first failed login from this address in " + m.limits.FailedAuthWindow.String()}}); err != nil {
			m.log.Warn("monitor: failed login not audited", "err", err)
		}
	}
	n, err := m.rdb.Get(ctx, failPrefix+a.ip).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		m.log.Warn("monitor: failed login not counted", "err", err)
		return
	}
	m.blockIfOver(ctx, a.ip, n)
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

// RevealedIn counts a reveal by a staff member toward the hourly
// threshold, queued on p so that it shares a round trip with the reveal's
// other writes; done, called after p ran, suspends the account if the
// count crossed the threshold.
func (m *Monitor) RevealedIn(ctx context.Context, p redis.Pipeliner, username, ip string) (done func()) {
	// A script, not MULTI: it rides in a pipeline with other slots' keys.
	cmd := p.Eval(ctx, countScript, []string{"piivault:{mon}:reveal:" + username}, time.Hour.Milliseconds())
	return func() {
		n, err := cmd.Int64()
		if err != nil {
			m.log.Warn("monitor: reveal not counted", "err", err)
			return
		}
		if n <= int64(m.limits.RevealsPerHour) {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
		defer cancel()
		if err := m.staff.Suspend(ctx, username); err != nil {
			m.log.Error("monitor: suspend failed", "err", err)
			return
		}
		staffSuspended.Inc()
		reason := fmt.Sprintf("more than %d reveals within an hour", m.limits.RevealsPerHour)
		_ = m.audit.Record(ctx, audit.Entry{Actor: "system", Action: audit.ActionStaffSuspend, IP: ip,
			Detail: map[string]string{"staff": username, "reason": reason}})
		m.log.Warn("staff account suspended", "staff", username, "reason", reason)
		m.alerts.Notify("staff_suspended", fmt.Sprintf("piivault: staff account %s suspended pending review: %s", username, reason))
	}
}

// countScript is count's INCR and EXPIRE NX as one command (ARGV[1]: the
// window in ms), for pipelines that cannot hold a MULTI.
const countScript = `
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return n
`

// blockScript blocks an IP unless a block is already in force: the first
// caller gets 1 and records, alerts and logs it; everyone else gets 0.
// Expired blocks are dropped on the way.
var blockScript = redis.NewScript(`
local now = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, ip in ipairs(expired) do redis.call('HDEL', KEYS[1], ip) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1
`)

// reserveScript takes n reveals from a member's hourly allowance, or none
// when they would not fit.
var reserveScript = redis.NewScript(`
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if n > tonumber(ARGV[2]) then redis.call('DECRBY', KEYS[1], ARGV[1]) return 0 end
return 1
`)

// ReserveReveals takes n reveals from username's hourly allowance before a
// pick-list is decrypted: the whole list is refused (RateLimited) when it
// would cross the limit. Release gives back what was not revealed.
func (m *Monitor) ReserveReveals(ctx context.Context, username string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	ok, err := reserveScript.Run(ctx, m.rdb, []string{"piivault:{mon}:reveal:" + username}, n,
		m.limits.RevealsPerHour, time.Hour.Milliseconds()).Int()
	if err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if ok == 0 {
		return apperr.New(apperr.RateLimited, "this pick-list would take you past %d reveals in an hour; send fewer orders",
			m.limits.RevealsPerHour)
	}
	return nil
}

// ReleaseReveals gives back n reserved reveals that did not happen.
func (m *Monitor) ReleaseReveals(ctx context.Context, username string, n int) {
	if n <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
	defer cancel()
	if err := m.rdb.DecrBy(ctx, "piivault:{mon}:reveal:"+username, int64(n)).Err(); err != nil {
		m.log.Warn("monitor: reveals not released", "err", err)
	}
}

// BlockIP blocks ip on every instance for BlockFor, records it and alerts,
// unless it is blocked already (then it does nothing).
func (m *Monitor) BlockIP(ctx context.Context, actor, ip, reason string) error {
	if net.ParseIP(ip) == nil {
		return apperr.New(apperr.Validation, "not an IP address")
	}
	now := m.now().UTC()
	b := Block{IP: ip, Reason: reason, At: now, Expires: now.Add(m.limits.BlockFor)}
	body, _ := json.Marshal(b)
	n, err := blockScript.Run(ctx, m.rdb, []string{blocksKey, blocksUntil}, ip, now.UnixMilli(),
		b.Expires.UnixMilli(), body).Int()
	if err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if n == 0 {
		return nil
	}
	m.refreshGauge(ctx)
	if err := m.audit.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionBlock, IP: ip,
		Detail: map[string]string{"reason": reason, "expires_at": b.Expires.Format(time.RFC3339)}}); err != nil {
		m.log.Error("monitor: block not audited", "err", err)
	}
	m.log.Warn("ip blocked", "ip", ip, "reason", reason, "expires_at", b.Expires)
	m.alerts.Notify("ip_blocked", fmt.Sprintf("piivault: blocked %s until %s: %s", ip, b.Expires.Format(time.RFC3339), reason))
	return nil
}

// Unblock lifts a block and clears the IP's failure count.
func (m *Monitor) Unblock(ctx context.Context, actor, ip, fromIP string) error {
	pipe := m.rdb.TxPipeline()
	del := pipe.HDel(ctx, blocksKey, ip)
	until := pipe.ZRem(ctx, blocksUntil, ip)
	pipe.Del(ctx, failPrefix+ip, loginAuditKey+ip)
	if _, err := pipe.Exec(ctx); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if del.Val() == 0 && until.Val() == 0 {
		return apperr.New(apperr.NotFound, "that IP is not blocked")
	}
	m.refreshGauge(ctx)
	return m.audit.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionUnblock, IP: fromIP,
		Detail: map[string]string{"ip": ip}})
}

// BlockedIn queues the read of whether ip is blocked now (one sorted-set
// score, checked on every request) on p, so that it shares a round trip
// with the request's other reads; the returned function, called after p
// ran, answers.
func (m *Monitor) BlockedIn(ctx context.Context, p redis.Pipeliner, ip string) func() (bool, error) {
	cmd := p.ZScore(ctx, blocksUntil, ip)
	return func() (bool, error) { return m.blocked(cmd) }
}

// ErrBlocked is the answer to a request from a blocked IP.
var ErrBlocked = apperr.New(apperr.Blocked, "requests from this address are blocked; contact the operator")

// NotBlockedIn is BlockedIn for a caller that only refuses: the returned
// function answers ErrBlocked for a blocked ip, nil for any other.
func (m *Monitor) NotBlockedIn(ctx context.Context, p redis.Pipeliner, ip string) func() error {
	blocked := m.BlockedIn(ctx, p, ip)
	return func() error {
		b, err := blocked()
		if err == nil && b {
			err = ErrBlocked
		}
		return err
	}
}

func (m *Monitor) blocked(cmd *redis.FloatCmd) (bool, error) {
	until, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return int64(until) > m.now().UnixMilli(), nil
}

// Blocks lists the blocks in force.
func (m *Monitor) Blocks(ctx context.Context) ([]Block, error) {
	all, err := m.rdb.HGetAll(ctx, blocksKey).Result()
	if err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	now := m.now()
	out := make([]Block, 0, len(all))
	for _, v := range all {
		var b Block
		if json.Unmarshal([]byte(v), &b) == nil && b.Expires.After(now) {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out, nil
}

func (m *Monitor) refreshGauge(ctx context.Context) {
	if n, err := m.rdb.ZCount(ctx, blocksUntil, strconv.FormatInt(m.now().UnixMilli(), 10), "+inf").Result(); err == nil {
		blocksActive.Set(float64(n))
	}
}
