package staff

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenMemory remembers tokens Vault refused, by their SHA-256, for a
// short while and up to a bound; when full it forgets the oldest half.
type tokenMemory struct {
	mu    sync.Mutex
	seen  map[[32]byte]time.Time
	max   int
	ttl   time.Duration
	clock func() time.Time
}

func newTokenMemory(max int, ttl time.Duration) *tokenMemory {
	return &tokenMemory{seen: map[[32]byte]time.Time{}, max: max, ttl: ttl, clock: time.Now}
}

func (m *tokenMemory) has(token string) bool {
	k := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.seen[k]
	if ok && m.clock().Sub(at) > m.ttl {
		delete(m.seen, k)
		return false
	}
	return ok
}

func (m *tokenMemory) add(token string) {
	k := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	if len(m.seen) >= m.max {
		cutoff := now.Add(-m.ttl / 2)
		for t, at := range m.seen {
			if at.Before(cutoff) || len(m.seen) >= m.max {
				delete(m.seen, t)
			}
		}
	}
	m.seen[k] = now
}
