// Package monitoring watches piivault from the outside in: the IP-only
// access log, Prometheus metrics, rate limits, and the intrusion monitor
// that blocks IPs, suspends staff and sends alerts.
//
//	piivault:{access}:log          stream  access log entries (kept; trimmed to PIIVAULT_ACCESS_LOG_MAX)
//	piivault:{blocks}:ips          hash    ip → JSON {reason, at}
//	piivault:{mon}:fail:<ip>       string  failed authentications in the current window (TTL)
//	piivault:{mon}:reveal:<user>   string  reveals in the current hour (TTL)
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
// token, body or name. Lines go to log and, when rdb is set, to a Redis
// stream kept for the operator (capped at max entries, approximately).
func AccessLog(log *slog.Logger, rdb redis.UniversalClient, max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		lat := time.Since(start)
		status := c.Writer.Status()
		size := c.Writer.Size()
		if size < 0 {
			size = 0
		}
		ip := c.ClientIP()
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, "access",
			slog.String("ip", ip), slog.String("method", c.Request.Method), slog.String("route", route),
			slog.Int("status", status), slog.Duration("latency", lat), slog.Int("bytes", size))
		requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
		requestSeconds.WithLabelValues(route).Observe(lat.Seconds())
		if rdb != nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), time.Second)
			defer cancel()
			err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: accessKey, MaxLen: max, Approx: true, Values: map[string]any{
				"time": start.UTC().Format(time.RFC3339Nano), "ip": ip, "method": c.Request.Method, "route": route,
				"status": status, "latency_ms": lat.Milliseconds(), "bytes": size,
			}}).Err()
			if err != nil {
				log.Warn("access log not kept in redis", "err", err)
			}
		}
	}
}
