package node

import (
	"encoding/binary"
	"errors"
)

// Key layout. Streams are interned to a node-local 32-bit number (sid) so
// keys stay short; the merged order compares stream *names*, so runs of equal
// Lamport times are re-sorted by name when read (see sortRuns).
//
//	o <lamport:8> <sid:4> <offset:8>   -> record     events, in (lamport, sid, offset) order
//	s <sid:4> <offset:8>               -> lamport:8  per-stream offset index
//	t <tag> 0x00 <lamport:8> <sid:4> <offset:8>      tag index, empty value
//	n <sid:4>                          -> stream ID  the intern table
//	m lamport                          -> uint64     persisted Lamport clock
//	m format                           -> uint64     layout version
//	k <namespace> 0x00 <key>           -> value      key-value store, idempotency keys, consumers (kv.go)
//	f, z, y <sid:4>; r <name>                        floors, bytes, learnt rules, stream numbers (prune.go)
const (
	pfxEvent  = 'o'
	pfxStream = 's'
	pfxTag    = 't'
	pfxName   = 'n'
	pfxMeta   = 'm'
)

const (
	posKeyLen    = 8 + 4 + 8 // lamport, sid, offset
	eventKeyLen  = 1 + posKeyLen
	streamKeyLen = 1 + 4 + 8
)

// Layout versions, kept under keyFormat. Version 2 adds stream floors
// (pruning), routed stream names and the bookkeeping prefix to version 1,
// which it reads unchanged: opening a version 1 database upgrades it. An
// edgelog that knows only version 1 refuses a version 2 database, whose
// pruned streams it would misread.
const (
	formatV1      = 1
	formatV2      = 2
	formatCurrent = formatV2
)

var (
	keyLamport = []byte{pfxMeta, 'l', 'a', 'm', 'p', 'o', 'r', 't'}
	keyFormat  = []byte{pfxMeta, 'f', 'o', 'r', 'm', 'a', 't'}
)

var errBadKey = errors.New("node: malformed key")

// pos is an event's position in the store's key order.
type pos struct {
	lamport uint64
	sid     uint32
	offset  uint64
}

func appendPos(b []byte, p pos) []byte {
	b = binary.BigEndian.AppendUint64(b, p.lamport)
	b = binary.BigEndian.AppendUint32(b, p.sid)
	return binary.BigEndian.AppendUint64(b, p.offset)
}

func decodePos(b []byte) (pos, error) {
	if len(b) != posKeyLen {
		return pos{}, errBadKey
	}
	return pos{
		lamport: binary.BigEndian.Uint64(b),
		sid:     binary.BigEndian.Uint32(b[8:]),
		offset:  binary.BigEndian.Uint64(b[12:]),
	}, nil
}

func eventKey(p pos) []byte {
	return appendPos(append(make([]byte, 0, eventKeyLen), pfxEvent), p)
}

func streamKey(sid uint32, offset uint64) []byte {
	b := make([]byte, 0, streamKeyLen)
	b = append(b, pfxStream)
	b = binary.BigEndian.AppendUint32(b, sid)
	return binary.BigEndian.AppendUint64(b, offset)
}

func streamPrefix(sid uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{pfxStream}, sid)
}

func tagPrefix(tag string) []byte {
	b := make([]byte, 0, len(tag)+2+posKeyLen)
	b = append(b, pfxTag)
	b = append(b, tag...)
	return append(b, 0)
}

func tagKey(tag string, p pos) []byte { return appendPos(tagPrefix(tag), p) }

func nameKey(sid uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{pfxName}, sid)
}

// lamportSeek returns the smallest event key with the given Lamport time.
func lamportSeek(l uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{pfxEvent}, l)
}
