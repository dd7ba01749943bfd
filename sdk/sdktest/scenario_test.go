package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/edgelog/edgelog/sdk"
	"github.com/edgelog/edgelog/sdk/sdktest"
)

// A tiny work-order domain.
type (
	Opened    struct{ Title string }
	Completed struct{ By string }
	Order     struct {
		Title  string
		Status string
	}
)

var errNotOpen = errors.New("work order is not open")

func orderTag(id string) sdk.IDTag { return sdk.Tag("workorder").WithID(id) }

func orderAgg(id string) func(sdk.EventLog) *sdk.Aggregate[Order] {
	return func(log sdk.EventLog) *sdk.Aggregate[Order] {
		return sdk.NewAggregate(log, "order-"+id, sdk.Where(orderTag(id)), Order{},
			func(o Order, ev sdk.Event) (Order, error) {
				switch {
				case ev.HasTag("opened"):
					var e Opened
					if err := ev.Decode(&e); err != nil {
						return o, err
					}
					return Order{Title: e.Title, Status: "open"}, nil
				case ev.HasTag("completed"):
					o.Status = "done"
				}
				return o, nil
			})
	}
}

func complete(id, by string) sdktest.Command {
	return func(ctx context.Context, log sdk.EventLog) error {
		o, key, err := orderAgg(id)(log).State(ctx)
		if err != nil {
			return err
		}
		if o.Status != "open" {
			return fmt.Errorf("complete %s: %w", id, errNotOpen)
		}
		_, err = log.PublishWith(ctx, sdk.PublishOptions{Guard: &sdk.Guard{Query: sdk.Where(orderTag(id)), Since: key}},
			sdk.NewDraft(Completed{By: by}, orderTag(id), sdk.Tag("completed")))
		return err
	}
}

func TestScenario(t *testing.T) {
	opened := sdk.NewDraft(Opened{Title: "replace belt"}, orderTag("1"), sdk.Tag("opened"))
	sdktest.Given(t, opened).
		When(complete("1", "ana")).
		Then(sdk.NewDraft(Completed{By: "ana"}, orderTag("1"), sdk.Tag("completed"))).
		State(sdktest.StateOf(orderAgg("1")), Order{Title: "replace belt", Status: "done"})

	sdktest.Given(t).
		When(complete("2", "ana")).
		ThenFails(errNotOpen)
}

// failT records failures instead of failing the test.
type failT struct {
	testing.TB
	errs []string
}

func (f *failT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *failT) Helper() {}

func TestScenarioReportsDiffs(t *testing.T) {
	ft := &failT{TB: t}
	opened := sdk.NewDraft(Opened{Title: "replace belt"}, orderTag("1"), sdk.Tag("opened"))
	sdktest.Given(ft, opened).
		When(complete("1", "bob")).
		Then(sdk.NewDraft(Completed{By: "ana"}, orderTag("1"), sdk.Tag("completed"))).
		State(sdktest.StateOf(orderAgg("1")), Order{Title: "replace belt", Status: "open"})
	if len(ft.errs) != 2 {
		t.Fatalf("got %d failures, want 2: %q", len(ft.errs), ft.errs)
	}
	for _, want := range []string{`- [completed workorder workorder:1] {"By":"ana"}`, `+ [completed workorder workorder:1] {"By":"bob"}`} {
		if !strings.Contains(ft.errs[0], want) {
			t.Errorf("events diff lacks %q:\n%s", want, ft.errs[0])
		}
	}
	for _, want := range []string{`-   "Status": "open"`, `+   "Status": "done"`} {
		if !strings.Contains(ft.errs[1], want) {
			t.Errorf("state diff lacks %q:\n%s", want, ft.errs[1])
		}
	}
}
