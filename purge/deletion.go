package purge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/audit"
	"piivault/internal/apperr"
	"piivault/orders"
)

// Receipt answers a customer deletion request. It names orders only: the
// email that asked is not kept anywhere.
type Receipt struct {
	RequestID   string    `json:"request_id"`
	Orders      []string  `json:"orders"`
	CompletedAt time.Time `json:"completed_at"`
}

// Deletions executes customers' deletion requests.
type Deletions struct {
	purger *Purger
	store  Store
	rdb    redis.UniversalClient
}

// NewDeletions builds Deletions.
func NewDeletions(p *Purger, store Store, rdb redis.UniversalClient) *Deletions {
	return &Deletions{purger: p, store: store, rdb: rdb}
}

func receiptKey(id string) string { return "piivault:{deletion}:" + id }

// receiptIndex lists receipt ids, newest first (the latest 1,000).
const receiptIndex = "piivault:{deletion}:index"

// Request purges every order of email (found through the blind index) as
// customer_request and stores the receipt. An email with no orders gets an
// empty receipt: support learns no more than the customer could.
func (d *Deletions) Request(ctx context.Context, actor, ip, email string) (Receipt, error) {
	if !orders.ValidEmail(orders.NormalizeEmail(email)) {
		return Receipt{}, &apperr.Error{Code: apperr.Validation, Message: "invalid fields: email", Fields: []string{"email"}}
	}
	ids, err := d.store.FindByEmail(ctx, email)
	if err != nil {
		return Receipt{}, err
	}
	r, err := d.PurgeOrders(ctx, actor, ip, ids, orders.ReasonCustomerRequest)
	if err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// PurgeOrders purges the given orders for reason and stores a receipt of
// those that existed (purged now or before).
func (d *Deletions) PurgeOrders(ctx context.Context, actor, ip string, ids []string, reason string) (Receipt, error) {
	raw := make([]byte, 12)
	if _, err := rand.Read(raw); err != nil {
		return Receipt{}, err
	}
	r := Receipt{RequestID: "dr_" + hex.EncodeToString(raw), Orders: []string{}}
	for _, id := range ids {
		if _, err := d.purger.Purge(ctx, actor, ip, id, reason); err != nil {
			if apperr.Is(err, apperr.NotFound) {
				continue
			}
			return Receipt{}, err
		}
		r.Orders = append(r.Orders, id)
	}
	r.CompletedAt = time.Now().UTC()
	b, _ := json.Marshal(r)
	pipe := d.rdb.TxPipeline()
	pipe.Set(ctx, receiptKey(r.RequestID), b, 0)
	pipe.LPush(ctx, receiptIndex, r.RequestID)
	pipe.LTrim(ctx, receiptIndex, 0, 999)
	if _, err := pipe.Exec(ctx); err != nil {
		return Receipt{}, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	// The purges are made and the receipt kept: the request's own entry
	// must not be lost either. If the trail refuses it, it waits in the
	// outbox for the sweep, like the purges' entries, and the customer's
	// request is answered as done.
	e := audit.Entry{Time: time.Now().UTC(), Actor: actor, Action: audit.ActionDeletionRequest, IP: ip, Event: audit.NewEventID(),
		Detail: map[string]string{"request_id": r.RequestID, "orders": itoa(len(r.Orders)), "reason": reason}}
	if err := d.purger.audit.Record(ctx, e); err != nil {
		if derr := d.store.DeferAudit(context.WithoutCancel(ctx), e); derr != nil {
			return Receipt{}, fmt.Errorf("deletion request %s: its audit entry was neither recorded (%w) nor kept for later: %w", r.RequestID, err, derr)
		}
		d.purger.log.Warn("deletion request audit deferred to the outbox", "request_id", r.RequestID, "err", err)
	}
	return r, nil
}

// Get returns a stored receipt.
func (d *Deletions) Get(ctx context.Context, id string) (Receipt, error) {
	b, err := d.rdb.Get(ctx, receiptKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Receipt{}, apperr.New(apperr.NotFound, "no such deletion request")
	}
	if err != nil {
		return Receipt{}, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Recent returns up to limit receipts, newest first.
func (d *Deletions) Recent(ctx context.Context, limit int) ([]Receipt, error) {
	ids, err := d.rdb.LRange(ctx, receiptIndex, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	out := make([]Receipt, 0, len(ids))
	for _, id := range ids {
		r, err := d.Get(ctx, id)
		if apperr.Is(err, apperr.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
