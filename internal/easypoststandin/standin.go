// Package easypoststandin is a local stand-in for the part of EasyPost's API
// (v2) piivault uses: shipments (create, one-call buy, buy, retrieve, label
// formats, list, refund), their label files, and tracker webhook events. It
// lets tests and the `make run` demo drive the official client
// (github.com/EasyPost/easypost-go/v5) with no network, with faults to
// inject, and with a record of everything it was sent.
//
// Answers follow the bodies EasyPost publishes (EasyPost/examples,
// official/docs/responses): by default built here with a reduced set of
// their fields, or, with Options.FixturesDir, from those published files
// themselves. State lives in memory only.
package easypoststandin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxBody bounds what a request may send; EasyPost's shipments are far
// smaller.
const maxBody = 1 << 20

// Options configures a Server.
type Options struct {
	// APIKey is required: API requests must carry it as their HTTP Basic
	// user name (the official client's req.SetBasicAuth(key, "")), else
	// they are answered 401.
	APIKey string
	// FixturesDir, when set, is a folder of EasyPost's published response
	// bodies (shipments-create.json, …, trackers-retrieve.json) used as
	// templates; see FixtureFiles.
	FixturesDir string
	// Log receives one debug line per request (method, path, status),
	// never a body: bodies carry customers' addresses.
	Log *slog.Logger
	// Webhook, when set, receives the demo's tracker events (demo.go).
	Webhook Webhook
}

// Request is one request the server received, whatever it answered.
type Request struct {
	Method string
	Path   string
	Query  string
	Body   []byte
	Time   time.Time
}

// Route names for FailNext.
const (
	RouteCreate = "create" // POST /v2/shipments
	RouteBuy    = "buy"    // POST /v2/shipments/{id}/buy
	RouteGet    = "get"    // GET /v2/shipments/{id}
	RouteList   = "list"   // GET /v2/shipments
	RouteLabel  = "label"  // GET /v2/shipments/{id}/label
	RouteRefund = "refund" // POST /v2/shipments/{id}/refund
)

type faultKind int

const (
	faultNone faultKind = iota
	faultUnavailable
	faultSlow
	faultLoseAnswer
)

// FaultMode is what FailNext does to a request.
type FaultMode struct {
	kind  faultKind
	delay time.Duration
}

var (
	// Unavailable answers 503 with an EasyPost error body and does nothing.
	Unavailable = FaultMode{kind: faultUnavailable}
	// LoseAnswer performs the request fully (a buy really buys) and then
	// closes the connection without answering, as a network failure after
	// EasyPost acted would. The client sees a network error, except that
	// Go's transport silently retries a GET (never a POST) that dies on a
	// reused keep-alive connection; each attempt takes one fault.
	LoseAnswer = FaultMode{kind: faultLoseAnswer}
)

// Slow waits d before handling the request normally; if the client gives
// up first, the request is dropped unperformed.
func Slow(d time.Duration) FaultMode { return FaultMode{kind: faultSlow, delay: d} }

// Server is the stand-in. It is an http.Handler; Start serves it on
// loopback.
type Server struct {
	key      []byte
	fx       *fixtures
	log      *slog.Logger
	accounts map[string]string // carrier → carrier_account_id
	files    labelFiles
	webhook  Webhook

	mu        sync.Mutex
	shipments []*shipment // creation order
	byID      map[string]*shipment
	codes     map[string]bool // tracking codes handed out
	requests  []Request
	faults    map[string][]FaultMode
	down      bool
	srv       *http.Server
	base      string // http://127.0.0.1:PORT once started
	user      string // user_id of TrackerEvent's events
}

