package event

import "github.com/edgelog/edgelog/aql"

// QueryRequest asks for the events selected by Query within bounds.
type QueryRequest struct {
	// Lower is exclusive; a stream missing from it is read from its start.
	Lower OffsetMap
	// Upper is inclusive; nil means what is present when the query starts.
	// A stream missing from a non-nil Upper is not read.
	Upper OffsetMap
	Query *aql.Query
	Order Order
}

// SubscribeRequest asks for the events selected by Query above Lower: first
// those present, then an offsets marker, then live ones as they arrive.
type SubscribeRequest struct {
	Lower OffsetMap
	Query *aql.Query
}

// MonotonicRequest is a SubscribeRequest whose events come in EventKey order;
// the subscription ends with a time-travel item when an older event arrives.
type MonotonicRequest struct {
	Session string
	Lower   OffsetMap
	Query   *aql.Query
}
