// Command twonodes is a plant on two edgelog nodes, replicating over
// loopback:
//
//   - node "line" runs next to the machines: a telemetry app publishes
//     temperature readings on it;
//   - node "office" runs the maintenance apps: a durable consumer
//     (dispatcher) opens a work order, idempotently, for every overheating
//     reading that replicates in from the line, and technicians, remote
//     clients of the office node's HTTP API, complete work orders with a
//     guarded publish against the work order's aggregate.
//
// The completion replicates back, so the line sees the work order done.
// The dispatcher's handler loses its first acknowledgement on purpose: the
// retry publishes again under the same idempotency key and the node returns
// the first result instead of opening a second work order. The program runs
// to completion and exits.
//
//	go run ./sdk/examples/twonodes
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgelog/edgelog/node"
	"github.com/edgelog/edgelog/sdk"
)

// Reading is a machine's temperature sample.
type Reading struct {
	Machine string  `cbor:"machine"`
	Celsius float64 `cbor:"celsius"`
}

// Opened opens a work order; Completed closes it.
type (
	Opened struct {
		Machine string  `cbor:"machine"`
		Celsius float64 `cbor:"celsius"`
	}
	Completed struct {
		By string `cbor:"by"`
	}
)

// WorkOrder is the state of one work order.
type WorkOrder struct {
	Machine     string
	Status      string // "", "open", "done"
	CompletedBy string
}

var (
	machine     = sdk.Tag("machine")
	temperature = sdk.Tag("temperature")
	workOrder   = sdk.Tag("workorder")
)

// limit is the temperature above which a machine needs maintenance.
const limit = 80.0

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "twonodes:", err)
		os.Exit(1)
	}
}

// workOrderAgg folds the events of work order id.
func workOrderAgg(log sdk.EventLog, id string) *sdk.Aggregate[WorkOrder] {
	return sdk.NewAggregate(log, "workorder-"+id, sdk.Where(workOrder.WithID(id)), WorkOrder{},
		func(w WorkOrder, ev sdk.Event) (WorkOrder, error) {
			switch {
			case ev.HasTag("opened"):
				var o Opened
				if err := ev.Decode(&o); err != nil {
					return w, err
				}
				return WorkOrder{Machine: o.Machine, Status: "open"}, nil
			case ev.HasTag("completed") && w.Status == "open":
				// The first completion in EventKey order wins, also when two
				// partitioned nodes both completed the order.
				var c Completed
				if err := ev.Decode(&c); err != nil {
					return w, err
				}
				w.Status, w.CompletedBy = "done", c.By
			}
			return w, nil
		})
}

// openNode starts an embedded node in dir that replicates over loopback
// TCP in swarm, dialling bootstrap.
func openNode(dir, app, swarm string, bootstrap []string, opts ...sdk.Option) (*sdk.Embedded, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts = append([]sdk.Option{
		sdk.WithLogger(quiet),
		sdk.WithManifest(sdk.Manifest{AppID: app, DisplayName: app, Version: "1.0"}),
		sdk.WithNodeConfig(func(c *node.Config) {
			c.Replication = &node.Replication{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Swarm: swarm}
		}),
	}, opts...)
	return sdk.Open(dir, opts...)
}

