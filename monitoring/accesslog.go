// Package monitoring watches piivault from the outside in: the IP-only
// access log, Prometheus metrics, rate limits, and the intrusion monitor
// that blocks IPs, suspends staff and sends alerts.
//
//	piivault:{access}:log          stream  access log entries (kept; trimmed to PIIVAULT_ACCESS_LOG_MAX)
//	piivault:{blocks}:ips          hash    ip → JSON {ip, reason, blocked_at, expires_at}
//	piivault:{blocks}:until        zset    ip scored by the block's expiry (ms): checked on every request
//	piivault:{mon}:fail:<ip>       string  failed and in-flight authentications in the current window (TTL)
//	piivault:{mon}:loginaudit:<ip> string  set when this window's failed-login audit entry is written (TTL)
//	piivault:{mon}:reveal:<user>   string  reveals in the current hour (TTL)
//	piivault:{mon}:badsig:<provider> string bad webhook signatures in the current window (TTL), for the alert
//	piivault:{rl}:<limit>:<who>    string  requests in the current rate-limit window (TTL)
package monitoring

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

const accessKey = "piivault:{access}:log"

// AccessLog writes one line per request: time, client IP, method, route
// template, status, latency and bytes — never a query string, header,
// token, body or name. Lines go to log and, when keep is set, to the Redis
// stream the operator keeps (off the response path).
func AccessLog(log *slog.Logger, keep *AccessStore) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		lat := time.Since(start)
		status := c.Writer.Status()
		size := max(c.Writer.Size(), 0)
		ip := c.ClientIP()
		method := Method(c.Request.Method)
		// The record is built here, not by LogAttrs, so that no caller's
		// program counter is looked up: a stack walk per request for a
		// source position the handler never prints.
		ctx := c.Request.Context()
		if h := log.Handler(); h.Enabled(ctx, slog.LevelInfo) {
			r := slog.NewRecord(time.Now(), slog.LevelInfo, "access", 0)
			r.AddAttrs(slog.String("ip", ip), slog.String("method", method), slog.String("route", route),
				slog.Int("status", status), slog.Duration("latency", lat), slog.Int("bytes", size))
			_ = h.Handle(ctx, r)
		}
		requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		requestSeconds.WithLabelValues(route).Observe(lat.Seconds())
		if keep != nil {
			keep.keep(accessLine{start: start, ip: ip, method: method, route: route, status: status, lat: lat, size: size})
		}
	}
}

// accessLine is one request's kept line, formatted by the writer.
type accessLine struct {
	start             time.Time
	ip, method, route string
	status, size      int
	lat               time.Duration
}

// values is the line as the stream's fields, always in this order.
func (l accessLine) values() []any {
	return []any{"time", l.start.UTC().Format(time.RFC3339Nano), "ip", l.ip, "method", l.method, "route", l.route,
		"status", l.status, "latency_ms", l.lat.Milliseconds(), "bytes", l.size}
}

// Method names a request method for logs and metrics from a closed set:
// any other method (a client may send any token, of any length) is OTHER,
// so no request can grow a metric's label set or an access line.
func Method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "OTHER"
}

// AccessStore keeps access lines in a Redis stream, capped at about max
// entries. Every field of a line comes from a closed set or is bounded (an
// IP, a route template, a fixed method set, numbers), so a line is under
// 200 bytes and the count cap is a size cap too (1M lines: under 200 MB).
// Lines wait in a bounded queue and Run writes them in pipelined groups
// every AccessKeepEvery; when the queue is full a line is dropped and
// counted (it is still in the process log), so no request ever waits on it.
type AccessStore struct {
	rdb   redis.UniversalClient
	max   int64
	every time.Duration
	queue chan accessLine
	log   *slog.Logger
}

// AccessKeepEvery is how often queued access lines are written to Redis.
// Written on a tick, not as each request ends: a write per request woke
// a goroutine and made a Redis round trip beside every answer, which at
// low load cost each request more than the line is worth.
const AccessKeepEvery = 50 * time.Millisecond

// NewAccessStore builds an AccessStore.
func NewAccessStore(rdb redis.UniversalClient, max int64, log *slog.Logger) *AccessStore {
	return &AccessStore{rdb: rdb, max: max, every: AccessKeepEvery, queue: make(chan accessLine, 8192), log: log}
}

func (a *AccessStore) keep(line accessLine) {
	select {
	case a.queue <- line:
	default:
		accessDropped.Inc()
	}
}

// Run writes queued lines every AccessKeepEvery until ctx ends, then
// writes what is left.
func (a *AccessStore) Run(ctx context.Context) {
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.writeQueued()
		case <-ctx.Done():
			a.writeQueued()
			return
		}
	}
}

// writeQueued writes every queued line, up to 512 per pipeline.
func (a *AccessStore) writeQueued() {
	for len(a.queue) > 0 {
		a.write()
	}
}

// write sends up to 512 queued lines in one pipeline.
func (a *AccessStore) write() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := a.rdb.Pipeline()
loop:
	for n := 0; n < 512; n++ {
		select {
		case line := <-a.queue:
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: accessKey, MaxLen: a.max, Approx: true, Values: line.values()})
		default:
			break loop
		}
	}
	if pipe.Len() == 0 {
		return
	}
	if _, err := pipe.Exec(ctx); err != nil {
		accessDropped.Inc()
		a.log.Warn("access log not kept in redis", "err", err)
	}
}
