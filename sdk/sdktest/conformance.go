package sdktest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgelog/edgelog/sdk"
)

// Reading is the payload the conformance suite publishes.
type reading struct {
	Machine string  `cbor:"machine"`
	Value   float64 `cbor:"value"`
	Seq     int     `cbor:"seq"`
}

// Conformance runs the contract of sdk.EventLog against the logs open
// returns: a fresh, empty log per call, closed by open's own t.Cleanup.
// Every implementation of sdk.EventLog should pass it.
func Conformance(t *testing.T, open func(t *testing.T) sdk.EventLog) {
	machine, temp := sdk.Tag("machine"), sdk.Tag("temperature")

	t.Run("PublishQuery", func(t *testing.T) {
		log := open(t)
		ctx := Context(t)
		metas, err := log.Publish(ctx,
			sdk.NewDraft(reading{"7", 20.5, 0}, machine.WithID("7"), temp),
			sdk.NewDraft(reading{"8", 21, 1}, machine.WithID("8"), temp),
			sdk.NewDraft(reading{"7", 22.25, 2}, machine.WithID("7")),
		)
		if err != nil {
			t.Fatal(err)
		}
		if len(metas) != 3 {
			t.Fatalf("got %d metas, want 3", len(metas))
		}
		id, err := log.NodeID(ctx)
		if err != nil || id == "" {
			t.Fatalf("NodeID = %q, %v", id, err)
		}
		for i, m := range metas {
			if m.Stream.Node() != id {
				t.Errorf("meta %d: stream %s is not of node %s", i, m.Stream, id)
			}
			if i > 0 && (m.Lamport <= metas[i-1].Lamport || m.Offset != metas[i-1].Offset+1) {
				t.Errorf("metas not consecutive: %+v", metas)
			}
		}
		off, err := log.Offsets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := off.Present[metas[0].Stream]; got != metas[2].Offset {
			t.Errorf("Offsets.Present = %v, want %s up to %d", off.Present, metas[0].Stream, metas[2].Offset)
		}

		evs := Collect(t, log.Query(ctx, sdk.Where(machine.WithID("7"))))
		if got := seqs(t, evs); !slices.Equal(got, []int{0, 2}) {
			t.Fatalf("machine:7 selected %v, want [0 2]", got)
		}
		if !evs[0].HasTag("machine") || !evs[0].HasTag("machine:7") || !evs[0].HasTag("temperature") {
			t.Errorf("tags %v, want machine, machine:7, temperature", evs[0].Tags)
		}
		var r reading
		if err := evs[1].Decode(&r); err != nil || r != (reading{"7", 22.25, 2}) {
			t.Errorf("Decode = %+v, %v", r, err)
		}
		if evs[0].Key() != (sdk.EventKey{Lamport: metas[0].Lamport, Stream: string(metas[0].Stream), Offset: metas[0].Offset}) {
			t.Errorf("key %v does not match meta %+v", evs[0].Key(), metas[0])
		}
		if evs[0].AppID == "" || evs[0].Time().IsZero() {
			t.Errorf("event lacks app id or time: %+v", evs[0])
		}

		cases := []struct {
			name string
			q    sdk.Query
			opts []sdk.ReadOption
			want []int
		}{
			{"and", sdk.Where(machine.And(temp)), nil, []int{0, 1}},
			{"or", sdk.Where(machine.WithID("8").Or(machine.WithID("7").And(temp))), nil, []int{0, 1}},
			{"aql", sdk.AQL("FROM 'machine:7' | 'machine:8'"), nil, []int{0, 1, 2}},
			{"all", sdk.Where(sdk.AllEvents), nil, []int{0, 1, 2}},
			{"local", sdk.Where(sdk.IsLocal.And(machine)), nil, []int{0, 1, 2}},
			{"desc", sdk.Where(machine), []sdk.ReadOption{sdk.Descending()}, []int{2, 1, 0}},
			{"after", sdk.Where(machine), []sdk.ReadOption{sdk.After(sdk.OffsetMap{metas[0].Stream: metas[0].Offset})}, []int{1, 2}},
			{"upTo", sdk.Where(machine), []sdk.ReadOption{sdk.UpTo(sdk.OffsetMap{metas[0].Stream: metas[1].Offset})}, []int{0, 1}},
			{"none", sdk.Where(sdk.Tag("nothing")), nil, nil},
		}
		for _, c := range cases {
			if got := seqs(t, Collect(t, log.Query(ctx, c.q, c.opts...))); !slices.Equal(got, c.want) {
				t.Errorf("%s: %s selected %v, want %v", c.name, c.q, got, c.want)
			}
		}
	})

	t.Run("Errors", func(t *testing.T) {
		log := open(t)
		ctx := Context(t)
		if _, err := log.Publish(ctx); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("publishing nothing: %v, want ErrInvalid", err)
		}
		if _, err := log.Publish(ctx, sdk.Draft{Tags: []string{""}, Value: 1}); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("empty tag: %v, want ErrInvalid", err)
		}
		if _, err := log.Publish(ctx, sdk.Draft{Tags: []string{"x"}, Value: func() {}}); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("unencodable value: %v, want ErrInvalid", err)
		}
		bad := sdk.AQL("FROM 'unclosed")
		if bad.Err() == nil {
			t.Fatal("bad AQL has no error")
		}
		for name, seq := range map[string]iter.Seq2[sdk.Event, error]{
			"query":     log.Query(ctx, bad),
			"subscribe": log.Subscribe(ctx, bad),
			"upTo":      log.Subscribe(ctx, sdk.Where(machine), sdk.UpTo(nil)),
		} {
			if err := firstErr(seq); !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		for _, err := range log.SubscribeMonotonic(ctx, bad) {
			if !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("monotonic: %v, want ErrInvalid", err)
			}
			break
		}
	})

	t.Run("PublishIdempotent", func(t *testing.T) {
		log := open(t)
		ctx := Context(t)
		opts := sdk.PublishOptions{IdempotencyKey: "order-17"}
		d := sdk.NewDraft(reading{"7", 1, 0}, machine.WithID("7"))
		first, err := log.PublishWith(ctx, opts, d)
		if err != nil {
			t.Fatal(err)
		}
		again, err := log.PublishWith(ctx, opts, d)
		if err != nil || !slices.Equal(first, again) {
			t.Fatalf("retry: %v, %v; want %v", again, err, first)
		}
		if _, err := log.PublishWith(ctx, opts, sdk.NewDraft(reading{"7", 2, 0}, machine.WithID("7"))); !errors.Is(err, sdk.ErrIdempotencyMismatch) {
			t.Fatalf("same key, other events: %v, want ErrIdempotencyMismatch", err)
		}
		if n := len(Collect(t, log.Query(ctx, sdk.Where(machine)))); n != 1 {
			t.Fatalf("%d events stored, want 1", n)
		}
	})

	t.Run("PublishGuarded", func(t *testing.T) {
		log := open(t)
		ctx := Context(t)
		q := sdk.Where(machine.WithID("7"))
		guard := func(since sdk.EventKey) sdk.PublishOptions {
			return sdk.PublishOptions{Guard: &sdk.Guard{Query: q, Since: since}}
		}
		m, err := log.PublishWith(ctx, guard(sdk.EventKey{}), sdk.NewDraft(reading{"7", 1, 0}, machine.WithID("7")))
		if err != nil {
			t.Fatalf("guard over no events: %v", err)
		}
		since := sdk.EventKey{Lamport: m[0].Lamport, Stream: string(m[0].Stream), Offset: m[0].Offset}
		if _, err := log.Publish(ctx, sdk.NewDraft(reading{"8", 1, 1}, machine.WithID("8"))); err != nil {
			t.Fatal(err) // not selected by the guard
		}
		m2, err := log.PublishWith(ctx, guard(since), sdk.NewDraft(reading{"7", 2, 2}, machine.WithID("7")))
		if err != nil {
			t.Fatalf("guard at the latest key: %v", err)
		}
		_, err = log.PublishWith(ctx, guard(since), sdk.NewDraft(reading{"7", 3, 3}, machine.WithID("7")))
		var ce *sdk.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, sdk.ErrConflict) {
			t.Fatalf("stale guard: %v, want *sdk.ConflictError", err)
		}
		if len(ce.Changed) != 1 || ce.Changed[0].Offset != m2[0].Offset || seqs(t, ce.Changed)[0] != 2 {
			t.Fatalf("Changed = %+v, want the event at offset %d", ce.Changed, m2[0].Offset)
		}
		if _, err := log.PublishWith(ctx, sdk.PublishOptions{Guard: &sdk.Guard{}}, sdk.NewDraft(1, machine)); !errors.Is(err, sdk.ErrInvalid) {
			t.Fatalf("guard with a zero query: %v, want ErrInvalid", err)
		}
		if n := len(Collect(t, log.Query(ctx, q))); n != 2 {
			t.Fatalf("%d machine:7 events, want 2", n)
		}
	})

	t.Run("Subscribe", func(t *testing.T) {
		log := open(t)
		ctx, cancel := context.WithCancel(Context(t))
		defer cancel()
		publish(t, log, 0, 1)
		got := make(chan sdk.Event, 16)
		ended := make(chan error, 1)
		go func() {
			var last error
			for ev, err := range log.Subscribe(ctx, sdk.Where(machine)) {
				if err != nil {
					last = err
					break
				}
				got <- ev
			}
			ended <- last
		}()
		want := []int{0, 1}
		if s := seqs(t, Receive(t, got, 2)); !slices.Equal(s, want) {
			t.Fatalf("backlog %v, want %v", s, want)
		}
		publish(t, log, 2, 3)
		if s := seqs(t, Receive(t, got, 2)); !slices.Equal(s, []int{2, 3}) {
			t.Fatalf("live %v, want [2 3]", s)
		}
		cancel()
		select {
		case err := <-ended:
			if err != nil {
				t.Fatalf("subscription ended with %v after cancel, want no error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("subscription did not end after cancel")
		}
	})

	t.Run("SubscribeMonotonic", func(t *testing.T) {
		log := open(t)
		ctx, cancel := context.WithCancel(Context(t))
		defer cancel()
		metas := publish(t, log, 0, 1)
		got := make(chan sdk.Update, 16)
		go func() {
			for u, err := range log.SubscribeMonotonic(ctx, sdk.Where(machine)) {
				if err != nil {
					return
				}
				got <- u
			}
		}()
		us := Receive(t, got, 3)
		if us[0].Event == nil || us[1].Event == nil || us[2].Event != nil {
			t.Fatalf("want two events then a marker, got %+v", us)
		}
		if us[0].CaughtUp || !us[1].CaughtUp || !us[2].CaughtUp {
			t.Errorf("CaughtUp flags %v %v %v, want false true true", us[0].CaughtUp, us[1].CaughtUp, us[2].CaughtUp)
		}
		if us[2].Offsets[metas[1].Stream] < metas[1].Offset {
			t.Errorf("marker offsets %v do not cover %+v", us[2].Offsets, metas[1])
		}
		publish(t, log, 2)
		u := Receive(t, got, 1)[0]
		if u.Event == nil || !u.CaughtUp || seqs(t, []sdk.Event{*u.Event})[0] != 2 {
			t.Fatalf("live update %+v, want event 2 caught up", u)
		}
	})
}

// publish publishes one reading per seq, tagged machine:7, and returns the
// metas.
func publish(t *testing.T, log sdk.EventLog, seq ...int) []sdk.Meta {
	t.Helper()
	var ds []sdk.Draft
	for _, s := range seq {
		ds = append(ds, sdk.NewDraft(reading{"7", float64(s), s}, sdk.Tag("machine").WithID("7")))
	}
	metas, err := log.Publish(Context(t), ds...)
	if err != nil {
		t.Fatal(err)
	}
	return metas
}

func seqs(t *testing.T, evs []sdk.Event) []int {
	t.Helper()
	var out []int
	for _, ev := range evs {
		var r reading
		if err := ev.Decode(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r.Seq)
	}
	return out
}

func firstErr(seq iter.Seq2[sdk.Event, error]) error {
	for _, err := range seq {
		if err != nil {
			return err
		}
	}
	return nil
}

// Context returns a context that ends with the test or after a minute.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Collect returns every event of a finite sequence, failing t on an error.
func Collect(t testing.TB, seq iter.Seq2[sdk.Event, error]) []sdk.Event {
	t.Helper()
	var out []sdk.Event
	for ev, err := range seq {
		if err != nil {
			t.Fatalf("collect: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// ReceiveTimeout bounds how long Receive waits.
var ReceiveTimeout = 20 * time.Second

// Receive returns the next n values from ch, failing t if they do not
// arrive within ReceiveTimeout.
func Receive[T any](t testing.TB, ch <-chan T, n int) []T {
	t.Helper()
	out := make([]T, 0, n)
	deadline := time.After(ReceiveTimeout)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-deadline:
			t.Fatalf("received %d of %d values within %s: %s", len(out), n, ReceiveTimeout, strings.TrimSpace(fmt.Sprint(out)))
		}
	}
	return out
}

// Eventually polls cond until it holds, failing t after ReceiveTimeout.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ReceiveTimeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(wait)
	}
}