// Run runs the plant in a temporary directory and reports to out.
func Run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "edgelog-twonodes-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var b [6]byte
	_, _ = rand.Read(b[:])
	swarm := "plant-" + hex.EncodeToString(b[:]) // a swarm of its own

	line, err := openNode(filepath.Join(dir, "line"), "com.example.telemetry", swarm, nil)
	if err != nil {
		return fmt.Errorf("line node: %w", err)
	}
	defer line.Close()
	office, err := openNode(filepath.Join(dir, "office"), "com.example.dispatcher", swarm,
		line.Node().ListenAddrs(), sdk.WithHTTP("127.0.0.1:0"))
	if err != nil {
		return fmt.Errorf("office node: %w", err)
	}
	defer office.Close()

	// The dispatcher on the office node.
	opened := make(chan string, 8)
	var mu sync.Mutex
	lostAck := map[string]bool{}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	dispatcher, err := sdk.Consume(cctx, office, "dispatcher", sdk.Where(temperature),
		func(ctx context.Context, ev sdk.Event) error {
			var r Reading
			if err := ev.Decode(&r); err != nil {
				return err
			}
			if r.Celsius <= limit {
				return nil
			}
			id := fmt.Sprintf("m%s-%d", r.Machine, ev.Offset)
			_, err := office.PublishIdempotent(ctx, "open-"+id, sdk.NewDraft(
				Opened(r),
				workOrder.WithID(id), machine.WithID(r.Machine), sdk.Tag("opened")))
			if err != nil {
				return err
			}
			mu.Lock()
			first := !lostAck[id]
			lostAck[id] = true
			mu.Unlock()
			if first {
				return errors.New("simulated crash after publishing")
			}
			opened <- id
			return nil
		}, sdk.Backoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		return err
	}

	// Telemetry on the line node.
	readings := []Reading{{"7", 61.5}, {"9", 70}, {"7", 72}, {"7", 84.5}, {"9", 91}}
	for _, r := range readings {
		if _, err := line.Publish(ctx, sdk.NewDraft(r, machine.WithID(r.Machine), temperature)); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "line: published %d readings\n", len(readings))

	var ids []string
	for len(ids) < 2 {
		select {
		case id := <-opened:
			ids = append(ids, id)
			fmt.Fprintf(out, "office: work order %s opened\n", id)
		case <-ctx.Done():
			return fmt.Errorf("waiting for work orders: %w", ctx.Err())
		}
	}
	n := 0
	for _, err := range office.Query(ctx, sdk.Where(workOrder.And(sdk.Tag("opened")))) {
		if err != nil {
			return err
		}
		n++
	}
	fmt.Fprintf(out, "office: %d work orders stored for 2 overheating readings (each handler ran twice)\n", n)

	// Two technicians, clients of the office node, act on the same state of
	// the first work order; the guard lets one through.
	id := ids[0]
	ana, err := sdk.Dial(office.URL(), sdk.Manifest{AppID: "com.example.technician", DisplayName: "Ana", Version: "1.0"})
	if err != nil {
		return err
	}
	bob, err := sdk.Dial(office.URL(), sdk.Manifest{AppID: "com.example.technician", DisplayName: "Bob", Version: "1.0"})
	if err != nil {
		return err
	}
	agg := workOrderAgg(ana, id)
	w, key, err := agg.State(ctx)
	if err != nil {
		return err
	}
	if _, err := ana.PublishIf(ctx, agg.Query(), key, sdk.NewDraft(Completed{By: "ana"}, workOrder.WithID(id), sdk.Tag("completed"))); err != nil {
		return fmt.Errorf("ana completes %s: %w", id, err)
	}
	fmt.Fprintf(out, "technician ana completed %s (machine %s)\n", id, w.Machine)
	_, err = bob.PublishIf(ctx, agg.Query(), key, sdk.NewDraft(Completed{By: "bob"}, workOrder.WithID(id), sdk.Tag("completed")))
	var conflict *sdk.ConflictError
	if !errors.As(err, &conflict) {
		return fmt.Errorf("bob's stale completion: %v, want a conflict", err)
	}
	fmt.Fprintf(out, "technician bob rejected: %d newer event(s) changed %s\n", len(conflict.Changed), id)

	// The completion replicates back to the line.
	lineAgg := workOrderAgg(line, id)
	for {
		w, _, err := lineAgg.State(ctx)
		if err != nil {
			return err
		}
		if w.Status == "done" {
			fmt.Fprintf(out, "line: sees %s done by %s\n", id, w.CompletedBy)
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the completion to replicate: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}

	// The dispatcher's status is on the office node.
	info, err := office.Node().Info(ctx)
	if err != nil {
		return err
	}
	for _, c := range info.Consumers {
		fmt.Fprintf(out, "office node info: consumer %s/%s running=%v, %d blocked stream(s)\n", c.AppID, c.Name, c.Running, len(c.Blocked))
	}
	stop()
	return dispatcher.Wait()
}