// New returns a Server; with FixturesDir it loads the published bodies now
// and fails if one is missing or not what it should be.
func New(opts Options) (*Server, error) {
	if opts.APIKey == "" {
		return nil, errors.New("easypoststandin: an API key is required")
	}
	s := &Server{
		key:     []byte(opts.APIKey),
		log:     opts.Log,
		byID:    map[string]*shipment{},
		codes:   map[string]bool{},
		faults:  map[string][]FaultMode{},
		files:   newLabelFiles(),
		webhook: opts.Webhook,
		accounts: map[string]string{
			"USPS": newID("ca_"),
			"UPS":  newID("ca_"),
		},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.FixturesDir != "" {
		fx, err := loadFixtures(opts.FixturesDir)
		if err != nil {
			return nil, err
		}
		s.fx = fx
	}
	return s, nil
}

// Start listens on addr, which must be a loopback address (the stand-in
// holds customers' addresses and has no TLS), and serves until Close.
func (s *Server) Start(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("easypoststandin: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); (ip == nil && host != "localhost") || (ip != nil && !ip.IsLoopback()) {
		return fmt.Errorf("easypoststandin: refusing to listen on %q: loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("easypoststandin: %w", err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("easypoststandin: refusing to listen on %q: loopback only", addr)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		_ = ln.Close()
		return errors.New("easypoststandin: already started")
	}
	s.srv, s.base = srv, "http://"+ln.Addr().String()
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// URL is the API base to give the client ("http://127.0.0.1:PORT/v2/"), or
// "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.base == "" {
		return ""
	}
	return s.base + "/v2/"
}

// Close stops serving and drops open connections.
func (s *Server) Close() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// FailNext makes the next n requests to route (RouteCreate, …) fail as mode
// says; calls queue up. An unknown route panics: it is a test's mistake.
func (s *Server) FailNext(route string, n int, mode FaultMode) {
	switch route {
	case RouteCreate, RouteBuy, RouteGet, RouteList, RouteLabel, RouteRefund:
	default:
		panic(fmt.Sprintf("easypoststandin: FailNext: unknown route %q", route))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[route] = append(s.faults[route], mode)
	}
}

// SetDown makes every API request (not label files) answer 503 while true.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Requests returns every request received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

func (s *Server) takeFault(route string) FaultMode {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[route]
	if len(q) == 0 {
		return FaultMode{}
	}
	s.faults[route] = q[1:]
	return q[0]
}

// ServeHTTP answers EasyPost's API under /v2/ and label files under
// /files/postage_label/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path,
		Query: r.URL.RawQuery, Body: body, Time: time.Now()})
	down := s.down
	s.mu.Unlock()

	path := strings.TrimSuffix(r.URL.Path, "/")
	if strings.HasPrefix(path, demoShipPath) {
		s.demoShip(w, r, strings.TrimPrefix(path, demoShipPath))
		return
	}
	if strings.HasPrefix(path, labelPath) {
		s.serveFile(w, r, strings.TrimPrefix(path, labelPath))
		return
	}
	route, id := match(r.Method, path)
	status, resp := s.api(r, route, id, body, err, down)
	if status == 0 { // LoseAnswer
		s.log.Debug("easypost stand-in", "method", r.Method, "path", r.URL.Path, "route", route, "status", "dropped")
		drop(w)
		return
	}
	s.log.Debug("easypost stand-in", "method", r.Method, "path", r.URL.Path, "route", route, "status", status)
	writeJSON(w, status, resp)
}

// api answers one API request; status 0 means drop the connection.
func (s *Server) api(r *http.Request, route, id string, body []byte, readErr error, down bool) (int, any) {
	if path := r.URL.Path; path != "/v2" && !strings.HasPrefix(path, "/v2/") {
		e := errNotFound()
		return e.status, e.body()
	}
	if down {
		e := errUnavailable()
		return e.status, e.body()
	}
	if user, _, ok := r.BasicAuth(); !ok || subtle.ConstantTimeCompare([]byte(user), s.key) != 1 {
		e := errUnauthorized()
		return e.status, e.body()
	}
	if route == "" {
		e := errNotFound()
		return e.status, e.body()
	}
	if readErr != nil || len(body) > maxBody {
		e := errBadRequest()
		return e.status, e.body()
	}
	fault := s.takeFault(route)
	switch fault.kind {
	case faultUnavailable:
		e := errUnavailable()
		return e.status, e.body()
	case faultSlow:
		if !sleep(r.Context(), fault.delay) {
			return http.StatusServiceUnavailable, errUnavailable().body() // nobody listens
		}
	}
	status, resp := s.handle(r, route, id, body)
	if fault.kind == faultLoseAnswer {
		return 0, nil
	}
	return status, resp
}

func (s *Server) handle(r *http.Request, route, id string, body []byte) (int, any) {
	var (
		status int
		resp   any
		e      *apiError
	)
	switch route {
	case RouteCreate:
		resp, e = s.create(r, body)
		status = http.StatusCreated
	case RouteList:
		resp, e = s.list(r.URL.Query())
	case RouteGet:
		resp, e = s.get(id)
	case RouteBuy:
		resp, e = s.buy(r, id, body)
	case RouteLabel:
		resp, e = s.label(id, r.URL.Query().Get("file_format"))
	case RouteRefund:
		resp, e = s.refund(id)
	}
	if e != nil {
		return e.status, e.body()
	}
	if status == 0 {
		status = http.StatusOK
	}
	return status, resp
}

// match maps a request to its route and shipment id ("" if none).
func match(method, path string) (route, id string) {
	const prefix = "/v2/shipments"
	if path == prefix {
		switch method {
		case http.MethodPost:
			return RouteCreate, ""
		case http.MethodGet:
			return RouteList, ""
		}
		return "", ""
	}
	rest, ok := strings.CutPrefix(path, prefix+"/")
	if !ok || rest == "" {
		return "", ""
	}
	id, action, _ := strings.Cut(rest, "/")
	switch {
	case id == "" || strings.Contains(action, "/"):
		return "", ""
	case action == "" && method == http.MethodGet:
		return RouteGet, id
	case action == "buy" && method == http.MethodPost:
		return RouteBuy, id
	case action == "label" && method == http.MethodGet:
		return RouteLabel, id
	case action == "refund" && method == http.MethodPost:
		return RouteRefund, id
	}
	return "", ""
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"INTERNAL_SERVER_ERROR","message":"encoding failed","errors":[]}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
