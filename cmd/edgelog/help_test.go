package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths lists the argument paths of every command below root.
func commandPaths(cmd *cobra.Command, prefix []string) [][]string {
	var out [][]string
	for _, c := range cmd.Commands() {
		p := append(append([]string(nil), prefix...), c.Name())
		out = append(out, p)
		out = append(out, commandPaths(c, p)...)
	}
	return out
}

func TestHelp(t *testing.T) {
	paths := append([][]string{{}}, commandPaths((&app{}).rootCmd(), nil)...)
	for _, want := range []string{"run", "events publish", "events query", "events subscribe", "events offsets", "node id", "node info", "version", "config example"} {
		found := false
		for _, p := range paths {
			found = found || strings.Join(p, " ") == want
		}
		if !found {
			t.Errorf("no command %q", want)
		}
	}
	for _, p := range paths {
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string(nil), p...), h)
			code, out, errs := cli(t, "", args...)
			if code != 0 || !strings.Contains(out, "Usage:") || errs != "" {
				t.Errorf("edgelog %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), code, errs, out)
			}
			if len(p) > 0 && !strings.Contains(out, "edgelog "+strings.Join(p, " ")) {
				t.Errorf("edgelog %s does not show the command's usage:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	// `edgelog help COMMAND` works too.
	if code, out, _ := cli(t, "", "help", "events", "query"); code != 0 || !strings.Contains(out, "--order") {
		t.Errorf("edgelog help events query: exit %d:\n%s", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"evnts"},
		{"events"},
		{"events", "qury"},
		{"run", "--no-such-flag"},
		{"run", "extra-argument"},
		{"version", "extra"},
		{"node", "id", "extra"},
		{"events", "query", "a", "b"},
		{"events", "query", "--lower", "not json"},
		{"events", "query", "--upper", `{"no-stream-id": 1}`},
		{"events", "publish", "--tag", "", "1"},
		{"run", "--dev-mode=perhaps"},
	} {
		code, out, errs := cli(t, "", args...)
		if code != 2 || errs == "" || out != "" {
			t.Errorf("edgelog %q: exit %d, stdout %q, stderr %q; want exit 2 and a message on stderr", args, code, out, errs)
		}
	}
	if _, _, errs := cli(t, "", "evnts"); !strings.Contains(errs, "did you mean events?") {
		t.Errorf("no suggestion for a misspelt command: %q", errs)
	}
}

func TestVersionAndExample(t *testing.T) {
	if out := mustCLI(t, "", "version"); !strings.HasPrefix(out, "edgelog "+version+" ") {
		t.Errorf("version: %q", out)
	}
	if out := mustCLI(t, "", "config", "example"); out != exampleConfig {
		t.Errorf("config example printed %q", out)
	}
	path := writeFile(t, "c.yaml", exampleConfig)
	if out := mustCLI(t, "", "config", "check", path); !strings.Contains(out, "OK") {
		t.Errorf("config check: %q", out)
	}
	bad := writeFile(t, "bad.yaml", "auth:\n  devmode: true\n")
	if code, _, errs := cli(t, "", "config", "check", bad); code != 1 || !strings.Contains(errs, "bad.yaml:2:3: auth.devmode: unknown key") {
		t.Errorf("config check of a bad file: exit %d, stderr %q", code, errs)
	}
}
