package privacy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/mail"
	"piivault/orders"
	"piivault/purge"
)

// fakeStore is the order store as this page uses it: histories by
// normalised email, references, reveals, corrections recorded.
type fakeStore struct {
	mu         sync.Mutex
	history    map[string][]string
	refs       map[string]orders.Reference
	reveals    map[string][]orders.Revealed
	rectified  []rectifyCall
	rectifyErr error
}

type rectifyCall struct {
	ID    string
	Ship  orders.Shipping
	Entry audit.Entry
}

func newFakeStore() *fakeStore {
	return &fakeStore{history: map[string][]string{}, refs: map[string]orders.Reference{}, reveals: map[string][]orders.Revealed{}}
}

// add gives email a held order id, created a day before now.
func (s *fakeStore) add(email, id string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := orders.NormalizeEmail(email)
	s.history[k] = append(s.history[k], id)
	s.refs[id] = orders.Reference{OrderID: id, PaymentRef: "pay_" + id, Status: orders.StatusHeld,
		CreatedAt: now.Add(-24 * time.Hour).UTC(), ExpiresAt: now.Add(29 * 24 * time.Hour).UTC()}
}

func (s *fakeStore) set(id string, f func(*orders.Reference)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refs[id]
	f(&r)
	s.refs[id] = r
}

func (s *fakeStore) History(_ context.Context, email string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history[orders.NormalizeEmail(email)]), nil
}

func (s *fakeStore) Get(_ context.Context, id string) (orders.Reference, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refs[id]
	if !ok {
		return orders.Reference{}, apperr.New(apperr.NotFound, "no such order")
	}
	return r, nil
}

func (s *fakeStore) Reveals(_ context.Context, ids []string) (map[string][]orders.Revealed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]orders.Revealed{}
	for _, id := range ids {
		if v, ok := s.reveals[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

func (s *fakeStore) RectifyAudited(_ context.Context, id string, ship orders.Shipping, e audit.Entry) (orders.Reference, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refs[id]
	switch {
	case !ok:
		return orders.Reference{}, apperr.New(apperr.NotFound, "no such order")
	case r.Status != orders.StatusHeld:
		return orders.Reference{}, apperr.New(apperr.Gone, "purged")
	case s.rectifyErr != nil:
		return orders.Reference{}, s.rectifyErr
	}
	if err := orders.ValidateShipping(ship); err != nil {
		return orders.Reference{}, err
	}
	s.rectified = append(s.rectified, rectifyCall{ID: id, Ship: ship, Entry: e})
	// The email index moves with the corrected email, as the real store's does.
	for k, ids := range s.history {
		s.history[k] = slices.DeleteFunc(ids, func(x string) bool { return x == id })
	}
	k := orders.NormalizeEmail(ship.Email)
	s.history[k] = append(s.history[k], id)
	return r, nil
}

func (s *fakeStore) calls() []rectifyCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rectified)
}

// fakeDeleter purges in the fake store and records its calls.
type fakeDeleter struct {
	mu    sync.Mutex
	store *fakeStore
	now   func() time.Time
	calls []deleteCall
}

type deleteCall struct {
	Actor, IP, Reason string
	IDs               []string
}

func (d *fakeDeleter) PurgeOrders(_ context.Context, actor, ip string, ids []string, reason string) (purge.Receipt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, deleteCall{Actor: actor, IP: ip, Reason: reason, IDs: ids})
	r := purge.Receipt{RequestID: fmt.Sprintf("dr_%02d", len(d.calls)), Orders: []string{}, CompletedAt: d.now().UTC()}
	for _, id := range ids {
		if _, err := d.store.Get(context.Background(), id); err != nil {
			continue
		}
		at, why := d.now().UTC(), reason
		d.store.set(id, func(ref *orders.Reference) {
			ref.Status, ref.PurgedAt, ref.PurgeReason = orders.StatusAfter(reason), &at, &why
		})
		r.Orders = append(r.Orders, id)
	}
	return r, nil
}

func (d *fakeDeleter) called() []deleteCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.calls)
}

// fakeMailer records messages and, like the outbox, sends an id once.
type fakeMailer struct {
	mu   sync.Mutex
	sent []mail.Message
	err  error
}

func (m *fakeMailer) Enqueue(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if !slices.ContainsFunc(m.sent, func(x mail.Message) bool { return x.ID == msg.ID }) {
		m.sent = append(m.sent, msg)
	}
	return nil
}

func (m *fakeMailer) messages() []mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sent)
}

// fakeLimiter allows limit requests per who, then answers RateLimited as
// monitoring.Limiter does.
type fakeLimiter struct {
	mu    sync.Mutex
	limit int
	count map[string]int
	whos  []string
}

func newLimiter(limit int) *fakeLimiter { return &fakeLimiter{limit: limit, count: map[string]int{}} }

func (l *fakeLimiter) Allow(_ context.Context, who string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.whos = append(l.whos, who)
	l.count[who]++
	if l.count[who] > l.limit {
		e := apperr.New(apperr.RateLimited, "too many requests; retry later")
		e.Detail = map[string]any{"retry_after_seconds": 42}
		return e
	}
	return nil
}

func (l *fakeLimiter) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.whos)
}

// lockedBuffer collects log lines written from server goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var errMailDown = errors.New("mail: enqueue: store down")
