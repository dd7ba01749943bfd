package event

import "maps"

// OffsetMap maps each stream to the highest offset present: every offset of
// the stream up to it is stored (or expired). A stream with no event is absent.
type OffsetMap map[StreamID]uint64

// Clone returns an independent copy (nil stays nil).
func (m OffsetMap) Clone() OffsetMap {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}

// Contains reports whether (stream, offset) lies within m.
func (m OffsetMap) Contains(stream StreamID, offset uint64) bool {
	hi, ok := m[stream]
	return ok && offset <= hi
}

// Union returns the per-stream maximum of m and o.
func (m OffsetMap) Union(o OffsetMap) OffsetMap {
	out := make(OffsetMap, len(m)+len(o))
	for s, v := range m {
		out[s] = v
	}
	for s, v := range o {
		if cur, ok := out[s]; !ok || v > cur {
			out[s] = v
		}
	}
	return out
}

// Range is the half-open range of offsets (From, To] of one stream to read;
// From < 0 means from the stream's start.
type Range struct {
	Stream StreamID
	From   int64 // exclusive; -1 for the start
	To     uint64
}

// Ranges returns, per stream, what lies above lower (exclusive; a missing
// stream reads from its start) and up to upper (inclusive; a missing stream is
// not read). Streams with nothing to read are left out.
func Ranges(lower, upper OffsetMap) []Range {
	out := make([]Range, 0, len(upper))
	for s, hi := range upper {
		from := int64(-1)
		if lo, ok := lower[s]; ok {
			if lo >= hi {
				continue
			}
			from = int64(lo)
		}
		out = append(out, Range{Stream: s, From: from, To: hi})
	}
	return out
}
