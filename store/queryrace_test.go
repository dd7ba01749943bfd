package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// TestQueryDuringPublishes queries over and over while single events are
// published: every query must read every event its offsets say is
// present. (The view was once taken after the read transaction began, so a
// commit between the two made a query fail with "stream index has no
// offset"; TestTrimmerKeepsEvents hit it under qemu.)
func TestQueryDuringPublishes(t *testing.T) {
	n := openTest(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				evs, offs, err := collect(t, n.Query(ctx, event.QueryRequest{Query: aql.MustParse("FROM 'race'")}))
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				want := uint64(0)
				if o, ok := offs[n.DefaultStream()]; ok {
					want = o + 1
				}
				if uint64(len(evs)) != want {
					errs <- fmt.Errorf("read %d events, offsets say %d", len(evs), want)
					return
				}
			}
		})
	}
	for i := 0; i < 500 && len(errs) == 0; i++ {
		publish(t, n, "race")
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
