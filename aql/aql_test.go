package aql

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		src      string
		want     Expr
		features []string
	}{
		{"FROM 'a'", Tag{"a"}, nil},
		{"from 'a' end", Tag{"a"}, nil},
		{`FROM "x""y"`, Tag{`x"y`}, nil},
		{"FROM 'it''s'", Tag{"it's"}, nil},
		{"FROM 'a' | 'b' & 'c'", Or{[]Expr{Tag{"a"}, And{[]Expr{Tag{"b"}, Tag{"c"}}}}}, nil},
		{"FROM ('a' | 'b') & 'c'", And{[]Expr{Or{[]Expr{Tag{"a"}, Tag{"b"}}}, Tag{"c"}}}, nil},
		{"FROM 'a' & ('b' & 'c')", And{[]Expr{Tag{"a"}, Tag{"b"}, Tag{"c"}}}, nil},
		{"FROM ((('a')))", Tag{"a"}, nil},
		{"FROM allEvents", AllEvents{}, nil},
		{"FROM isLocal & appId(com.example.x-1)", And{[]Expr{IsLocal{}, AppID{"com.example.x-1"}}}, nil},
		{"FROM appId('com.example.q')", AppID{"com.example.q"}, nil},
		{"FROM from(2026-01-01T00:00:00Z) & to(2026-02-01)", And{[]Expr{TimeFrom{day("2026-01-01T00:00:00Z")}, TimeTo{day("2026-02-01T00:00:00Z")}}}, nil},
		{"FROM from(2026-01-01T01:00:00.5+01:00)", TimeFrom{day("2026-01-01T00:00:00.5Z")}, nil},
		{"FEATURES(zøg aggregate) FROM 'a'", Tag{"a"}, []string{"zøg", "aggregate"}},
		{"FEATURES() FROM 'a'", Tag{"a"}, nil},
		{"-- comment\nFROM 'a' -- trailing\n", Tag{"a"}, nil},
		{"  FROM\n\t'machine:7'\n", Tag{"machine:7"}, nil},
	}
	for _, tt := range tests {
		q, err := Parse(tt.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if !reflect.DeepEqual(q.Where, tt.want) {
			t.Errorf("Parse(%q) = %#v, want %#v", tt.src, q.Where, tt.want)
		}
		if !reflect.DeepEqual(q.Features, tt.features) {
			t.Errorf("Parse(%q) features = %q, want %q", tt.src, q.Features, tt.features)
		}
		if q.Source != tt.src {
			t.Errorf("Source = %q", q.Source)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src       string
		line, col int
		msg       string
	}{
		{"", 1, 1, "empty query"},
		{"   ", 1, 4, "empty query"},
		{"'a'", 1, 1, "expected FROM"},
		{"FROM", 1, 5, "found end of query"},
		{"FROM 'a' &", 1, 11, "found end of query"},
		{"FROM 'a' & & 'b'", 1, 12, `found "&"`},
		{"FROM 'abc", 1, 6, "unterminated ' quote"},
		{"FROM ''", 1, 6, "empty tag"},
		{"FROM ('a'", 1, 10, "expected ) closing the ( at column 6"},
		{"FROM 'a')", 1, 9, `unexpected ")"`},
		{"FROM 'a' 'b'", 1, 10, "unexpected"},
		{"FROM bogus", 1, 6, `unknown "bogus"`},
		{"FROM\n  appId()", 2, 9, "expected an argument"},
		{"FROM from(yesterday)", 1, 11, "not an RFC 3339 time"},
		{"FROM to(2026-13-01)", 1, 9, "not an RFC 3339 time"},
		{"FEATURES(a FROM 'x'", 1, 17, "expected feature name or )"},
		{"FROM 'a' END 'b'", 1, 14, "unexpected"},
		{"FROM " + strings.Repeat("(", 100) + "'a'" + strings.Repeat(")", 100), 1, 70, "nested deeper than 64"},
		{"FROM 'a' | " + strings.Repeat("x", MaxQueryBytes), 1, MaxQueryBytes + 1, "longer than"},
		{"FROM 'a' | \xff", 1, 12, "expected tag"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%.40q): err = %v, want *SyntaxError", tt.src, err)
			continue
		}
		if se.Line != tt.line || se.Col != tt.col || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Parse(%.40q) = %v (line %d col %d), want line %d col %d containing %q", tt.src, se, se.Line, se.Col, tt.line, tt.col, tt.msg)
		}
		if !strings.Contains(se.Error(), "line") {
			t.Errorf("Error() = %q does not name the position", se.Error())
		}
	}
}

