package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/fxamacker/cbor/v2"
)

var (
	cborEnc cbor.EncMode
	cborDec cbor.DecMode
)

func init() {
	var err error
	opts := cbor.CoreDetEncOptions()
	cborEnc, err = opts.EncMode()
	if err != nil {
		panic(err)
	}
	cborDec, err = cbor.DecOptions{
		MaxNestedLevels:  MaxPayloadDepth,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// MarshalCBOR encodes v with the core deterministic encoding used for stored
// payloads.
func MarshalCBOR(v any) ([]byte, error) { return cborEnc.Marshal(v) }

// UnmarshalCBOR decodes data into v with the limits used for payloads.
func UnmarshalCBOR(data []byte, v any) error { return cborDec.Unmarshal(data, v) }

// ErrPayload is wrapped by every payload conversion error.
var ErrPayload = errors.New("invalid payload")

// MaxPayloadDepth is how many arrays and maps a payload may nest inside
// one another (a flat object is 1, [[1]] is 2). It is the one limit for payloads in JSON (PayloadFromJSON), in CBOR
// (CheckPayload, UnmarshalCBOR) and on every path that stores them.
const MaxPayloadDepth = 64

// CheckPayload reports whether b is one well-formed CBOR value within the
// payload limits (MaxPayloadDepth), without decoding it.
func CheckPayload(b []byte) error {
	if err := cborDec.Wellformed(b); err != nil {
		return fmt.Errorf("%w: %v", ErrPayload, err)
	}
	return nil
}

// PayloadFromJSON converts a JSON value to its deterministic CBOR encoding.
// Integers that fit 64 bits stay integers; other numbers become floats.
func PayloadFromJSON(raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: missing", ErrPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after JSON value", ErrPayload)
	}
	v, err := fromJSON(v, 0)
	if err != nil {
		return nil, err
	}
	out, err := cborEnc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	return out, nil
}

// fromJSON converts a decoded JSON value inside depth containers.
func fromJSON(v any, depth int) (any, error) {
	switch v.(type) {
	case []any, map[string]any:
		if depth >= MaxPayloadDepth {
			return nil, fmt.Errorf("%w: arrays and maps nested deeper than %d levels", ErrPayload, MaxPayloadDepth)
		}
	}
	switch x := v.(type) {
	case json.Number:
		s := x.String()
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil {
			return u, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: number %s out of range", ErrPayload, s)
		}
		return f, nil
	case []any:
		for i := range x {
			c, err := fromJSON(x[i], depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			c, err := fromJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
		return x, nil
	default:
		return v, nil
	}
}

// PayloadToJSON converts a stored CBOR payload to JSON. CBOR that has no JSON
// form is mapped as plainly as possible: byte strings become base64 strings
// (as encoding/json does), non-string map keys their decimal or text form,
// NaN and infinities null, tags their content.
func PayloadToJSON(data []byte) (json.RawMessage, error) {
	var v any
	if err := cborDec.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	out, err := json.Marshal(toJSON(v))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPayload, err)
	}
	return out, nil
}

func toJSON(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case float32:
		return toJSON(float64(x))
	case []any:
		for i := range x {
			x[i] = toJSON(x[i])
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = toJSON(e)
		}
		return x
	case map[any]any:
		// Keys of different types may print alike (1 and "1", 0 and
		// simple(0)); JSON has one of each, so the same one must win on
		// every call, whatever order Go's map yields them in: the first
		// by type name, then by printed value. Only colliding keys pay
		// for that comparison.
		type entry struct{ k, e any }
		won := make(map[string]entry, len(x))
		for k, e := range x {
			key := fmt.Sprint(k)
			if w, ok := won[key]; ok && !firstKey(k, e, w.k, w.e) {
				continue
			}
			won[key] = entry{k, e}
		}
		m := make(map[string]any, len(won))
		for key, w := range won {
			m[key] = toJSON(w.e)
		}
		return m
	case cbor.Tag:
		return toJSON(x.Content)
	case cbor.SimpleValue:
		return nil
	default:
		return v
	}
}

// firstKey reports whether map key k (with value e) comes before key wk
// (with value we), which prints alike: by type name, then by printed value.
func firstKey(k, e, wk, we any) bool {
	if t, wt := fmt.Sprintf("%T", k), fmt.Sprintf("%T", wk); t != wt {
		return t < wt
	}
	return fmt.Sprint(e) < fmt.Sprint(we)
}
