package monitoring

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// BenchmarkAccessLog is the access log's cost to one request (its line
// to the process log, its metrics and its queueing for the kept stream)
// around a handler that does nothing, as serve's JSON log writes it.
func BenchmarkAccessLog(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	keep := NewAccessStore(nil, 1000, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := gin.New()
	r.Use(AccessLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), keep))
	r.GET("/v1/orders/:id", func(c *gin.Context) { c.Status(http.StatusNoContent) })
	req := httptest.NewRequest(http.MethodGet, "/v1/orders/ord-1", nil)
	req.RemoteAddr = "192.0.2.55:4000"
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		r.ServeHTTP(w, req)
		for len(keep.queue) > 0 { // the writer's share is not timed here
			<-keep.queue
		}
	}
}
