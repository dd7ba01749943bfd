package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A record is an event's stored value: everything but its key and Lamport
// time (block.go). In blocks of layout 5 and 6 (recordV1):
//
//	version:1 flags:1 timestamp:varint ntags:uvarint {len:uvarint tag}*
//	len:uvarint appId payload...
//
// In blocks of layout 7 (recordV2), which say once what their records
// share (blockHeader):
//
//	flags:1 Δtimestamp:varint ntags:uvarint {tag index:uvarint}*
//	[len:uvarint appId] payload...
//
// with the timestamp relative to the block's, the tags indexes into the
// block's, and an app ID only where flags bit 1 says it is not the
// block's. Most events of a batch share their app ID, timestamp and some
// tags, and every byte stored costs a replica CPU when it catches up
// (docs/storage.md).
//
// flags bit 0: payload is zstd-compressed. Payloads are compressed when they
// are at least compressMin bytes and shrink by at least an eighth.
const (
	recordV1      = 1
	flagZstd      = 1
	flagOwnApp    = 2
	compressMin   = 512
	maxRecordTags = 1 << 16
)

var errBadRecord = errors.New("node: malformed record")

var (
	zenc     *zstd.Encoder
	zdec     *zstd.Decoder
	zencOnce sync.Once
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder) {
	zencOnce.Do(func() {
		var err error
		zenc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err)
		}
		zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			panic(err)
		}
	})
	return zenc, zdec
}

type record struct {
	timestamp int64
	tags      []string
	appID     string
	payload   []byte
}

// packPayload returns the payload as stored, compressed if that pays, with
// the record flags that say how.
func packPayload(payload []byte) ([]byte, byte) {
	if len(payload) >= compressMin {
		enc, _ := zstdCodecs()
		if c := enc.EncodeAll(payload, nil); len(c) <= len(payload)-len(payload)/8 {
			return c, flagZstd
		}
	}
	return payload, 0
}

// decodeRecord parses the record rec. The result does not alias its bytes
// (Badger reuses them).
func decodeRecord(rec blockRec) (record, error) {
	r, flags, rest, err := decodeHeader(rec)
	if err != nil {
		return r, err
	}
	r.payload, err = decodePayload(flags, rest)
	return r, err
}

// decodeHeader parses everything of the record rec but the payload, which
// it returns still encoded (aliasing the record) together with the flags
// that say how (flagZstd), so callers can filter on tags before paying for
// the payload.
func decodeHeader(rec blockRec) (r record, flags byte, rest []byte, err error) {
	if rec.hdr != nil {
		return decodeHeaderV2(rec.hdr, rec.rec)
	}
	b := rec.rec
	if len(b) < 2 || b[0] != recordV1 {
		return r, 0, nil, errBadRecord
	}
	flags = b[1]
	b = b[2:]
	ts, n := binary.Varint(b)
	if n <= 0 {
		return r, 0, nil, errBadRecord
	}
	r.timestamp, b = ts, b[n:]
	var ok bool
	if r.tags, b, ok = cutStrings(b, true); !ok {
		return r, 0, nil, errBadRecord
	}
	if r.appID, b, ok = cutString(b, true); !ok {
		return r, 0, nil, errBadRecord
	}
	return r, flags, b, nil
}

// decodeHeaderV2 is decodeHeader for a record of a block of layout 7, whose
// header is h.
func decodeHeaderV2(h *blockHeader, b []byte) (r record, flags byte, rest []byte, err error) {
	if len(b) < 1 || b[0]&^(flagZstd|flagOwnApp) != 0 {
		return r, 0, nil, errBadRecord
	}
	flags, b = b[0], b[1:]
	d, n := binary.Varint(b)
	if n <= 0 {
		return r, 0, nil, errBadRecord
	}
	r.timestamp, b = h.ts+d, b[n:]
	nt, n := binary.Uvarint(b)
	if n <= 0 || nt > uint64(len(b)) {
		return r, 0, nil, errBadRecord
	}
	b = b[n:]
	r.tags = make([]string, nt)
	for i := range r.tags {
		t, n := binary.Uvarint(b)
		if n <= 0 || t >= uint64(len(h.tags)) {
			return r, 0, nil, errBadRecord
		}
		r.tags[i], b = h.tags[t], b[n:]
	}
	r.appID = h.appID
	if flags&flagOwnApp != 0 {
		var ok bool
		if r.appID, b, ok = cutString(b, true); !ok {
			return r, 0, nil, errBadRecord
		}
	}
	return r, flags & flagZstd, b, nil
}

// decodePayload returns a copy of the payload stored in rest.
func decodePayload(flags byte, rest []byte) ([]byte, error) {
	if flags&flagZstd == 0 {
		return append([]byte(nil), rest...), nil
	}
	_, dec := zstdCodecs()
	p, err := dec.DecodeAll(rest, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", errBadRecord, err)
	}
	return p, nil
}
