package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestStreamID(t *testing.T) {
	good := []string{"12D3KooWabc-0", "node-17"}
	for _, s := range good {
		if !StreamID(s).Valid() {
			t.Errorf("%q rejected", s)
		}
	}
	node, n, err := ParseStreamID("12D3KooWabc-42")
	if err != nil || node != "12D3KooWabc" || n != 42 {
		t.Fatalf("parse: %q %d %v", node, n, err)
	}
	for _, s := range []string{"", "-1", "node-", "node", "node-x", "no de-1", "a-b-3", "node-99999999999", "n\x00-1", strings.Repeat("a", 200) + "-1"} {
		if StreamID(s).Valid() {
			t.Errorf("%q accepted", s)
		}
	}
	if got := NewStreamID("abc", 3); got != "abc-3" || got.Node() != "abc" {
		t.Fatalf("NewStreamID = %q", got)
	}
}

func TestRanges(t *testing.T) {
	lower := OffsetMap{"a-0": 5, "b-0": 9, "z-0": 1}
	upper := OffsetMap{"a-0": 7, "b-0": 9, "c-0": 2}
	got := Ranges(lower, upper)
	slices.SortFunc(got, func(x, y Range) int { return strings.Compare(string(x.Stream), string(y.Stream)) })
	want := []Range{{"a-0", 5, 7}, {"c-0", -1, 2}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Ranges = %+v, want %+v", got, want)
	}
	u := lower.Union(upper)
	if !reflect.DeepEqual(u, OffsetMap{"a-0": 7, "b-0": 9, "c-0": 2, "z-0": 1}) {
		t.Fatalf("Union = %v", u)
	}
	if !upper.Contains("a-0", 7) || upper.Contains("a-0", 8) || upper.Contains("q-0", 0) {
		t.Fatal("Contains wrong")
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"value":42.5}`, `1`, `-9223372036854775808`, `18446744073709551615`, `1e300`, `0.1`,
		`"text"`, `null`, `true`, `[1,"a",{"b":[]}]`, `{"z":1,"a":{"y":null}}`, `"é\u2028"`,
	} {
		c, err := PayloadFromJSON([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := PayloadToJSON(c)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var a, b any
		json.Unmarshal([]byte(in), &a)
		json.Unmarshal(out, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("round trip %s -> %s", in, out)
		}
	}
	// Deterministic: key order of the input does not matter.
	x, _ := PayloadFromJSON([]byte(`{"a":1,"b":2}`))
	y, _ := PayloadFromJSON([]byte(`{"b":2,"a":1}`))
	if !bytes.Equal(x, y) {
		t.Fatal("encoding is not deterministic")
	}
}

func TestPayloadErrors(t *testing.T) {
	for _, in := range []string{``, `   `, `{`, `{"a":1} x`, `[1,]`, strings.Repeat("[", 100) + strings.Repeat("]", 100), `1e999`} {
		if _, err := PayloadFromJSON([]byte(in)); !errors.Is(err, ErrPayload) {
			t.Errorf("%.30q: err = %v, want ErrPayload", in, err)
		}
	}
	if _, err := PayloadToJSON([]byte{0xff}); !errors.Is(err, ErrPayload) {
		t.Errorf("bad CBOR: %v", err)
	}
}

func TestPayloadToJSONNonJSONValues(t *testing.T) {
	// CBOR a JSON client could not have sent: byte strings, integer keys,
	// NaN, tags. They map to plain JSON rather than fail.
	v := map[any]any{uint64(1): []byte{1, 2}, "nan": nanValue()}
	c, err := MarshalCBOR(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := PayloadToJSON(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"1":"AQI=","nan":null}` {
		t.Fatalf("got %s", out)
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func FuzzPayloadJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null,true]}`, `"s"`, `-1`, `{"":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := PayloadFromJSON(in)
		if err != nil {
			return
		}
		out, err := PayloadToJSON(c)
		if err != nil {
			t.Fatalf("stored payload of %q cannot be read back: %v", in, err)
		}
		// Integral floats come back as integers (0.00 -> 0); after that
		// one normalisation the conversion is stable.
		c2, err := PayloadFromJSON(out)
		if err != nil {
			t.Fatalf("%q -> %s does not parse back: %v", in, out, err)
		}
		out2, _ := PayloadToJSON(c2)
		if c3, err := PayloadFromJSON(out2); err != nil || !bytes.Equal(c2, c3) {
			t.Fatalf("%q -> %s -> %s is not stable (%v)", in, out, out2, err)
		}
	})
}

