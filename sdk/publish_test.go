package sdk_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/edgelog/edgelog/api"
	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
)

func TestPublishIdempotentAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := sdktest.Context(t)
	e, err := sdk.Open(dir, sdk.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	d := sdk.NewDraft(tick{1}, sdk.Tag("tick"))
	first, err := e.PublishIdempotent(ctx, "order-17", d)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.PublishIdempotent(ctx, "order-17", d)
	if err != nil || !slices.Equal(first, again) {
		t.Fatalf("retry: %v, %v; want %v", again, err, first)
	}
	if _, err := e.PublishIdempotent(ctx, "order-17", sdk.NewDraft(tick{2}, sdk.Tag("tick"))); !errors.Is(err, sdk.ErrIdempotencyMismatch) {
		t.Fatalf("other events under the same key: %v, want ErrIdempotencyMismatch", err)
	}
	e.Close()

	e, err = sdk.Open(dir, sdk.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	again, err = e.PublishIdempotent(ctx, "order-17", d)
	if err != nil || !slices.Equal(first, again) {
		t.Fatalf("after restart: %v, %v; want %v", again, err, first)
	}
	if n := len(sdktest.Collect(t, e.Query(ctx, sdk.Where(sdk.Tag("tick"))))); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
	other, err := e.PublishIdempotent(ctx, "order-18", d)
	if err != nil || other[0].Offset != first[0].Offset+1 {
		t.Fatalf("new key: %v, %v", other, err)
	}
}

func TestPublishIf(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) guardedLog{
		"embedded": func(t *testing.T) guardedLog {
			return openEmbedded(t)
		},
		"remote": func(t *testing.T) guardedLog {
			return dial(t, openEmbedded(t, sdk.WithHTTP("127.0.0.1:0")).URL())
		},
	} {
		t.Run(name, func(t *testing.T) {
			log := open(t)
			ctx := sdktest.Context(t)
			order := sdk.Tag("order").WithID("1")
			q := sdk.Where(order)
			m, err := log.PublishIf(ctx, q, sdk.EventKey{}, sdk.NewDraft(tick{1}, order))
			if err != nil {
				t.Fatalf("first publish: %v", err)
			}
			since := keyOf(m[0])
			// An unrelated event does not conflict.
			if _, err := log.Publish(ctx, sdk.NewDraft(tick{0}, sdk.Tag("order").WithID("2"))); err != nil {
				t.Fatal(err)
			}
			m2, err := log.PublishIf(ctx, q, since, sdk.NewDraft(tick{2}, order))
			if err != nil {
				t.Fatalf("guard with the latest key: %v", err)
			}
			// A decision based on the stale key conflicts with event 2.
			_, err = log.PublishIf(ctx, q, since, sdk.NewDraft(tick{3}, order))
			var ce *sdk.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, sdk.ErrConflict) {
				t.Fatalf("stale guard: %v, want *ConflictError", err)
			}
			if len(ce.Changed) != 1 || !ce.Changed[0].HasTag("order:1") || ce.More {
				t.Fatalf("Changed = %+v, want the one event after since", ce.Changed)
			}
			var v tick
			if err := ce.Changed[0].Decode(&v); err != nil || v.N != 2 {
				t.Fatalf("conflicting event decodes to %+v, %v; want tick 2", v, err)
			}
			// A retry of the publish that went through returns its metas,
			// although its own event now fails the guard.
			key := "complete-" + name
			opts := sdk.PublishOptions{IdempotencyKey: key, Guard: &sdk.Guard{Query: q, Since: keyOf(m2[0])}}
			first, err := log.PublishWith(ctx, opts, sdk.NewDraft(tick{9}, order))
			if err != nil {
				t.Fatal(err)
			}
			if again, err := log.PublishWith(ctx, opts, sdk.NewDraft(tick{9}, order)); err != nil || !slices.Equal(again, first) {
				t.Fatalf("guarded retry: %v, %v; want %v", again, err, first)
			}
			if n := len(sdktest.Collect(t, log.Query(ctx, q))); n != 3 {
				t.Fatalf("%d order:1 events, want 3 (the conflicting publish wrote nothing)", n)
			}
		})
	}
}

