package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"

	"piivault/api"
	"piivault/internal/apperr"
	"piivault/internal/web"
)

// The API document (api/openapi.yaml) is held true three ways here:
// TestOpenAPIRoutes compares it with Gin's route table; every answer the
// API tests receive through harness.call (and every answer the client
// tests receive) is validated against it by conform; and
// TestOpenAPIErrorStatuses checks each documented error code's status
// against internal/web's table.

// openAPI is the served document, loaded and validated once per test
// binary, with the router that finds a request's operation in it.
var openAPI = sync.OnceValues(func() (*openAPIDoc, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.JSON())
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, err
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &openAPIDoc{doc: doc, router: router}, nil
})

type openAPIDoc struct {
	doc    *openapi3.T
	router routers.Router
}

func mustOpenAPI(t testing.TB) *openAPIDoc {
	t.Helper()
	d, err := openAPI()
	require.NoError(t, err, "api/openapi.yaml")
	return d
}

var conformOptions = &openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc, // the server judges credentials
	IncludeResponseStatus: true,                                  // an undocumented status is a mismatch
	SkipSettingDefaults:   true,
}

// conform fails t when an answer of a documented operation does not match
// the document: its status must be listed, its headers and body must fit
// that status's schema. A request the server accepted (2xx) must also be
// one the document accepts, so request schemas are no stricter than the
// server. Requests to undocumented paths or methods (404, 405 tests) are
// left to TestOpenAPIRoutes. req's body is read again through GetBody.
func conform(t testing.TB, req *http.Request, status int, header http.Header, raw []byte) {
	t.Helper()
	d, err := openAPI()
	if err != nil {
		t.Errorf("openapi: %v", err)
		return
	}
	route, params, err := d.router.FindRoute(req)
	if err != nil {
		return
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: conformOptions}
	where := req.Method + " " + req.URL.Path + " → " + strconv.Itoa(status)
	if status >= 200 && status < 300 {
		sent := req.Clone(ctx)
		sent.Body = http.NoBody
		if req.GetBody != nil {
			if sent.Body, err = req.GetBody(); err != nil {
				t.Errorf("openapi: %s: request body: %v", where, err)
				return
			}
		}
		body, err := io.ReadAll(sent.Body)
		if err != nil {
			t.Errorf("openapi: %s: request body: %v", where, err)
			return
		}
		sent.Body = io.NopCloser(bytes.NewReader(body))
		key := validKey(req.Header, req.Method, req.URL.RequestURI(), string(body))
		if _, ok := validated.Load(key); !ok {
			rin := *in
			rin.Request = sent
			if err := openapi3filter.ValidateRequest(ctx, &rin); err != nil {
				t.Errorf("openapi: %s: the server accepted a request the document refuses: %v", where, err)
			} else {
				validated.Store(key, true)
			}
		}
	}
	key := validKey(header, req.Method, route.Path, strconv.Itoa(status), string(raw))
	if _, ok := validated.Load(key); ok {
		return
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: conformOptions}
	out.SetBodyBytes(raw)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("openapi: %s: the answer does not match the document: %v\nbody: %.400s", where, err, raw)
		return
	}
	validated.Store(key, true)
}

// validated remembers the requests and answers already found to match:
// some tests poll one route thousands of times, and each validation
// compiles its schemas (a few milliseconds).
var validated sync.Map

// validKey identifies one validation's input: the header (but its Date)
// and the given parts.
func validKey(h http.Header, parts ...string) [sha256.Size]byte {
	m := sha256.New()
	for _, p := range parts {
		m.Write([]byte(strconv.Itoa(len(p)) + ":" + p))
	}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if k != "Date" {
			m.Write([]byte(k + "=" + strings.Join(h[k], "\x00") + "\n"))
		}
	}
	return [sha256.Size]byte(m.Sum(nil))
}

// conform is harness.call's hook.
func (h *harness) conform(req *http.Request, r response) {
	h.t.Helper()
	conform(h.t, req, r.Status, r.Header, r.Raw)
}

// conformingTransport validates every answer a client (package client)
// receives, as harness.call does.
type conformingTransport struct{ t testing.TB }

