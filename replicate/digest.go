package replicate

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// A Digest summarises a node's offset map (which streams it holds, up to
// which offset) in a few bytes, so two nodes find out whether they hold
// the same without listing it, and, where not, which few streams differ.
//
// Each stream falls into one of digestFine buckets, by a hash of its ID
// alone (so it stays in its bucket as it grows); each (stream, offset)
// pair has a 64-bit leaf hash. A bucket's value is the XOR of its leaves;
// coarser bucketings (any power of two up to digestFine) XOR neighbouring
// fine buckets, and the root is the XOR of all. Nodes that hold the same
// offsets have equal roots; nodes that differ differ in the buckets of the
// streams that differ (unless 64-bit hashes collide, which only delays
// the reconciliation to the next change).
//
// A Digest is immutable: Update returns a new one, sharing nothing it
// changes, so a snapshot can be read while the next is built.
type Digest struct {
	streams map[event.StreamID]digestEntry
	fine    [digestFine]uint64
}

type digestEntry struct {
	off    uint64
	bucket uint16 // fine bucket
	leaf   uint64
}

// digestFine is the number of fine buckets: at most this many buckets are
// compared in one exchange.
const (
	digestFineBits = 10
	digestFine     = 1 << digestFineBits
)

// NewDigest returns the digest of heads (offset per stream).
func NewDigest(heads map[event.StreamID]chain.SignedHead) *Digest {
	return (&Digest{}).Update(heads)
}

// Update returns the digest of heads, reusing the hashes of d for the
// streams whose offset did not change. d is left unchanged; a nil d is
// the empty digest.
func (d *Digest) Update(heads map[event.StreamID]chain.SignedHead) *Digest {
	n := &Digest{streams: make(map[event.StreamID]digestEntry, len(heads))}
	var old map[event.StreamID]digestEntry
	if d != nil {
		old = d.streams
	}
	for s, h := range heads {
		e, ok := old[s]
		if !ok {
			e.bucket = bucketOf(s)
		}
		if !ok || e.off != h.Offset {
			e.off, e.leaf = h.Offset, leafOf(s, h.Offset)
		}
		n.streams[s] = e
		n.fine[e.bucket] ^= e.leaf
	}
	return n
}

func bucketOf(s event.StreamID) uint16 {
	sum := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint16(sum[:2]) >> (16 - digestFineBits)
}

func leafOf(s event.StreamID, off uint64) uint64 {
	h := sha256.New()
	h.Write([]byte(s))
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], off)
	h.Write(b[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Len returns the number of streams in the digest.
func (d *Digest) Len() int {
	if d == nil {
		return 0
	}
	return len(d.streams)
}

// Root returns the XOR of all leaves.
func (d *Digest) Root() uint64 {
	var r uint64
	if d != nil {
		for _, v := range d.fine {
			r ^= v
		}
	}
	return r
}

// Offset returns the offset the digest holds for s.
func (d *Digest) Offset(s event.StreamID) (uint64, bool) {
	if d == nil {
		return 0, false
	}
	e, ok := d.streams[s]
	return e.off, ok
}

// Buckets returns the values of n buckets; n is a power of two no larger
// than digestFine (BucketsFor chooses one).
func (d *Digest) Buckets(n int) []uint64 {
	out := make([]uint64, n)
	if d == nil {
		return out
	}
	shift := digestFineBits - bits.TrailingZeros(uint(n))
	for i, v := range d.fine {
		out[i>>shift] ^= v
	}
	return out
}

// InBuckets returns the streams of the digest whose bucket (of n) is in
// set, with their offsets, in stream order.
func (d *Digest) InBuckets(n int, set map[int]bool) []StreamOffset {
	var out []StreamOffset
	if d == nil {
		return nil
	}
	shift := digestFineBits - bits.TrailingZeros(uint(n))
	for s, e := range d.streams {
		if set[int(e.bucket)>>shift] {
			out = append(out, StreamOffset{Stream: s, Offset: e.off})
		}
	}
	slices.SortFunc(out, func(a, b StreamOffset) int { return cmp.Compare(a.Stream, b.Stream) })
	return out
}

// BucketOf returns the bucket (of n) that s falls in.
func BucketOf(s event.StreamID, n int) int {
	return int(bucketOf(s)) >> (digestFineBits - bits.TrailingZeros(uint(n)))
}

// BucketsFor returns the number of buckets two nodes holding a and b
// streams compare: about perBucket streams per bucket, a power of two from
// 1 to digestFine, so one differing stream costs a bucket of about
// perBucket entries.
func BucketsFor(a, b, perBucket int) int {
	n := 1
	for n < digestFine && n*perBucket < max(a, b) {
		n *= 2
	}
	return n
}

// StreamOffset is one entry of an offset map.
type StreamOffset struct {
	Stream event.StreamID
	Offset uint64
}
