package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/pnet"
)

func TestSwarmKeygen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swarm.key")
	if code, _, errs := cli(t, "", "swarm", "keygen", path); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errs)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	psk, err := pnet.DecodeV1PSK(bytes.NewReader(first))
	if err != nil {
		t.Fatalf("not a PSK v1 file: %v\n%s", err, first)
	}
	if len(psk) != 32 {
		t.Fatalf("key of %d bytes", len(psk))
	}
	// An existing key is never overwritten by accident.
	code, _, errs := cli(t, "", "swarm", "keygen", path)
	if code != 1 || !strings.Contains(errs, "--force") {
		t.Fatalf("overwrite without --force: exit %d: %s", code, errs)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, first) {
		t.Fatal("key file changed without --force")
	}
	if code, _, errs := cli(t, "", "swarm", "keygen", "--force", path); code != 0 {
		t.Fatalf("keygen --force: exit %d: %s", code, errs)
	}
	second, _ := os.ReadFile(path)
	if bytes.Equal(second, first) {
		t.Fatal("--force did not write a new key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after --force %v", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// Without FILE the key goes to stdout; each key is new.
	code, out, _ := cli(t, "", "swarm", "keygen")
	if code != 0 {
		t.Fatalf("keygen to stdout: exit %d", code)
	}
	if _, err := pnet.DecodeV1PSK(strings.NewReader(out)); err != nil || out == string(second) {
		t.Fatalf("stdout key: %v\n%s", err, out)
	}
	// Usage errors.
	if code, _, _ := cli(t, "", "swarm", "keygen", "a", "b"); code != 2 {
		t.Fatalf("two files: exit %d, want 2", code)
	}
	if code, _, _ := cli(t, "", "swarm", "keygen", filepath.Join(dir, "missing", "k")); code != 1 {
		t.Fatalf("missing directory: exit %d, want 1", code)
	}
}