func TestMatch(t *testing.T) {
	s := &Subject{Tags: []string{"a", "b"}, AppID: "com.example.x", Timestamp: day("2026-01-15T00:00:00Z").UnixMicro(), Local: true}
	tests := map[string]bool{
		"FROM 'a'":                      true,
		"FROM 'c'":                      false,
		"FROM 'a' & 'b'":                true,
		"FROM 'a' & 'c'":                false,
		"FROM 'c' | 'b'":                true,
		"FROM allEvents":                true,
		"FROM isLocal":                  true,
		"FROM appId(com.example.x)":     true,
		"FROM appId(com.example.y)":     false,
		"FROM from(2026-01-15)":         true,  // inclusive
		"FROM to(2026-01-15)":           false, // exclusive
		"FROM to(2026-01-16) & 'a'":     true,
		"FROM from(2026-02-01) | 'zzz'": false,
	}
	for src, want := range tests {
		if got := MustParse(src).Match(s); got != want {
			t.Errorf("%s: Match = %v, want %v", src, got, want)
		}
	}
	// A query built by hand from the AST works too; one without a selection
	// selects nothing.
	if q := (&Query{Where: And{[]Expr{Tag{"a"}, IsLocal{}}}}); !q.Match(s) {
		t.Error("hand-built query does not match")
	}
	if q := (&Query{}); q.Match(s) {
		t.Error("empty query matches")
	}
}

func randomExpr(r *rand.Rand, depth int) Expr {
	if depth > 3 {
		return Tag{Name: randomTag(r)}
	}
	switch r.IntN(8) {
	case 0:
		return AllEvents{}
	case 1:
		return IsLocal{}
	case 2:
		return AppID{ID: "com.example." + randomTag(r)}
	case 3:
		return TimeFrom{T: time.UnixMicro(r.Int64N(1 << 52)).UTC()}
	case 4, 5:
		n := 2 + r.IntN(3)
		var terms []Expr
		for range n {
			terms = append(terms, randomExpr(r, depth+1))
		}
		if r.IntN(2) == 0 {
			return flatten(And{terms})
		}
		return flatten(Or{terms})
	default:
		return Tag{Name: randomTag(r)}
	}
}

// flatten merges nested nodes of the same kind, as the parser does.
func flatten(e Expr) Expr {
	switch x := e.(type) {
	case And:
		var out []Expr
		for _, t := range x.Terms {
			if a, ok := t.(And); ok {
				out = append(out, a.Terms...)
			} else {
				out = append(out, t)
			}
		}
		return And{out}
	case Or:
		var out []Expr
		for _, t := range x.Terms {
			if o, ok := t.(Or); ok {
				out = append(out, o.Terms...)
			} else {
				out = append(out, t)
			}
		}
		return Or{out}
	}
	return e
}

func randomTag(r *rand.Rand) string {
	const chars = "ab:'\" -é7"
	n := 1 + r.IntN(6)
	var b strings.Builder
	for range n {
		b.WriteString(string([]rune(chars)[r.IntN(len([]rune(chars)))]))
	}
	return b.String()
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		q := &Query{Where: randomExpr(r, 0)}
		if r.IntN(4) == 0 {
			q.Features = []string{"zøg", "x-y"}
		}
		src := q.String()
		p, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if !reflect.DeepEqual(p.Where, q.Where) || !reflect.DeepEqual(p.Features, q.Features) {
			t.Fatalf("round trip of %q:\n got %#v\nwant %#v", src, p.Where, q.Where)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"FROM 'a'", "FROM 'a' | 'b' & ('c' | isLocal)", "FEATURES(x) FROM allEvents END",
		"FROM appId(com.example.x) & from(2026-01-01) & to(2026-01-02T00:00:00Z)", "FROM 'it''s'", "FROM (", "-- c\nFROM \"q\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line < 1 || se.Col < 1 || se.Pos < 0 || se.Pos > len(src) {
				t.Fatalf("bad error for %q: %#v", src, err)
			}
			return
		}
		q.Match(&Subject{Tags: []string{"a"}})
		again, err := Parse(q.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", q.String(), src, err)
		}
		if !reflect.DeepEqual(again.Where, q.Where) {
			t.Fatalf("round trip of %q changed the query: %#v vs %#v", src, again.Where, q.Where)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	q := MustParse("FROM ('machine:7' | 'machine:8') & 'temperature' & from(2026-01-01)")
	s := &Subject{Tags: []string{"machine:8", "temperature", "x"}, Timestamp: day("2026-05-01T00:00:00Z").UnixMicro()}
	for b.Loop() {
		if !q.Match(s) {
			b.Fatal("no match")
		}
	}
}
