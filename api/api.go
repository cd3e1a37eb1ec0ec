// Package api owns piivault's HTTP API document: openapi.yaml (OpenAPI
// 3.1), written by hand beside the route table in server/server.go, and
// served as JSON at GET /v1/openapi.json.
//
// The document is held true by tests in cmd/piivault: one walks Gin's
// registered routes and fails on a /v1 route missing from it (or
// documented and not registered); the API tests validate every response
// they receive against it; and the error codes' statuses are checked
// against internal/web's table.
package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"

	"github.com/gin-gonic/gin"
	"sigs.k8s.io/yaml"
)

// YAML is the document as written.
//
//go:embed openapi.yaml
var YAML []byte

// MaxAge is how long clients and caches may keep the served document.
const MaxAge = "3600"

// document is YAML converted once, when the binary starts: the file is
// embedded and tested, so a conversion error is a build defect and stops
// the start-up loudly rather than serving a 500.
var document = mustJSON(YAML)

type converted struct {
	json []byte
	etag string
}

func mustJSON(y []byte) converted {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		panic("api: openapi.yaml does not convert to JSON: " + err.Error())
	}
	sum := sha256.Sum256(j)
	return converted{json: j, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// JSON returns the document as served.
func JSON() []byte { return document.json }

// Serve handles GET /v1/openapi.json: public and cacheable. It overrides
// the Cache-Control: no-store every other answer carries, since the
// document holds nothing but the API's shape and changes only with the
// binary (the ETag says which build's it is).
func Serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "public, max-age="+MaxAge)
	h.Set("ETag", document.etag)
	h.Set("Access-Control-Allow-Origin", "*") // viewers on other origins may read it
	if c.GetHeader("If-None-Match") == document.etag {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", document.json)
}
