package chain

import (
	"encoding/binary"
	"slices"

	"github.com/edgelog/edgelog/event"
)

// The canonical encodings below are deterministic CBOR (RFC 8949 core
// deterministic encoding: shortest heads, definite lengths), written by hand
// because they sit on the hot path of every stored and received event.
// TestCanonicalMatchesCBOR checks them against fxamacker/cbor.

// CBOR major types.
const (
	majUint  = 0 << 5
	majNeg   = 1 << 5
	majBytes = 2 << 5
	majText  = 3 << 5
	majArray = 4 << 5
)

// appendHead appends a CBOR head of major type maj with argument n.
func appendHead(b []byte, maj byte, n uint64) []byte {
	switch {
	case n < 24:
		return append(b, maj|byte(n))
	case n <= 0xff:
		return append(b, maj|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, maj|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, maj|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, maj|27), n)
	}
}

func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendHead(b, majUint, uint64(v))
	}
	return appendHead(b, majNeg, uint64(-(v + 1)))
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, majText, uint64(len(s))), s...)
}

func appendBytes(b []byte, p []byte) []byte {
	return append(appendHead(b, majBytes, uint64(len(p))), p...)
}

// canonicalTags returns tags sorted and without duplicates, copying only when
// they are not already.
func canonicalTags(tags []string) []string {
	for i := 1; i < len(tags); i++ {
		if tags[i-1] >= tags[i] {
			t := slices.Clone(tags)
			slices.Sort(t)
			return slices.Compact(t)
		}
	}
	return tags
}

// AppendCanonical appends the canonical encoding of e, the bytes its chain
// hash covers: the CBOR array [stream, offset, lamport, timestamp, tags
// (sorted, deduplicated), appId, payload (byte string)].
func AppendCanonical(b []byte, e *event.Event) []byte {
	tags := canonicalTags(e.Tags)
	b = append(b, majArray|7)
	b = appendText(b, string(e.Stream))
	b = appendHead(b, majUint, e.Offset)
	b = appendHead(b, majUint, e.Lamport)
	b = appendInt(b, e.Timestamp)
	b = appendHead(b, majArray, uint64(len(tags)))
	for _, t := range tags {
		b = appendText(b, t)
	}
	b = appendText(b, e.AppID)
	return appendBytes(b, e.Payload)
}

// headDomain separates head signatures from any other use of a node key.
const headDomain = "edgelog/head/v1\n"

// headMessage is what a head's signature covers: headDomain followed by the
// CBOR array [stream, offset, lamport, hash (byte string)].
func headMessage(h Head) []byte {
	b := make([]byte, 0, len(headDomain)+len(h.Stream)+64)
	b = append(b, headDomain...)
	b = append(b, majArray|4)
	b = appendText(b, string(h.Stream))
	b = appendHead(b, majUint, h.Offset)
	b = appendHead(b, majUint, h.Lamport)
	return appendBytes(b, h.Hash[:])
}
