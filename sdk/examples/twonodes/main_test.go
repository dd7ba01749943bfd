package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out strings.Builder
	if err := Run(ctx, &out); err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{
		"line: published 5 readings",
		"office: 2 work orders stored for 2 overheating readings",
		"technician ana completed",
		"technician bob rejected: 1 newer event(s)",
		"done by ana",
		"consumer com.example.dispatcher/dispatcher running=true, 0 blocked",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
