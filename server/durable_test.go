package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"piivault/internal/apperr"
	"piivault/internal/writes"
)

// replicas answers Wait with err and counts the calls.
type replicas struct {
	err   error
	calls int
}

func (r *replicas) Wait(context.Context) error { r.calls++; return r.err }

func TestDurableHoldsAcknowledgementsUntilReplicasHaveThem(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	timeout := apperr.Wrap(apperr.StoreUnavailable, errors.New("WAIT"), "the change reached 0 of 1 Redis replicas in time; retry")
	tests := []struct {
		name       string
		method     string
		status     int
		waitErr    error
		wantStatus int
		wantWaits  int
		wantBody   string
		wrote      bool // the handler marked a write (a reveal's audit entry)
	}{
		{"a created order waits, then goes out", "POST", 201, nil, 201, 1, `{"ok":true}`, false},
		{"a replayed change waits too", "POST", 200, nil, 200, 1, `{"ok":true}`, false},
		{"a purge waits", "DELETE", 200, nil, 200, 1, `{"ok":true}`, false},
		{"a console redirect waits", "POST", 303, nil, 303, 1, `{"ok":true}`, false},
		{"a refusal changed nothing", "POST", 422, nil, 422, 0, `{"ok":true}`, false},
		{"a failure acknowledged nothing", "POST", 503, nil, 503, 0, `{"ok":true}`, false},
		{"a read that wrote nothing does not wait", "GET", 200, nil, 200, 0, `{"ok":true}`, false},
		{"a read that wrote (a reveal) waits", "GET", 200, nil, 200, 1, `{"ok":true}`, true},
		{"a reveal is not sent when replicas are too slow", "GET", 200, timeout, 503, 1, "store_unavailable", true},
		{"a refused reveal goes out at once", "GET", 423, nil, 423, 0, `{"ok":true}`, true},
		{"replicas too slow: 503, not the answer", "POST", 201, timeout, 503, 1, "store_unavailable", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := &replicas{err: tt.waitErr}
			s := &srv{d: Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Replicas: rep}}
			r := gin.New()
			r.Use(func(c *gin.Context) { c.Header("X-Frame-Options", "DENY"); c.Next() }, s.durable)
			r.Handle(tt.method, "/x", func(c *gin.Context) {
				if tt.wrote {
					writes.Mark(c.Request.Context())
				}
				c.Header("Set-Cookie", "session=1")
				c.JSON(tt.status, gin.H{"ok": true})
			})
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(tt.method, "/x", nil))
			require.Equal(t, tt.wantStatus, w.Code)
			require.Contains(t, w.Body.String(), tt.wantBody)
			require.Equal(t, tt.wantWaits, rep.calls)
			require.Equal(t, "DENY", w.Header().Get("X-Frame-Options"), "headers set before the handler stay")
			if tt.waitErr != nil {
				require.Empty(t, w.Header().Get("Set-Cookie"), "nothing the handler meant to send goes with the 503")
				require.NotContains(t, w.Body.String(), `"ok"`)
			} else {
				require.Equal(t, "session=1", w.Header().Get("Set-Cookie"))
			}
		})
	}
}

func TestDurableLetsRecoveryAnswerAPanic(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	rep := &replicas{}
	s := &srv{d: Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Replicas: rep}}
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, _ any) {
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal"})
	}), s.durable)
	r.POST("/x", func(*gin.Context) { panic("boom") })
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("POST", "/x", nil))
	require.Equal(t, 500, w.Code)
	require.Contains(t, w.Body.String(), "internal")
	require.Zero(t, rep.calls)
}
