package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"piivault/internal/devstack"
)

// clock is a settable time for backoff tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects log output from concurrent drains.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type outboxEnv struct {
	rdb   *redis.Client
	clock *clock
	logs  *syncBuffer
	vault *fakeVault
}

func newOutboxEnv(t *testing.T) *outboxEnv {
	return &outboxEnv{rdb: startRedis(t), clock: &clock{now: time.Now()}, logs: &syncBuffer{}, vault: &fakeVault{}}
}

func (e *outboxEnv) outbox(cfg Config, opts ...Option) *Outbox {
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewOutbox(e.rdb, NewSender(cfg), e.vault, log, append([]Option{WithClock(e.clock.Now)}, opts...)...)
}

func receipt(id string) Message {
	return Message{ID: id, To: "jane@example.com", Subject: "Ihre Anfrage", Text: "Ihre Daten sind gelöscht.\n"}
}

func drain(t *testing.T, o *Outbox) int {
	t.Helper()
	n, err := o.Drain(context.Background())
	require.NoError(t, err)
	return n
}

func pending(t *testing.T, o *Outbox) int64 {
	t.Helper()
	n, err := o.Pending(context.Background())
	require.NoError(t, err)
	return n
}

func TestOutboxDelivers(t *testing.T) {
	env := newOutboxEnv(t)
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	o := env.outbox(localConfig(port))
	ctx := context.Background()

	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	require.Empty(t, relay.Messages(), "Enqueue does not wait on SMTP")
	require.EqualValues(t, 1, pending(t, o))

	// Every key has a TTL, and none holds the recipient, subject or body.
	keys, err := env.rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"piivault:{mail}:seen:receipt:r1", "piivault:{mail}:msg:receipt:r1", "piivault:{mail}:queue"}, keys)
	for _, k := range keys {
		ttl, err := env.rdb.TTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 6*24*time.Hour, k)
		dump, err := env.rdb.Dump(ctx, k).Result()
		require.NoError(t, err)
		for _, pii := range []string{"jane", "Ihre Anfrage", "gelöscht"} {
			require.NotContains(t, dump, pii, k)
		}
	}

	require.Equal(t, 1, drain(t, o))
	require.EqualValues(t, 0, pending(t, o))
	got := relay.Messages()
	require.Len(t, got, 1)
	require.Equal(t, "no-reply@shop.test", got[0].From)
	require.Equal(t, []string{"jane@example.com"}, got[0].To)
	require.Equal(t, "Ihre Anfrage", got[0].Header(t, "Subject"))
	require.Equal(t, "<"+messageID("receipt:r1", "shop.test")+">", got[0].Header(t, "Message-ID"))
	require.Equal(t, "auto-generated", got[0].Header(t, "Auto-Submitted"))
	require.Contains(t, got[0].Body(t), "Ihre Daten sind gel=C3=B6scht.")

	// Only the dedupe marker is left, and it expires.
	keys, err = env.rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"piivault:{mail}:seen:receipt:r1"}, keys)
	require.Equal(t, 0, drain(t, o))
	require.Len(t, relay.Messages(), 1)
	require.NotContains(t, env.logs.String(), "jane")
}

// TestOutboxDedupe: an id enqueued again, before or after it was sent, is
// sent once.
func TestOutboxDedupe(t *testing.T) {
	env := newOutboxEnv(t)
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	o := env.outbox(localConfig(port))
	ctx := context.Background()

	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	require.EqualValues(t, 1, pending(t, o))
	require.Equal(t, 1, drain(t, o))
	env.clock.Advance(6 * 24 * time.Hour)
	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	require.Equal(t, 0, drain(t, o))
	require.Len(t, relay.Messages(), 1)
}

// TestOutboxRelayDown: a message the relay cannot take stays queued, is
// retried after its backoff, and is delivered once.
func TestOutboxRelayDown(t *testing.T) {
	env := newOutboxEnv(t)
	port, err := devstack.FreePort()
	require.NoError(t, err)
	o := env.outbox(localConfig(port))
	ctx := context.Background()

	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	require.Equal(t, 0, drain(t, o), "nothing listens on the port")
	require.EqualValues(t, 1, pending(t, o))
	require.Contains(t, env.logs.String(), "mail not sent, will retry")

	relay, _ := startRelay(t, fmt.Sprintf("127.0.0.1:%d", port), plainRelay, nil)
	require.Equal(t, 0, drain(t, o), "not due before its backoff")
	env.clock.Advance(61 * time.Second)
	require.Equal(t, 1, drain(t, o))
	require.Equal(t, 0, drain(t, o))
	env.clock.Advance(time.Hour)
	require.Equal(t, 0, drain(t, o))
	require.Len(t, relay.Messages(), 1)
	require.EqualValues(t, 0, pending(t, o))
	require.NotContains(t, env.logs.String(), "jane")
}

