package lamport

import (
	"errors"
	"math"
	"sync"
)

// ErrExhausted is returned when the clock cannot advance because it reached
// the largest representable time. It exists so that a peer announcing a
// lamport of math.MaxUint64 cannot make the clock wrap around to zero.
var ErrExhausted = errors.New("lamport: clock exhausted")

// Clock is a Lamport clock. The zero value starts at 0 and is ready to use.
// A Clock is safe for concurrent use. It never goes back: Observe only moves
// it forward and Reserve hands out strictly increasing times.
type Clock struct {
	mu  sync.Mutex
	now uint64
}

// NewClock returns a clock that resumes from start, typically the value the
// caller persisted last.
func NewClock(start uint64) *Clock { return &Clock{now: start} }

// Now returns the current time: the largest time handed out or observed.
func (c *Clock) Now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Reserve advances the clock by n and returns the first of the n times
// reserved, so the caller stamps its events first, first+1, ..., first+n-1.
// The clock then reads first+n-1. Reserve(0) returns Now()+1 and changes
// nothing.
func (c *Clock) Reserve(n uint64) (first uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 0 {
		if c.now == math.MaxUint64 {
			return 0, ErrExhausted
		}
		return c.now + 1, nil
	}
	if c.now > math.MaxUint64-n {
		return 0, ErrExhausted
	}
	first = c.now + 1
	c.now += n
	return first, nil
}

// Observe moves the clock to t if t is later than the current time. It is
// called for every event received from a peer.
func (c *Clock) Observe(t uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t > c.now {
		c.now = t
	}
}

// Rollback undoes a Reserve whose events were not stored, provided no other
// Reserve or Observe moved the clock past it since. It reports whether it
// rolled back. Rolling back is only an optimisation: leaving a gap in lamport
// times is always correct.
func (c *Clock) Rollback(first, n uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 0 || c.now != first+n-1 {
		return false
	}
	c.now = first - 1
	return true
}
