package monitoring

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/internal/apperr"
)

// Limiter is a fixed-window rate limit in Redis, shared by every instance.
type Limiter struct {
	rdb    redis.UniversalClient
	name   string
	limit  int64
	window time.Duration
}

// NewLimiter allows limit requests per window for each key.
func NewLimiter(rdb redis.UniversalClient, name string, limit int, window time.Duration) *Limiter {
	return &Limiter{rdb: rdb, name: name, limit: int64(limit), window: window}
}

// Allow counts one request for who and returns RateLimited (with the
// seconds until the window resets) once the limit is passed.
func (l *Limiter) Allow(ctx context.Context, who string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	key := "piivault:{rl}:" + l.name + ":" + who
	pipe := l.rdb.TxPipeline()
	incr := pipe.Incr(ctx, key)
	pipe.ExpireNX(ctx, key, l.window)
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return apperr.Wrap(apperr.StoreUnavailable, err, "the store is unavailable")
	}
	if incr.Val() <= l.limit {
		return nil
	}
	rateLimited.WithLabelValues(l.name).Inc()
	retry := int(ttl.Val().Round(time.Second) / time.Second)
	if retry < 1 {
		retry = 1
	}
	e := apperr.New(apperr.RateLimited, "too many requests; retry later")
	e.Detail = map[string]any{"retry_after_seconds": retry}
	return e
}
