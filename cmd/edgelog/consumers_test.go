package main

import (
	"strings"
	"testing"
	"time"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/lamport"
)

func TestWriteConsumers(t *testing.T) {
	var b strings.Builder
	writeConsumers(&b, []event.ConsumerStatus{{
		Name: "dispatcher", AppID: "com.example.gw", Running: true,
		Checkpoint: event.OffsetMap{"12D3KooWA-0": 9, "12D3KooWB-0": 4},
		Blocked:    []event.BlockedStream{{Stream: "12D3KooWB-0", Event: lamport.EventKey{Lamport: 7, Stream: "12D3KooWB-0", Offset: 5}, Attempts: 5, Error: "smtp down"}},
		Updated:    time.Date(2026, 11, 24, 19, 0, 0, 0, time.UTC),
	}})
	for _, want := range []string{
		"consumers\t1\n",
		"com.example.gw dispatcher\trunning, 2 stream(s), 15 event(s) handled, 1 blocked, updated 2026-11-24T19:00:00Z",
		"blocked 12D3KooWB-0\tat offset 5 after 5 attempt(s): smtp down",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}
