package sdk

import (
	"fmt"

	"github.com/edgelog/edgelog/aql"
	"github.com/edgelog/edgelog/event"
)

// Query selects events. Build one in Go with Where or from AQL text with
// AQL; the zero Query is invalid. A Query is immutable and safe to share.
type Query struct {
	q   *aql.Query
	err error
}

// Where returns the query selecting what s selects:
// Where(Tag("machine").WithID("7").And(Tag("alarm"))).
func Where(s Selector) Query {
	if s == nil || s.Expr() == nil {
		return Query{err: fmt.Errorf("sdk: %w: empty selection", ErrInvalid)}
	}
	q := &aql.Query{Where: s.Expr()}
	q.Source = q.String()
	return Query{q: q}
}

// AQL returns the query written in AQL, such as "FROM 'machine:7' &
// 'alarm'". A syntax error is reported, wrapping ErrInvalid, by Err and by
// every use of the query; ParseAQL reports it at once.
func AQL(src string) Query {
	q, err := ParseAQL(src)
	if err != nil {
		return Query{err: err}
	}
	return q
}

// ParseAQL is AQL returning the syntax error (wrapping ErrInvalid) at once.
func ParseAQL(src string) (Query, error) {
	q, err := aql.Parse(src)
	if err != nil {
		return Query{}, fmt.Errorf("sdk: query: %w: %w", ErrInvalid, err)
	}
	return Query{q: q}, nil
}

// FromAQL wraps a parsed AQL query.
func FromAQL(q *aql.Query) Query {
	if q == nil {
		return Query{}
	}
	return Query{q: q}
}

// Err reports why the query is invalid, or nil.
func (q Query) Err() error {
	if q.err != nil {
		return q.err
	}
	if q.q == nil {
		return fmt.Errorf("sdk: %w: zero Query", ErrInvalid)
	}
	return nil
}

// AQL returns the parsed query, or nil if the query is invalid.
func (q Query) AQL() *aql.Query { return q.q }

// String renders the query as AQL.
func (q Query) String() string {
	if q.Err() != nil {
		return "<invalid query>"
	}
	return q.q.String()
}

// Matches reports whether the query selects ev; local says whether ev's
// stream belongs to the node asking.
func (q Query) Matches(ev Event, local bool) bool {
	if q.Err() != nil {
		return false
	}
	return q.q.Match(&aql.Subject{Tags: ev.Tags, AppID: ev.AppID, Timestamp: ev.Timestamp, Local: local})
}

// ReadOption refines a Query or a subscription.
type ReadOption func(*readOpts)

type readOpts struct {
	lower, upper OffsetMap
	order        event.Order
	upperSet     bool
	orderSet     bool
}

// After reads only events above m (exclusive): a stream missing from m is
// read from its start.
func After(m OffsetMap) ReadOption { return func(o *readOpts) { o.lower = m.Clone() } }

// UpTo bounds a Query (not a subscription) by m (inclusive); a stream
// missing from m is not read. Without it a Query reads what is present when
// it starts.
func UpTo(m OffsetMap) ReadOption {
	return func(o *readOpts) {
		o.upper, o.upperSet = m.Clone(), true
		if o.upper == nil {
			o.upper = OffsetMap{}
		}
	}
}

// Descending makes a Query return events in descending EventKey order.
func Descending() ReadOption { return func(o *readOpts) { o.order, o.orderSet = event.Desc, true } }

// ByStream makes a Query return each stream in offset order, one stream
// after another (cheaper than the merged order).
func ByStream() ReadOption {
	return func(o *readOpts) { o.order, o.orderSet = event.StreamAsc, true }
}

// Order is the order of a Query's answer.
type Order = event.Order

// ReadParams are the bounds and order that ReadOptions ask for, for
// implementations of EventLog outside this package.
type ReadParams struct {
	Lower OffsetMap // exclusive; nil reads every stream from its start
	Upper OffsetMap // inclusive; nil means what is present (Query only)
	Order Order     // event.Asc unless Descending or ByStream
}

// ApplyReadOptions returns the parameters opts ask for.
func ApplyReadOptions(opts ...ReadOption) ReadParams {
	o := readOptions(opts)
	return ReadParams{Lower: o.lower, Upper: o.upper, Order: o.order}
}

func readOptions(opts []ReadOption) readOpts {
	var o readOpts
	for _, f := range opts {
		f(&o)
	}
	return o
}

// forSubscribe checks that only After was given.
func (o readOpts) forSubscribe() error {
	if o.upperSet || o.orderSet {
		return fmt.Errorf("sdk: subscribe: %w: UpTo, Descending and ByStream apply to Query only", ErrInvalid)
	}
	return nil
}
