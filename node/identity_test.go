package node

import (
	"strings"
	"testing"
)

func TestIdentityKeyFile(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadIdentity(dir)
	if err != nil || a.ID != b.ID {
		t.Fatalf("second load: %v, %v vs %v", err, a.ID, b.ID)
	}
	if !strings.HasPrefix(a.ID.String(), "12D3KooW") {
		t.Fatalf("node id %s is not an Ed25519 peer id", a.ID)
	}
}
