package audit

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"piivault/vault"
)

// Early is an entry whose Vault seal may start before the work it records
// (a decrypt, an encrypt, a purge), so that at low load the seal and the
// work overlap instead of following each other. Nothing is appended until
// Commit, which the caller calls only once the work is done, and the
// answer still waits for it: an entry is never in the trail for work that
// did not happen, and no answer leaves before its entry is sealed and
// appended.
//
// The early seal is a guess at the entry's place in the chain: the hash of
// the entry as it would be if appended next onto this process's head. The
// flusher uses it only if the entry's hash, chained for real, is exactly
// that one; otherwise (another entry came first, another instance moved
// the head) the entry is sealed with its group, as Record does. So a guess
// costs at most one wasted HMAC, never a wrong seal. Guesses are made only
// while the trail is idle (nothing queued, no group being appended, no
// other guess outstanding), and only guessPause after it was last busy or
// a guess was last overtaken: under load the group commit
// already shares one seal call among many entries, and a wasted early
// seal is one more Vault call on a busy Vault.
type Early struct {
	l    *Log
	e    Entry
	hash string            // the guessed hash, "" when no seal was started
	seal chan vault.Result // the early seal's result, buffered
	got  *vault.Result     // the result, once the flusher has taken it
	// counted: its outcome is in earlySeals (the flusher's only)
	counted bool
}

// guessPause is how long Begin makes no guess after it saw the trail busy
// or a guess overtaken: concurrency comes in spells, and at low load (the
// case early seals are for) the trail is idle at every Begin.
const guessPause = 100 * time.Millisecond

// Begin stamps e (its time, as Record would) and, if the trail is idle,
// starts sealing it at its guessed place. The caller does the work, then
// calls Commit (or Cancel, if the work was refused or failed).
func (l *Log) Begin(e Entry) *Early {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	x := &Early{l: l, e: e}
	now := time.Now()
	l.mu.Lock()
	busy := l.flushing || len(l.queue) > 0 || l.early != nil
	if busy {
		// Other entries are on their way: under concurrency a guess is
		// mostly overtaken, and each wasted seal is a Vault call.
		l.guessAfter = now.Add(guessPause)
	}
	if !busy && l.cached != "" && now.After(l.guessAfter) {
		guess := e
		guess.Seq, guess.Prev, guess.Seal = l.cachedSeq+1, l.cached, ""
		x.hash = guess.digest()
		x.seal = make(chan vault.Result, 1)
		l.early = x
	}
	l.mu.Unlock()
	if x.seal != nil {
		go x.start()
	}
	return x
}

func (x *Early) start() {
	ctx, cancel := context.WithTimeout(context.Background(), x.l.timeout)
	defer cancel()
	res, err := x.l.sealer.Seal(ctx, [][]byte{[]byte(x.hash)})
	switch {
	case err != nil:
		x.seal <- vault.Result{Err: err}
	case len(res) != 1:
		x.seal <- vault.Result{Err: errNoSeal}
	default:
		x.seal <- res[0]
	}
}

// Commit appends the entry, waiting as Record does (and no longer than ctx
// allows). Call it only after the work the entry records was done.
func (x *Early) Commit(ctx context.Context) error {
	_, err := x.CommitWith(ctx, nil)
	return err
}

// CommitAcking is Commit for an entry whose outbox note ack names, as
// Log.RecordAcking.
func (x *Early) CommitAcking(ctx context.Context, ack Ack) (acked bool, err error) {
	x.release()
	return x.l.appendAcking(ctx, &pending{e: x.e, done: make(chan error, 1), early: x, ack: &ack})
}

// CommitWith is Commit with writes that ride in the round trip of the
// entry's append: also queues them on the append's pipeline. They are sent
// only once the entry is sealed, and not undone if the append then fails;
// for writes that may say more than the trail, never less (a reveal's
// note for the access report, its count toward the hourly limit). sent
// says also ran and its pipeline was sent: only then may the caller read
// what also queued (not when ctx ended first, while the flusher may still
// be sending it).
func (x *Early) CommitWith(ctx context.Context, also func(p redis.Pipeliner)) (sent bool, err error) {
	x.release()
	p := &pending{e: x.e, done: make(chan error, 1), early: x, also: also}
	delivered, err := x.l.append(ctx, []*pending{p})
	return delivered && p.alsoRan, err
}

// Cancel drops the entry: the work it would have recorded did not happen.
// An early seal still running finishes and is thrown away.
func (x *Early) Cancel() { x.release() }

func (x *Early) release() {
	x.l.mu.Lock()
	if x.l.early == x {
		x.l.early = nil
	}
	x.l.mu.Unlock()
}

// count records what became of the early seal in earlySeals, once (an
// append retried after another instance moved the head asks again).
func (x *Early) count(used bool) {
	if x == nil || x.counted {
		return
	}
	x.counted = true
	switch {
	case used:
		earlySeals.WithLabelValues("used").Inc()
	case x.seal != nil:
		earlySeals.WithLabelValues("wasted").Inc()
		x.l.mu.Lock()
		x.l.guessAfter = time.Now().Add(guessPause)
		x.l.mu.Unlock()
	default:
		earlySeals.WithLabelValues("none").Inc()
	}
}

// sealOf returns the early seal if it was made for hash and succeeded
// (waiting for it, as long as ctx allows); false means seal it anew. Only
// the flusher calls it.
func (x *Early) sealOf(ctx context.Context, hash string) (vault.Result, bool) {
	if x == nil || x.seal == nil || x.hash != hash {
		return vault.Result{}, false
	}
	if x.got == nil {
		select {
		case r := <-x.seal:
			x.got = &r
		case <-ctx.Done():
			return vault.Result{}, false
		}
	}
	if x.got.Err != nil || x.got.Value == "" {
		return vault.Result{}, false
	}
	return *x.got, true
}

var errNoSeal = errors.New("vault returned no seal")
