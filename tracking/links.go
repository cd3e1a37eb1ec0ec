// Package tracking remembers which order a carrier reference (a tracking
// code, an EasyPost shipment or tracker) belongs to, so that a carrier's
// "in transit" event finds the order whose PII it must destroy. It holds
// no PII: references are the carrier's ids.
package tracking

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

// Memory is how long piivault remembers which order a tracking code,
// shipment or tracker belongs to: longer than the retention, so the
// delivery events of any held order still find it.
const Memory = 45 * 24 * time.Hour

// Refs are the carrier references an event or a link names.
type Refs struct {
	Code, Shipment, Tracker string
}

// Links keeps the order of each carrier reference in Redis.
type Links struct{ rdb redis.UniversalClient }

// NewLinks returns the links kept in rdb.
func NewLinks(rdb redis.UniversalClient) Links { return Links{rdb: rdb} }

func key(kind, id string) string { return "piivault:{wh}:track:" + kind + ":" + id }

func (r Refs) each() []struct{ kind, id string } {
	return []struct{ kind, id string }{{"tracker", r.Tracker}, {"shipment", r.Shipment}, {"code", strings.ToUpper(r.Code)}}
}

// Remember links every reference in r to orderID.
func (l Links) Remember(ctx context.Context, orderID string, r Refs) error {
	pipe := l.rdb.Pipeline()
	for _, k := range r.each() {
		if k.id != "" {
			pipe.Set(ctx, key(k.kind, k.id), orderID, Memory)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	return nil
}

// Forget unlinks the references in r that still name orderID (a refunded
// label's tracker must not purge the order later).
func (l Links) Forget(ctx context.Context, orderID string, r Refs) error {
	for _, k := range r.each() {
		if k.id == "" {
			continue
		}
		if err := forgetScript.Run(ctx, l.rdb, []string{key(k.kind, k.id)}, orderID).Err(); err != nil {
			return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
		}
	}
	return nil
}

var forgetScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// Find returns the order linked to the first of r's references that has
// one (tracker, then shipment, then tracking code), or "".
func (l Links) Find(ctx context.Context, r Refs) (string, error) {
	for _, k := range r.each() {
		if k.id == "" {
			continue
		}
		id, err := l.rdb.Get(ctx, key(k.kind, k.id)).Result()
		switch {
		case err == nil:
			return id, nil
		case !errors.Is(err, redis.Nil):
			return "", apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
		}
	}
	return "", nil
}
