package store

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Event records are stored in blocks (since layout version 5): consecutive
// events of one stream, written in one batch, share one Badger entry
//
//	b <sid:4> <first offset:8> -> {Δlamport:uvarint len:uvarint record}*
//
// where the first Lamport time is relative to 0 and the offsets follow
// from the first. One entry per event cost a node catching up on a peer
// about as much as the event's bytes. A block holds at most blockBytes of
// records (or one larger record) and never crosses a multiple of
// dropAlign offsets, so the record keys of an aligned range of offsets are
// still a key prefix (drop.go), and the block holding an offset starts in
// that offset's aligned range.
//
// Loading one event through the tag index is a point lookup of its block
// (the posting names it), which reads and decodes the whole block, so
// blockBytes trades selective queries (small blocks) against catch-up
// (large blocks); docs/storage.md has the measurements behind the choice.
const blockBytes = 2 << 10

// Since layout version 7 a block starts with what its records share, and
// its records (recordV2, record.go) refer to it:
//
//	0x00 appId:uvarint-len-prefixed timestamp:varint
//	ntags:uvarint {len:uvarint tag}* {Δlamport:uvarint len:uvarint record}*
//
// The first byte tells the two encodings apart: a block of layout 5 and 6
// starts with its first event's Lamport time, never 0.
const blockV2 = 0x00

// blockHeader is what the records of a block of layout 7 share: the app ID
// and timestamp that records state only where theirs differ, and every tag
// of the block's records, which they name by index.
type blockHeader struct {
	appID string
	ts    int64
	tags  []string
	raw   []byte // the header as stored, aliasing the block
}

// blockRec is one record of a decoded block.
type blockRec struct {
	lamport uint64
	rec     []byte
	hdr     *blockHeader // nil in a block of layout 5 or 6
}

// decodeBlock appends v's records to out; the i-th is at offset first+i.
func decodeBlock(v []byte, out []blockRec) ([]blockRec, error) {
	return decodeBlockAs(v, out, true)
}

// blockRecords is decodeBlock for the records' Lamport times and lengths
// only: it spares the header's strings, and the records it returns cannot
// be decoded.
func blockRecords(v []byte, out []blockRec) ([]blockRec, error) {
	return decodeBlockAs(v, out, false)
}

func decodeBlockAs(v []byte, out []blockRec, header bool) ([]blockRec, error) {
	var h *blockHeader
	if len(v) > 0 && v[0] == blockV2 {
		var err error
		if h, v, err = decodeBlockHeader(v, header); err != nil {
			return out, err
		}
	}
	var l uint64
	for i := 0; len(v) > 0; i++ {
		d, k := binary.Uvarint(v)
		if k <= 0 || (i > 0 && d == 0) || l+d < l {
			return out, fmt.Errorf("%w: record block", errBadRecord)
		}
		v = v[k:]
		n, k := binary.Uvarint(v)
		if k <= 0 || n > uint64(len(v)-k) {
			return out, fmt.Errorf("%w: record block", errBadRecord)
		}
		l += d
		out = append(out, blockRec{lamport: l, rec: v[k : k+int(n)], hdr: h})
		v = v[k+int(n):]
	}
	if len(out) == 0 {
		return out, fmt.Errorf("%w: empty record block", errBadRecord)
	}
	return out, nil
}

// errBadBlockHeader is made once: decodeBlockHeader runs for every block
// read, and building the error there on each call took a third of its time.
var errBadBlockHeader = fmt.Errorf("%w: record block header", errBadRecord)

// decodeBlockHeader parses the header of a block of layout 7 and returns
// it (nil unless keep) and the records after it.
func decodeBlockHeader(v []byte, keep bool) (*blockHeader, []byte, error) {
	b := v[1:]
	var h blockHeader
	var ok bool
	if h.appID, b, ok = cutString(b, keep); !ok {
		return nil, nil, errBadBlockHeader
	}
	ts, n := binary.Varint(b)
	if n <= 0 {
		return nil, nil, errBadBlockHeader
	}
	h.ts, b = ts, b[n:]
	if h.tags, b, ok = cutStrings(b, keep); !ok {
		return nil, nil, errBadBlockHeader
	}
	if !keep {
		return nil, b, nil
	}
	h.raw = v[:len(v)-len(b)]
	kept := h
	return &kept, b, nil
}

// cutString returns the uvarint-length-prefixed string at the start of b
// (or "" unless keep) and the bytes after it.
func cutString(b []byte, keep bool) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", nil, false
	}
	s := ""
	if keep {
		s = string(b[n : n+int(l)])
	}
	return s, b[n+int(l):], true
}

// appendString appends s as cutString reads it.
func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendStrings appends ss as cutStrings reads them.
func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// cutStrings returns the list of at most maxRecordTags strings (nil unless
// keep) at the start of b, a uvarint count and then each as cutString
// reads it, and the bytes after it.
func cutStrings(b []byte, keep bool) ([]string, []byte, bool) {
	nt, n := binary.Uvarint(b)
	if n <= 0 || nt > maxRecordTags || nt > uint64(len(b)) {
		return nil, nil, false
	}
	b = b[n:]
	var out []string
	if keep {
		out = make([]string, nt)
	}
	for i := range nt {
		s, rest, ok := cutString(b, keep)
		if !ok {
			return nil, nil, false
		}
		if keep {
			out[i] = s
		}
		b = rest
	}
	return out, b, true
}

