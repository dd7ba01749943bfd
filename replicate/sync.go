package replicate

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

// The sync protocol: anti-entropy between two connected nodes, over any
// io.ReadWriter. Gossip carries each origin's new events to the swarm;
// sync is how a node learns what its neighbours hold beyond that (streams
// they relay, events it missed, everything after a partition) without
// every node repeating every head to everyone. Its cost follows what
// differs, not the swarm's size:
//
//  1. initiator: its digest root and stream count (a few bytes);
//  2. responder: Equal, and both are done; or its bucket values, in as
//     many buckets as BucketsFor chooses for the two counts;
//  3. initiator: its (stream, offset) entries of the buckets that differ
//     (as many whole buckets as fit, the ones covered listed);
//  4. responder: its signed heads where it is ahead in those buckets, with
//     their floors and rules, and the streams where the initiator is ahead
//     (Want);
//  5. initiator: its signed heads of Want, with floors and rules.
//
// Both sides come out with the other's verified heads where it is ahead,
// which the planner pulls from. Where a message had to leave part of the
// difference out, the initiator's result says More: it syncs again.

// ErrSyncTooLarge: the offset maps differ in a bucket too large for one
// message; sync cannot reconcile it (pulls of what gossip announces still
// work).
var ErrSyncTooLarge = errors.New("offset map too large to reconcile")

// SyncView is what one side of a sync knows of its own store: a digest of
// Heads, and its floors and rules (Store.Expiry) by stream.
type SyncView struct {
	Digest *Digest
	Heads  map[event.StreamID]chain.SignedHead
	Expiry map[event.StreamID]expiry.StreamExpiry
}

// SyncResult is what a sync taught one side about the other.
type SyncResult struct {
	// Equal: the peer holds exactly the same offsets.
	Equal bool
	// Heads are the peer's heads, verified, where it is ahead of this side
	// (or holds a stream this side lacks).
	Heads []chain.SignedHead
	// Expiry holds the peer's floors and rules of those streams.
	Expiry []expiry.StreamExpiry
	// More: part of the difference was left out; sync again.
	More bool
	// Sent and Received count the bytes of the messages.
	Sent, Received int
}

type wireSync struct {
	Root    uint64       `cbor:"1,keyasint,omitempty"`
	Count   uint64       `cbor:"2,keyasint,omitempty"`
	Equal   bool         `cbor:"3,keyasint,omitempty"`
	N       uint64       `cbor:"4,keyasint,omitempty"`
	Buckets []uint64     `cbor:"5,keyasint,omitempty"`
	Cover   []uint64     `cbor:"6,keyasint,omitempty"`
	Entries []wireOffset `cbor:"7,keyasint,omitempty"`
	Heads   []wireHead   `cbor:"8,keyasint,omitempty"`
	Expiry  []wireExpiry `cbor:"9,keyasint,omitempty"`
	Want    []string     `cbor:"10,keyasint,omitempty"`
	More    bool         `cbor:"11,keyasint,omitempty"`
}

type wireOffset struct {
	_      struct{} `cbor:",toarray"`
	Stream string
	Offset uint64
}

// syncer is one side of a sync: its messages, counted and bounded.
type syncer struct {
	r        *bufio.Reader
	w        io.Writer
	lim      Limits
	verify   func(chain.SignedHead) error
	v        SyncView
	res      SyncResult
	maxBytes int
}

func newSyncer(conn io.ReadWriter, v SyncView, verify func(chain.SignedHead) error, lim Limits) *syncer {
	lim = lim.WithDefaults()
	return &syncer{r: bufio.NewReader(conn), w: conn, lim: lim, verify: verify, v: v, maxBytes: lim.MaxAnnounceBytes}
}

func (s *syncer) send(m wireSync) error {
	cw := &countWriter{w: s.w}
	if err := writeMsg(cw, m); err != nil {
		return fmt.Errorf("sync: write: %w", err)
	}
	s.res.Sent += cw.n
	return nil
}

