package orders

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
)

// Revealer reveals held orders to staff: the one place where shipping PII
// is decrypted for a person, whatever asks (the API, the console, an
// access report's copy, a label purchase). Every reveal gives a reason,
// is refused in a lockdown, decrypts with the member's own Vault token
// (the masked copy for every role but fulfillment), counts toward the
// member's hourly limit and is audited before anything is returned.
type Revealer struct {
	store    *Store
	trail    Trail
	watch    RevealWatcher
	lockdown Lockdown
	blocks   Blocks
	log      *slog.Logger
}

// NewRevealer builds a Revealer; its reveals are recorded in the store's trail.
func NewRevealer(store *Store, watch RevealWatcher, lockdown Lockdown, blocks Blocks, log *slog.Logger) *Revealer {
	return &Revealer{store: store, trail: store.trail, watch: watch, lockdown: lockdown, blocks: blocks, log: log}
}

// Blocks refuses blocked IPs (the intrusion monitor). A reveal reads its
// caller's IP block with its order, in one round trip: the API's reveal
// route leaves the check to it when the caller's token needs no look-up.
type Blocks interface {
	NotBlockedIn(ctx context.Context, p redis.Pipeliner, ip string) func() error
}

// RevealWatcher is told about every reveal (the intrusion monitor); a
// pick-list reserves its reveals first and gives back what it did not use.
type RevealWatcher interface {
	RevealedIn(ctx context.Context, p redis.Pipeliner, username, ip string) (done func())
	ReserveReveals(ctx context.Context, username string, n int) error
	ReleaseReveals(ctx context.Context, username string, n int)
}

// Lockdown says whether reveals are refused for an incident. CheckIn
// queues the same check on a pipeline, so that a reveal reads the
// lockdown with its order, in one round trip.
type Lockdown interface {
	Check(ctx context.Context) error
	CheckIn(ctx context.Context, p redis.Pipeliner) func() error
}

// RevealReasons are the purposes a reveal may give (SPEC.md). Codes only:
// free text would invite PII into the audit trail.
var RevealReasons = []string{"label", "delivery_issue", "customer_contact", "address_check", "fraud_review"}

// ValidReason reports whether r is one of RevealReasons.
func ValidReason(r string) bool { return slices.Contains(RevealReasons, r) }

// Reveal is one reveal, for the API and the console alike: a reason code is
// required, a lockdown refuses it, the caller's own token decrypts (the
// masked copy for every role but fulfillment), and the reveal is audited
// before anything is returned. view is "full" or "masked".
func (r *Revealer) Reveal(ctx context.Context, p web.Principal, ip, id, reason string) (Shipping, string, error) {
	// The caller's IP block and the lockdown are read with the order, in
	// one round trip; both must pass before the ciphertext goes to Vault,
	// and before any other answer: a blocked address hears that first.
	g := func(pipe redis.Pipeliner) func() error {
		blocked := r.blocks.NotBlockedIn(ctx, pipe, ip)
		locked := r.lockdown.CheckIn(ctx, pipe)
		return func() error {
			if err := blocked(); err != nil {
				return err
			}
			return locked()
		}
	}
	if !ValidReason(reason) {
		if err := r.store.check(ctx, g); err != nil {
			return Shipping{}, "", err
		}
		return Shipping{}, "", &apperr.Error{Code: apperr.Validation, Fields: []string{"reason"},
			Message: "reason is required: one of " + strings.Join(RevealReasons, ", ")}
	}
	masked := p.Role != web.RoleFulfillment
	view := "full"
	if masked {
		view = "masked"
	}
	o, err := r.store.readSealed(ctx, id, masked, g)
	if err != nil {
		return Shipping{}, "", err
	}
	// The gate passed (a blocked IP or a lockdown never reaches Vault):
	// the entry's seal starts now, beside the decrypt. It is appended only
	// once the decrypt succeeded, and before the answer.
	entry := r.store.begin(audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: id,
		IP: ip, Detail: map[string]string{"role": p.Role, "view": view, "reason": reason}})
	defer entry.Cancel()
	ship, err := r.store.open(ctx, o, p.Token.Reveal())
	if err != nil {
		return Shipping{}, "", unverifiedRefusal(p, err)
	}
	// The reveal is kept for the access report and counted toward the
	// hourly limit in the round trip of its entry's append, sent only once
	// the entry is sealed. If the append itself then fails (503), the
	// reveal stays noted and counted: both may say more than the member
	// saw, never less.
	var noted func() error
	var counted func()
	sent, err := entry.CommitWith(ctx, func(pipe redis.Pipeliner) {
		noted = r.store.noteRevealsIn(ctx, pipe, []string{id}, time.Now(), p.Role, reason, "")
		counted = r.watch.RevealedIn(ctx, pipe, p.Name, ip)
	})
	if sent {
		if err := noted(); err != nil {
			r.log.Warn("reveal not kept for the access report", "order_id", id, "err", err)
		}
		counted()
	}
	if err != nil {
		return Shipping{}, "", err
	}
	reveals.WithLabelValues(p.Role, reason).Inc()
	return ship, view, nil
}

