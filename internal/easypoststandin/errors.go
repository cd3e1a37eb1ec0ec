package easypoststandin

import "net/http"

// EasyPost's error codes as the stand-in answers them. EasyPost publishes no
// complete list that could be checked from here, so each code names the
// public material it was taken from; codes marked "unverified" are the
// closest guess and say so.
const (
	// CodeAPIKeyRequired (401) answers a request without piivault's key.
	// Unverified: EasyPost's docs only say 401 means "authentication is
	// required and has failed" (docs.easypost.com/docs/errors); the code is
	// a guess in EasyPost's naming (its inactive-key answer, recorded in
	// easypost-go v5.4.0 tests/cassettes/TestErrorInheritance.yaml, is
	// APIKEY.INACTIVE with 403).
	CodeAPIKeyRequired = "APIKEY.REQUIRED"

	// CodeNotFound (404), from easypost-go v5.4.0
	// tests/cassettes/TestApiErrorAlternativeFormat.yaml.
	CodeNotFound = "NOT_FOUND"

	// CodeParameterRequired (422) names missing parameters, from easypost-go
	// v5.4.0 tests/cassettes/TestApiError.yaml (a shipment created from
	// nothing: field "shipment", message "cannot be blank").
	CodeParameterRequired = "PARAMETER.REQUIRED"

	// CodeShipmentInvalidParams (422) names parameters present but invalid
	// (e.g. a weight of 0), from the error tests of easypost-python,
	// easypost-php and easypost-ruby ("Unable to create shipment, one or
	// more parameters were invalid.").
	CodeShipmentInvalidParams = "SHIPMENT.INVALID_PARAMS"

	// CodePostageExists (422) refuses to buy a shipment twice. The code is
	// the one integrations test for (public code calling
	// https://api.easypost.com, found by searching GitHub); the status and
	// message are not published.
	CodePostageExists = "SHIPMENT.POSTAGE.EXISTS"

	// CodePostageFailure (422) is a purchase the carrier refused, e.g. for
	// its address, from EasyPost/easypost-csharp issue #80 (UPS refusing
	// an address at purchase).
	CodePostageFailure = "SHIPMENT.POSTAGE.FAILURE"

	// CodeUnprocessable (422) is EasyPost's generic refusal, from
	// easypost-go v5.4.0
	// tests/cassettes/TestCarrierAccountCreateWithCustomWorkflow.yaml; used
	// where EasyPost's specific code is not published (a rate of another
	// shipment, a label or refund of an unbought shipment).
	CodeUnprocessable = "UNPROCESSABLE_ENTITY"

	// CodeBadRequest (400) is a body that is not JSON, from
	// EasyPost/easypost-node issue #33.
	CodeBadRequest = "BAD_REQUEST"

	// CodeServiceUnavailable (503) answers the Unavailable fault and
	// SetDown. Unverified: EasyPost documents 503 but not its body's code.
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
)

// apiError is an EasyPost error answer: {"error":{code,message,errors}}.
type apiError struct {
	status  int
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Errors  []fieldError `json:"errors"`
}

// fieldError names a field of the request; its message never repeats the
// value sent (it may be a customer's address).
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *apiError) body() any {
	if e.Errors == nil {
		e.Errors = []fieldError{}
	}
	return map[string]any{"error": e}
}

func errNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, Code: CodeNotFound,
		Message: "The requested resource could not be found."}
}

func errUnauthorized() *apiError {
	return &apiError{status: http.StatusUnauthorized, Code: CodeAPIKeyRequired,
		Message: "The API key is missing or invalid."}
}

func errUnavailable() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, Code: CodeServiceUnavailable,
		Message: "The service is temporarily unavailable. Please try again later."}
}

func errBadRequest() *apiError {
	return &apiError{status: http.StatusBadRequest, Code: CodeBadRequest,
		Message: "The request body could not be parsed."}
}

func errRequired(fields ...fieldError) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, Code: CodeParameterRequired,
		Message: "Missing required parameter.", Errors: fields}
}

func errInvalid(fields ...fieldError) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, Code: CodeShipmentInvalidParams,
		Message: "Unable to create shipment, one or more parameters were invalid.", Errors: fields}
}

func errUnprocessable(msg string, fields ...fieldError) *apiError {
	return &apiError{status: http.StatusUnprocessableEntity, Code: CodeUnprocessable,
		Message: msg, Errors: fields}
}
