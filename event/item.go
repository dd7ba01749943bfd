package event

import "github.com/edgelog/edgelog/lamport"

// Order selects the order in which a query returns events.
type Order int

const (
	// Asc is ascending EventKey order (the merged order), the default.
	Asc Order = iota
	// Desc is descending EventKey order.
	Desc
	// StreamAsc returns each stream in offset order, one stream after another.
	StreamAsc
)

// ParseOrder maps the API's order names ("asc", "desc", "stream-asc"; empty
// means asc) to an Order.
func ParseOrder(s string) (Order, bool) {
	switch s {
	case "", "asc":
		return Asc, true
	case "desc":
		return Desc, true
	case "stream-asc":
		return StreamAsc, true
	}
	return 0, false
}

// ItemKind says what an Item carries.
type ItemKind int

const (
	// KindEvent carries Event (and CaughtUp for monotonic subscriptions).
	KindEvent ItemKind = iota + 1
	// KindOffsets carries Offsets: everything up to them has been delivered.
	KindOffsets
	// KindTimeTravel carries NewStart: an older event arrived after a newer
	// one was delivered; the subscription ends after it.
	KindTimeTravel
	// KindDiagnostic carries Severity and Message.
	KindDiagnostic
)

// Item is one element of a query or subscription result.
type Item struct {
	Kind     ItemKind
	Event    *Event
	CaughtUp bool
	Offsets  OffsetMap
	NewStart lamport.EventKey
	Severity string
	Message  string
}
