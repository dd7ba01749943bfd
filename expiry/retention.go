package expiry

import (
	"fmt"
	"strings"
	"time"
)

// Retention bounds what a stream keeps. Zero fields are unlimited; all
// non-zero limits apply at once (an event expires as soon as any of them
// says so). The zero Retention keeps everything.
type Retention struct {
	// MaxEvents is the number of events kept.
	MaxEvents uint64
	// MaxBytes bounds the stored bytes of the events kept (records and
	// index entries, as Summary.Size counts them).
	MaxBytes int64
	// MaxAge expires events whose timestamp is older than now-MaxAge.
	MaxAge time.Duration
}

// Forever reports whether r keeps everything.
func (r Retention) Forever() bool { return r == Retention{} }

// String renders r in the syntax of Spec, e.g. "maxEvents=1000 maxSize=50MB".
func (r Retention) String() string {
	if r.Forever() {
		return "forever"
	}
	var parts []string
	if r.MaxEvents > 0 {
		parts = append(parts, fmt.Sprintf("maxEvents=%d", r.MaxEvents))
	}
	if r.MaxBytes > 0 {
		parts = append(parts, "maxSize="+FormatSize(r.MaxBytes))
	}
	if r.MaxAge > 0 {
		parts = append(parts, "maxAge="+FormatAge(r.MaxAge))
	}
	return strings.Join(parts, " ")
}

// Validate checks that no limit is negative.
func (r Retention) Validate() error {
	switch {
	case r.MaxBytes < 0:
		return fmt.Errorf("maxSize: %w: %d is negative", ErrInvalid, r.MaxBytes)
	case r.MaxAge < 0:
		return fmt.Errorf("maxAge: %w: %s is negative", ErrInvalid, r.MaxAge)
	}
	return nil
}

// Spec is a retention rule as written in settings: each field empty (or
// nil) when not set.
type Spec struct {
	// MaxEvents, if set, must be positive.
	MaxEvents *int64 `yaml:"maxEvents"`
	// MaxSize is a size with a unit (see ParseSize), like "50MB".
	MaxSize string `yaml:"maxSize"`
	// MaxAge is a duration with units (see ParseAge), like "7d".
	MaxAge string `yaml:"maxAge"`
}

// Parse validates s and returns its Retention. Errors wrap ErrInvalid and
// start with the field's name (maxEvents, maxSize, maxAge).
func (s Spec) Parse() (Retention, error) {
	var r Retention
	if s.MaxEvents != nil {
		if *s.MaxEvents <= 0 {
			return r, fmt.Errorf("maxEvents: %w: %d, want a positive number", ErrInvalid, *s.MaxEvents)
		}
		r.MaxEvents = uint64(*s.MaxEvents)
	}
	if s.MaxSize != "" {
		if strings.HasPrefix(strings.TrimSpace(s.MaxSize), "-") {
			return r, fmt.Errorf("maxSize: %w: %q is negative", ErrInvalid, s.MaxSize)
		}
		n, err := ParseSize(s.MaxSize)
		if err != nil {
			return r, fmt.Errorf("maxSize: %w", err)
		}
		if n <= 0 {
			return r, fmt.Errorf("maxSize: %w: %q, want a positive size", ErrInvalid, s.MaxSize)
		}
		r.MaxBytes = n
	}
	if s.MaxAge != "" {
		if strings.HasPrefix(strings.TrimSpace(s.MaxAge), "-") {
			return r, fmt.Errorf("maxAge: %w: %q is negative", ErrInvalid, s.MaxAge)
		}
		d, err := ParseAge(s.MaxAge)
		if err != nil {
			return r, fmt.Errorf("maxAge: %w", err)
		}
		if d <= 0 {
			return r, fmt.Errorf("maxAge: %w: %q, want a positive duration", ErrInvalid, s.MaxAge)
		}
		r.MaxAge = d
	}
	return r, nil
}

// Summary describes one stored event for the policy.
type Summary struct {
	Offset uint64
	// Size is the bytes the event occupies in the store.
	Size int64
	// Timestamp is the event's timestamp, microseconds since the Unix epoch.
	Timestamp int64
}

// State is what a stream holds: offsets Floor .. Floor+Count-1, Bytes in all.
type State struct {
	Floor uint64
	Count uint64
	Bytes int64
}

// Decision is the policy's answer for one batch.
type Decision struct {
	// Floor is the new floor: events below it expire. It is never below
	// the State's floor.
	Floor uint64
	// Expired is the number of events that expire (Floor - old floor).
	Expired uint64
	// Bytes is the sum of their sizes.
	Bytes int64
	// More is true when every event of oldest expired and the rule would
	// expire further ones: the caller should run another batch.
	More bool
}

// Expire decides which of a stream's oldest events r expires at now.
// oldest are the stream's first events in offset order, starting at
// st.Floor (a prefix of what it holds; the caller bounds its length, which
// bounds one pruning batch). Only a prefix expires, so offsets stay gapless:
// an event whose timestamp is within maxAge keeps the older-offset events
// behind it until it expires too (timestamps are the origin's wall clock
// and may go back). Expire is pure.
func (r Retention) Expire(st State, oldest []Summary, now time.Time) Decision {
	d := Decision{Floor: st.Floor}
	if r.Forever() || st.Count == 0 {
		return d
	}
	n := uint64(len(oldest))
	if n > st.Count {
		n = st.Count
	}
	// By count: the surplus over MaxEvents.
	var want uint64
	if r.MaxEvents > 0 && st.Count > r.MaxEvents {
		want = st.Count - r.MaxEvents
	}
	// By bytes: the shortest prefix that brings Bytes within MaxBytes.
	bytesMore := false
	if r.MaxBytes > 0 && st.Bytes > r.MaxBytes {
		over := st.Bytes - r.MaxBytes
		var k uint64
		var sum int64
		for k < n && sum < over {
			sum += max(oldest[k].Size, 0)
			k++
		}
		want = max(want, k)
		bytesMore = sum < over
	}
	k := min(want, n)
	// By age: from there, every further event older than the cutoff (the
	// oldest event left must be within maxAge).
	ageMore := false
	if r.MaxAge > 0 {
		cutoff := now.Add(-r.MaxAge).UnixMicro()
		for k < n && oldest[k].Timestamp < cutoff {
			k++
		}
		ageMore = k == n && n < st.Count
	}
	for i := range k {
		d.Bytes += max(oldest[i].Size, 0)
	}
	d.Expired = k
	d.Floor = st.Floor + k
	d.More = k == n && n < st.Count && (want > n || bytesMore || ageMore)
	return d
}
