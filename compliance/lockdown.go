// Package compliance answers the questions a regulator, an auditor or a
// customer asks, from piivault's own records: the customer's access report
// (GDPR Art. 15), the scope of a breach (Art. 33), the proof that nothing
// outlived its retention (Art. 30), a PII-free export for backups, and the
// lockdown an incident calls for.
//
//	piivault:{lockdown}                 string  JSON {on, by, changed_at}: reveals and logins refused while on
//	piivault:{reports}:access:<id>      string  a stored access report: order ids, times, reveal roles and
//	                                            reasons; never the email, never shipping data (HistoryFor)
package compliance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
)

const lockdownKey = "piivault:{lockdown}"

// Recorder appends to the audit trail.
type Recorder interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Notifier sends an operator alert without blocking.
type Notifier interface {
	Notify(kind, text string)
}

// Outbox keeps an audit entry the trail could not take, for the retention
// sweep to record (orders.Store.DeferAudit).
type Outbox interface {
	DeferAudit(ctx context.Context, e audit.Entry) error
}

// TokenRevoker ends every staff session in Vault at once (vault.Client).
type TokenRevoker interface {
	RevokeStaffTokens(ctx context.Context) error
}

// LockdownState is whether piivault is locked down, since when and by whom.
type LockdownState struct {
	On        bool      `json:"on"`
	By        string    `json:"changed_by,omitempty"`
	ChangedAt time.Time `json:"changed_at,omitempty"`
	// AuditPending says the change's audit entry waits in the outbox (the
	// trail did not take it): the next sweep records it.
	AuditPending bool `json:"audit_pending,omitempty"`
}

// Lockdown is the incident switch: while on, every reveal and every staff
// login answers 423 locked_down, and turning it on revokes every live staff
// token in Vault. Ingest, purges and the retention sweep go on: PII keeps
// being destroyed on time while no one can read it.
type Lockdown struct {
	rdb     redis.UniversalClient
	revoker TokenRevoker
	audit   Recorder
	outbox  Outbox
	alerts  Notifier
	log     *slog.Logger
}

// NewLockdown builds a Lockdown.
func NewLockdown(rdb redis.UniversalClient, revoker TokenRevoker, rec Recorder, outbox Outbox, alerts Notifier, log *slog.Logger) *Lockdown {
	return &Lockdown{rdb: rdb, revoker: revoker, audit: rec, outbox: outbox, alerts: alerts, log: log}
}

// ErrLockedDown is the answer to a reveal or login during a lockdown.
var ErrLockedDown = apperr.New(apperr.LockedDown, "piivault is locked down for an incident: reveals and logins are refused until an operator lifts it")

// Status reads the lockdown state; it is read on every reveal and login, so
// a change holds on every instance at once. Each read sets the
// piivault_lockdown gauge (serve also reads it every minute).
func (l *Lockdown) Status(ctx context.Context) (LockdownState, error) {
	s, err := l.status(ctx)
	if err == nil {
		observeLockdown(s)
	}
	return s, err
}

func (l *Lockdown) status(ctx context.Context) (LockdownState, error) {
	return stateOf(l.rdb.Get(ctx, lockdownKey))
}

// CheckIn queues Check's read on p, so that it shares a round trip with
// the request's own reads (a reveal's order); the returned function,
// called after p ran, answers as Check does.
func (l *Lockdown) CheckIn(ctx context.Context, p redis.Pipeliner) func() error {
	cmd := p.Get(ctx, lockdownKey)
	return func() error {
		s, err := stateOf(cmd)
		if err != nil {
			return err
		}
		observeLockdown(s)
		if s.On {
			return ErrLockedDown
		}
		return nil
	}
}

func stateOf(cmd *redis.StringCmd) (LockdownState, error) {
	var s LockdownState
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return s, nil
	}
	if err != nil {
		return s, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if err := json.Unmarshal(b, &s); err != nil {
		// An unreadable state is treated as on: failing closed.
		return LockdownState{On: true}, nil
	}
	return s, nil
}

// Check is ErrLockedDown while a lockdown is on.
func (l *Lockdown) Check(ctx context.Context) error {
	s, err := l.Status(ctx)
	if err != nil {
		return err
	}
	if s.On {
		return ErrLockedDown
	}
	return nil
}

// Set turns the lockdown on or off on behalf of actor and records it.
// Turning it on revokes every staff token in Vault after the switch is
// set, so no new session can start in between. The operators are alerted
// next, whatever becomes of the audit entry: an incident switch must not
// go unnoticed because the trail is down. The entry is then appended, or,
// if the trail does not take it, left in the outbox for the sweep
// (AuditPending in the answer): the admin who turned it on has just lost
// their own session and could not retry.
func (l *Lockdown) Set(ctx context.Context, on bool, actor, ip string) (LockdownState, error) {
	s := LockdownState{On: on, By: actor, ChangedAt: time.Now().UTC()}
	b, _ := json.Marshal(s)
	if err := l.rdb.Set(ctx, lockdownKey, b, 0).Err(); err != nil {
		return LockdownState{}, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	observeLockdown(s)
	detail := map[string]string{"on": fmt.Sprint(on)}
	var revokeErr error
	if on {
		if revokeErr = l.revoker.RevokeStaffTokens(ctx); revokeErr != nil {
			detail["revoke"] = "failed: run it again"
			l.log.Error("lockdown: staff tokens not revoked", "err", revokeErr)
		}
	}
	state := "lifted"
	if on {
		state = "ON: reveals and logins are refused, every staff token is revoked"
		if revokeErr != nil {
			state = "ON: reveals and logins are refused, but staff tokens were NOT revoked: run it again"
		}
	}
	l.log.Warn("lockdown changed", "on", on, "by", actor)
	l.alerts.Notify("lockdown", fmt.Sprintf("piivault: lockdown %s (by %s)", state, actor))
	e := audit.Entry{Time: s.ChangedAt, Actor: actor, Action: audit.ActionLockdown, IP: ip, Detail: detail,
		Event: audit.NewEventID()}
	if err := l.audit.Record(ctx, e); err != nil {
		if oerr := l.outbox.DeferAudit(context.WithoutCancel(ctx), e); oerr != nil {
			return s, fmt.Errorf("lockdown is %s, but its audit entry was neither recorded (%w) nor kept for later: %w",
				map[bool]string{true: "on", false: "off"}[on], err, oerr)
		}
		l.log.Error("lockdown audit deferred to the outbox", "err", err)
		s.AuditPending = true
	}
	if revokeErr != nil {
		return s, fmt.Errorf("lockdown is on, but staff tokens were not revoked: %w", revokeErr)
	}
	return s, nil
}
