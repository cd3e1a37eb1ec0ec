package staff

import (
	"crypto/sha256"
	"sync"
	"time"

	"piivault/internal/web"
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

// principalMemory remembers, for a short while, who a token Vault accepted
// belongs to. Only the reveal routes use it, because their next step is a
// decrypt with that same token: Vault checks it again there, so a revoked,
// suspended or removed member still fails on that very request.
type principalMemory struct {
	mu    sync.Mutex
	seen  map[[32]byte]principalSeen
	max   int
	ttl   time.Duration
	clock func() time.Time
}

type principalSeen struct {
	p  web.Principal
	at time.Time
}

func newPrincipalMemory(max int, ttl time.Duration) *principalMemory {
	return &principalMemory{seen: map[[32]byte]principalSeen{}, max: max, ttl: ttl, clock: time.Now}
}

func (m *principalMemory) get(token string) (web.Principal, bool) {
	k := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.seen[k]
	if !ok || m.clock().Sub(s.at) > m.ttl {
		delete(m.seen, k)
		return web.Principal{}, false
	}
	return s.p, true
}

func (m *principalMemory) put(token string, p web.Principal) {
	k := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.seen) >= m.max {
		for t := range m.seen { // forget an arbitrary half: a bound, not an LRU
			delete(m.seen, t)
			if len(m.seen) < m.max/2 {
				break
			}
		}
	}
	m.seen[k] = principalSeen{p: p, at: m.clock()}
}
