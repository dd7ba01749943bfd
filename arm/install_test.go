// Package arm_test checks the device installer (install.sh) and the files it
// installs: it builds the real edgelog binary, lays out a dist directory as
// `make cross` does, and installs into a DESTDIR.
package arm_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// built is the dist directory TestMain lays out once: edgelog for this
// machine, named like the output of scripts/cross.sh, with its SHA256SUMS;
// builtArch is its architecture ("" when there is no build for it).
var built, builtArch string

func TestMain(m *testing.M) {
	code, err := buildDist()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	if built != "" {
		os.RemoveAll(built)
	}
	os.Exit(code)
}

func buildDist() (int, error) {
	arch := map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armv7"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		return 0, nil // the tests skip
	}
	dir, err := os.MkdirTemp("", "edgelog-dist-")
	if err != nil {
		return 1, err
	}
	built = dir
	name := "edgelog-linux-" + arch
	build := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/edgelog")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build: %w\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 1, err
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(hex.EncodeToString(sum[:])+"  "+name+"\n"), 0o644); err != nil {
		return 1, err
	}
	builtArch = arch
	return 0, nil
}

// dist returns the dist directory and its architecture.
func dist(t *testing.T) (dir, arch string) {
	t.Helper()
	if builtArch == "" {
		t.Skipf("no edgelog build for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return built, builtArch
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// install runs install.sh into destdir and returns its output.
func install(t *testing.T, destdir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"install.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "DESTDIR="+destdir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInstall(t *testing.T) {
	d, arch := dist(t)
	root := t.TempDir()
	out, err := install(t, root, "--dist", d, "--arch", arch)
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, "checksum of edgelog-linux-"+arch+" OK") {
		t.Errorf("the checksum was not verified:\n%s", out)
	}
	// The installed binary checked the shipped config (no warning), and it
	// runs.
	if strings.Contains(out, "could not check the config") {
		t.Errorf("the shipped config.yaml does not pass `edgelog config check`:\n%s", out)
	}
	bin := filepath.Join(root, "usr/local/bin/edgelog")
	for path, want := range map[string]os.FileMode{
		bin: 0o755,
		filepath.Join(root, "etc/systemd/system/edgelog.service"): 0o644,
		filepath.Join(root, "etc/edgelog/config.yaml"):            0o644,
	} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}
	if out, err := exec.Command(bin, "config", "check", filepath.Join(root, "etc/edgelog/config.yaml")).CombinedOutput(); err != nil {
		t.Errorf("edgelog config check of the installed config: %v\n%s", err, out)
	}

	// The unit runs the installed binary with the installed config as its
	// own user, restarts it, and keeps its data in /var/lib/edgelog.
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/edgelog.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/edgelog run --config /etc/edgelog/config.yaml", "User=edgelog", "Restart=on-failure", "StateDirectory=edgelog"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("edgelog.service lacks %q", want)
		}
	}

	// An upgrade keeps the device's own config.
	cfg := filepath.Join(root, "etc/edgelog/config.yaml")
	writeFile(t, cfg, "data: /var/lib/edgelog\n# edited on the device\n", 0o644)
	if out, err := install(t, root, "--dist", d, "--arch", arch); err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "edited on the device") {
		t.Error("an upgrade overwrote the device's config.yaml")
	}
	if _, err := os.Stat(cfg + ".new"); err != nil {
		t.Errorf("the shipped config was not put next to the kept one: %v", err)
	}
}

func TestInstallRefusals(t *testing.T) {
	d, arch := dist(t)
	other := "arm64" // an architecture without a binary in d
	if arch != "amd64" {
		other = "amd64"
	}
	tests := []struct {
		name  string
		prep  func(dir string)
		args  []string
		wants string
	}{
		{"tampered binary", func(dir string) {
			f, err := os.OpenFile(filepath.Join(dir, "edgelog-linux-"+arch), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("x")
			f.Close()
		}, []string{"--arch", arch}, "does not match its checksum"},
		{"missing binary", nil, []string{"--arch", other}, "missing "},
		{"unknown arch", nil, []string{"--arch", "mips"}, "unknown --arch mips"},
		{"unknown flag", nil, []string{"--frobnicate"}, "unknown argument --frobnicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"edgelog-linux-" + arch, "SHA256SUMS"} {
				b, err := os.ReadFile(filepath.Join(d, f))
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, f), string(b), 0o755)
			}
			if tc.prep != nil {
				tc.prep(dir)
			}
			root := t.TempDir()
			out, err := install(t, root, append([]string{"--dist", dir}, tc.args...)...)
			if err == nil {
				t.Fatalf("install.sh succeeded:\n%s", out)
			}
			if !strings.Contains(out, tc.wants) {
				t.Errorf("output lacks %q:\n%s", tc.wants, out)
			}
			if _, err := os.Stat(filepath.Join(root, "usr/local/bin/edgelog")); err == nil {
				t.Error("a refused install still installed the binary")
			}
		})
	}
}
