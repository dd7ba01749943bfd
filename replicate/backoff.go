package replicate

import (
	"slices"
	"time"
)

// Backoff is capped exponential backoff with jitter. Zero fields take the
// values of DefaultRedialBackoff.
type Backoff struct {
	// Base is the delay before the first retry.
	Base time.Duration
	// Max caps every delay, jitter included.
	Max time.Duration
	// Jitter spreads each delay uniformly over ±Jitter of itself (0 to 1),
	// so that peers that dropped together do not redial in lockstep.
	Jitter float64
}

// DefaultRedialBackoff redials a dropped LAN peer after about a second,
// then ever more rarely, at least once a minute.
var DefaultRedialBackoff = Backoff{Base: time.Second, Max: time.Minute, Jitter: 0.2}

// WithDefaults returns b with zero (or out of range) fields set from
// DefaultRedialBackoff.
func (b Backoff) WithDefaults() Backoff {
	d := DefaultRedialBackoff
	if b.Base > 0 {
		d.Base = b.Base
	}
	if b.Max > 0 {
		d.Max = b.Max
	}
	if b.Jitter > 0 && b.Jitter <= 1 {
		d.Jitter = b.Jitter
	}
	d.Max = max(d.Max, d.Base)
	return d
}

// Delay returns the wait before retry number attempt (1 for the first),
// given r, a uniform random number in [0, 1): Base·2^(attempt-1), jittered
// by ±Jitter, never above Max and never negative. b must have its defaults
// set.
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	d := b.Base
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	r = min(max(r, 0), 1)
	j := time.Duration(float64(d) * b.Jitter * (2*r - 1))
	return max(min(d+j, b.Max), 0)
}

// redials decides when to dial which of the peers a node wants to stay
// connected to (bootstrap and peer-book peers). It is pure: time and
// randomness come in as arguments, and it starts no dial itself. One
// goroutine owns it.
type Redials struct {
	b       Backoff
	targets map[PeerID]*redialState
}

type redialState struct {
	attempts  int       // failed dials since the last connection
	due       time.Time // dial at or after this time
	connected bool
	dialing   bool
}

func NewRedials(b Backoff) *Redials {
	return &Redials{b: b.WithDefaults(), targets: map[PeerID]*redialState{}}
}

// Want adds id to the peers to keep connected; a new target is due now.
// Wanting a known target changes nothing (it keeps its backoff).
func (r *Redials) Want(id PeerID, now time.Time) {
	if r.targets[id] == nil {
		r.targets[id] = &redialState{due: now}
	}
}

// Forget removes id from the targets.
func (r *Redials) Forget(id PeerID) { delete(r.targets, id) }

// Connected records a connection to id, which resets its backoff.
func (r *Redials) Connected(id PeerID) {
	if st := r.targets[id]; st != nil {
		st.connected, st.attempts = true, 0
	}
}

// Disconnected records that id is no longer connected: it is due again
// after the first backoff delay.
func (r *Redials) Disconnected(id PeerID, now time.Time, rnd float64) {
	st := r.targets[id]
	if st == nil || !st.connected {
		return
	}
	st.connected, st.attempts = false, 1
	st.due = now.Add(r.b.Delay(1, rnd))
}

// DialDone records the end of a dial of id started by Due: on failure the
// next attempt waits longer.
func (r *Redials) DialDone(id PeerID, ok bool, now time.Time, rnd float64) {
	st := r.targets[id]
	if st == nil {
		return
	}
	st.dialing = false
	if ok {
		st.connected, st.attempts = true, 0
		return
	}
	if st.connected {
		return // connected meanwhile (the peer dialled us)
	}
	st.attempts++
	st.due = now.Add(r.b.Delay(st.attempts, rnd))
}

// Due returns, in peer order, up to limit targets that are neither
// connected nor being dialled and whose time has come; they count as being
// dialled until DialDone.
func (r *Redials) Due(now time.Time, limit int) []PeerID {
	dialing := 0
	var out []PeerID
	for id, st := range r.targets {
		if st.dialing {
			dialing++
			continue
		}
		if !st.connected && !now.Before(st.due) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	out = out[:max(0, min(len(out), limit-dialing))]
	for _, id := range out {
		r.targets[id].dialing = true
	}
	return out
}

// Next returns when the next target falls due, or false if none waits.
func (r *Redials) Next() (time.Time, bool) {
	var next time.Time
	found := false
	for _, st := range r.targets {
		if st.connected || st.dialing {
			continue
		}
		if !found || st.due.Before(next) {
			next, found = st.due, true
		}
	}
	return next, found
}

// Attempts returns the failed dials of id since it was last connected.
func (r *Redials) Attempts(id PeerID) int {
	if st := r.targets[id]; st != nil {
		return st.attempts
	}
	return 0
}
