// Package web holds what every HTTP handler of piivault shares: the one table
// that maps error codes to HTTP statuses, strict JSON decoding with a body
// limit, and the authenticated caller attached to a request.
package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"piivault/internal/apperr"
)

// MaxBody is the largest request body piivault reads (SPEC: 16 KiB).
const MaxBody = 16 << 10

var statusOf = map[apperr.Code]int{
	apperr.Invalid:            http.StatusBadRequest,
	apperr.StaleEvent:         http.StatusBadRequest,
	apperr.Validation:         http.StatusUnprocessableEntity,
	apperr.TooLarge:           http.StatusRequestEntityTooLarge,
	apperr.UnsupportedMedia:   http.StatusUnsupportedMediaType,
	apperr.Unauthorized:       http.StatusUnauthorized,
	apperr.Forbidden:          http.StatusForbidden,
	apperr.Blocked:            http.StatusForbidden,
	apperr.NotFound:           http.StatusNotFound,
	apperr.NotConfigured:      http.StatusNotFound,
	apperr.Gone:               http.StatusGone,
	apperr.Conflict:           http.StatusConflict,
	apperr.RateLimited:        http.StatusTooManyRequests,
	apperr.LockedDown:         http.StatusLocked,
	apperr.VaultUnavailable:   http.StatusServiceUnavailable,
	apperr.StoreUnavailable:   http.StatusServiceUnavailable,
	apperr.Internal:           http.StatusInternalServerError,
	apperr.AddressRejected:    http.StatusUnprocessableEntity,
	apperr.NoRate:             http.StatusUnprocessableEntity,
	apperr.CarrierRefused:     http.StatusUnprocessableEntity,
	apperr.CarrierUnavailable: http.StatusServiceUnavailable,
	apperr.CarrierTimeout:     http.StatusGatewayTimeout,
	apperr.LabelInProgress:    http.StatusConflict,
	apperr.LabelBought:        http.StatusConflict,
	apperr.NoLabel:            http.StatusNotFound,
	apperr.DKIMUnavailable:    http.StatusServiceUnavailable,
}

// Status returns the HTTP status for an error code.
func Status(code apperr.Code) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    apperr.Code    `json:"code"`
	Message string         `json:"message"`
	Fields  []string       `json:"fields,omitempty"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// WriteError renders err in SPEC.md's error shape and aborts the request.
// Only unexpected (internal) errors are logged, once, here; their cause is
// never shown to the client. Unavailability is logged too, without the body.
func WriteError(c *gin.Context, log *slog.Logger, err error) {
	e := asError(err)
	body := DetailOf(err)
	switch e.Code {
	case apperr.Internal:
		log.Error("request failed", "route", c.FullPath(), "err", err)
	case apperr.VaultUnavailable, apperr.StoreUnavailable:
		log.Warn("dependency unavailable", "route", c.FullPath(), "code", string(e.Code), "err", err)
	}
	if e.Code == apperr.RateLimited {
		if ra, ok := e.Detail["retry_after_seconds"].(int); ok {
			c.Header("Retry-After", strconv.Itoa(ra))
		}
	}
	c.AbortWithStatusJSON(Status(e.Code), ErrorBody{Error: body})
}

func asError(err error) *apperr.Error {
	var e *apperr.Error
	if !errors.As(err, &e) {
		e = &apperr.Error{Code: apperr.Internal, Err: err}
	}
	return e
}

// DetailOf renders err as a client may see it: its code, message, fields
// and detail; an unexpected error is only "internal error". Per-item errors
// of a batch answer (labels) use it too.
func DetailOf(err error) ErrorDetail {
	e := asError(err)
	d := ErrorDetail{Code: e.Code, Message: e.Message, Fields: e.Fields, Detail: e.Detail}
	if e.Code == apperr.Internal {
		d.Message = "internal error"
	}
	return d
}

// ReadBody reads the whole request body, refusing more than limit bytes with
// a TooLarge error. The body is read once; callers that verify signatures
// must use these exact bytes.
func ReadBody(c *gin.Context, limit int64) ([]byte, error) {
	if c.Request.ContentLength > limit {
		return nil, apperr.New(apperr.TooLarge, "request body is larger than %d bytes", limit)
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, limit+1))
	if err != nil {
		return nil, apperr.Wrap(apperr.Invalid, err, "request body could not be read")
	}
	if int64(len(body)) > limit {
		return nil, apperr.New(apperr.TooLarge, "request body is larger than %d bytes", limit)
	}
	return body, nil
}

// DecodeStrict decodes one JSON value into v: unknown fields, trailing data
// and malformed JSON are Invalid. Messages name the problem, never a value.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apperr.Wrap(apperr.Invalid, err, "%s", describeJSONError(err))
	}
	if dec.More() {
		return apperr.New(apperr.Invalid, "request body has data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return apperr.New(apperr.Invalid, "request body has data after the JSON value")
	}
	return nil
}

// BindStrict reads at most MaxBody bytes and decodes them with DecodeStrict.
func BindStrict(c *gin.Context, v any) error {
	body, err := ReadBody(c, MaxBody)
	if err != nil {
		return err
	}
	return DecodeStrict(body, v)
}

// describeJSONError turns a decoding error into a message that names the
// offending field but never repeats the input.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "request body is empty"
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type (want %s)", typ.Field, typ.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	default:
		return "malformed JSON"
	}
}

// JSON renders v with status. A small helper so handlers end in one line.
func JSON(c *gin.Context, status int, v any) {
	c.JSON(status, v)
}