type guardedLog interface {
	sdk.EventLog
	PublishIf(ctx context.Context, q sdk.Query, since sdk.EventKey, events ...sdk.Draft) ([]sdk.Meta, error)
	PublishIdempotent(ctx context.Context, key string, events ...sdk.Draft) ([]sdk.Meta, error)
}

// TestPublishIfAtomic races guarded publishes from the same state, mixed
// with unguarded ones: exactly one wins, the others conflict. The node
// decides, so it holds for remote clients as for the embedded node.
func TestPublishIfAtomic(t *testing.T) {
	e := openEmbedded(t, sdk.WithHTTP("127.0.0.1:0"))
	logs := []guardedLog{e, dial(t, e.URL()), dial(t, e.URL())}
	ctx := sdktest.Context(t)
	q := sdk.Where(sdk.Tag("seat").WithID("12A"))
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		log := logs[i%len(logs)]
		wg.Go(func() {
			_, err := log.PublishIf(ctx, q, sdk.EventKey{}, sdk.NewDraft(tick{i}, sdk.Tag("seat").WithID("12A")))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, sdk.ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := log.Publish(ctx, sdk.NewDraft(tick{i}, sdk.Tag("noise"))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 11 {
		t.Fatalf("%d wins, %d conflicts; want 1 and 11", wins.Load(), conflicts.Load())
	}
}

// TestPublishIdempotentRemote: concurrent retries of one key through
// several clients store the events once and all get the same metas; the
// key holds across a node restart; reusing it with other events is a
// mismatch over HTTP too.
func TestPublishIdempotentRemote(t *testing.T) {
	dir := t.TempDir()
	e, err := sdk.Open(dir, sdk.WithLogger(quiet), sdk.WithHTTP("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := e.URL()
	defer func() { e.Close() }()
	ctx := sdktest.Context(t)
	d := []sdk.Draft{sdk.NewDraft(tick{1}, sdk.Tag("tick")), sdk.NewDraft(tick{2}, sdk.Tag("tick"))}
	const retries = 8
	results := make([][]sdk.Meta, retries)
	var wg sync.WaitGroup
	for i := range retries {
		r := dial(t, addr)
		wg.Go(func() {
			m, err := r.PublishIdempotent(ctx, "batch-1", d...)
			if err != nil {
				t.Error(err)
			}
			results[i] = m
		})
	}
	wg.Wait()
	for i := range retries {
		if len(results[i]) != 2 || !slices.Equal(results[i], results[0]) {
			t.Fatalf("retry %d got %v, retry 0 %v", i, results[i], results[0])
		}
	}
	if n := len(sdktest.Collect(t, e.Query(ctx, sdk.Where(sdk.Tag("tick"))))); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
	e.Close()
	if e, err = sdk.Open(dir, sdk.WithLogger(quiet), sdk.WithHTTP(strings.TrimPrefix(addr, "http://"))); err != nil {
		t.Fatal(err)
	}
	r := dial(t, addr)
	if again, err := r.PublishIdempotent(ctx, "batch-1", d...); err != nil || !slices.Equal(again, results[0]) {
		t.Fatalf("after restart: %v, %v; want %v", again, err, results[0])
	}
	_, err = r.PublishIdempotent(ctx, "batch-1", d[0])
	if !errors.Is(err, sdk.ErrIdempotencyMismatch) {
		t.Fatalf("other events under the same key: %v, want ErrIdempotencyMismatch", err)
	}
	if ae, ok := errors.AsType[*api.Error](err); !ok || ae.Status != 409 || ae.Code != api.CodeIdempotencyMismatch {
		t.Fatalf("mismatch over HTTP: %v, want 409 %s", err, api.CodeIdempotencyMismatch)
	}
	if _, err := r.PublishIdempotent(ctx, strings.Repeat("k", 257), d...); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("long key: %v, want ErrInvalid", err)
	}
}