func (s *syncer) recv() (wireSync, error) {
	b, err := readMsg(s.r, s.maxBytes)
	if err != nil {
		return wireSync{}, fmt.Errorf("sync: read: %w", err)
	}
	s.res.Received += len(b)
	var m wireSync
	if err := wireDec.Unmarshal(b, &m); err != nil {
		return wireSync{}, fmt.Errorf("%w: sync message: %v", chain.ErrMalformed, err)
	}
	if len(m.Entries) > s.lim.MaxHeads || len(m.Heads) > s.lim.MaxHeads || len(m.Want) > s.lim.MaxHeads || len(m.Cover) > digestFine {
		return wireSync{}, fmt.Errorf("%w: sync message with more than %d entries", chain.ErrMalformed, s.lim.MaxHeads)
	}
	return m, nil
}

type countWriter struct {
	w io.Writer
	n int
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// SyncInitiate runs the initiator's side of a sync over conn. verify checks
// a head's signature (a cache may answer). Errors wrapping
// chain.ErrIntegrity are the peer's misbehaviour.
func SyncInitiate(ctx context.Context, conn io.ReadWriter, v SyncView, verify func(chain.SignedHead) error, lim Limits) (SyncResult, error) {
	defer closeOnDone(ctx, conn)()
	s := newSyncer(conn, v, verify, lim)
	if err := s.send(wireSync{Root: v.Digest.Root(), Count: uint64(v.Digest.Len())}); err != nil {
		return s.res, err
	}
	m, err := s.recv()
	if err != nil {
		return s.res, err
	}
	if m.Equal {
		s.res.Equal = true
		return s.res, nil
	}
	n := int(m.N)
	if n < 1 || n > digestFine || bits.OnesCount(uint(n)) != 1 || len(m.Buckets) != n {
		return s.res, fmt.Errorf("%w: sync: %d bucket values for %d buckets", chain.ErrMalformed, len(m.Buckets), n)
	}
	// The differing buckets, as many as fit with their entries.
	mine := v.Digest.Buckets(n)
	var differ []int
	for i := range n {
		if mine[i] != m.Buckets[i] {
			differ = append(differ, i)
		}
	}
	perBucket := make(map[int][]StreamOffset, len(differ))
	all := v.Digest.InBuckets(n, setOf(differ))
	for _, e := range all {
		b := BucketOf(e.Stream, n)
		perBucket[b] = append(perBucket[b], e)
	}
	var out wireSync
	cover := map[int]bool{}
	size := 0
	for _, b := range differ {
		es := perBucket[b]
		bytes := 0
		for _, e := range es {
			bytes += len(e.Stream) + 12
		}
		if len(out.Entries)+len(es) > s.lim.MaxHeads || size+bytes > s.lim.MaxAnnounceBytes/2 {
			if len(out.Cover) == 0 {
				// Only with far more streams than digestFine buckets of a
				// message each (millions, with the default limits).
				return s.res, fmt.Errorf("sync: a bucket of %d streams does not fit a message: %w", len(es), ErrSyncTooLarge)
			}
			s.res.More = true
			break
		}
		size += bytes
		cover[b] = true
		out.Cover = append(out.Cover, uint64(b))
		for _, e := range es {
			out.Entries = append(out.Entries, wireOffset{Stream: string(e.Stream), Offset: e.Offset})
		}
	}
	if err := s.send(out); err != nil {
		return s.res, err
	}
	m, err = s.recv()
	if err != nil {
		return s.res, err
	}
	if m.More {
		s.res.More = true
	}
	if err := s.take(m, n, cover); err != nil {
		return s.res, err
	}
	want := make([]event.StreamID, 0, len(m.Want))
	for _, w := range m.Want {
		st := event.StreamID(w)
		if !st.Valid() || !cover[BucketOf(st, n)] {
			return s.res, fmt.Errorf("%w: sync: wants stream %q outside the buckets compared", chain.ErrMalformed, w)
		}
		want = append(want, st)
	}
	if len(want) == 0 {
		return s.res, nil
	}
	heads, more := s.headsOf(want)
	s.res.More = s.res.More || more
	return s.res, s.send(heads)
}

// SyncRespond runs the responder's side of a sync over conn.
func SyncRespond(ctx context.Context, conn io.ReadWriter, v SyncView, verify func(chain.SignedHead) error, lim Limits) (SyncResult, error) {
	defer closeOnDone(ctx, conn)()
	s := newSyncer(conn, v, verify, lim)
	m, err := s.recv()
	if err != nil {
		return s.res, err
	}
	if m.Root == v.Digest.Root() && int(m.Count) == v.Digest.Len() {
		s.res.Equal = true
		return s.res, s.send(wireSync{Equal: true})
	}
	// Buckets of at most a quarter of a message's entries on average, so
	// that every bucket fits one (sizes vary around the mean).
	n := BucketsFor(int(min(m.Count, 1<<31)), v.Digest.Len(), min(8, max(1, s.lim.MaxHeads/4)))
	if err := s.send(wireSync{N: uint64(n), Buckets: v.Digest.Buckets(n)}); err != nil {
		return s.res, err
	}
	if m, err = s.recv(); err != nil {
		return s.res, err
	}
	cover := map[int]bool{}
	for _, b := range m.Cover {
		if b >= uint64(n) || cover[int(b)] {
			return s.res, fmt.Errorf("%w: sync: bucket %d of %d covered twice or out of range", chain.ErrMalformed, b, n)
		}
		cover[int(b)] = true
	}
	theirs := make(map[event.StreamID]uint64, len(m.Entries))
	for _, e := range m.Entries {
		st := event.StreamID(e.Stream)
		if !st.Valid() || !cover[BucketOf(st, n)] {
			return s.res, fmt.Errorf("%w: sync: entry of stream %q outside the buckets covered", chain.ErrMalformed, e.Stream)
		}
		if _, dup := theirs[st]; dup {
			return s.res, fmt.Errorf("%w: sync: stream %s listed twice", chain.ErrMalformed, st)
		}
		theirs[st] = e.Offset
	}
	var ahead []event.StreamID
	var want []string
	for _, e := range v.Digest.InBuckets(n, cover) {
		if off, ok := theirs[e.Stream]; !ok || e.Offset > off {
			ahead = append(ahead, e.Stream)
		}
	}
	for st, off := range theirs {
		if mine, ok := v.Digest.Offset(st); !ok || off > mine {
			want = append(want, string(st))
		}
	}
	slices.Sort(want)
	if len(want) > s.lim.MaxHeads {
		want = want[:s.lim.MaxHeads]
	}
	reply, more := s.headsOf(ahead)
	reply.Want, reply.More = want, more
	if err := s.send(reply); err != nil {
		return s.res, err
	}
	if len(want) == 0 {
		return s.res, nil
	}
	if m, err = s.recv(); err != nil {
		return s.res, err
	}
	return s.res, s.take(m, n, cover)
}

// headsOf returns a message with this side's signed heads of streams, and
// the floors and rules it has for them, within the limits; more reports
// that some were left out.
func (s *syncer) headsOf(streams []event.StreamID) (m wireSync, more bool) {
	size := 0
	for _, st := range streams {
		h, ok := s.v.Heads[st]
		if !ok || len(h.Sig) == 0 {
			continue // nothing signed to serve from (an expired stream's floor)
		}
		if len(m.Heads) == s.lim.MaxHeads || size > s.lim.MaxAnnounceBytes/2 {
			return m, true
		}
		size += len(st) + len(h.Sig) + 64
		m.Heads = append(m.Heads, toWireHead(h))
		if x, ok := s.v.Expiry[st]; ok {
			m.Expiry = append(m.Expiry, toWireExpiry([]expiry.StreamExpiry{x})...)
		}
	}
	return m, false
}

// take checks and keeps the heads and floors of m, which must lie in the
// covered buckets.
func (s *syncer) take(m wireSync, n int, cover map[int]bool) error {
	for i := range m.Heads {
		h, err := fromWireHead(&m.Heads[i])
		if err != nil {
			return err
		}
		if !cover[BucketOf(h.Stream, n)] {
			return fmt.Errorf("%w: sync: head of %s outside the buckets compared", chain.ErrMalformed, h.Stream)
		}
		if err := s.verify(h); err != nil {
			return fmt.Errorf("sync: head of %s: %w", h.Stream, err)
		}
		s.res.Heads = append(s.res.Heads, h)
	}
	xs, err := fromWireExpiry(m.Expiry, s.lim.MaxHeads)
	if err != nil {
		return err
	}
	s.res.Expiry = append(s.res.Expiry, xs...)
	slices.SortFunc(s.res.Heads, func(a, b chain.SignedHead) int { return cmp.Compare(a.Stream, b.Stream) })
	return nil
}

func setOf(xs []int) map[int]bool {
	m := make(map[int]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}
