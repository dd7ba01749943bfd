package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/edgelog/edgelog/event"
)

// Error codes of the HTTP API. Every error answer carries one of them in its
// "code" field, next to a human-readable "message".
const (
	// CodeBadRequest: the request body or its fields are malformed (400).
	CodeBadRequest = "ERR_BAD_REQUEST"
	// CodeBadQuery: the AQL query does not parse (400); the message names
	// the position.
	CodeBadQuery = "ERR_BAD_QUERY"
	// CodeTokenInvalid: the bearer token is missing, malformed or not signed
	// by this node (401).
	CodeTokenInvalid = "ERR_TOKEN_INVALID"
	// CodeTokenExpired: the bearer token has expired; fetch a new one (401).
	CodeTokenExpired = "ERR_TOKEN_EXPIRED"
	// CodeAppUnauthorized: the app id is not allowed on this node (403).
	CodeAppUnauthorized = "ERR_APP_UNAUTHORIZED"
	// CodeNotFound: no endpoint at this path (404).
	CodeNotFound = "ERR_NOT_FOUND"
	// CodeMethodNotAllowed: the endpoint exists but not for this method (405).
	CodeMethodNotAllowed = "ERR_METHOD_NOT_ALLOWED"
	// CodeRequestTimeout: the request body did not arrive within the
	// server's body timeout (408); the connection is closed.
	CodeRequestTimeout = "ERR_REQUEST_TIMEOUT"
	// CodePayloadTooLarge: the request body, an event or the request's
	// headers exceed a limit (413, 431 for headers).
	CodePayloadTooLarge = "ERR_PAYLOAD_TOO_LARGE"
	// CodeInternal: an unexpected failure inside the node (500).
	CodeInternal = "ERR_INTERNAL"
	// CodeUnavailable: the node is shutting down or not running (503).
	CodeUnavailable = "ERR_UNAVAILABLE"
	// CodeStorageFull: the node's disk is full; nothing was stored (507).
	CodeStorageFull = "ERR_STORAGE_FULL"
	// CodeConflict: a guarded publish found events its guard forbids;
	// nothing was stored (409). The error's "conflict" field lists them.
	CodeConflict = "ERR_CONFLICT"
	// CodeIdempotencyMismatch: the idempotency key of a publish was used
	// before with other events; nothing was stored (409).
	CodeIdempotencyMismatch = "ERR_IDEMPOTENCY_MISMATCH"
)

// Error is an error answer of the HTTP API: the HTTP status and the body
// {"code":"ERR_…","message":"…"}. The server renders it and the client
// returns it, so callers can use errors.As to inspect it.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// Conflict details an ERR_CONFLICT answer.
	Conflict *Conflict `json:"conflict,omitempty"`
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("edgelog api: %d %s: %s", e.Status, e.Code, e.Message)
}

// Unwrap returns the event package sentinel matching the error's code
// (ErrInvalid for ERR_BAD_REQUEST and ERR_BAD_QUERY, ErrTooLarge,
// ErrStorageFull, ErrUnavailable), or nil, so errors.Is works the same on a
// remote node's errors as on an embedded node's.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeBadRequest, CodeBadQuery:
		return event.ErrInvalid
	case CodePayloadTooLarge:
		return event.ErrTooLarge
	case CodeStorageFull:
		return event.ErrStorageFull
	case CodeUnavailable:
		return event.ErrUnavailable
	case CodeConflict:
		return event.ErrConflict
	case CodeIdempotencyMismatch:
		return event.ErrIdempotencyMismatch
	}
	return nil
}

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeBadRequest, format, args...)
}

// backendError maps an error of the Backend to the API error answered for
// it. internal reports that the error is not one of the documented sentinels:
// its text is not shown to clients and the caller should log it.
func backendError(err error) (apiErr *Error, internal bool) {
	if e, ok := bookkeepingError(err); ok {
		return e, false
	}
	switch {
	case errors.Is(err, event.ErrInvalid):
		return newError(http.StatusBadRequest, CodeBadRequest, "%s", err.Error()), false
	case errors.Is(err, event.ErrTooLarge):
		return newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "%s", err.Error()), false
	case errors.Is(err, event.ErrStorageFull):
		return newError(http.StatusInsufficientStorage, CodeStorageFull, "%s", err.Error()), false
	case errors.Is(err, event.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, CodeUnavailable, "%s", err.Error()), false
	}
	return newError(http.StatusInternalServerError, CodeInternal, "internal error"), true
}
