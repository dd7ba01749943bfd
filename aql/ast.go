package aql

import (
	"sync"
	"time"
)

// Query is a parsed AQL query: an optional FEATURES clause and a FROM clause.
type Query struct {
	// Features lists the words of the FEATURES(...) clause, in order.
	Features []string
	// Where is the FROM clause's event selection.
	Where Expr
	// Source is the text the query was parsed from.
	Source string

	once  sync.Once // guards match
	match matchFunc // Where compiled; see Match
}

// Subject is what a query's selection is evaluated against: one event's
// matchable fields.
type Subject struct {
	Tags      []string // the event's tags
	AppID     string   // the app ID that published the event
	Timestamp int64    // microseconds since the Unix epoch
	Local     bool     // the event's stream belongs to the answering node
}

// Expr is a node of a FROM clause's selection. The concrete types are Tag,
// And, Or, AllEvents, IsLocal, AppID, TimeFrom and TimeTo.
type Expr interface {
	isExpr()
}

// Tag selects events that carry the tag Name.
type Tag struct{ Name string }

// And selects events that every term selects.
type And struct{ Terms []Expr }

// Or selects events that any term selects.
type Or struct{ Terms []Expr }

// AllEvents selects every event.
type AllEvents struct{}

// IsLocal selects events of the answering node's own streams.
type IsLocal struct{}

// AppID selects events published by the app ID.
type AppID struct{ ID string }

// TimeFrom selects events whose timestamp is at or after T.
type TimeFrom struct{ T time.Time }

// TimeTo selects events whose timestamp is before T.
type TimeTo struct{ T time.Time }

func (Tag) isExpr()       {}
func (And) isExpr()       {}
func (Or) isExpr()        {}
func (AllEvents) isExpr() {}
func (IsLocal) isExpr()   {}
func (AppID) isExpr()     {}
func (TimeFrom) isExpr()  {}
func (TimeTo) isExpr()    {}
