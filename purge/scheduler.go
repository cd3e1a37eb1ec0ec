package purge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/redis/go-redis/v9"
)

// RedisLocker is gocron's distributed Locker on Redis: SET NX PX with a
// random token. The lease expires by itself if its holder dies. Unlock keeps
// the lease until minHold has passed since it was taken, so an instance whose
// clock runs a little behind cannot start the same run again right after a
// fast job ends; it deletes the lease only while it still holds its token.
type RedisLocker struct {
	rdb     redis.UniversalClient
	lease   time.Duration
	minHold time.Duration
}

// NewRedisLocker builds a locker whose leases last at most lease and at
// least minHold.
func NewRedisLocker(rdb redis.UniversalClient, lease, minHold time.Duration) *RedisLocker {
	return &RedisLocker{rdb: rdb, lease: lease, minHold: minHold}
}

var errLocked = errors.New("job is locked by another instance")

// Lock takes the job's lease or fails (gocron then skips this run).
func (l *RedisLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	token := hex.EncodeToString(raw)
	k := "piivault:{lock}:" + key
	ok, err := l.rdb.SetNX(ctx, k, token, l.lease).Result()
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	if !ok {
		return nil, errLocked
	}
	return &redisLock{rdb: l.rdb, key: k, token: token, until: time.Now().Add(l.minHold)}, nil
}

type redisLock struct {
	rdb   redis.UniversalClient
	key   string
	token string
	until time.Time // keep the lease at least until then
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local keep = tonumber(ARGV[2])
if keep > 0 then return redis.call('PEXPIRE', KEYS[1], keep) end
return redis.call('DEL', KEYS[1])`)

// Unlock gets the job's context, which is cancelled on shutdown: it must
// still release the lease then.
func (l *redisLock) Unlock(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	keep := time.Until(l.until).Milliseconds()
	return unlockScript.Run(ctx, l.rdb, []string{l.key}, l.token, max(keep, 0)).Err()
}

// Job is another periodic job the scheduler runs under its lease (the
// audit trail's archiver).
type Job struct {
	Name  string
	Every time.Duration
	Run   func(context.Context) error
}

// Schedule runs the retention sweep every sweepEvery, the key shredder
// every hour (it rotates once a day) and the extra jobs, each on one
// instance at a time. It returns when ctx ends.
func Schedule(ctx context.Context, p *Purger, s *Shredder, locker gocron.Locker, sweepEvery time.Duration, log *slog.Logger, extra ...Job) error {
	sched, err := gocron.NewScheduler(gocron.WithDistributedLocker(locker))
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	sweepInterval.Set(sweepEvery.Seconds())
	jobs := append([]Job{
		{"retention-sweep", sweepEvery, func(ctx context.Context) error { _, err := p.Sweep(ctx); return err }},
		{"key-shred", time.Hour, func(ctx context.Context) error { _, err := s.Run(ctx, false); return err }},
	}, extra...)
	for _, j := range jobs {
		_, err := sched.NewJob(gocron.DurationJob(j.Every), gocron.NewTask(func(ctx context.Context) {
			if err := j.Run(ctx); err != nil {
				log.Error("scheduled job failed", "job", j.Name, "err", err)
			}
		}), gocron.WithName(j.Name), gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithStartAt(gocron.WithStartImmediately()))
		if err != nil {
			return fmt.Errorf("schedule %s: %w", j.Name, err)
		}
	}
	sched.Start()
	<-ctx.Done()
	return sched.Shutdown()
}