// unverifiedRefusal turns Vault's refusal of a decrypt into 401 when the
// token was not looked up on this request: the role's policy decrypts, so
// a refusal means the token was revoked or its member disabled or removed.
func unverifiedRefusal(p web.Principal, err error) error {
	if p.Unverified && apperr.Is(err, apperr.Forbidden) {
		return apperr.Wrap(apperr.Unauthorized, err, "invalid or expired token")
	}
	return err
}

// MaxLabels is the most orders one pick-list may reveal.
const MaxLabels = 100

// LabelResult is one order of a pick-list answer.
type LabelResult struct {
	OrderID  string           `json:"order_id"`
	Shipping *Shipping        `json:"shipping,omitempty"`
	Error    *web.ErrorDetail `json:"error,omitempty"`
}

// PickList reveals each order's full shipping block, decrypted in one
// batched Vault call with the caller's own token, or a per-order error
// (unknown, purged). Every revealed order is one audit entry, written
// before the answer, and counts against the caller's hourly reveal limit;
// a list that would cross it is refused whole.
func (r *Revealer) PickList(ctx context.Context, p web.Principal, ip string, ids []string, reason string) ([]LabelResult, error) {
	var bad []string
	if n := len(ids); n == 0 || n > MaxLabels {
		bad = append(bad, "order_ids")
	}
	if !ValidReason(reason) {
		bad = append(bad, "reason")
	}
	if len(bad) > 0 {
		return nil, &apperr.Error{Code: apperr.Validation, Fields: bad, Message: fmt.Sprintf(
			"order_ids: 1 to %d ids; reason: one of %s", MaxLabels, strings.Join(RevealReasons, ", "))}
	}
	return r.decryptFull(ctx, p, ip, slices.Compact(slices.Sorted(slices.Values(ids))), reason,
		map[string]string{"via": "labels"})
}

// DisclosedToEasyPost marks a reveal whose plaintext went to EasyPost to buy
// a label, not to the person: the access report says so.
const DisclosedToEasyPost = "easypost"

// ForCarrier decrypts held orders' full shipping blocks to hand them to
// EasyPost for a label, exactly as a pick-list reveals them: one batched
// decrypt with the caller's own token (Vault refuses every role but
// fulfillment), refused in a lockdown, counted toward the hourly limit,
// and each decrypted order audited, with disclosed_to easypost, before the
// caller can send anything. via names the route ("shipments", "rates").
// ids must be validated by the caller; per-order errors as for PickList.
func (r *Revealer) ForCarrier(ctx context.Context, p web.Principal, ip string, ids []string, via string) ([]LabelResult, error) {
	return r.decryptFull(ctx, p, ip, ids, "label", map[string]string{"via": via, "disclosed_to": DisclosedToEasyPost})
}

// LabelShown records that a bought label's image (which shows the
// address) is shown to p: a reveal like any other, refused in a lockdown,
// counted and audited before the image is fetched.
func (r *Revealer) LabelShown(ctx context.Context, p web.Principal, ip, id string) error {
	if err := r.lockdown.Check(ctx); err != nil {
		return err
	}
	if err := r.watch.ReserveReveals(ctx, p.Name, 1); err != nil {
		return err
	}
	if err := r.trail.Record(ctx, audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: id, IP: ip,
		Detail: map[string]string{"role": p.Role, "view": "full", "reason": "label", "via": "label_image"}}); err != nil {
		r.watch.ReleaseReveals(ctx, p.Name, 1)
		return err
	}
	if err := r.store.NoteReveals(ctx, []string{id}, time.Now(), p.Role, "label", ""); err != nil {
		r.log.Warn("label image reveal not kept for the access report", "order_id", id, "err", err)
	}
	reveals.WithLabelValues(p.Role, "label").Inc()
	return nil
}

