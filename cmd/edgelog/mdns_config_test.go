package main

import (
	"strings"
	"testing"
)

func TestMDNSSetting(t *testing.T) {
	off := writeFile(t, "off.yaml", "replication:\n  mdns: false\n")
	on := writeFile(t, "on.yaml", "replication:\n  mdns: true\n")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want bool
	}{
		{"on by default", nil, nil, true},
		{"file turns it off", nil, []string{"--config", off}, false},
		{"env beats file", map[string]string{envMDNS: "true"}, []string{"--config", off}, true},
		{"env turns it off", map[string]string{envMDNS: "false"}, nil, false},
		{"flag beats env and file", map[string]string{envMDNS: "true"}, []string{"--config", on, "--mdns=false"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := resolve(t, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if s.Replication == nil || s.Replication.MDNS != tc.want {
				t.Fatalf("replication %+v, want mdns %v", s.Replication, tc.want)
			}
		})
	}
	if _, err := resolve(t, map[string]string{envMDNS: "maybe"}); err == nil || !strings.Contains(err.Error(), "EDGELOG_MDNS") {
		t.Fatalf("bad EDGELOG_MDNS: %v", err)
	}
	bad := writeFile(t, "bad.yaml", "replication:\n  mdns: sometimes\n")
	if _, err := resolve(t, nil, "--config", bad); err == nil || !strings.Contains(err.Error(), "mdns") {
		t.Fatalf("bad replication.mdns: %v", err)
	}
}
