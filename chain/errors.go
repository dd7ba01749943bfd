package chain

import "errors"

// Verification errors. Each wraps ErrIntegrity, so a caller can tell data
// that fails verification (penalise the sender harshly) from a transfer that
// merely failed (retry elsewhere, back off mildly).
var (
	// ErrIntegrity is wrapped by every error saying that received data is
	// not what its origin wrote.
	ErrIntegrity = errors.New("integrity violation")
	// ErrBadSignature: a head's signature does not verify with the key of
	// the stream's origin, or the origin's key cannot be recovered.
	ErrBadSignature = wrapIntegrity("bad head signature")
	// ErrBrokenChain: the events do not hash to the signed head.
	ErrBrokenChain = wrapIntegrity("broken hash chain")
	// ErrGap: offsets are not exactly the next ones expected.
	ErrGap = wrapIntegrity("offset gap")
	// ErrWrongStream: an event or head belongs to another stream than the
	// one asked for.
	ErrWrongStream = wrapIntegrity("wrong stream")
	// ErrLamportOrder: Lamport times do not strictly increase within a stream.
	ErrLamportOrder = wrapIntegrity("lamport times not increasing")
	// ErrMalformed: a message, frame or block cannot be decoded or breaks a
	// limit.
	ErrMalformed = wrapIntegrity("malformed message")
)

// Errors of stores taking verified ranges: not proof of malice.
var (
	// ErrTooMuchUnverified: a peer sent more events than the receiver will
	// buffer before a signed checkpoint covers them.
	ErrTooMuchUnverified = errors.New("too many events without a signed checkpoint")
	// ErrStale: the store moved while a range was verified against its old
	// head; the range was not stored and should be asked for again.
	ErrStale = errors.New("store head moved")
)

type integrityError struct{ msg string }

func (e *integrityError) Error() string { return e.msg }
func (e *integrityError) Unwrap() error { return ErrIntegrity }

func wrapIntegrity(msg string) error { return &integrityError{msg} }