func FuzzPayloadToJSON(f *testing.F) {
	f.Add([]byte{0xa1, 0x01, 0x42, 0x01, 0x02})
	f.Add([]byte{0xf9, 0x7e, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := PayloadToJSON(in)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON %s from %x", out, in)
		}
	})
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestAppendPayloadJSONMatchesGeneralPath(t *testing.T) {
	values := []any{
		map[string]any{"value": 42.5, "n": -7, "big": uint64(18446744073709551615), "s": "é<\"x\">", "b": []byte{0, 1, 2}},
		[]any{float32(0.1), 1e-7, 1e21, 123456789.0, nil, true, false, map[string]any{}},
		"plain", int64(-9223372036854775808), map[any]any{1: "int key"}, []byte{},
	}
	for _, v := range values {
		c, err := MarshalCBOR(v)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := AppendPayloadJSON([]byte("prefix"), c)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		slow, _ := PayloadToJSON(c)
		if !bytes.HasPrefix(fast, []byte("prefix")) || !sameJSON(fast[6:], slow) {
			t.Errorf("%v: fast %s, general %s", v, fast[6:], slow)
		}
	}
	// Half floats and indefinite lengths.
	for _, c := range [][]byte{{0xf9, 0x3c, 0x00}, {0xf9, 0x7c, 0x00}, {0x9f, 0x01, 0x02, 0xff}, {0xbf, 0x61, 0x61, 0x01, 0xff}} {
		fast, err := AppendPayloadJSON(nil, c)
		slow, err2 := PayloadToJSON(c)
		if err != nil || err2 != nil || !sameJSON(fast, slow) {
			t.Errorf("%x: fast %s (%v), general %s (%v)", c, fast, err, slow, err2)
		}
	}
}

func FuzzAppendPayloadJSON(f *testing.F) {
	f.Add([]byte{0xa1, 0x61, 0x61, 0x42, 0x01, 0x02})
	f.Add([]byte{0x9f, 0xf9, 0x3c, 0x00, 0xff})
	f.Add([]byte{0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		slow, err := PayloadToJSON(in)
		if err != nil {
			return // invalid CBOR: the fast path may answer anything but must not panic
		}
		fast, err := AppendPayloadJSON(nil, in)
		if err != nil {
			t.Fatalf("%x: general path ok, fast path: %v", in, err)
		}
		if !sameJSON(fast, slow) {
			t.Fatalf("%x: fast %s, general %s", in, fast, slow)
		}
	})
}

func BenchmarkPayloadToJSON(b *testing.B) {
	c, _ := MarshalCBOR(map[string]any{"machine": 7, "seq": 12345, "temp": 23.5, "status": "running", "note": "abcdefghijklmnopqrstuvwx"})
	b.Run("general", func(b *testing.B) {
		for b.Loop() {
			PayloadToJSON(c)
		}
	})
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = AppendPayloadJSON(buf[:0], c)
		}
	})
}

// TestPayloadJSONCollidingKeys: CBOR map keys of different types that
// print alike (0, simple(0), "0") give one JSON key, the same on every call
// (Go's map order once made it flip; the fuzzer found it).
func TestPayloadJSONCollidingKeys(t *testing.T) {
	for _, in := range [][]byte{
		{0xa3, 0xe0, 0x30, 0x00, 0x25, 0x2f, 0x30},       // {simple(0): -17, 0: -6, -16: -17}
		{0xa3, 0x00, 0x01, 0x61, 0x30, 0x02, 0xe0, 0x03}, // {0: 1, "0": 2, simple(0): 3}
	} {
		first, err := PayloadToJSON(in)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			again, err := PayloadToJSON(in)
			if err != nil || string(again) != string(first) {
				t.Fatalf("%x: %s, then %s (%v)", in, first, again, err)
			}
		}
	}
}
