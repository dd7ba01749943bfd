package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/expiry"
)

func TestStreamsAndRoutes(t *testing.T) {
	path := writeFile(t, "c.yaml", `
streams:
  telemetry: {maxEvents: 1000, maxAge: 7d, maxSize: 50MB}
  audit:
  default: {maxAge: 1w3d}
  raw: {maxSize: 1048576}
routes:
  - from: "'telemetry'"
    into: telemetry
  - {from: "FROM 'audit' | appId(com.example.pay)", into: audit}
`)
	s, err := resolve(t, nil, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]expiry.Retention{
		"telemetry": {MaxEvents: 1000, MaxBytes: 50_000_000, MaxAge: 7 * 24 * time.Hour},
		"audit":     {},
		"default":   {MaxAge: 10 * 24 * time.Hour},
		"raw":       {MaxBytes: 1 << 20},
	}
	if !reflect.DeepEqual(s.Streams, want) {
		t.Errorf("streams %+v", s.Streams)
	}
	wantRoutes := []expiry.Route{{From: "'telemetry'", Into: "telemetry"}, {From: "FROM 'audit' | appId(com.example.pay)", Into: "audit"}}
	if !reflect.DeepEqual(s.Routes, wantRoutes) {
		t.Errorf("routes %+v", s.Routes)
	}
}

func TestStreamsAndRoutesBadInput(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"streams: {t: {maxSize: 50XB}}", "c.yaml:1:24: streams.t.maxSize: invalid setting: size \"50XB\": unknown unit"},
		{"streams: {t: {maxSize: -5MB}}", "streams.t.maxSize: invalid setting: \"-5MB\" is negative"},
		{"streams: {t: {maxSize: 0}}", "streams.t.maxSize: invalid setting: \"0\", want a positive size"},
		{"streams: {t: {maxAge: 7y}}", "streams.t.maxAge: invalid setting: duration \"7y\": unknown unit \"y\""},
		{"streams: {t: {maxAge: 0d}}", "streams.t.maxAge"},
		{"streams: {t: {maxEvents: 0}}", "c.yaml:1:26: streams.t.maxEvents: invalid setting: 0, want a positive number"},
		{"streams: {t: {maxEvents: -1}}", "streams.t.maxEvents"},
		{"streams: {t: {maxEvents: 10, keep: 3}}", "streams.t.keep: unknown key"},
		{"streams: {9x: {}}", "streams.9x: \"9x\" is not a stream name"},
		{"streams: [a]", "streams"},
		{"routes: [{from: \"'a'\", into: t}]", "routes[0].into: stream \"t\" is not declared under streams"},
		{"streams: {t: {}}\nroutes: [{from: \"'a\", into: t}]", "routes[0].from: \"'a\" is not a tag query"},
		{"streams: {t: {}}\nroutes: [{into: t}]", "routes[0]: a route needs from"},
		{"streams: {t: {}}\nroutes: [{from: \"'a'\", to: t}]", "routes[0].to: unknown key"},
	} {
		path := writeFile(t, "c.yaml", tc.yaml)
		_, err := resolve(t, nil, "--config", path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", tc.yaml, err, tc.want)
		}
	}
}

func TestStreamStatsOutput(t *testing.T) {
	m := map[event.StreamID]event.StreamStats{
		"n-2": {Floor: 900, Count: 100, Bytes: 12800, Retention: "maxEvents=100"},
		"n-0": {Count: 3, Bytes: 300},
	}
	if got := streamStatsCols(m, "n-2"); got != "900\t100\t12.5KiB" {
		t.Errorf("columns %q", got)
	}
	if got := streamStatsCols(m, "x-0"); got != "-\t-\t-" {
		t.Errorf("columns of a stream not held %q", got)
	}
	var b strings.Builder
	writeStreamStats(&b, m)
	want := "streams\t2\n  n-0\tfloor 0, 3 event(s), 300B, keep forever\n  n-2\tfloor 900, 100 event(s), 12.5KiB, maxEvents=100\n"
	if b.String() != want {
		t.Errorf("node info streams:\n%s\nwant\n%s", b.String(), want)
	}
}
