package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"piivault/internal/apperr"
	"piivault/vault"
)

// AnchorStore keeps the trail's anchor outside Redis (vault.Client).
type AnchorStore interface {
	ReadAnchor(ctx context.Context) (vault.Anchor, int, error)
	WriteAnchor(ctx context.Context, a vault.Anchor, cas int) error
}

// RunAnchor keeps the anchor in Vault up with what this process appends,
// until ctx ends, then anchors once more (a clean shutdown leaves its tail
// anchored). The anchor moves on its own pace, at most once per
// AnchorEvery, never as a step a request waits for: an anchor write is a
// Vault call, and one per group commit would cost Vault as much as the
// requests themselves. Entries appended since the last anchor write (at
// most AnchorEvery plus one Vault round trip) are the only ones a cut of
// the trail could remove unnoticed.
//
// A trail that no longer holds the anchored entry (cut, rebuilt, or lost
// in a Redis failover) is never anchored over: the anchor stays where it
// is, so Verify keeps reporting it, and onProblem is told.
func (l *Log) RunAnchor(ctx context.Context, log *slog.Logger, onProblem func(text string)) {
	if l.anchor == nil {
		return
	}
	reported := false
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
			if err := l.Anchor(final); err != nil && !errors.Is(err, ErrDiverged) {
				log.Warn("audit anchor not advanced at shutdown", "err", err)
			}
			cancel()
			return
		case <-l.anchorC:
		}
		if wait := l.anchorEvery - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				continue // anchors once more, above
			case <-t.C:
			}
		}
		last = time.Now()
		err := l.Anchor(ctx)
		switch {
		case errors.Is(err, ErrDiverged):
			if !reported {
				log.Error("audit trail does not hold its anchored entry", "err", err)
				onProblem("piivault: the audit trail no longer holds the entry anchored in Vault: " +
					"entries were removed or lost (a Redis failover?). Run `piivault audit verify`.")
				reported = true
			}
		case err != nil:
			log.Warn("audit anchor not advanced", "err", err)
		default:
			reported = false
		}
	}
}

// DefaultAnchorEvery is how often, at most, serve moves the anchor.
const DefaultAnchorEvery = 250 * time.Millisecond

// AnchorEvery sets how often, at most, RunAnchor moves the anchor (0: after
// every group commit).
func AnchorEvery(d time.Duration) Option {
	return func(l *Log) { l.anchorEvery = max(d, 0) }
}

// ErrDiverged means the trail in Redis no longer holds the anchored entry.
var ErrDiverged = errors.New("the audit trail does not hold the entry anchored in Vault")

// Anchor moves the anchor in Vault up to the newest entry this process
// appended, if it is ahead of it. Commands that append and exit call it
// before they return; serve's RunAnchor calls it at most once per AnchorEvery.
func (l *Log) Anchor(ctx context.Context) error {
	if l.anchor == nil {
		return nil
	}
	l.mu.Lock()
	target := l.latest
	l.mu.Unlock()
	if target.Seq == 0 {
		return nil
	}
	if l.replicas != nil {
		if err := l.replicas.Wait(ctx); err != nil {
			return fmt.Errorf("audit anchor waits for Redis replicas: %w", err)
		}
	}
	l.anchorMu.Lock()
	defer l.anchorMu.Unlock()
	cur, version, known := l.anchored, l.anchorVer, l.anchorVer > 0
	for attempt := 0; attempt < 10; attempt++ {
		if !known {
			var err error
			if cur, version, err = l.anchor.ReadAnchor(ctx); err != nil {
				return err
			}
		}
		if cur.Seq >= target.Seq {
			l.anchored, l.anchorVer = cur, version
			return nil
		}
		if cur.Seq > 0 {
			e, ok, err := l.entryAt(ctx, cur.ID)
			if err == nil && !ok {
				// An idle trail's newest entry moves to the archive once
				// it is older than the hot window: still the trail's.
				e, ok, err = l.archivedEntry(cur.Seq)
			}
			if err != nil {
				return err
			}
			if !ok || e.Seq != cur.Seq || e.Hash != cur.Hash {
				l.anchorVer = 0 // read it again next time
				return fmt.Errorf("%w (entry %d)", ErrDiverged, cur.Seq)
			}
		}
		err := l.anchor.WriteAnchor(ctx, target, version)
		if errors.Is(err, vault.ErrAnchorMoved) {
			known = false
			continue
		}
		if err != nil {
			l.anchorVer = 0
			return err
		}
		l.anchored, l.anchorVer = target, version+1
		return nil
	}
	return errors.New("audit anchor: too many concurrent writers")
}

// entryAt reads one entry by stream id.
func (l *Log) entryAt(ctx context.Context, id string) (Entry, bool, error) {
	msgs, err := l.rdb.XRangeN(ctx, logKey, id, id, 1).Result()
	if err != nil {
		return Entry{}, false, apperr.Wrap(apperr.StoreUnavailable, err, "the audit trail is unavailable")
	}
	if len(msgs) == 0 {
		return Entry{}, false, nil
	}
	e, err := decode(msgs[0])
	return e, err == nil, nil
}
