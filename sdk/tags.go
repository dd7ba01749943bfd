package sdk

import (
	"slices"

	"github.com/edgelog/edgelog/aql"
)

// Tagger is what tags an event: Tag and IDTag.
type Tagger interface {
	// Tags returns the tags to put on an event.
	Tags() []string
}

// Selector is what a query selects by: Tag, IDTag, Selection, AllEvents,
// IsLocal, AppID.
type Selector interface {
	// Expr returns the selection as an AQL expression.
	Expr() aql.Expr
}

// Tag is a tag, such as "machine" or "temperature". It tags events and
// selects them; Tag("machine").WithID("7") adds an entity ID.
type Tag string

// Tags returns the tag itself.
func (t Tag) Tags() []string { return []string{string(t)} }

// Expr selects events carrying the tag.
func (t Tag) Expr() aql.Expr { return aql.Tag{Name: string(t)} }

// WithID returns the tag of one entity of the kind t names: as Actyx does,
// it tags an event with both "machine" and "machine:7", so a query for
// Tag("machine") finds every machine's events and one for
// Tag("machine").WithID("7") only machine 7's.
func (t Tag) WithID(id string) IDTag { return IDTag{Kind: t, ID: id} }

// And selects events that t and every one of others select.
func (t Tag) And(others ...Selector) Selection { return and(t, others) }

// Or selects events that t or any of others select.
func (t Tag) Or(others ...Selector) Selection { return or(t, others) }

// IDTag is a tag with an entity ID: Kind "machine", ID "7".
type IDTag struct {
	Kind Tag
	ID   string
}

// String returns "kind:id".
func (t IDTag) String() string { return string(t.Kind) + ":" + t.ID }

// Tags returns both the kind and "kind:id".
func (t IDTag) Tags() []string { return []string{string(t.Kind), t.String()} }

// Expr selects events carrying "kind:id".
func (t IDTag) Expr() aql.Expr { return aql.Tag{Name: t.String()} }

// And selects events that t and every one of others select.
func (t IDTag) And(others ...Selector) Selection { return and(t, others) }

// Or selects events that t or any of others select.
func (t IDTag) Or(others ...Selector) Selection { return or(t, others) }

// Selection is a combination of selectors, built with And and Or.
type Selection struct{ e aql.Expr }

// Expr returns the combined selection.
func (s Selection) Expr() aql.Expr { return s.e }

// And selects events that s and every one of others select.
func (s Selection) And(others ...Selector) Selection { return and(s, others) }

// Or selects events that s or any of others select.
func (s Selection) Or(others ...Selector) Selection { return or(s, others) }

// Predefined selectors.
var (
	// AllEvents selects every event.
	AllEvents = Selection{aql.AllEvents{}}
	// IsLocal selects the events of the answering node's own streams.
	IsLocal = Selection{aql.IsLocal{}}
)

// AppID selects the events published by the app id.
func AppID(id string) Selection { return Selection{aql.AppID{ID: id}} }

// TagsOf returns the tags of taggers, without duplicates, in first-seen
// order.
func TagsOf(taggers ...Tagger) []string {
	var out []string
	for _, t := range taggers {
		for _, s := range t.Tags() {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func and(first Selector, rest []Selector) Selection {
	var terms []aql.Expr
	for _, s := range append([]Selector{first}, rest...) {
		if a, ok := s.Expr().(aql.And); ok {
			terms = append(terms, a.Terms...)
		} else {
			terms = append(terms, s.Expr())
		}
	}
	if len(terms) == 1 {
		return Selection{terms[0]}
	}
	return Selection{aql.And{Terms: terms}}
}

func or(first Selector, rest []Selector) Selection {
	var terms []aql.Expr
	for _, s := range append([]Selector{first}, rest...) {
		if o, ok := s.Expr().(aql.Or); ok {
			terms = append(terms, o.Terms...)
		} else {
			terms = append(terms, s.Expr())
		}
	}
	if len(terms) == 1 {
		return Selection{terms[0]}
	}
	return Selection{aql.Or{Terms: terms}}
}
