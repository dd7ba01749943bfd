package event

import "errors"

// Errors a node returns, wrapped with detail; callers test them with
// errors.Is. The HTTP API maps each to a status and an ERR_ code.
var (
	// ErrInvalid: the request is malformed or breaks a rule (HTTP 400).
	ErrInvalid = errors.New("invalid request")
	// ErrTooLarge: the request exceeds a configured limit (HTTP 413).
	ErrTooLarge = errors.New("limit exceeded")
	// ErrStorageFull: the disk is full; nothing of the request was stored
	// (HTTP 507).
	ErrStorageFull = errors.New("storage full")
	// ErrUnavailable: the node is shutting down or not running (HTTP 503).
	ErrUnavailable = errors.New("node unavailable")
)
