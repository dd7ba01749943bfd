// Command workorders is a small device app on edgelog's Go SDK: a gateway
// runs an embedded node with the HTTP API, a machine publishes telemetry to
// it as a remote client, a durable consumer opens a work order (idempotently)
// when a machine overheats, and a technician completes it with a guarded
// publish against the work order's aggregate. It runs to completion and
// exits.
//
//	go run ./sdk/examples/workorders
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/edgelog/edgelog/sdk"
)

// Reading is a machine's temperature sample.
type Reading struct {
	Celsius float64 `cbor:"celsius"`
}

// Opened opens a work order; Completed closes it.
type (
	Opened struct {
		Machine string  `cbor:"machine"`
		Reason  string  `cbor:"reason"`
		Celsius float64 `cbor:"celsius"`
	}
	Completed struct {
		By string `cbor:"by"`
	}
)

// WorkOrder is the state of one work order.
type WorkOrder struct {
	Machine string
	Status  string // "", "open", "done"
}

var (
	machine     = sdk.Tag("machine")
	temperature = sdk.Tag("temperature")
	workOrder   = sdk.Tag("workorder")
)

const limit = 80.0

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "workorders:", err)
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
			case ev.HasTag("completed"):
				w.Status = "done"
			}
			return w, nil
		})
}

// Run runs the scenario in a temporary directory and reports to out.
func Run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "edgelog-workorders-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The gateway: an embedded node serving the HTTP API.
	gw, err := sdk.Open(dir, sdk.WithLogger(quiet), sdk.WithHTTP("127.0.0.1:0"),
		sdk.WithManifest(sdk.Manifest{AppID: "com.example.gateway", DisplayName: "Gateway", Version: "1.0"}))
	if err != nil {
		return err
	}
	defer gw.Close()

	// The machine: a remote client of the gateway's node.
	m7, err := sdk.Dial(gw.URL(), sdk.Manifest{AppID: "com.example.machine", DisplayName: "Machine 7", Version: "1.0"}, sdk.WithLogger(quiet))
	if err != nil {
		return err
	}

	// The dispatcher: opens one work order per overheating machine. The
	// idempotency key makes redelivered readings harmless.
	opened := make(chan string, 4)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	dispatcher, err := sdk.Consume(cctx, gw, "dispatcher", sdk.Where(temperature),
		func(ctx context.Context, ev sdk.Event) error {
			var r Reading
			if err := ev.Decode(&r); err != nil {
				return err
			}
			if r.Celsius <= limit {
				return nil
			}
			id := "wo-" + string(ev.Stream) + "-" + fmt.Sprint(ev.Offset)
			_, err := gw.PublishIdempotent(ctx, id, sdk.NewDraft(
				Opened{Machine: "7", Reason: "overheating", Celsius: r.Celsius},
				workOrder.WithID(id), machine.WithID("7"), sdk.Tag("opened")))
			if err == nil {
				opened <- id
			}
			return err
		}, sdk.Backoff(10*time.Millisecond, time.Second))
	if err != nil {
		return err
	}

	for _, c := range []float64{61.5, 72, 84.5, 70} {
		if _, err := m7.Publish(ctx, sdk.NewDraft(Reading{Celsius: c}, machine.WithID("7"), temperature)); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "machine 7 published 4 readings")

	var id string
	select {
	case id = <-opened:
	case <-ctx.Done():
		return fmt.Errorf("no work order opened: %w", ctx.Err())
	}
	agg := workOrderAgg(gw, id)
	w, key, err := agg.State(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "work order opened for machine %s: %s\n", w.Machine, w.Status)

	// Two technicians act on the same state; the guard lets one through.
	done := sdk.NewDraft(Completed{By: "ana"}, workOrder.WithID(id), sdk.Tag("completed"))
	if _, err := gw.PublishIf(ctx, agg.Query(), key, done); err != nil {
		return err
	}
	_, err = m7.PublishIf(ctx, agg.Query(), key, sdk.NewDraft(Completed{By: "bob"}, workOrder.WithID(id), sdk.Tag("completed")))
	var conflict *sdk.ConflictError
	if !errors.As(err, &conflict) {
		return fmt.Errorf("second completion: %v, want a conflict", err)
	}
	fmt.Fprintf(out, "second completion rejected: %d event changed the work order\n", len(conflict.Changed))
	if w, _, err = agg.State(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "work order %s\n", w.Status)

	stop()
	if err := dispatcher.Wait(); err != nil {
		return err
	}
	return nil
}