// decryptFull is a pick-list's reveal of ids for reason, each audit entry
// carrying extra in its detail.
func (r *Revealer) decryptFull(ctx context.Context, p web.Principal, ip string, ids []string, reason string, extra map[string]string) ([]LabelResult, error) {
	if err := r.lockdown.Check(ctx); err != nil {
		return nil, err
	}
	if err := r.watch.ReserveReveals(ctx, p.Name, len(ids)); err != nil {
		return nil, err
	}
	labels, err := r.store.RevealMany(ctx, ids, p.Token.Reveal())
	if err != nil {
		r.watch.ReleaseReveals(ctx, p.Name, len(ids))
		return nil, unverifiedRefusal(p, err)
	}
	labelBatches.Inc()
	var revealed []string
	var entries []audit.Entry
	out := make([]LabelResult, len(labels))
	for i, l := range labels {
		out[i].OrderID = l.OrderID
		if l.Err != nil {
			d := web.DetailOf(l.Err)
			out[i].Error = &d
			continue
		}
		out[i].Shipping = &labels[i].Shipping
		revealed = append(revealed, l.OrderID)
		detail := map[string]string{"role": p.Role, "view": "full", "reason": reason}
		maps.Copy(detail, extra)
		entries = append(entries, audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: l.OrderID, IP: ip, Detail: detail})
	}
	r.watch.ReleaseReveals(ctx, p.Name, len(ids)-len(revealed))
	labelItems.Observe(float64(len(revealed)))
	if err := r.trail.RecordAll(ctx, entries); err != nil {
		return nil, err
	}
	if err := r.store.NoteReveals(ctx, revealed, time.Now(), p.Role, reason, extra["disclosed_to"]); err != nil {
		r.log.Warn("label reveals not kept for the access report", "orders", len(revealed), "err", err)
	}
	reveals.WithLabelValues(p.Role, reason).Add(float64(len(revealed)))
	return out, nil
}

// ReasonAccessRequest is the reveal reason of an access report's copy: a
// purpose piivault itself names, never one a caller may give.
const ReasonAccessRequest = "access_request"

// RevealCopies reveals held orders for a customer's access report (the
// copy of the data, Art. 15): a reveal in every respect, like a pick-list.
// A lockdown refuses it; each order counts against the caller's hourly
// reveal limit (a report that would cross it is refused whole); the
// caller's own token decrypts (the masked copy for every role but
// fulfillment); every decrypted order is one audit entry with reason
// access_request, written before anything is returned, and is kept in the
// order's reveal list. Orders that are gone or unknown are left out; when
// Vault refuses the caller's token an order (a role without decrypt),
// denied is true and that order has no copy.
func (r *Revealer) RevealCopies(ctx context.Context, p web.Principal, ip string, ids []string) (copies map[string]Shipping, denied bool, err error) {
	if len(ids) == 0 {
		return nil, false, nil
	}
	if err := r.lockdown.Check(ctx); err != nil {
		return nil, false, err
	}
	if err := r.watch.ReserveReveals(ctx, p.Name, len(ids)); err != nil {
		return nil, false, err
	}
	masked := p.Role != web.RoleFulfillment
	view := "full"
	if masked {
		view = "masked"
	}
	copies = map[string]Shipping{}
	var entries []audit.Entry
	var revealed []string
	for _, id := range ids {
		ship, err := r.store.Reveal(ctx, id, p.Token.Reveal(), masked)
		switch {
		case err == nil:
			copies[id] = ship
			revealed = append(revealed, id)
			entries = append(entries, audit.Entry{Actor: p.Actor(), Action: audit.ActionReveal, OrderID: id, IP: ip,
				Detail: map[string]string{"role": p.Role, "view": view, "reason": ReasonAccessRequest, "via": "access_report"}})
		case apperr.Is(err, apperr.Gone), apperr.Is(err, apperr.NotFound):
		case apperr.Is(err, apperr.Forbidden) && !p.Unverified:
			denied = true
		default:
			r.watch.ReleaseReveals(ctx, p.Name, len(ids))
			return nil, false, unverifiedRefusal(p, err)
		}
	}
	r.watch.ReleaseReveals(ctx, p.Name, len(ids)-len(revealed))
	if err := r.trail.RecordAll(ctx, entries); err != nil {
		return nil, false, err
	}
	if err := r.store.NoteReveals(ctx, revealed, time.Now(), p.Role, ReasonAccessRequest, ""); err != nil {
		r.log.Warn("access report reveals not kept for the access report", "orders", len(revealed), "err", err)
	}
	reveals.WithLabelValues(p.Role, ReasonAccessRequest).Add(float64(len(revealed)))
	return copies, denied, nil
}
