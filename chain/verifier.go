package chain

import (
	"fmt"
	"slices"

	"github.com/edgelog/edgelog/event"
)

// Verifier checks a stream's events as they arrive and releases them once a
// signed head covers them. Events that are not yet covered are pending: they
// chain and are in order, but nothing proves the origin wrote them.
//
// A Verifier is not safe for concurrent use. After an error it stays failed.
type Verifier struct {
	stream  event.StreamID
	have    int64  // verified offset, -1 for none
	lamport uint64 // Lamport time at have (0 for none)
	hash    Hash   // chain hash at have

	pending []event.Event
	hashes  []Hash // hashes[i]: chain hash after pending[i]
	bytes   int
	err     error

	checkSig func(SignedHead) error // VerifyHead, or a cache in front of it
}

// NewVerifier starts verifying stream above offset have (-1 for none), whose
// event has Lamport time lamport and chain hash prev (Genesis for none).
func NewVerifier(stream event.StreamID, have int64, lamport uint64, prev Hash) *Verifier {
	return &Verifier{stream: stream, have: have, lamport: lamport, hash: prev, checkSig: VerifyHead}
}

// Tip returns the last verified offset (-1 for none) with its Lamport time
// and chain hash.
func (v *Verifier) Tip() (offset int64, lamport uint64, hash Hash) {
	return v.have, v.lamport, v.hash
}

// Pending returns how many events, and roughly how many bytes, wait for a
// signed head.
func (v *Verifier) Pending() (events, bytes int) { return len(v.pending), v.bytes }

// Add appends events, which must continue the stream: the right stream, the
// next offsets, increasing Lamport times. The Verifier keeps the slice's
// elements (not the slice); the caller must not modify them afterwards.
func (v *Verifier) Add(events []event.Event) error {
	if v.err != nil {
		return v.err
	}
	next := v.have + 1 + int64(len(v.pending))
	prev, last := v.hash, v.lamport
	if n := len(v.pending); n > 0 {
		prev, last = v.hashes[n-1], v.pending[n-1].Lamport
	}
	v.pending = slices.Grow(v.pending, len(events))
	v.hashes = slices.Grow(v.hashes, len(events))
	for i := range events {
		e := &events[i]
		switch {
		case e.Stream != v.stream:
			v.err = fmt.Errorf("%w: event of %q in stream %s", ErrWrongStream, e.Stream, v.stream)
		case next < 0 || e.Offset != uint64(next):
			v.err = fmt.Errorf("%w: stream %s: offset %d where %d was expected", ErrGap, v.stream, e.Offset, next)
		case e.Lamport <= last: // Lamport times start at 1
			v.err = fmt.Errorf("%w: stream %s offset %d: lamport %d after %d", ErrLamportOrder, v.stream, e.Offset, e.Lamport, last)
		}
		if v.err != nil {
			return v.err
		}
		prev = Link(prev, e)
		last = e.Lamport
		v.pending = append(v.pending, *e)
		v.hashes = append(v.hashes, prev)
		v.bytes += EventSize(e)
		next++
	}
	return nil
}

// Checkpoint verifies h against the pending events and, if it holds,
// returns the events it covers (up to h.Offset), which are now verified and
// no longer pending; the returned slice is the caller's. A head at or below
// the verified offset returns nothing and no error (it says nothing new).
func (v *Verifier) Checkpoint(h SignedHead) ([]event.Event, error) {
	if v.err != nil {
		return nil, v.err
	}
	if h.Stream != v.stream {
		v.err = fmt.Errorf("%w: head of %q for stream %s", ErrWrongStream, h.Stream, v.stream)
		return nil, v.err
	}
	if v.have >= 0 && h.Offset <= uint64(v.have) {
		return nil, nil
	}
	idx := int64(h.Offset) - v.have - 1
	if int64(h.Offset) < 0 || idx >= int64(len(v.pending)) {
		v.err = fmt.Errorf("%w: stream %s: signed head at %d is beyond the events received (up to %d)", ErrGap, v.stream, h.Offset, v.have+int64(len(v.pending)))
		return nil, v.err
	}
	if v.hashes[idx] != h.Hash || v.pending[idx].Lamport != h.Lamport {
		v.err = fmt.Errorf("%w: stream %s: events do not hash to the signed head at %d", ErrBrokenChain, v.stream, h.Offset)
		return nil, v.err
	}
	if err := v.checkSig(h); err != nil {
		v.err = err
		return nil, err
	}
	n := int(idx) + 1
	out := v.pending[:n:n]
	for i := range out {
		v.bytes -= EventSize(&out[i])
	}
	v.have, v.lamport, v.hash = int64(h.Offset), h.Lamport, h.Hash
	v.pending = append([]event.Event(nil), v.pending[n:]...)
	v.hashes = append([]Hash(nil), v.hashes[n:]...)
	return out, nil
}

// EventSize approximates an event's memory and wire size.
func EventSize(e *event.Event) int {
	n := 48 + len(e.Stream) + len(e.AppID) + len(e.Payload)
	for _, t := range e.Tags {
		n += len(t) + 2
	}
	return n
}
