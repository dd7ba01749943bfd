package sdk

import (
	"errors"

	"github.com/edgelog/edgelog/event"
)

// Errors returned by the SDK, tested with errors.Is. Errors of an embedded
// node and of a remote node match the same sentinels.
var (
	// ErrInvalid: the request is malformed or breaks a rule (a bad query, a
	// tag that is empty, a value that cannot be encoded).
	ErrInvalid = event.ErrInvalid
	// ErrTooLarge: the request exceeds a limit of the node.
	ErrTooLarge = event.ErrTooLarge
	// ErrStorageFull: the node's disk is full; nothing was stored.
	ErrStorageFull = event.ErrStorageFull
	// ErrUnavailable: the node is closed, shutting down or unreachable.
	ErrUnavailable = event.ErrUnavailable
	// ErrConflict is matched by *ConflictError: a guarded publish failed.
	ErrConflict = event.ErrConflict
	// ErrTimeTravel is matched by *TimeTravelError.
	ErrTimeTravel = errors.New("time travel")
	// ErrIdempotencyMismatch: an idempotency key was reused with different
	// events.
	ErrIdempotencyMismatch = event.ErrIdempotencyMismatch
)

// TimeTravelError ends a monotonic subscription when an event older than one
// already delivered arrives (typically replicated from a peer after a
// partition). The subscriber rebuilds what it derived from events at or after
// NewStart and subscribes again.
type TimeTravelError struct {
	// NewStart is the key of the older event.
	NewStart EventKey
}

// Error implements error.
func (e *TimeTravelError) Error() string {
	return "sdk: time travel: an older event arrived at " + e.NewStart.String()
}

// Is makes errors.Is(err, ErrTimeTravel) true.
func (e *TimeTravelError) Is(target error) bool { return target == ErrTimeTravel }