// appendBlock appends to dst the block of recs, consecutive records of one
// block.
func appendBlock(dst []byte, recs []blockRec) []byte {
	n := 0
	for _, r := range recs {
		n += len(r.rec) + 2*binary.MaxVarintLen64
	}
	if h := recs[0].hdr; h != nil {
		n += len(h.raw)
	}
	dst = slices.Grow(dst, n)
	if h := recs[0].hdr; h != nil {
		dst = append(dst, h.raw...)
	}
	var l uint64 // a block's first Lamport time is relative to 0
	for _, r := range recs {
		dst = appendBlockRec(dst, r.lamport-l, r.rec)
		l = r.lamport
	}
	return dst
}

// appendBlockRec appends to a block the record rec, whose Lamport time is
// d above the one before.
func appendBlockRec(dst []byte, d uint64, rec []byte) []byte {
	dst = binary.AppendUvarint(dst, d)
	dst = binary.AppendUvarint(dst, uint64(len(rec)))
	return append(dst, rec...)
}

// blockBuilder collects a write batch's records into blocks of layout 7.
type blockBuilder struct {
	open    map[uint32]*openBlock
	scratch []byte
}

type openBlock struct {
	first, next uint64 // offsets: the block's first, the one it takes next
	lamport     uint64 // the last record's
	hdr         blockHeader
	hdrLen      int            // encoded length of hdr
	tagIdx      map[string]int // hdr.tags by tag
	buf         []byte         // the records
}

// add appends the record of r, the event at p, to the open block of p's
// stream, or to a new one when p does not continue it, the block is full,
// or p starts an aligned range; a block it closes goes to put. It returns
// the first offset of the block that took the record, and the record's
// length.
func (b *blockBuilder) add(p pos, r *record, put func(sid uint32, first uint64, val []byte)) (block uint64, size int) {
	if b.open == nil {
		b.open = map[uint32]*openBlock{}
	}
	payload, flags := packPayload(r.payload)
	o := b.open[p.sid]
	if o == nil || p.offset != o.next || p.offset%dropAlign == 0 || p.lamport <= o.lamport || o.hdrLen+len(o.buf)+len(payload)+len(r.appID) > blockBytes {
		if o != nil {
			put(p.sid, o.first, o.value())
		}
		// A new block's first Lamport time is relative to 0.
		o = &openBlock{first: p.offset, next: p.offset, hdr: blockHeader{appID: r.appID, ts: r.timestamp}, tagIdx: map[string]int{},
			buf: make([]byte, 0, min(blockBytes, 4*len(payload))+2*binary.MaxVarintLen64)}
		o.hdrLen = 1 + binary.MaxVarintLen64 + len(r.appID) + binary.MaxVarintLen64 + 2
		b.open[p.sid] = o
	}
	b.scratch = o.appendRecord(b.scratch[:0], r, payload, flags)
	o.buf = appendBlockRec(o.buf, p.lamport-o.lamport, b.scratch)
	o.next, o.lamport = p.offset+1, p.lamport
	return o.first, len(b.scratch)
}

// appendRecord appends to dst the record (recordV2) of r in o, with the
// payload packed and its flags, adding r's new tags to o's header.
func (o *openBlock) appendRecord(dst []byte, r *record, payload []byte, flags byte) []byte {
	if r.appID != o.hdr.appID {
		flags |= flagOwnApp
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, r.timestamp-o.hdr.ts)
	dst = binary.AppendUvarint(dst, uint64(len(r.tags)))
	for _, t := range r.tags {
		i, ok := o.tagIdx[t]
		if !ok {
			i = len(o.hdr.tags)
			o.tagIdx[t] = i
			o.hdr.tags = append(o.hdr.tags, t)
			o.hdrLen += binary.MaxVarintLen64 + len(t)
		}
		dst = binary.AppendUvarint(dst, uint64(i))
	}
	if flags&flagOwnApp != 0 {
		dst = appendString(dst, r.appID)
	}
	return append(dst, payload...)
}

// value returns o's block: its header, then its records.
func (o *openBlock) value() []byte {
	v := make([]byte, 0, o.hdrLen+len(o.buf))
	v = append(v, blockV2)
	v = appendString(v, o.hdr.appID)
	v = binary.AppendVarint(v, o.hdr.ts)
	v = appendStrings(v, o.hdr.tags)
	return append(v, o.buf...)
}

// putRaw hands put a block made elsewhere, of sid's events from first on,
// after the open block of sid, which it closes.
func (b *blockBuilder) putRaw(sid uint32, first uint64, data []byte, put func(sid uint32, first uint64, val []byte)) {
	if o := b.open[sid]; o != nil {
		put(sid, o.first, o.value())
		delete(b.open, sid)
	}
	put(sid, first, data)
}

// flush hands every open block to put and empties b.
func (b *blockBuilder) flush(put func(sid uint32, first uint64, val []byte)) {
	for sid, o := range b.open {
		put(sid, o.first, o.value())
	}
	clear(b.open)
}
