package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// A record is an event's stored value: everything but its key.
//
//	version:1 flags:1 timestamp:varint ntags:uvarint {len:uvarint tag}*
//	len:uvarint appId payload...
//
// flags bit 0: payload is zstd-compressed. Payloads are compressed when they
// are at least compressMin bytes and shrink by at least an eighth.
const (
	recordV1      = 1
	flagZstd      = 1
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

func appendRecord(b []byte, r *record) []byte {
	payload, flags := r.payload, byte(0)
	if len(payload) >= compressMin {
		enc, _ := zstdCodecs()
		if c := enc.EncodeAll(payload, nil); len(c) <= len(payload)-len(payload)/8 {
			payload, flags = c, flagZstd
		}
	}
	b = append(b, recordV1, flags)
	b = binary.AppendVarint(b, r.timestamp)
	b = binary.AppendUvarint(b, uint64(len(r.tags)))
	for _, t := range r.tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.appID)))
	b = append(b, r.appID...)
	return append(b, payload...)
}

// decodeRecord parses b. The result does not alias b (Badger reuses it).
func decodeRecord(b []byte) (record, error) {
	r, flags, rest, err := decodeHeader(b)
	if err != nil {
		return r, err
	}
	r.payload, err = decodePayload(flags, rest)
	return r, err
}

// decodeHeader parses everything but the payload, which it returns still
// encoded (aliasing b) together with the record's flags, so callers can
// filter on tags before paying for the payload.
func decodeHeader(b []byte) (r record, flags byte, rest []byte, err error) {
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
	nt, n := binary.Uvarint(b)
	if n <= 0 || nt > maxRecordTags || nt > uint64(len(b)) {
		return r, 0, nil, errBadRecord
	}
	b = b[n:]
	r.tags = make([]string, nt)
	for i := range r.tags {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return r, 0, nil, errBadRecord
		}
		r.tags[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return r, 0, nil, errBadRecord
	}
	r.appID = string(b[n : n+int(l)])
	return r, flags, b[n+int(l):], nil
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