// TestOutboxGivesUp: a refused message is retried for the retry window,
// then given up and its id forgotten.
func TestOutboxGivesUp(t *testing.T) {
	env := newOutboxEnv(t)
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	relay.refuse(&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<jane@example.com>: no such user"})
	o := env.outbox(localConfig(port), WithRetryFor(10*time.Minute))
	ctx := context.Background()

	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	for range 3 {
		require.Equal(t, 0, drain(t, o))
		require.EqualValues(t, 1, pending(t, o), "an SMTP failure never drops a message")
		env.clock.Advance(3 * time.Minute)
	}
	attempts, err := env.rdb.HGet(ctx, msgKey("receipt:r1"), "attempts").Result()
	require.NoError(t, err)
	require.Equal(t, "3", attempts)

	env.clock.Advance(5 * time.Minute)
	require.Equal(t, 0, drain(t, o))
	require.EqualValues(t, 0, pending(t, o))
	require.Contains(t, env.logs.String(), "mail given up")
	require.NotContains(t, env.logs.String(), "jane")

	relay.refuse(nil)
	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")), "a given-up id may be enqueued afresh")
	require.Equal(t, 1, drain(t, o))
	require.Len(t, relay.Messages(), 1)
}

// TestOutboxVaultDown: a message that cannot be opened is retried, not lost;
// one that cannot be sealed is not stored and Enqueue says so.
func TestOutboxVaultDown(t *testing.T) {
	env := newOutboxEnv(t)
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	o := env.outbox(localConfig(port))
	ctx := context.Background()

	require.NoError(t, o.Enqueue(ctx, receipt("receipt:r1")))
	env.vault.down = true
	require.Error(t, o.Enqueue(ctx, receipt("receipt:r2")))
	require.Equal(t, 0, drain(t, o))
	require.EqualValues(t, 1, pending(t, o))

	env.vault.down = false
	env.clock.Advance(2 * time.Minute)
	require.Equal(t, 1, drain(t, o))
	require.Len(t, relay.Messages(), 1)
}

// TestOutboxConcurrentDrains: instances draining at once send each message
// once.
func TestOutboxConcurrentDrains(t *testing.T) {
	env := newOutboxEnv(t)
	relay, port := startRelay(t, "127.0.0.1:0", plainRelay, nil)
	ctx := context.Background()
	first := env.outbox(localConfig(port))
	for i := range 30 {
		require.NoError(t, first.Enqueue(ctx, receipt(fmt.Sprintf("receipt:r%d", i))))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 3 {
		o := env.outbox(localConfig(port))
		wg.Go(func() {
			n, err := o.Drain(ctx)
			require.NoError(t, err)
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Equal(t, 30, total)
	require.Len(t, relay.Messages(), 30)
}

func TestOutboxEnqueueInvalid(t *testing.T) {
	env := newOutboxEnv(t)
	o := env.outbox(localConfig(1))
	tests := []struct {
		name string
		m    Message
	}{
		{name: "no id", m: Message{To: "jane@example.com"}},
		{name: "id too long", m: Message{ID: strings.Repeat("x", 201), To: "jane@example.com"}},
		{name: "no recipient", m: Message{ID: "receipt:r1"}},
		{name: "recipient not an address", m: Message{ID: "receipt:r1", To: "jane"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := o.Enqueue(context.Background(), tt.m)
			require.True(t, errors.Is(err, ErrInvalid), err)
			require.EqualValues(t, 0, pending(t, o))
		})
	}
}

func TestBackoff(t *testing.T) {
	o := NewOutbox(nil, nil, nil, nil)
	tests := []struct {
		attempts int64
		want     time.Duration
	}{
		{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, time.Hour}, {40, time.Hour},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempts), func(t *testing.T) {
			require.Equal(t, tt.want, o.backoff(tt.attempts))
		})
	}
}
