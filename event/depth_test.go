package event

import (
	"errors"
	"strings"
	"testing"
)

// TestPayloadDepthOneLimit: JSON and CBOR payloads are held to the same
// nesting limit, MaxPayloadDepth, whether the innermost container is empty
// or not, and the JSON error names that limit.
func TestPayloadDepthOneLimit(t *testing.T) {
	for _, d := range []int{1, MaxPayloadDepth - 1, MaxPayloadDepth, MaxPayloadDepth + 1} {
		for _, inner := range []string{"", "1", `{"a":1}`} {
			depth := d
			if strings.HasPrefix(inner, "{") {
				depth++
			}
			j := strings.Repeat("[", d) + inner + strings.Repeat("]", d)
			b, err := PayloadFromJSON([]byte(j))
			if want := depth <= MaxPayloadDepth; (err == nil) != want {
				t.Fatalf("%d containers from JSON: err %v, want accepted %v", depth, err, want)
			}
			if err != nil {
				if !errors.Is(err, ErrPayload) || !strings.Contains(err.Error(), "64") {
					t.Fatalf("%d containers: error %q does not name the limit", depth, err)
				}
				continue
			}
			if err := CheckPayload(b); err != nil {
				t.Fatalf("%d containers: JSON accepted, its CBOR refused: %v", depth, err)
			}
		}
	}
	// The same depth built directly in CBOR: 0x81 is a one-element array.
	for _, d := range []int{MaxPayloadDepth, MaxPayloadDepth + 1} {
		b := append([]byte(strings.Repeat("\x81", d-1)), 0x80)
		if err := CheckPayload(b); (err == nil) != (d <= MaxPayloadDepth) {
			t.Fatalf("%d nested CBOR arrays: %v", d, err)
		}
		var v any
		if err := UnmarshalCBOR(b, &v); (err == nil) != (d <= MaxPayloadDepth) {
			t.Fatalf("%d nested CBOR arrays decoded: %v", d, err)
		}
	}
	if err := CheckPayload([]byte{0x01, 0x02}); !errors.Is(err, ErrPayload) {
		t.Fatalf("two values: %v", err)
	}
}
