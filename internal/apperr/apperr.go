// Package apperr holds piivault's error codes. Adapters (Vault, Redis, request
// decoding) translate what goes wrong at their edge into one of these codes;
// internal/web maps each code to an HTTP status in one table.
//
// An Error's Message is shown to the client, so it must never hold PII, a
// secret or a token: it names fields and parts, never their values.
package apperr

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code returned in API responses.
type Code string

const (
	Invalid          Code = "invalid_request"        // malformed request: bad JSON, unknown field
	Validation       Code = "validation_failed"      // well-formed but invalid values
	TooLarge         Code = "payload_too_large"      // body over the limit
	UnsupportedMedia Code = "unsupported_media_type" // body not in the format the route takes
	Unauthorized     Code = "unauthorized"           // missing or bad credentials
	Forbidden        Code = "forbidden"              // authenticated, not allowed
	Blocked          Code = "blocked"                // caller's IP is blocked by the monitor
	NotFound         Code = "not_found"              // no such resource
	Gone             Code = "gone"                   // PII purged
	Conflict         Code = "conflict"               // clashes with what is stored
	RateLimited      Code = "rate_limited"           // too many requests
	LockedDown       Code = "locked_down"            // incident lockdown: reveals and logins refused
	StaleEvent       Code = "stale_event"            // webhook timestamp outside tolerance
	VaultUnavailable Code = "vault_unavailable"      // Vault down, sealed or slow
	StoreUnavailable Code = "store_unavailable"      // Redis down or slow
	NotConfigured    Code = "not_configured"         // feature switched off (e.g. a webhook without secret)
	// Postage (EasyPost), per order of a label purchase.
	AddressRejected    Code = "address_rejected"     // the carrier refused the address
	NoRate             Code = "no_rate"              // no rate for the requested service
	CarrierRefused     Code = "carrier_refused"      // EasyPost refused the shipment for another reason
	CarrierUnavailable Code = "easypost_unavailable" // EasyPost down or refusing service
	CarrierTimeout     Code = "easypost_timeout"     // EasyPost did not answer in time
	LabelInProgress    Code = "label_in_progress"    // another request is buying this order's label
	LabelBought        Code = "label_bought"         // a label was bought: the address is on it
	NoLabel            Code = "no_label"             // no label bought through piivault for this order
	// Inbound email: a DKIM key could not be fetched for now (DNS); the
	// provider retries, and no request is judged on a DNS outage.
	DKIMUnavailable Code = "dkim_unavailable"
	Internal        Code = "internal" // anything unexpected: logged, never described
)

// Error is an error with a code and a client-safe message.
type Error struct {
	Code    Code
	Message string
	// Fields names the request fields that failed validation (never their values).
	Fields []string
	// Detail is extra client-safe data rendered beside the message (e.g. a purge reason).
	Detail map[string]any
	// Err is the underlying cause, for logs only.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with a client-safe message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error with a client-safe message and a cause kept for logs.
func Wrap(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool {
	return err != nil && CodeOf(err) == code
}

// Fields returns the invalid field names carried by err, if any.
func Fields(err error) []string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
