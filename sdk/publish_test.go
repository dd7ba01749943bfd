package sdk_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

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
			if _, err := log.PublishIf(ctx, q, since, sdk.NewDraft(tick{2}, order)); err != nil {
				t.Fatalf("guard with the latest key: %v", err)
			}
			// A decision based on the stale key conflicts with event 2.
			_, err = log.PublishIf(ctx, q, since, sdk.NewDraft(tick{3}, order))
			var ce *sdk.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, sdk.ErrConflict) {
				t.Fatalf("stale guard: %v, want *ConflictError", err)
			}
			if len(ce.Changed) != 1 || !ce.Changed[0].HasTag("order:1") {
				t.Fatalf("Changed = %+v, want the one event after since", ce.Changed)
			}
			if n := len(sdktest.Collect(t, log.Query(ctx, q))); n != 2 {
				t.Fatalf("%d order:1 events, want 2 (the conflicting publish wrote nothing)", n)
			}
		})
	}
}

type guardedLog interface {
	sdk.EventLog
	PublishIf(ctx context.Context, q sdk.Query, since sdk.EventKey, events ...sdk.Draft) ([]sdk.Meta, error)
}

// TestPublishIfAtomic races guarded publishes from the same state: exactly
// one wins, the others conflict.
func TestPublishIfAtomic(t *testing.T) {
	e := openEmbedded(t)
	ctx := sdktest.Context(t)
	q := sdk.Where(sdk.Tag("seat").WithID("12A"))
	var wins, conflicts atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := e.PublishIf(ctx, q, sdk.EventKey{}, sdk.NewDraft(tick{i}, sdk.Tag("seat").WithID("12A")))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, sdk.ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 7 {
		t.Fatalf("%d wins, %d conflicts; want 1 and 7", wins.Load(), conflicts.Load())
	}
}
