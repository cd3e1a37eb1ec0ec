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

// KeyManager is what crypto-shredding needs from Vault.
type KeyManager interface {
	ReadKey(ctx context.Context) (vault.KeyInfo, error)
	RotateKey(ctx context.Context) error
	RetireVersionsBelow(ctx context.Context, v int) error
}

// VersionIndex knows the lowest key version held orders still need.
type VersionIndex interface {
	OldestKeyVersion(ctx context.Context) (int, error)
}

// Shredder rotates the transit key daily and retires the versions whose
// every ciphertext is past retention, so a stale copy of Redis (replica,
// AOF, backup) becomes undecryptable.
type Shredder struct {
	keys   KeyManager
	store  Store
	held   VersionIndex
	audit  Recorder
	log    *slog.Logger
	now    func() time.Time
	rotate time.Duration
}

// NewShredder builds a Shredder that rotates when the newest version is
// older than rotateEvery (24h in production).
func NewShredder(keys KeyManager, store Store, held VersionIndex, rec Recorder, log *slog.Logger, rotateEvery time.Duration) *Shredder {
	return &Shredder{keys: keys, store: store, held: held, audit: rec, log: log, now: time.Now, rotate: rotateEvery}
}

// ShredReport says what a run did.
type ShredReport struct {
	Rotated      bool `json:"rotated"`
	LatestBefore int  `json:"latest_version_before"`
	Latest       int  `json:"latest_version"`
	MinVersion   int  `json:"min_decryption_version"`
	Retired      int  `json:"versions_retired"`
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

// Run rotates if the newest version is due (force rotates regardless) and
// retires what RetirableBelow allows — never a version a held order still
// needs: the lowest key version of any held ciphertext caps the trim, and
// if that cannot be read, nothing is trimmed.
func (s *Shredder) Run(ctx context.Context, force bool) (ShredReport, error) {
	k, err := s.keys.ReadKey(ctx)
	if err != nil {
		return ShredReport{}, fmt.Errorf("read key: %w", err)
	}
	r := ShredReport{LatestBefore: k.LatestVersion}
	if force || s.now().Sub(k.Created[k.LatestVersion]) >= s.rotate {
		if err := s.keys.RotateKey(ctx); err != nil {
			return r, fmt.Errorf("rotate key: %w", err)
		}
		r.Rotated = true
		if k, err = s.keys.ReadKey(ctx); err != nil {
			return r, fmt.Errorf("read key: %w", err)
		}
		s.record(ctx, audit.ActionKeyRotate, map[string]string{"latest_version": strconv.Itoa(k.LatestVersion)})
	}
	r.Latest = k.LatestVersion
	keep := RetirableBelow(k, s.now(), s.store.Retention())
	if keep > k.MinDecryptionVersion {
		needed, err := s.held.OldestKeyVersion(ctx)
		if err != nil {
			return r, fmt.Errorf("key versions held orders need (nothing trimmed): %w", err)
		}
		if needed > 0 && needed < keep {
			s.log.Warn("key trim capped by a held order", slog.Int("wanted", keep), slog.Int("kept_from", needed))
			keep = needed
		}
	}
	r.MinVersion = k.MinDecryptionVersion
	if keep > k.MinDecryptionVersion {
		if err := s.keys.RetireVersionsBelow(ctx, keep); err != nil {
			return r, fmt.Errorf("retire key versions: %w", err)
		}
		r.Retired = keep - k.MinDecryptionVersion
		r.MinVersion = keep
		keyVersionsRetired.Add(float64(r.Retired))
		s.record(ctx, audit.ActionKeyTrim, map[string]string{"min_decryption_version": strconv.Itoa(keep)})
	}
	return r, nil
}

func (s *Shredder) record(ctx context.Context, action string, detail map[string]string) {
	if err := s.audit.Record(ctx, audit.Entry{Actor: "system", Action: action, Detail: detail}); err != nil {
		s.log.Error("key change not audited", "action", action, "err", err)
	}
}
