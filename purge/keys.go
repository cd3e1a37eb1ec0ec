package purge

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"piivault/audit"
	"piivault/vault"
)

// KeyManager is what crypto-shredding needs from Vault: one transit key.
type KeyManager interface {
	Name() string
	ReadKey(ctx context.Context) (vault.KeyInfo, error)
	RotateKey(ctx context.Context) error
	RetireVersionsBelow(ctx context.Context, v int) error
}

// ShredKey is one key to shred and the lowest of its versions that held
// orders still need (0 when none is held).
type ShredKey struct {
	Key    KeyManager
	Oldest func(ctx context.Context) (int, error)
}

// Shredder rotates the transit keys daily (the full blocks' and the masked
// copies') and retires the versions whose every ciphertext is past
// retention, so a stale copy of Redis (replica, AOF, backup) becomes
// undecryptable.
type Shredder struct {
	keys   []ShredKey
	store  Store
	audit  Recorder
	log    *slog.Logger
	now    func() time.Time
	rotate time.Duration
}

// NewShredder builds a Shredder that rotates each key when its newest
// version is older than rotateEvery (24h in production).
func NewShredder(keys []ShredKey, store Store, rec Recorder, log *slog.Logger, rotateEvery time.Duration) *Shredder {
	return &Shredder{keys: keys, store: store, audit: rec, log: log, now: time.Now, rotate: rotateEvery}
}

// ShredReport says what a run did to one key.
type ShredReport struct {
	Key          string `json:"key"`
	Rotated      bool   `json:"rotated"`
	LatestBefore int    `json:"latest_version_before"`
	Latest       int    `json:"latest_version"`
	MinVersion   int    `json:"min_decryption_version"`
	Retired      int    `json:"versions_retired"`
}

// RetirableBelow returns the lowest version that must stay: version v may
// go once version v+1 is older than the retention, because every ciphertext
// made with v predates v+1 and so is past retention. Pure, for testing.
func RetirableBelow(k vault.KeyInfo, now time.Time, retention time.Duration) int {
	keep := k.MinDecryptionVersion
	if keep < 1 {
		keep = 1
	}
	cutoff := now.Add(-retention)
	for v := keep; v < k.LatestVersion; v++ {
		next, ok := k.Created[v+1]
		if !ok || next.After(cutoff) {
			break
		}
		keep = v + 1
	}
	return keep
}

// Run shreds every key in turn and reports on each; it stops at the first
// key that fails.
func (s *Shredder) Run(ctx context.Context, force bool) ([]ShredReport, error) {
	var out []ShredReport
	for _, k := range s.keys {
		r, err := s.runKey(ctx, k, force)
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("%s: %w", k.Key.Name(), err)
		}
	}
	return out, nil
}

// runKey rotates if the newest version is due (force rotates regardless)
// and retires what RetirableBelow allows — never a version a held order
// still needs: the lowest key version of any held ciphertext caps the
// trim, and if that cannot be read, nothing is trimmed.
func (s *Shredder) runKey(ctx context.Context, sk ShredKey, force bool) (ShredReport, error) {
	keys := sk.Key
	k, err := keys.ReadKey(ctx)
	if err != nil {
		return ShredReport{}, fmt.Errorf("read key: %w", err)
	}
	r := ShredReport{Key: keys.Name(), LatestBefore: k.LatestVersion}
	if force || s.now().Sub(k.Created[k.LatestVersion]) >= s.rotate {
		if err := keys.RotateKey(ctx); err != nil {
			return r, fmt.Errorf("rotate key: %w", err)
		}
		r.Rotated = true
		if k, err = keys.ReadKey(ctx); err != nil {
			return r, fmt.Errorf("read key: %w", err)
		}
		s.record(ctx, audit.ActionKeyRotate, map[string]string{"key": r.Key, "latest_version": strconv.Itoa(k.LatestVersion)})
	}
	r.Latest = k.LatestVersion
	keep := RetirableBelow(k, s.now(), s.store.Retention())
	if keep > k.MinDecryptionVersion {
		needed, err := sk.Oldest(ctx)
		if err != nil {
			return r, fmt.Errorf("key versions held orders need (nothing trimmed): %w", err)
		}
		if needed > 0 && needed < keep {
			s.log.Warn("key trim capped by a held order", slog.String("key", r.Key), slog.Int("wanted", keep), slog.Int("kept_from", needed))
			keep = needed
		}
	}
	r.MinVersion = k.MinDecryptionVersion
	if keep > k.MinDecryptionVersion {
		if err := keys.RetireVersionsBelow(ctx, keep); err != nil {
			return r, fmt.Errorf("retire key versions: %w", err)
		}
		r.Retired = keep - k.MinDecryptionVersion
		r.MinVersion = keep
		keyVersionsRetired.Add(float64(r.Retired))
		s.record(ctx, audit.ActionKeyTrim, map[string]string{"key": r.Key, "min_decryption_version": strconv.Itoa(keep)})
	}
	return r, nil
}

func (s *Shredder) record(ctx context.Context, action string, detail map[string]string) {
	if err := s.audit.Record(ctx, audit.Entry{Actor: "system", Action: action, Detail: detail}); err != nil {
		s.log.Error("key change not audited", "action", action, "err", err)
	}
}
