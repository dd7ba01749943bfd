package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key layout: every prefix the store writes is defined here. Streams are
// interned to a node-local 32-bit number (sid) so keys stay short. The
// merged order compares stream *names*: reads merge the streams' records
// by name, and the tag index, in (lamport, sid) order, has its runs of
// equal Lamport times re-sorted by name (sortRuns).
//
//	b <sid:4> <first offset:8>         -> records    event records in blocks (block.go)
//	s <sid:4> <offset:8>               -> run        per-stream offset index (streamindex.go)
//	t <tag> 0x00 <lamport:8> <sid:4> <offset:8> -> posting   tag index (posting.go)
//	n <sid:4>                          -> stream ID  the intern table
//	m lamport                          -> uint64     persisted Lamport clock
//	m format                           -> uint64     layout version
//	f <sid:4>  -> floor:8 lamport:8 hash:32   first offset kept, and the chain
//	                                          head at floor-1 (absent: floor 0)
//	z <sid:4>  -> bytes:8                     bytes the stream's events occupy
//	y <sid:4>  -> maxEvents:8 maxBytes:8 maxAge:8   rule its origin announced
//	r <name>   -> n:8                         stream number of a named stream (routes.go)
//	k <namespace> 0x00 <key>           -> value      key-value store and bookkeeping (kv.go)
//
// Namespaces of k starting with "edgelog." are the node's own:
//
//	edgelog.idem     <appId> 0x00 <idempotency key> -> idemRecord (CBOR), with a TTL (book.go)
//	edgelog.consumer <appId> 0x00 <consumer name>   -> consumerRecord (CBOR) (consumers.go)
//
// Layouts before version 5 used prefixes o and e for records (migrate.go).
//
// The writer goroutine writes f and z (pruning runs through it, see
// applyPrune), so they never race with a write of the same stream; y is
// written only by learnRetention, under pruneMu.
const (
	pfxEvent    = 'b'
	pfxStream   = 's'
	pfxTag      = 't'
	pfxName     = 'n'
	pfxMeta     = 'm'
	pfxFloor    = 'f'
	pfxSize     = 'z'
	pfxRule     = 'y'
	pfxStreamNo = 'r'
	pfxKV       = 'k'
)

// Namespaces of the node's own records in the key-value space.
const (
	reservedNS    = "edgelog."
	nsIdempotency = reservedNS + "idem"
	nsConsumer    = reservedNS + "consumer"
)

const (
	posKeyLen    = 8 + 4 + 8 // lamport, sid, offset
	streamKeyLen = 1 + 4 + 8
)

// Layout versions, kept under keyFormat. Version 2 adds stream floors
// (pruning), routed stream names and the bookkeeping prefix to version 1,
// which it reads unchanged. Version 3 keys event records by stream and
// offset instead of by Lamport time (prefix o, see migrate.go), so that the
// expired head of a stream is a range of keys that Badger can drop whole
// (DropPrefix) instead of deleting it key by key. Opening a version 1 or 2
// database upgrades it. An edgelog that knows an older version refuses a
// newer database. Version 4 gives tag index entries values, each listing
// a posting of events (posting.go). Version 5 stores records in blocks of
// consecutive events (block.go, prefix b). Version 6 postings say where
// each event's block starts. Version 7 writes blocks that state once what
// their records share (block.go); blocks of versions 5 and 6 stay as they
// are and are read as before. Upgrading rewrites the records of versions 1
// to 4 (prefix o or e) into blocks and writes the tag index of versions 3
// to 5 again (migrate.go).
const (
	formatV1      = 1
	formatV2      = 2
	formatV3      = 3
	formatV4      = 4
	formatV5      = 5
	formatV6      = 6
	formatV7      = 7
	formatCurrent = formatV7
)

var (
	keyLamport = []byte{pfxMeta, 'l', 'a', 'm', 'p', 'o', 'r', 't'}
	keyFormat  = []byte{pfxMeta, 'f', 'o', 'r', 'm', 'a', 't'}
)

var errBadKey = errors.New("node: malformed key")

// pos is an event's position: its stream, offset and Lamport time.
type pos struct {
	lamport uint64
	sid     uint32
	offset  uint64
}

// appendPos appends p in (lamport, sid, offset) order: the tag index's
// order, in which the merged view reads.
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

// eventPrefix is the prefix of sid's record block keys.
func eventPrefix(sid uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{pfxEvent}, sid)
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

func floorKey(sid uint32) []byte { return binary.BigEndian.AppendUint32([]byte{pfxFloor}, sid) }
func sizeKey(sid uint32) []byte  { return binary.BigEndian.AppendUint32([]byte{pfxSize}, sid) }
func ruleKey(sid uint32) []byte  { return binary.BigEndian.AppendUint32([]byte{pfxRule}, sid) }

func streamNoKey(name string) []byte {
	return append([]byte{pfxStreamNo}, name...)
}

// blockKeyLen is the length of a record block's key.
const blockKeyLen = 1 + 4 + 8

// blockKey is the key of sid's block starting at first, and the smallest
// key of its blocks starting there or later.
func blockKey(sid uint32, first uint64) []byte {
	return binary.BigEndian.AppendUint64(eventPrefix(sid), first)
}

// decodeBlockKey parses a block key.
func decodeBlockKey(k []byte) (sid uint32, first uint64, err error) {
	if len(k) != blockKeyLen || k[0] != pfxEvent {
		return 0, 0, fmt.Errorf("%w: record block key %x", errBadKey, k)
	}
	return binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:]), nil
}

// kvKey is the key of key in namespace ns.
func kvKey(ns, key string) []byte {
	b := make([]byte, 0, 2+len(ns)+len(key))
	b = append(b, pfxKV)
	b = append(b, ns...)
	b = append(b, 0)
	return append(b, key...)
}

func consumerKey(appID, name string) []byte {
	return kvKey(nsConsumer, appID+"\x00"+name)
}
