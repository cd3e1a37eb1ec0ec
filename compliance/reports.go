package compliance

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/internal/web"
	"piivault/orders"
	"piivault/vault"
)

// Store is what the reports read from the order store.
type Store interface {
	History(ctx context.Context, email string) ([]string, error)
	Get(ctx context.Context, orderID string) (orders.Reference, error)
	Reveals(ctx context.Context, ids []string) (map[string][]orders.Revealed, error)
	Reveal(ctx context.Context, orderID, token string, masked bool) (orders.Shipping, error)
	BlindIndexes(ctx context.Context, ids []string) (map[string]string, error)
	HeldCount(ctx context.Context) (int64, error)
	Overdue(ctx context.Context, t time.Time) (int64, error)
	ExpiringBetween(ctx context.Context, edges []time.Time) ([]int64, error)
	Oldest(ctx context.Context, afterMS int64, afterID string, limit int) ([]orders.Held, error)
	OldestKeyVersion(ctx context.Context) (int, error)
	OldestMaskedKeyVersion(ctx context.Context) (int, error)
	EachReference(ctx context.Context, fn func(orders.Reference) error) error
	Retention() time.Duration
}

// Trail is what the reports read from, and write to, the audit trail.
type Trail interface {
	Recorder
	Each(ctx context.Context, since, until time.Time, fn func(audit.Entry) error) error
	Verify(ctx context.Context) (audit.Verification, error)
}

// KeyReader reads a transit key's versions (vault.TransitKey).
type KeyReader interface {
	Name() string
	ReadKey(ctx context.Context) (vault.KeyInfo, error)
}

// Reports builds the compliance reports.
type Reports struct {
	store Store
	trail Trail
	rdb   redis.UniversalClient
	keys  []KeyReader
	sweep time.Duration
	now   func() time.Time
}

// NewReports builds Reports. keys are the full blocks' and the masked
// copies' transit keys; sweep is the retention sweep's period (an order is
// "outlived" once it is past its deadline by more than two of them).
func NewReports(store Store, trail Trail, rdb redis.UniversalClient, keys []KeyReader, sweep time.Duration) *Reports {
	return &Reports{store: store, trail: trail, rdb: rdb, keys: keys, sweep: sweep, now: time.Now}
}

// Recipients and the retention rule, in the words an access report gives.
var (
	Recipients = []string{
		"the merchant's fulfillment staff, to print the shipping label (each look-up recorded with its reason)",
		"the carrier that delivers the parcel (on the label), and EasyPost, the postage service that buys the label, when the merchant buys it through piivault: your address goes from the vault to EasyPost without anyone reading it",
		"the merchant's support staff, a masked view only (initials, email domain, city and country)",
	}
	RetentionRule = "Your name, address, email and phone are kept, encrypted, only until your parcel ships, " +
		"you cancel, or you ask for deletion, and never longer than 30 days. Then they are destroyed for good; " +
		"only a purchase reference without personal data remains."
)

