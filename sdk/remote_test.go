package sdk_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
)

type tick struct {
	N int `cbor:"n"`
}

// TestRemoteResumesAfterRestart restarts a real node (same data directory,
// same port) under live subscriptions: they reconnect and continue with the
// next event, with no gap and no duplicate.
func TestRemoteResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	node, err := sdk.Open(dir, sdk.WithLogger(quiet), sdk.WithHTTP("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(node.URL(), "http://")
	defer func() { node.Close() }()
	r := dial(t, node.URL(), sdk.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond))
	ctx, cancel := context.WithCancel(sdktest.Context(t))
	defer cancel()

	pub := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := node.Publish(ctx, sdk.NewDraft(tick{i}, sdk.Tag("tick"))); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub(0, 3)
	plain := make(chan int, 64)
	mono := make(chan int, 64)
	errs := make(chan error, 2)
	go func() {
		for ev, err := range r.Subscribe(ctx, sdk.Where(sdk.Tag("tick"))) {
			if err != nil {
				errs <- err
				return
			}
			var v tick
			if err := ev.Decode(&v); err != nil {
				errs <- err
				return
			}
			plain <- v.N
		}
	}()
	go func() {
		for u, err := range r.SubscribeMonotonic(ctx, sdk.Where(sdk.Tag("tick"))) {
			if err != nil {
				errs <- err
				return
			}
			if u.Event != nil {
				var v tick
				if err := u.Event.Decode(&v); err != nil {
					errs <- err
					return
				}
				mono <- v.N
			}
		}
	}()
	expect := func(ch chan int, want []int) {
		t.Helper()
		if got := sdktest.Receive(t, ch, len(want)); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	expect(plain, []int{0, 1, 2})
	expect(mono, []int{0, 1, 2})

	for round := range 2 {
		if err := node.Close(); err != nil {
			t.Fatal(err)
		}
		// While the node is down, the subscriptions retry.
		if node, err = sdk.Open(dir, sdk.WithLogger(quiet), sdk.WithHTTP(addr)); err != nil {
			t.Fatal(err)
		}
		from := 3 + 3*round
		pub(from, from+3)
		expect(plain, []int{from, from + 1, from + 2})
		expect(mono, []int{from, from + 1, from + 2})
	}
	select {
	case v := <-plain:
		t.Fatalf("unexpected extra event %d", v)
	case v := <-mono:
		t.Fatalf("unexpected extra monotonic event %d", v)
	case err := <-errs:
		t.Fatalf("subscription failed: %v", err)
	default:
	}
}