func (c conformingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	conform(c.t, req, resp.StatusCode, resp.Header, raw)
	return resp, nil
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIRoutes fails on any /v1 route the server registers that the
// document does not describe, and on any documented operation the server
// does not register.
func TestOpenAPIRoutes(t *testing.T) {
	d := mustOpenAPI(t)
	h := newHarness(t, nil, nil)
	engine, err := h.app.handler()
	require.NoError(t, err)

	registered := map[string]bool{}
	for _, r := range engine.Routes() {
		if strings.HasPrefix(r.Path, "/v1/") {
			registered[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
		}
	}
	documented := map[string]bool{}
	for path, item := range d.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	require.Empty(t, missing, "routes the server registers that api/openapi.yaml does not document")
	require.Empty(t, extra, "operations api/openapi.yaml documents that the server does not register")
	require.NotEmpty(t, registered)
}

// TestOpenAPIOperations holds every operation to what the middleware in
// front of it can answer: an id, and the statuses any route may give.
func TestOpenAPIOperations(t *testing.T) {
	d := mustOpenAPI(t)
	ids := map[string]bool{}
	for path, item := range d.doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			require.NotEmpty(t, op.OperationID, name)
			require.False(t, ids[op.OperationID], "%s: operationId %s twice", name, op.OperationID)
			ids[op.OperationID] = true
			// Redis and Vault can fail anywhere; a panic is a 500.
			for _, s := range []int{500, 503} {
				require.NotNil(t, op.Responses.Status(s), "%s: %d", name, s)
			}
			// Every /v1 route but the webhooks and inbound email (judged by
			// their credentials, from providers' shared IPs) refuses blocked IPs.
			if !strings.HasPrefix(path, "/v1/webhooks/") && !strings.HasPrefix(path, "/v1/inbound/") {
				require.NotNil(t, op.Responses.Status(403), "%s: 403 blocked", name)
			}
			// A route behind a bearer answers a bad one with 401.
			if op.Security != nil && len(*op.Security) > 0 {
				require.NotNil(t, op.Responses.Status(401), "%s: 401", name)
			}
		}
	}
}

// TestOpenAPIErrorStatuses checks the error codes: every code of
// internal/apperr is in the document, and each error answer an operation
// documents lists only codes that internal/web maps to its status.
func TestOpenAPIErrorStatuses(t *testing.T) {
	d := mustOpenAPI(t)
	enum := d.doc.Components.Schemas["ErrorCode"].Value.Enum
	codes := apperrCodes(t)
	require.NotEmpty(t, codes)
	listed := map[string]bool{}
	for path, item := range d.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				n, err := strconv.Atoi(status)
				require.NoError(t, err, "%s %s: status %q", method, path, status)
				for _, code := range errorCodesOf(ref) {
					listed[code] = true
					require.Equal(t, web.Status(apperr.Code(code)), n,
						"%s %s: code %s documented under %d, internal/web answers it with %d", method, path, code, n, web.Status(apperr.Code(code)))
				}
			}
		}
	}
	// Codes that only ever come per order inside a batch's 200 answer
	// (label purchases), each beside the status it has everywhere.
	for _, v := range d.doc.Components.Schemas["PerOrderError"].Value.AllOf[1].Value.Properties["code"].Value.Enum {
		listed[v.(string)] = true
	}
	for _, c := range codes {
		require.Contains(t, enum, any(c), "ErrorCode lacks apperr code %s", c)
		require.True(t, listed[c], "no operation documents apperr code %s (status %d)", c, web.Status(apperr.Code(c)))
	}
}

// errorCodesOf returns the codes an error answer's schema admits: the
// enum its own allOf part puts on error.code.
func errorCodesOf(ref *openapi3.ResponseRef) []string {
	mt := ref.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	var out []string
	for _, part := range mt.Schema.Value.AllOf {
		if part.Ref != "" {
			continue // the shared Error schema, which admits every code
		}
		e := part.Value.Properties["error"]
		if e == nil || e.Value.Properties["code"] == nil {
			continue
		}
		for _, v := range e.Value.Properties["code"].Value.Enum {
			out = append(out, v.(string))
		}
	}
	return out
}

// apperrCodes lists the values of internal/apperr's Code constants, read
// from its source so a new code cannot be left out of the document.
func apperrCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../internal/apperr/apperr.go", nil, 0)
	require.NoError(t, err)
	var codes []string
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					s, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					codes = append(codes, s)
				}
			}
		}
	}
	return codes
}

// TestOpenAPIServed: the document is public and cacheable, unlike every
// other answer, and is the embedded YAML as JSON.
func TestOpenAPIServed(t *testing.T) {
	h := newHarness(t, nil, nil)
	r := h.call("GET", "/v1/openapi.json", "", nil)
	require.Equal(t, 200, r.Status, string(r.Raw))
	require.Equal(t, "public, max-age="+api.MaxAge, r.Header.Get("Cache-Control"))
	require.Equal(t, "3.1.0", r.Body["openapi"])
	require.JSONEq(t, string(api.JSON()), string(r.Raw))
	etag := r.Header.Get("ETag")
	require.NotEmpty(t, etag)

	again := h.call("GET", "/v1/openapi.json", "", nil, "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, again.Status)
	require.Empty(t, again.Raw)

	// Every other answer still may not be cached.
	other := h.call("GET", "/v1/orders/x", h.apiKey, nil)
	require.Equal(t, "no-store", other.Header.Get("Cache-Control"))
}