// AccessOrder is one order in an access report.
type AccessOrder struct {
	OrderID     string            `json:"order_id"`
	Status      orders.Status     `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	PurgedAt    *time.Time        `json:"purged_at"`
	PurgeReason *string           `json:"purge_reason"`
	Reveals     []orders.Revealed `json:"reveals"`
	// Copy is the held data itself, decrypted with the requesting staff
	// member's own token for that answer only; never stored.
	Copy *orders.Shipping `json:"copy,omitempty"`
}

// AccessReport is the customer's access report (Art. 15). The stored one
// holds no email and no copy of the shipping data.
type AccessReport struct {
	ReportID   string        `json:"report_id"`
	CreatedAt  time.Time     `json:"created_at"`
	Orders     []AccessOrder `json:"orders"`
	Recipients []string      `json:"recipients"`
	Retention  string        `json:"retention"`
	Note       string        `json:"note,omitempty"`
}

func reportKey(id string) string { return "piivault:{reports}:access:" + id }

// MaxAccessOrders bounds the order ids one access request may name.
const MaxAccessOrders = 100

// AccessQuery is what an access report is asked for: the customer's email
// (their orders whose retention is not over: nothing derived from an email
// outlives it) or the order ids the storefront knows (any order, held or
// purged, from its purchase reference and reveal list). Exactly one.
type AccessQuery struct {
	Email    string   `json:"email"`
	OrderIDs []string `json:"order_ids"`
}

func (q AccessQuery) validate() error {
	switch {
	case q.Email != "" && q.OrderIDs != nil:
		return &apperr.Error{Code: apperr.Validation, Message: "give email or order_ids, not both", Fields: []string{"email", "order_ids"}}
	case q.OrderIDs != nil:
		var bad bool
		for _, id := range q.OrderIDs {
			bad = bad || !orders.ValidOrderID(id)
		}
		if n := len(q.OrderIDs); n == 0 || n > MaxAccessOrders || bad {
			return &apperr.Error{Code: apperr.Validation, Fields: []string{"order_ids"},
				Message: fmt.Sprintf("order_ids: 1 to %d valid order ids", MaxAccessOrders)}
		}
	case !orders.ValidEmail(orders.NormalizeEmail(q.Email)):
		return &apperr.Error{Code: apperr.Validation, Message: "invalid fields: email (or give order_ids)", Fields: []string{"email"}}
	}
	return nil
}

// Copier reveals held orders for an access report's copy of the data: a
// reveal in every respect (orders.Handler.RevealCopies).
type Copier interface {
	RevealCopies(ctx context.Context, p web.Principal, ip string, ids []string) (map[string]orders.Shipping, bool, error)
}

// AccessReport makes and stores an access report for email (Shopify's
// customers/data_request, which has no staff token: no copy) and returns
// its id.
func (r *Reports) AccessReport(ctx context.Context, actor, ip, email string) (string, error) {
	rep, err := r.Access(ctx, actor, ip, AccessQuery{Email: email}, nil, nil)
	return rep.ReportID, err
}

// Access makes the access report for q: every order found, held or
// purged, with its times, purge reason and each reveal's time, role and
// reason (not who). With a copier and a staff member, each held order's
// data is revealed to that member for this answer only (see Copier): the
// copies are revealed, audited and counted first, so a lockdown or a
// reveal limit refuses the whole request. What is stored and audited as
// the report holds neither the email nor the copy.
func (r *Reports) Access(ctx context.Context, actor, ip string, q AccessQuery, copier Copier, p *web.Principal) (AccessReport, error) {
	if err := q.validate(); err != nil {
		return AccessReport{}, err
	}
	ids := slices.Compact(slices.Sorted(slices.Values(q.OrderIDs)))
	if q.OrderIDs == nil {
		var err error
		if ids, err = r.store.History(ctx, q.Email); err != nil {
			return AccessReport{}, err
		}
	}
	reveals, err := r.store.Reveals(ctx, ids)
	if err != nil {
		return AccessReport{}, err
	}
	rep := AccessReport{ReportID: "ar_" + randomHex(12), CreatedAt: r.now().UTC(), Orders: []AccessOrder{},
		Recipients: Recipients, Retention: RetentionRule}
	var held []string
	for _, id := range ids {
		ref, err := r.store.Get(ctx, id)
		if apperr.Is(err, apperr.NotFound) {
			continue
		}
		if err != nil {
			return AccessReport{}, err
		}
		o := AccessOrder{OrderID: id, Status: ref.Status, CreatedAt: ref.CreatedAt, ExpiresAt: ref.ExpiresAt,
			PurgedAt: ref.PurgedAt, PurgeReason: ref.PurgeReason, Reveals: reveals[id]}
		if o.Reveals == nil {
			o.Reveals = []orders.Revealed{}
		}
		if o.Status == orders.StatusHeld {
			held = append(held, id)
		}
		rep.Orders = append(rep.Orders, o)
	}
	var copies map[string]orders.Shipping
	if copier != nil && p != nil {
		var denied bool
		if copies, denied, err = copier.RevealCopies(ctx, *p, ip, held); err != nil {
			return AccessReport{}, err
		}
		if denied {
			rep.Note = "Your role cannot open the held data: the report lists what is held, without a copy."
		}
	}
	stored, _ := json.Marshal(rep)
	if err := r.rdb.Set(ctx, reportKey(rep.ReportID), stored, orders.HistoryFor).Err(); err != nil {
		return AccessReport{}, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	by := "email"
	if q.OrderIDs != nil {
		by = "order_ids"
	}
	if err := r.trail.Record(ctx, audit.Entry{Actor: actor, Action: audit.ActionAccessRequest, IP: ip,
		Detail: map[string]string{"report_id": rep.ReportID, "orders": strconv.Itoa(len(rep.Orders)), "by": by}}); err != nil {
		return AccessReport{}, err
	}
	for i, o := range rep.Orders {
		if ship, ok := copies[o.OrderID]; ok {
			rep.Orders[i].Copy = &ship
		}
	}
	return rep, nil
}

// StoredAccessReport returns a stored report (no email, no copy).
func (r *Reports) StoredAccessReport(ctx context.Context, id string) (AccessReport, error) {
	var rep AccessReport
	b, err := r.rdb.Get(ctx, reportKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return rep, apperr.New(apperr.NotFound, "no such access report")
	}
	if err != nil {
		return rep, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("access report %s: %w", id, err)
	}
	return rep, nil
}

// Scope is a breach's scope (Art. 33): how many orders were held at any
// moment of the window, how many of them were revealed and by which roles,
// how many distinct customers (emails, counted by blind index) and how many
// orders were purged in the window. Computed from the audit trail and the
// references alone, so it works for windows whose orders are long gone.
type Scope struct {
	From           time.Time      `json:"from"`
	To             time.Time      `json:"to"`
	OrdersHeld     int            `json:"orders_held"`
	OrdersRevealed int            `json:"orders_revealed"`
	Reveals        int            `json:"reveals"`
	RevealsByRole  map[string]int `json:"reveals_by_role"`
	DistinctEmails int            `json:"distinct_emails"`
	// NoEmailLink counts orders held in the window whose email can no
	// longer be told: purged ones, since nothing derived from an email
	// outlives the PII. distinct_emails counts the others.
	NoEmailLink     int            `json:"orders_without_email_link"`
	OrdersPurged    int            `json:"orders_purged"`
	PurgedByReason  map[string]int `json:"purged_by_reason"`
	EntriesExamined int            `json:"audit_entries_examined"`
}

// Scope computes the breach scope of [from, to].
func (r *Reports) Scope(ctx context.Context, from, to time.Time) (Scope, error) {
	s := Scope{From: from.UTC(), To: to.UTC(), RevealsByRole: map[string]int{}, PurgedByReason: map[string]int{}}
	stored := map[string]time.Time{}
	purgedAt := map[string]time.Time{}
	revealed := map[string]bool{}
	err := r.trail.Each(ctx, time.Time{}, to, func(e audit.Entry) error {
		s.EntriesExamined++
		switch e.Action {
		case audit.ActionStore:
			if _, ok := stored[e.OrderID]; !ok {
				stored[e.OrderID] = e.Time
			}
		case audit.ActionPurge:
			if _, ok := purgedAt[e.OrderID]; !ok {
				purgedAt[e.OrderID] = e.Time
			}
			if !e.Time.Before(from) {
				s.OrdersPurged++
				s.PurgedByReason[e.Detail["reason"]]++
			}
		case audit.ActionReveal:
			if !e.Time.Before(from) {
				s.Reveals++
				s.RevealsByRole[e.Detail["role"]]++
				revealed[e.OrderID] = true
			}
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	var held []string
	for id, at := range stored {
		if at.After(to) {
			continue
		}
		if p, ok := purgedAt[id]; ok && p.Before(from) {
			continue
		}
		if ref, err := r.store.Get(ctx, id); err == nil && ref.PurgedAt == nil && ref.ExpiresAt.Before(from) {
			continue // its ciphertext expired by TTL before the window
		}
		held = append(held, id)
	}
	slices.Sort(held)
	s.OrdersHeld, s.OrdersRevealed = len(held), len(revealed)
	bidx, err := r.store.BlindIndexes(ctx, held)
	if err != nil {
		return s, err
	}
	distinct := map[string]bool{}
	for _, b := range bidx {
		distinct[b] = true
	}
	s.DistinctEmails, s.NoEmailLink = len(distinct), len(held)-len(bidx)
	return s, nil
}

// Retention is the proof of retention (Art. 30).
type Retention struct {
	GeneratedAt     time.Time          `json:"generated_at"`
	Limit           string             `json:"retention_limit"`
	LimitDays       int                `json:"retention_limit_days"`
	Held            int64              `json:"held"`
	AgeHistogram    []AgeBucket        `json:"age_histogram"`
	OldestHeldAge   string             `json:"oldest_held_age"`
	OldestHeldHours float64            `json:"oldest_held_hours"`
	Outlived        int64              `json:"outlived"`
	AwaitingSweep   int64              `json:"awaiting_sweep"`
	PurgesByDay     []DayPurges        `json:"purges_by_day"`
	AuditChain      audit.Verification `json:"audit_chain"`
	Keys            []KeyStatus        `json:"keys"`
}

// AgeBucket counts held orders by age in whole days.
type AgeBucket struct {
	FromDay int   `json:"from_day"`
	ToDay   int   `json:"to_day"`
	Orders  int64 `json:"orders"`
}

// DayPurges counts one day's purges by reason.
type DayPurges struct {
	Day      string         `json:"day"`
	ByReason map[string]int `json:"by_reason"`
}

// KeyStatus says which versions of a transit key are in use and trimmed.
type KeyStatus struct {
	Key                  string `json:"key"`
	LatestVersion        int    `json:"latest_version"`
	MinDecryptionVersion int    `json:"min_decryption_version"`
	OldestInUse          int    `json:"oldest_version_in_use"`
	TrimmedBelow         int    `json:"trimmed_below"`
}

// Retention builds the proof of retention: what is held and how old it is
// against the limit, the oldest held order, orders that outlived their
// deadline (counted, not assumed: references still held more than two
// sweeps past it), purges by reason per day over the retention period,
// the audit chain's status and the key versions in use and trimmed.
func (r *Reports) Retention(ctx context.Context) (Retention, error) {
	now := r.now().UTC()
	limit := r.store.Retention()
	rep := Retention{GeneratedAt: now, Limit: limit.String(), LimitDays: int(limit / (24 * time.Hour))}
	var err error
	if rep.Held, err = r.store.HeldCount(ctx); err != nil {
		return rep, err
	}
	// Age = limit - time left: bucket by deadline, one day at a time.
	days := int(limit / (24 * time.Hour))
	if days < 1 {
		days = 1
	}
	edges := make([]time.Time, days+1)
	for i := range edges {
		edges[i] = now.Add(limit - time.Duration(days-i)*24*time.Hour)
	}
	counts, err := r.store.ExpiringBetween(ctx, edges)
	if err != nil {
		return rep, err
	}
	for i := range counts {
		age := days - 1 - i
		rep.AgeHistogram = append(rep.AgeHistogram, AgeBucket{FromDay: age, ToDay: age + 1, Orders: counts[i]})
	}
	slices.Reverse(rep.AgeHistogram)
	if oldest, err := r.store.Oldest(ctx, 0, "", 1); err != nil {
		return rep, err
	} else if len(oldest) == 1 {
		created := oldest[0].CreatedAt
		if created.IsZero() {
			created = oldest[0].ExpiresAt.Add(-limit)
		}
		age := now.Sub(created)
		rep.OldestHeldAge, rep.OldestHeldHours = humanAge(age), age.Hours()
	}
	if rep.AwaitingSweep, err = r.store.Overdue(ctx, now); err != nil {
		return rep, err
	}
	if rep.Outlived, err = r.store.Overdue(ctx, now.Add(-2*r.sweep-time.Minute)); err != nil {
		return rep, err
	}
	rep.PurgesByDay = []DayPurges{} // none is [], never null
	byDay := map[string]map[string]int{}
	if err := r.trail.Each(ctx, now.Add(-limit), time.Time{}, func(e audit.Entry) error {
		if e.Action == audit.ActionPurge {
			d := e.Time.UTC().Format("2006-01-02")
			if byDay[d] == nil {
				byDay[d] = map[string]int{}
			}
			byDay[d][e.Detail["reason"]]++
		}
		return nil
	}); err != nil {
		return rep, err
	}
	for d, m := range byDay {
		rep.PurgesByDay = append(rep.PurgesByDay, DayPurges{Day: d, ByReason: m})
	}
	slices.SortFunc(rep.PurgesByDay, func(a, b DayPurges) int { return cmp.Compare(a.Day, b.Day) })
	if rep.AuditChain, err = r.trail.Verify(ctx); err != nil {
		return rep, err
	}
	inUse := []func(context.Context) (int, error){r.store.OldestKeyVersion, r.store.OldestMaskedKeyVersion}
	for i, k := range r.keys {
		info, err := k.ReadKey(ctx)
		if err != nil {
			return rep, err
		}
		ks := KeyStatus{Key: k.Name(), LatestVersion: info.LatestVersion, MinDecryptionVersion: info.MinDecryptionVersion,
			TrimmedBelow: info.MinAvailableVersion}
		if i < len(inUse) {
			if ks.OldestInUse, err = inUse[i](ctx); err != nil {
				return rep, err
			}
		}
		rep.Keys = append(rep.Keys, ks)
	}
	return rep, nil
}

// humanAge says an age the way a person would: "under a minute", "3 h 20
// min", "12 days 4 h".
func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days %d h", int(d.Hours()/24), int(d.Hours())%24)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
