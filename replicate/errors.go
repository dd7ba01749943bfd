package replicate

import (
	"context"
	"errors"

	"github.com/edgelog/edgelog/chain"
)

// Transfer errors: not proof of malice, but the peer did not deliver.
var (
	// ErrShortAnswer: a peer ended a pull before the range it announced.
	ErrShortAnswer = errors.New("peer ended the answer early")
	// ErrTimeout: a pull made no progress for too long.
	ErrTimeout = errors.New("pull made no progress")
)

// Fault grades how much an error is the remote peer's fault.
type Fault int

const (
	// FaultNone: no fault of the peer (success, or cancelled by us).
	FaultNone Fault = iota
	// FaultTransient: the peer failed to deliver (timeout, early end, I/O).
	FaultTransient
	// FaultMisbehaviour: the peer sent data that fails verification.
	FaultMisbehaviour
)

// Blame grades err, as returned by a pull or a gossip handler.
func Blame(err error) Fault {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, chain.ErrStale):
		return FaultNone
	case errors.Is(err, chain.ErrIntegrity):
		return FaultMisbehaviour
	default:
		return FaultTransient
	}
}
