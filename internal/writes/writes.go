// Package writes tells a request's middleware that its handling changed
// something: a reveal's audit entry and reveal list are written while
// answering a GET, and an answer that reports or reveals anything must not
// leave before the replicas hold what it wrote (PIIVAULT_REDIS_WAIT).
// The method alone cannot say so; the writers mark the request's context.
package writes

import (
	"context"
	"sync/atomic"
)

type key struct{}

// Track returns a context whose writes are recorded in the returned flag.
func Track(ctx context.Context) (context.Context, *atomic.Bool) {
	flag := new(atomic.Bool)
	return context.WithValue(ctx, key{}, flag), flag
}

// Mark records that the request behind ctx wrote something that must
// reach the replicas before its answer. Outside a tracked request it does
// nothing.
func Mark(ctx context.Context) {
	if flag, ok := ctx.Value(key{}).(*atomic.Bool); ok {
		flag.Store(true)
	}
}
