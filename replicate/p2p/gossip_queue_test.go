package p2p

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
)

// TestAnnounceQueue: take gets what waits, up to its max; put waits while
// the queued bytes are at the bound, until done gives them back; close
// ends take once the queue is empty.
func TestAnnounceQueue(t *testing.T) {
	ctx := context.Background()
	msg := func(n int) *pubsub.Message { return &pubsub.Message{Message: &pb.Message{Data: make([]byte, n)}} }
	q := newAnnounceQueue(8, 1000)
	for range 3 {
		if err := q.put(ctx, msg(300)); err != nil {
			t.Fatal(err)
		}
	}
	// A fourth 300 bytes would pass the bound.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q.put(short, msg(300)); err == nil {
		t.Fatal("put past the byte bound did not wait")
	}
	got, size, ok := q.take(nil, 2)
	if !ok || len(got) != 2 || size != 600 {
		t.Fatalf("take(max 2): %d announces, %d bytes, %v", len(got), size, ok)
	}
	put := make(chan error, 1)
	go func() { put <- q.put(ctx, msg(300)) }()
	select {
	case err := <-put:
		t.Fatalf("put returned before done gave room back: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	q.done(size)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	q.close()
	if got, size, ok = q.take(got[:0], 8); !ok || len(got) != 2 || size != 600 {
		t.Fatalf("take after close: %d announces, %d bytes, %v", len(got), size, ok)
	}
	if _, _, ok := q.take(nil, 8); ok {
		t.Fatal("take of a closed, empty queue")
	}
	// An announce larger than the bound still fits, alone.
	big := newAnnounceQueue(8, 1000)
	if err := big.put(ctx, msg(5000)); err != nil {
		t.Fatalf("announce larger than the bound: %v", err)
	}
}
