package event

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/lamport"
)

// Errors of idempotent and guarded publishing; the HTTP API answers both
// with 409.
var (
	// ErrConflict is matched by *ConflictError: a guarded publish found
	// events its guard forbids (ERR_CONFLICT).
	ErrConflict = errors.New("conflict")
	// ErrIdempotencyMismatch: an idempotency key was reused with different
	// events (ERR_IDEMPOTENCY_MISMATCH).
	ErrIdempotencyMismatch = errors.New("idempotency key reused with different events")
)

// MaxIdempotencyKeyLen bounds an idempotency key, in bytes.
const MaxIdempotencyKeyLen = 256

// MaxConflictEvents bounds how many events a ConflictError lists.
const MaxConflictEvents = 16

// PublishOptions are the optional parts of a publish request.
type PublishOptions struct {
	// IdempotencyKey, if not empty, makes the publish idempotent per app:
	// the node records the key with the events' fingerprint and resulting
	// metas in the same transaction as the events, and a later publish with
	// the same key (by the same app) returns those metas and writes nothing.
	// Reusing a key with other events fails with ErrIdempotencyMismatch.
	// At most MaxIdempotencyKeyLen bytes, no NUL.
	IdempotencyKey string
	// Guard, if set, makes the publish conditional; see Guard.
	Guard *Guard
}

// Guard is the condition of a guarded publish: it succeeds only if the
// node holds no event selected by Query whose EventKey sorts after After.
// The check and the write are atomic against every other write of the node.
// The zero After means "no selected event at all".
type Guard struct {
	Query *aql.Query
	After lamport.EventKey
}

// ConflictError is returned when a guard fails: events selected by its
// query sort after its After key. Nothing was published.
type ConflictError struct {
	// Changed lists the newest conflicting events (at most
	// MaxConflictEvents), in ascending EventKey order.
	Changed []Event
	// More is true when more events conflict than Changed lists.
	More bool
}

// Error implements error.
func (e *ConflictError) Error() string {
	var b strings.Builder
	n := fmt.Sprint(len(e.Changed))
	if e.More {
		n = "more than " + n
	}
	fmt.Fprintf(&b, "conflict: %s event(s) selected by the guard's query were written after the given key", n)
	sep := ": "
	for i := range e.Changed {
		if i == 3 {
			b.WriteString(", …")
			break
		}
		fmt.Fprintf(&b, "%s%s %v", sep, e.Changed[i].Key(), e.Changed[i].Tags)
		sep = ", "
	}
	return b.String()
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ConsumerStatus is what a durable consumer last reported about itself to
// its node: where it is and which streams it stopped handling. Consumers are
// kept per app and name.
type ConsumerStatus struct {
	// Name is the consumer's name, unique per app.
	Name string `json:"name"`
	// AppID is the app running the consumer (set by the node).
	AppID string `json:"appId"`
	// Checkpoint is the highest offset handled per stream.
	Checkpoint OffsetMap `json:"checkpoint"`
	// Blocked lists the streams the consumer stopped handling.
	Blocked []BlockedStream `json:"blocked"`
	// Running is false once the consumer stopped cleanly. A consumer whose
	// process died keeps reporting true; see Updated.
	Running bool `json:"running"`
	// Updated is when the status was stored (set by the node).
	Updated time.Time `json:"updated"`
}

// BlockedStream is a stream a consumer stopped handling because its next
// event kept failing.
type BlockedStream struct {
	Stream   StreamID         `json:"stream"`
	Event    lamport.EventKey `json:"event"`    // the failing event
	Attempts int              `json:"attempts"` // failed attempts so far
	Error    string           `json:"error"`    // the last failure
}

// Limits of a ConsumerStatus, checked by ValidateConsumerStatus.
const (
	MaxConsumerNameLen  = 256
	maxConsumerBlocked  = 4096
	maxConsumerErrorLen = 1024
)

// ValidateConsumerStatus checks what a client may send: a non-empty name of
// at most MaxConsumerNameLen bytes without NUL, valid stream IDs, and
// bounded lists. Error texts longer than 1024 bytes are cut (in a copy of
// s.Blocked; the caller's slice is not modified).
func ValidateConsumerStatus(s *ConsumerStatus) error {
	switch {
	case s.Name == "":
		return fmt.Errorf("%w: consumer name is empty", ErrInvalid)
	case len(s.Name) > MaxConsumerNameLen || strings.ContainsRune(s.Name, 0):
		return fmt.Errorf("%w: consumer name: want at most %d bytes without NUL", ErrInvalid, MaxConsumerNameLen)
	case len(s.Blocked) > maxConsumerBlocked:
		return fmt.Errorf("%w: consumer %s: %d blocked streams, at most %d", ErrTooLarge, s.Name, len(s.Blocked), maxConsumerBlocked)
	}
	for st := range s.Checkpoint {
		if !st.Valid() {
			return fmt.Errorf("%w: consumer %s: checkpoint: invalid stream id %q", ErrInvalid, s.Name, st)
		}
	}
	copied := false
	for i := range s.Blocked {
		if !s.Blocked[i].Stream.Valid() {
			return fmt.Errorf("%w: consumer %s: blocked: invalid stream id %q", ErrInvalid, s.Name, s.Blocked[i].Stream)
		}
		if len(s.Blocked[i].Error) > maxConsumerErrorLen {
			if !copied {
				s.Blocked, copied = slices.Clone(s.Blocked), true
			}
			s.Blocked[i].Error = s.Blocked[i].Error[:maxConsumerErrorLen]
		}
	}
	return nil
}
