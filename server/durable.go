package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"

	"piivault/internal/writes"
)

// Replicas makes an acknowledged change wait for Redis replicas
// (PIIVAULT_REDIS_WAIT); see internal/replication.
type Replicas interface {
	Wait(ctx context.Context) error
}

// durable holds back the answer to every request that changed something
// until the replicas have what the handler wrote: any method but GET, HEAD
// and OPTIONS, and a read whose handling wrote (a reveal's audit entry,
// reveal list and counter: the writers mark the request, see
// internal/writes). One place covers every acknowledged change and every
// answer that reveals, API, webhooks and console alike, including the
// idempotent replay of a change an earlier, timed-out attempt made.
// Refusals (4xx) changed nothing and failures (5xx) acknowledged nothing:
// they go out at once. A timeout turns the answer into a 503; the caller
// retries, which every such route makes safe.
func (s *srv) durable(c *gin.Context) {
	ctx, wrote := writes.Track(c.Request.Context())
	c.Request = c.Request.WithContext(ctx)
	before := c.Writer.Header().Clone()
	held := &heldWriter{ResponseWriter: c.Writer, status: http.StatusOK}
	c.Writer = held
	// A panic below is answered by the recovery middleware: on the real writer.
	defer func() { c.Writer = held.ResponseWriter }()
	c.Next()
	c.Writer = held.ResponseWriter
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		wrote.Store(true)
	}
	if held.status < http.StatusBadRequest && wrote.Load() {
		if err := s.d.Replicas.Wait(c.Request.Context()); err != nil {
			// Nothing the handler meant to send (a cookie, a Location) goes
			// with the 503; the headers set before it (security, CORS) do.
			h := c.Writer.Header()
			clear(h)
			for k, v := range before {
				h[k] = v
			}
			s.fail(c, err)
			return
		}
	}
	c.Writer.WriteHeader(held.status)
	c.Writer.WriteHeaderNow()
	if held.body.Len() > 0 {
		_, _ = c.Writer.Write(held.body.Bytes())
	}
}

// heldWriter keeps the status and body in memory until durable lets them go.
type heldWriter struct {
	gin.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *heldWriter) WriteHeader(code int) {
	if code > 0 && !w.wrote {
		w.status = code
	}
}

func (w *heldWriter) WriteHeaderNow() { w.wrote = true }

// Hijack is refused: a held answer cannot hand its connection away.
func (w *heldWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("hijack of a held response")
}

func (w *heldWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.body.Write(b)
}

func (w *heldWriter) WriteString(s string) (int, error) {
	w.wrote = true
	return w.body.WriteString(s)
}

func (w *heldWriter) Status() int   { return w.status }
func (w *heldWriter) Size() int     { return w.body.Len() }
func (w *heldWriter) Written() bool { return w.wrote }
func (w *heldWriter) Flush()        {}
