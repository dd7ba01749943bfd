package event

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendPayloadJSON appends the JSON form of a stored CBOR payload to dst.
// It transcodes directly, without building Go values, for everything a JSON
// client or a Go value can produce; anything else (CBOR tags, non-text map
// keys, huge negative integers, indefinite-length strings) goes through
// PayloadToJSON's general path. Map keys keep their stored order.
func AppendPayloadJSON(dst, data []byte) ([]byte, error) {
	out, rest, ok := transcode(dst, data, 0)
	if ok && len(rest) == 0 {
		return out, nil
	}
	j, err := PayloadToJSON(data)
	if err != nil {
		return dst, err
	}
	return append(dst, j...), nil
}

// cborHead decodes an item's initial byte and argument.
func cborHead(d []byte) (major, ai byte, arg uint64, rest []byte, ok bool) {
	if len(d) == 0 {
		return 0, 0, 0, nil, false
	}
	major, ai, d = d[0]>>5, d[0]&31, d[1:]
	switch {
	case ai < 24:
		return major, ai, uint64(ai), d, true
	case ai == 24 && len(d) >= 1:
		return major, ai, uint64(d[0]), d[1:], true
	case ai == 25 && len(d) >= 2:
		return major, ai, uint64(binary.BigEndian.Uint16(d)), d[2:], true
	case ai == 26 && len(d) >= 4:
		return major, ai, uint64(binary.BigEndian.Uint32(d)), d[4:], true
	case ai == 27 && len(d) >= 8:
		return major, ai, binary.BigEndian.Uint64(d), d[8:], true
	case ai == 31:
		return major, ai, 0, d, true
	}
	return 0, 0, 0, nil, false
}

// transcode appends the JSON of the first CBOR item of d; ok is false when
// the item needs the general path.
func transcode(b, d []byte, depth int) (out, rest []byte, ok bool) {
	if depth > 64 {
		return b, d, false
	}
	major, ai, arg, d, ok := cborHead(d)
	if !ok {
		return b, d, false
	}
	switch major {
	case 0:
		return strconv.AppendUint(b, arg, 10), d, true
	case 1:
		if arg > math.MaxInt64 {
			return b, d, false
		}
		return strconv.AppendInt(b, -1-int64(arg), 10), d, true
	case 2, 3:
		if ai == 31 || arg > uint64(len(d)) {
			return b, d, false
		}
		s := d[:arg]
		if major == 2 {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, s)
			return append(b, '"'), d[arg:], true
		}
		return appendJSONString(b, s), d[arg:], true
	case 4:
		b = append(b, '[')
		for i := uint64(0); ai == 31 || i < arg; i++ {
			if ai == 31 && len(d) > 0 && d[0] == 0xff {
				d = d[1:]
				break
			}
			if i > 0 {
				b = append(b, ',')
			}
			if b, d, ok = transcode(b, d, depth+1); !ok {
				return b, d, false
			}
		}
		return append(b, ']'), d, true
	case 5:
		b = append(b, '{')
		for i := uint64(0); ai == 31 || i < arg; i++ {
			if ai == 31 && len(d) > 0 && d[0] == 0xff {
				d = d[1:]
				break
			}
			if i > 0 {
				b = append(b, ',')
			}
			if len(d) == 0 || d[0]>>5 != 3 {
				return b, d, false // non-text key
			}
			if b, d, ok = transcode(b, d, depth+1); !ok {
				return b, d, false
			}
			b = append(b, ':')
			if b, d, ok = transcode(b, d, depth+1); !ok {
				return b, d, false
			}
		}
		return append(b, '}'), d, true
	case 7:
		switch ai {
		case 20:
			return append(b, "false"...), d, true
		case 21:
			return append(b, "true"...), d, true
		case 22, 23:
			return append(b, "null"...), d, true
		case 25:
			return appendJSONFloat(b, halfToFloat(uint16(arg))), d, true
		case 26:
			return appendJSONFloat(b, float64(math.Float32frombits(uint32(arg)))), d, true
		case 27:
			return appendJSONFloat(b, math.Float64frombits(arg)), d, true
		}
	}
	return b, d, false
}

// appendJSONString appends s quoted as encoding/json would.
func appendJSONString(b, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONFloat formats f as encoding/json does; NaN and infinities,
// which JSON lacks, become null.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// halfToFloat converts an IEEE 754 half-precision float.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 31:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(frac+1024, exp-25)
}
