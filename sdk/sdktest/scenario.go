package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/edgelog/edgelog/event"
	"github.com/edgelog/edgelog/sdk"
)

// Command is what a scenario's When runs: a command handler deciding on
// events from the log and publishing them.
type Command func(ctx context.Context, log sdk.EventLog) error

// StateProbe reads the state a scenario's State checks; see StateOf.
type StateProbe func(ctx context.Context, log sdk.EventLog) (any, error)

// StateOf probes the state of the aggregate newAgg declares on a log.
func StateOf[S any](newAgg func(log sdk.EventLog) *sdk.Aggregate[S]) StateProbe {
	return func(ctx context.Context, log sdk.EventLog) (any, error) {
		s, _, err := newAgg(log).State(ctx)
		return s, err
	}
}

// Scenario is a Given/When/Then test of a command handler:
//
//	sdktest.Given(t, opened, assigned).
//		When(completeOrder("wo-1")).
//		Then(completed).
//		State(sdktest.StateOf(workOrder("wo-1")), WorkOrder{Status: "done"})
//
// Given publishes events on a fresh embedded node in a temp dir; When runs
// the command; Then compares the events the command published with the
// expected ones (tags as sets, payloads by value) and State the probed
// state with the expected one (reflect.DeepEqual). Mismatches are reported
// with t.Errorf and a line diff ("-" expected, "+" actual).
type Scenario struct {
	t     testing.TB
	log   *sdk.Embedded
	after sdk.OffsetMap // offsets after the Given events
	err   error         // the command's error
	ran   bool
}

// Given starts a scenario on a fresh node holding events.
func Given(t testing.TB, events ...sdk.Draft) *Scenario {
	t.Helper()
	log, err := sdk.Open(t.TempDir(), sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("sdktest: starting a node: %v", err)
	}
	t.Cleanup(func() { log.Close() })
	s := &Scenario{t: t, log: log, after: sdk.OffsetMap{}}
	if len(events) > 0 {
		if _, err := log.Publish(Context(t), events...); err != nil {
			t.Fatalf("sdktest: Given: %v", err)
		}
	}
	off, err := log.Offsets(Context(t))
	if err != nil {
		t.Fatalf("sdktest: Given: %v", err)
	}
	s.after = off.Present
	return s
}

// Log returns the scenario's node.
func (s *Scenario) Log() *sdk.Embedded { return s.log }

// When runs cmd on the scenario's node. Its error is checked by Then
// (which wants none) or ThenFails.
func (s *Scenario) When(cmd Command) *Scenario {
	s.t.Helper()
	s.err = cmd(Context(s.t), s.log)
	s.ran = true
	return s
}

// Then checks that the command succeeded and published exactly expected,
// in order.
func (s *Scenario) Then(expected ...sdk.Draft) *Scenario {
	s.t.Helper()
	if s.ran && s.err != nil {
		s.t.Errorf("sdktest: When: the command failed: %v", s.err)
		return s
	}
	var want, got []string
	for _, d := range expected {
		want = append(want, renderDraft(s.t, d))
	}
	for _, ev := range Collect(s.t, s.log.Query(Context(s.t), sdk.Where(sdk.AllEvents), sdk.After(s.after))) {
		got = append(got, render(s.t, ev.Tags, ev.Payload))
	}
	if !slices.Equal(want, got) {
		s.t.Errorf("sdktest: Then: published events differ (-expected +actual):\n%s", Diff(want, got))
	}
	return s
}

// ThenFails checks that the command failed with an error matching target
// (errors.Is) and published nothing.
func (s *Scenario) ThenFails(target error) *Scenario {
	s.t.Helper()
	if !errors.Is(s.err, target) {
		s.t.Errorf("sdktest: ThenFails: the command returned %v, want an error matching %v", s.err, target)
	}
	if evs := Collect(s.t, s.log.Query(Context(s.t), sdk.Where(sdk.AllEvents), sdk.After(s.after))); len(evs) > 0 {
		s.t.Errorf("sdktest: ThenFails: the failed command published %d event(s)", len(evs))
	}
	return s
}

// State checks that probe reads expected.
func (s *Scenario) State(probe StateProbe, expected any) *Scenario {
	s.t.Helper()
	got, err := probe(Context(s.t), s.log)
	if err != nil {
		s.t.Errorf("sdktest: State: %v", err)
		return s
	}
	if !reflect.DeepEqual(got, expected) {
		s.t.Errorf("sdktest: State differs (-expected +actual):\n%s", Diff(lines(expected), lines(got)))
	}
	return s
}

// renderDraft renders a draft as render does an event.
func renderDraft(t testing.TB, d sdk.Draft) string {
	payload, ok := d.Value.(sdk.RawCBOR)
	if !ok {
		var err error
		if payload, err = event.MarshalCBOR(d.Value); err != nil {
			t.Fatalf("sdktest: encoding %T: %v", d.Value, err)
		}
	}
	return render(t, d.Tags, payload)
}

// render is one line per event: sorted tags, then the payload as JSON.
func render(t testing.TB, tags []string, payload []byte) string {
	tags = slices.Clone(tags)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	js, err := event.PayloadToJSON(payload)
	if err != nil {
		js = []byte(fmt.Sprintf("<%v>", err))
	}
	return fmt.Sprintf("%v %s", tags, js)
}

// lines renders v as indented JSON lines (or %#v if that fails).
func lines(v any) []string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return []string{fmt.Sprintf("%#v", v)}
	}
	return strings.Split(string(b), "\n")
}

// Diff returns a line diff of want and got: common lines indented, lines
// only in want with "-", lines only in got with "+".
func Diff(want, got []string) string {
	// Longest common subsequence, fine for the small inputs of tests.
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			fmt.Fprintf(&b, "  %s\n", want[i])
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&b, "+ %s\n", got[j])
			j++
		default:
			fmt.Fprintf(&b, "- %s\n", want[i])
			i++
		}
	}
	return b.String()
}
