package store

import (
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/dgraph-io/badger/v4"

	"github.com/edgelog/edgelog/chain"
	"github.com/edgelog/edgelog/event"
)

// The stream index maps (stream, offset) to the event's Lamport time, which
// locates the event's record. It is stored in runs: one entry per stream per
// write batch, keyed by the run's first offset,
//
//	s <sid:4> <first offset:8> -> count:uvarint first-lamport:uvarint {delta:uvarint}*
//
// so a batch of 1000 events costs one index entry, not 1000. Runs of a
// stream never overlap: offsets are written once, in order. After the
// Lamport times a run may carry the origin's signed head at its last offset
// (see appendRunHead), the checkpoint replication verifies against.

// appendRun encodes the Lamport times of consecutive offsets; they increase.
func appendRun(b []byte, lamports []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(lamports)))
	prev := uint64(0)
	for _, l := range lamports {
		b = binary.AppendUvarint(b, l-prev)
		prev = l
	}
	return b
}

// maxRunHeadBytes bounds the head appended to a run.
const maxRunHeadBytes = 1 + 32 + 2 + 128

// appendRunHead appends the run's signed head: a marker byte, the chain
// hash, and the length-prefixed signature. Stream, offset and Lamport time
// are the run's own.
func appendRunHead(b []byte, h *chain.SignedHead) []byte {
	if h == nil {
		return b
	}
	b = append(b, 1)
	b = append(b, h.Hash[:]...)
	b = binary.AppendUvarint(b, uint64(len(h.Sig)))
	return append(b, h.Sig...)
}

// decodeRunHead parses what appendRunHead wrote (nothing: nil).
func decodeRunHead(stream event.StreamID, r run, rest []byte) (*chain.SignedHead, error) {
	if len(rest) == 0 {
		return nil, nil
	}
	if rest[0] != 1 || len(rest) < 1+32+1 {
		return nil, fmt.Errorf("%w: stream index head", errBadRecord)
	}
	h := &chain.SignedHead{Head: chain.Head{Stream: stream, Offset: r.last(), Lamport: r.lamports[len(r.lamports)-1]}}
	copy(h.Hash[:], rest[1:33])
	n, k := binary.Uvarint(rest[33:])
	if k <= 0 || n > 128 || uint64(len(rest)-33-k) != n {
		return nil, fmt.Errorf("%w: stream index head signature", errBadRecord)
	}
	h.Sig = append([]byte(nil), rest[33+k:]...)
	return h, nil
}

// decodeRun is appendRun's inverse; rest is what follows the run.
func decodeRun(v []byte) (lamports []uint64, rest []byte, err error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n == 0 || n > uint64(len(v)) {
		return nil, nil, fmt.Errorf("%w: stream index run", errBadRecord)
	}
	v = v[k:]
	out := make([]uint64, n)
	prev := uint64(0)
	for i := range out {
		d, k := binary.Uvarint(v)
		if k <= 0 || (i > 0 && d == 0) {
			return nil, nil, fmt.Errorf("%w: stream index run", errBadRecord)
		}
		prev += d
		out[i], v = prev, v[k:]
	}
	return out, v, nil
}

// run is one decoded stream index entry.
type run struct {
	first    uint64
	lamports []uint64
	head     []byte // encoded signed head, if any (see decodeRunHead)
}

func (r run) last() uint64 { return r.first + uint64(len(r.lamports)) - 1 }

func decodeRunItem(sid uint32, item *badger.Item) (run, error) {
	k := item.Key()
	if len(k) != streamKeyLen || binary.BigEndian.Uint32(k[1:]) != sid {
		return run{}, fmt.Errorf("%w: stream key %x", errBadKey, k)
	}
	r := run{first: binary.BigEndian.Uint64(k[5:])}
	err := item.Value(func(v []byte) error {
		var rest []byte
		var err error
		r.lamports, rest, err = decodeRun(v)
		r.head = append([]byte(nil), rest...)
		return err
	})
	return r, err
}

// runBefore returns the last run of sid that starts at or before offset.
func runBefore(txn *badger.Txn, sid uint32, offset uint64) (r run, ok bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(sid), Reverse: true})
	defer it.Close()
	it.Seek(streamKey(sid, offset))
	if !it.Valid() {
		return run{}, false, nil
	}
	r, err = decodeRunItem(sid, it.Item())
	return r, err == nil, err
}

// runAt returns the run of sid holding offset, or ok=false if none does.
func runAt(txn *badger.Txn, sid uint32, offset uint64) (r run, ok bool, err error) {
	r, ok, err = runBefore(txn, sid, offset)
	if !ok || offset > r.last() {
		return run{}, false, err
	}
	return r, true, nil
}

// lamportAt returns the Lamport time of the event at (sid, offset).
func lamportAt(txn *badger.Txn, sid uint32, offset uint64) (uint64, error) {
	r, ok, err := runAt(txn, sid, offset)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("stream index has no offset %d of stream %d", offset, sid)
	}
	return r.lamports[offset-r.first], nil
}

// runsFrom yields the runs of sid from the one holding offset on.
func runsFrom(txn *badger.Txn, sid uint32, offset uint64) iter.Seq2[run, error] {
	return func(yield func(run, error) bool) {
		start := offset
		if r, ok, err := runAt(txn, sid, offset); err != nil {
			yield(run{}, err)
			return
		} else if ok {
			start = r.first
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(sid)})
		defer it.Close()
		for it.Seek(streamKey(sid, start)); it.Valid(); it.Next() {
			r, err := decodeRunItem(sid, it.Item())
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}
