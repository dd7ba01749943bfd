package aql

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
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

func and(terms ...Expr) And { return And{Terms: terms} }
func or(terms ...Expr) Or   { return Or{Terms: terms} }

var validTests = []struct {
	src      string
	want     Expr
	features []string
}{
	{"FROM 'a'", Tag{"a"}, nil},
	{"from 'a' end", Tag{"a"}, nil},
	{"From 'a' End", Tag{"a"}, nil},
	{"FROM'a'END", Tag{"a"}, nil},
	{`FROM "x""y"`, Tag{`x"y`}, nil},
	{`FROM "it's"`, Tag{"it's"}, nil},
	{"FROM 'it''s'", Tag{"it's"}, nil},
	{"FROM 'say \"hi\"'", Tag{`say "hi"`}, nil},
	{"FROM ''''", Tag{"'"}, nil},
	{"FROM 'a--b' -- not a comment inside quotes", Tag{"a--b"}, nil},
	{"FROM 'machine:7 temp/°C'", Tag{"machine:7 temp/°C"}, nil},
	{"FROM 'a' | 'b' & 'c'", or(Tag{"a"}, and(Tag{"b"}, Tag{"c"})), nil},
	{"FROM 'a' & 'b' | 'c'", or(and(Tag{"a"}, Tag{"b"}), Tag{"c"}), nil},
	{"FROM 'a'&'b'|'c'&'d'", or(and(Tag{"a"}, Tag{"b"}), and(Tag{"c"}, Tag{"d"})), nil},
	{"FROM ('a' | 'b') & 'c'", and(or(Tag{"a"}, Tag{"b"}), Tag{"c"}), nil},
	{"FROM 'a' & ('b' & 'c')", and(Tag{"a"}, Tag{"b"}, Tag{"c"}), nil},
	{"FROM ('a' & 'b') & 'c'", and(Tag{"a"}, Tag{"b"}, Tag{"c"}), nil},
	{"FROM 'a' | ('b' | 'c') | 'd'", or(Tag{"a"}, Tag{"b"}, Tag{"c"}, Tag{"d"}), nil},
	{"FROM 'a' & ('b' | 'c' & 'd')", and(Tag{"a"}, or(Tag{"b"}, and(Tag{"c"}, Tag{"d"}))), nil},
	{"FROM ((('a')))", Tag{"a"}, nil},
	{"FROM " + strings.Repeat("(", 64) + "'a'" + strings.Repeat(")", 64), Tag{"a"}, nil},
	{"FROM allEvents", AllEvents{}, nil},
	{"FROM isLocal", IsLocal{}, nil},
	{"FROM isLocal & appId(com.example.x-1)", and(IsLocal{}, AppID{"com.example.x-1"}), nil},
	{"FROM appId(com.example.x_2)", AppID{"com.example.x_2"}, nil},
	{"FROM appId( com.example.x )", AppID{"com.example.x"}, nil},
	{"FROM appId('com.example.q')", AppID{"com.example.q"}, nil},
	{`FROM appId("odd app")`, AppID{"odd app"}, nil},
	{"FROM from(2026-01-01T00:00:00Z) & to(2026-02-01)", and(TimeFrom{day("2026-01-01T00:00:00Z")}, TimeTo{day("2026-02-01T00:00:00Z")}), nil},
	{"FROM from(2026-01-01T01:00:00.5+01:00)", TimeFrom{day("2026-01-01T00:00:00.5Z")}, nil},
	{"FROM to(2025-12-31T19:00:00-05:00)", TimeTo{day("2026-01-01T00:00:00Z")}, nil},
	{"FROM to(2026-01-01T00:00:00.123456789Z)", TimeTo{day("2026-01-01T00:00:00.123456789Z")}, nil},
	{"FROM from('2026-03-04T05:06:07Z')", TimeFrom{day("2026-03-04T05:06:07Z")}, nil},
	{`FROM to("2026-03-04")`, TimeTo{day("2026-03-04T00:00:00Z")}, nil},
	{"FEATURES(zøg aggregate) FROM 'a'", Tag{"a"}, []string{"zøg", "aggregate"}},
	{"features ( x-y  z_1\n 2b ) from 'a'", Tag{"a"}, []string{"x-y", "z_1", "2b"}},
	{"FEATURES() FROM 'a'", Tag{"a"}, nil},
	{"FEATURES(a--b) FROM 'a'", Tag{"a"}, []string{"a--b"}},
	{"FEATURES(a -- comment )\n) FROM 'a'", Tag{"a"}, []string{"a"}},
	{"-- comment\nFROM 'a' -- trailing\n", Tag{"a"}, nil},
	{"FROM 'a' -- first\n & -- second\n 'b' END -- done", and(Tag{"a"}, Tag{"b"}), nil},
	{"  FROM\n\t'machine:7'\r\n", Tag{"machine:7"}, nil},
}

func TestParseValid(t *testing.T) {
	for _, tt := range validTests {
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

var errorTests = []struct {
	src       string
	line, col int
	msg       string
}{
	{"", 1, 1, "empty query"},
	{"   ", 1, 4, "empty query"},
	{"-- just a comment\n", 2, 1, "empty query"},
	{"'a'", 1, 1, `expected FROM, found "'"`},
	{"SELECT 'a'", 1, 1, `expected FROM, found "SELECT"`},
	{"FROMA 'a'", 1, 1, `expected FROM, found "FROMA"`},
	{"FEATURES 'a'", 1, 10, "expected ( after FEATURES"},
	{"FEATURES(a FROM 'x'", 1, 17, "expected feature name or )"},
	{"FEATURES(a,b) FROM 'x'", 1, 11, `expected feature name or ), found ","`},
	{"FEATURES(a) 'x'", 1, 13, "expected FROM"},
	{"FEATURES(a)", 1, 12, "expected FROM, found end of query"},
	{"FROM", 1, 5, "expected tag literal, allEvents, isLocal, appId(…), from(…), to(…) or \"(\", found end of query"},
	{"FROM 'a' &", 1, 11, "found end of query"},
	{"FROM 'a' |", 1, 11, "found end of query"},
	{"FROM & 'b'", 1, 6, `expected tag literal`},
	{"FROM 'a' & & 'b'", 1, 12, `found "&"`},
	{"FROM 'a' && 'b'", 1, 11, `found "&"`},
	{"FROM 'a' | | 'b'", 1, 12, `found "|"`},
	{"FROM 'a'\n  & )", 2, 5, `found ")"`},
	{"FROM 'abc", 1, 6, "unterminated ' quote"},
	{`FROM "abc`, 1, 6, `unterminated " quote`},
	{"FROM 'it''s", 1, 6, "unterminated ' quote"},
	{"FROM 'a' | 'b", 1, 12, "unterminated ' quote"},
	{"FROM ''", 1, 6, "empty tag"},
	{`FROM 'a' & ""`, 1, 12, "empty tag"},
	{"FROM ('a'", 1, 10, "expected ) closing the ( at line 1, column 6, found end of query"},
	{"FROM (\n'a'\n", 3, 1, "expected ) closing the ( at line 1, column 6"},
	{"FROM (('a') 'b'", 1, 13, `closing the ( at line 1, column 6, found "'"`},
	{"FROM 'a')", 1, 9, `unexpected ")"`},
	{"FROM ()", 1, 7, `found ")"`},
	{"FROM 'a' 'b'", 1, 10, `unexpected "'" after the query`},
	{"FROM 'a' ! 'b'", 1, 10, `unexpected "!"`},
	{"FROM bogus", 1, 6, `unknown "bogus"`},
	{"FROM 'a' | AllEvents", 1, 12, `unknown "AllEvents"`},
	{"FROM ISLOCAL", 1, 6, `unknown "ISLOCAL"`},
	{"FROM appid(x)", 1, 6, `unknown "appid"`},
	{"FROM com.example.x", 1, 6, `unknown "com"`},
	{"FROM tags('a')", 1, 6, `unknown "tags"`},
	{"FROM appId", 1, 11, "expected ( after appId, found end of query"},
	{"FROM appId com.x", 1, 12, `expected ( after appId, found "com"`},
	{"FROM\n  appId()", 2, 9, "expected an argument to appId"},
	{"FROM appId('')", 1, 12, "empty argument to appId"},
	{"FROM appId(com example)", 1, 16, "expected ) after the argument to appId"},
	{"FROM appId(com/x)", 1, 15, `found "/"`},
	{"FROM appId(com.x", 1, 17, "found end of query"},
	{"FROM appId('com.x)", 1, 12, "unterminated ' quote"},
	{"FROM from()", 1, 11, "expected an argument to from"},
	{"FROM from(yesterday)", 1, 11, "not an RFC 3339 time"},
	{"FROM to(2026-13-01)", 1, 9, "to(2026-13-01): not an RFC 3339 time"},
	{"FROM from(2026-01-01T00:00:00)", 1, 11, "not an RFC 3339 time"},
	{"FROM from(2026-01-01T25:00:00Z)", 1, 11, "not an RFC 3339 time"},
	{"FROM from(2026-1-1)", 1, 11, "not an RFC 3339 time"},
	{"FROM from(0000-01-01T00:00:00+01:00)", 1, 11, "years 0000 to 9999 UTC"},
	{"FROM to(9999-12-31T23:30:00-01:00)", 1, 9, "years 0000 to 9999 UTC"},
	{"FROM from( 'tomorrow' )", 1, 12, "not an RFC 3339 time"},
	{"FROM to 2026-01-01", 1, 9, "expected ( after to"},
	{"FROM 'a' END 'b'", 1, 14, "unexpected"},
	{"FROM 'a' END END", 1, 14, `unexpected "END"`},
	{"FROM 'a' END\n)", 2, 1, `unexpected ")"`},
	{"FROM " + strings.Repeat("(", 100) + "'a'" + strings.Repeat(")", 100), 1, 70, "nested deeper than 64"},
	{"FROM " + strings.Repeat("(", 65) + "'a'" + strings.Repeat(")", 65), 1, 70, "nested deeper than 64"},
	{"FROM " + strings.Repeat("(", 1e6), 1, maxQueryBytes + 1, "longer than"},
	{"FROM 'a' | " + strings.Repeat("x", maxQueryBytes), 1, maxQueryBytes + 1, "longer than"},
	{"FROM 'a' | \xff", 1, 12, "expected tag literal, allEvents, isLocal, appId(…), from(…), to(…) or \"(\", found invalid UTF-8 byte 0xff"},
	{"FROM '\xff'", 1, 6, "not valid UTF-8"},
	{"FROM 'ä' é", 1, 10, `unexpected "é"`},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range errorTests {
		q, err := Parse(tt.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%.40q) = %v, %v; want *SyntaxError", tt.src, q, err)
			continue
		}
		if se.Line != tt.line || se.Col != tt.col || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Parse(%.40q) = %v (line %d col %d), want line %d col %d containing %q", tt.src, se, se.Line, se.Col, tt.line, tt.col, tt.msg)
		}
		checkErrorPos(t, tt.src, se)
		want := fmt.Sprintf("syntax error at line %d, column %d: %s", se.Line, se.Col, se.Msg)
		if se.Error() != want {
			t.Errorf("Error() = %q, want %q", se.Error(), want)
		}
	}
}

// checkErrorPos checks that Line and Col describe the byte offset Pos.
func checkErrorPos(t *testing.T, src string, se *SyntaxError) {
	t.Helper()
	if se.Pos < 0 || se.Pos > len(src) {
		t.Fatalf("Parse(%.40q): Pos %d out of range", src, se.Pos)
	}
	before := src[:se.Pos]
	line := strings.Count(before, "\n") + 1
	col := len([]rune(before[strings.LastIndexByte(before, '\n')+1:])) + 1
	if se.Line != line || se.Col != col {
		t.Fatalf("Parse(%.40q): Pos %d is line %d col %d, error says line %d col %d", src, se.Pos, line, col, se.Line, se.Col)
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := Parse("FROM 'a' & & 'b'")
	want := `syntax error at line 1, column 12: expected tag literal, allEvents, isLocal, appId(…), from(…), to(…) or "(", found "&"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestMustParse(t *testing.T) {
	if q := MustParse("FROM 'a'"); !reflect.DeepEqual(q.Where, Tag{"a"}) {
		t.Errorf("MustParse = %#v", q.Where)
	}
	defer func() {
		if _, ok := recover().(*SyntaxError); !ok {
			t.Error("MustParse of a bad query did not panic with a *SyntaxError")
		}
	}()
	MustParse("FROM")
}

var subject = &Subject{Tags: []string{"a", "b"}, AppID: "com.example.x", Timestamp: day("2026-01-15T00:00:00Z").UnixMicro(), Local: true}

func TestMatch(t *testing.T) {
	tests := []struct {
		src  string
		want bool
	}{
		{"FROM 'a'", true},
		{"FROM 'c'", false},
		{"FROM 'A'", false},
		{"FROM 'a' & 'b'", true},
		{"FROM 'a' & 'c'", false},
		{"FROM 'c' | 'b'", true},
		{"FROM 'c' | 'd' | 'e'", false},
		{"FROM 'c' | 'd' | 'a'", true},
		{"FROM 'a' & 'b' & 'c'", false},
		{"FROM 'a' & 'b' & isLocal", true},
		{"FROM ('c' | 'a') & ('d' | 'b')", true},
		{"FROM ('c' | 'a') & ('d' | 'e')", false},
		{"FROM allEvents", true},
		{"FROM isLocal", true},
		{"FROM appId(com.example.x)", true},
		{"FROM appId(com.example.y)", false},
		{"FROM from(2026-01-15)", true},                        // inclusive
		{"FROM to(2026-01-15)", false},                         // exclusive
		{"FROM from(2026-01-15T00:00:00.000001Z)", false},      // one microsecond later
		{"FROM from(2026-01-15T00:00:00.0000005Z)", false},     // half a microsecond later
		{"FROM to(2026-01-15T00:00:00.0000005Z)", true},        // half a microsecond later
		{"FROM from(2026-01-14T23:59:59.9999995Z)", true},      // half a microsecond earlier
		{"FROM to(2026-01-14T23:59:59.9999995Z)", false},       // half a microsecond earlier
		{"FROM from(2026-01-15T01:00:00+01:00)", true},         // the same instant
		{"FROM to(2026-01-16) & 'a'", true},                    //
		{"FROM from(2026-02-01) | 'zzz'", false},               //
		{"FROM from(2026-01-01) & to(2026-02-01) & 'b'", true}, //
	}
	for _, tt := range tests {
		if got := MustParse(tt.src).Match(subject); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.src, got, tt.want)
		}
	}
	remote := &Subject{Tags: nil, AppID: "", Timestamp: 0}
	for src, want := range map[string]bool{"FROM isLocal": false, "FROM allEvents": true, "FROM 'a'": false, "FROM to(1970-01-01T00:00:00.000001Z)": true} {
		if got := MustParse(src).Match(remote); got != want {
			t.Errorf("%s on an empty subject: Match = %v, want %v", src, got, want)
		}
	}
}

func TestMatchHandBuilt(t *testing.T) {
	tag := Tag{"a"}
	tests := []struct {
		q    *Query
		want bool
	}{
		{&Query{Where: and(Tag{"a"}, IsLocal{})}, true},
		{&Query{Where: and(Tag{"a"}, and(Tag{"b"}, or(Tag{"x"}, AppID{"com.example.x"})))}, true},
		{&Query{Where: TimeFrom{day("2026-01-15T01:00:00+01:00").In(time.FixedZone("x", 3600))}}, true},
		{&Query{}, false},                   // no selection selects nothing
		{&Query{Where: and()}, true},        // an empty And holds vacuously
		{&Query{Where: or()}, false},        // an empty Or selects nothing
		{&Query{Where: or(Tag{"a"})}, true}, // one-term nodes
		{&Query{Where: and(Tag{"c"})}, false},
		{&Query{Where: &tag}, true}, // pointers to the node types work too
		{&Query{Where: &Or{[]Expr{&Tag{"x"}, &And{[]Expr{&IsLocal{}, &AppID{"com.example.x"}}}}}}, true},
		{&Query{Where: (*Tag)(nil)}, false},
	}
	for i, tt := range tests {
		if got := tt.q.Match(subject); got != tt.want {
			t.Errorf("%d: %s: Match = %v, want %v", i, tt.q, got, tt.want)
		}
	}
}

func TestMatchConcurrent(t *testing.T) {
	q := &Query{Where: or(Tag{"x"}, and(Tag{"a"}, IsLocal{}))}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if !q.Match(subject) {
					t.Error("no match")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestMatchAllocs(t *testing.T) {
	for _, q := range []*Query{
		MustParse("FROM ('machine:7' | 'machine:8') & 'temperature' & from(2026-01-01) | appId(x) & isLocal & to(2027-01-01) | allEvents"),
		{Where: and(Tag{"a"}, Tag{"b"})},
	} {
		if n := testing.AllocsPerRun(100, func() { q.Match(subject) }); n != 0 {
			t.Errorf("%s: %v allocations per Match", q, n)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		q    *Query
		want string
	}{
		{MustParse("from 'a' | 'b' & 'c' end"), "FROM 'a' | 'b' & 'c'"},
		{MustParse("FROM ('a' | 'b') & 'c'"), "FROM ('a' | 'b') & 'c'"},
		{MustParse("features( x  y ) FROM \"it's\""), "FEATURES(x y) FROM 'it''s'"},
		{MustParse("FROM appId('com.x') | appId('a b') | appId('--x') | appId(-x)"), "FROM appId(com.x) | appId('a b') | appId('--x') | appId(-x)"},
		{MustParse("FROM from(2026-01-01T01:00:00.5+01:00) & to(2026-02-01)"), "FROM from(2026-01-01T00:00:00.5Z) & to(2026-02-01T00:00:00Z)"},
		{MustParse("FROM isLocal & allEvents"), "FROM isLocal & allEvents"},
		// Hand-built trees that Parse would not produce.
		{&Query{Where: and(and(or(Tag{"a"}, Tag{"b"})), Tag{"c"})}, "FROM ('a' | 'b') & 'c'"},
		{&Query{Where: or(and(Tag{"a"}, Tag{"b"}), or(Tag{"c"}))}, "FROM 'a' & 'b' | 'c'"},
		{&Query{Where: and()}, "FROM allEvents"},
		{&Query{Where: and(or(), Tag{"a"})}, "FROM from(1970-01-01T00:00:00Z) & to(1970-01-01T00:00:00Z) & 'a'"},
		{&Query{Where: &Or{[]Expr{&Tag{"x"}, &And{[]Expr{&IsLocal{}, &Tag{"y"}}}}}}, "FROM 'x' | isLocal & 'y'"},
		{&Query{}, "FROM <nil>"},
	}
	for _, tt := range tests {
		if got := tt.q.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
	}
	if got := ExprString(or(Tag{"a"}, IsLocal{})); got != "'a' | isLocal" {
		t.Errorf("ExprString = %s", got)
	}
}

// randomExpr returns a random tree as Parse builds it.
func randomExpr(r *rand.Rand, depth int) Expr {
	if depth > 3 {
		return Tag{Name: randomString(r)}
	}
	switch r.IntN(10) {
	case 0:
		return AllEvents{}
	case 1:
		return IsLocal{}
	case 2:
		if r.IntN(2) == 0 {
			return AppID{ID: "com.example." + randomString(r)}
		}
		return AppID{ID: randomString(r)}
	case 3:
		return TimeFrom{T: randomTime(r)}
	case 4:
		return TimeTo{T: randomTime(r)}
	case 5, 6:
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
		return Tag{Name: randomString(r)}
	}
}

func randomTime(r *rand.Rand) time.Time {
	t := time.UnixMicro(r.Int64N(1 << 52)).UTC()
	switch r.IntN(3) {
	case 0:
		return t.Truncate(24 * time.Hour)
	case 1:
		return t.Add(time.Duration(r.IntN(1000)))
	}
	return t
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

func randomString(r *rand.Rand) string {
	chars := []rune("ab.:'\" -_é7()&|\n")
	n := 1 + r.IntN(6)
	var b strings.Builder
	for range n {
		b.WriteRune(chars[r.IntN(len(chars))])
	}
	return b.String()
}

func randomFeatures(r *rand.Rand) []string {
	words := []string{"zøg", "x-y", "a_1", "-", "9", "aggregate", "a--b"}
	var out []string
	for range r.IntN(4) {
		out = append(out, words[r.IntN(len(words))])
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		q := &Query{Where: randomExpr(r, 0), Features: randomFeatures(r)}
		src := q.String()
		p, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		if !reflect.DeepEqual(p.Where, q.Where) || !reflect.DeepEqual(p.Features, q.Features) {
			t.Fatalf("round trip of %q:\n got %#v %q\nwant %#v %q", src, p.Where, p.Features, q.Where, q.Features)
		}
		if again := p.String(); again != src {
			t.Fatalf("String() of the parsed query = %q, want %q", again, src)
		}
	}
}

// anyExpr returns a random tree of any shape, including ones Parse does not
// build: nested nodes of the same kind, And and Or with zero or one term,
// pointers, times outside UTC.
func anyExpr(r *rand.Rand, depth int) Expr {
	tags := []string{"a", "b", "c"}
	if depth > 3 {
		return Tag{tags[r.IntN(3)]}
	}
	switch r.IntN(10) {
	case 0:
		return AllEvents{}
	case 1:
		return IsLocal{}
	case 2:
		return AppID{[]string{"app.a", "app b"}[r.IntN(2)]}
	case 3:
		return TimeFrom{time.UnixMicro(r.Int64N(10)).In(time.FixedZone("", 3600))}
	case 4:
		return TimeTo{time.Unix(0, r.Int64N(10_000))}
	case 5, 6:
		var terms []Expr
		for range r.IntN(4) {
			terms = append(terms, anyExpr(r, depth+1))
		}
		if r.IntN(2) == 0 {
			return And{terms}
		}
		return Or{terms}
	case 7:
		return &Tag{tags[r.IntN(3)]}
	default:
		return Tag{tags[r.IntN(3)]}
	}
}

// TestStringMeaning checks that String keeps the meaning of any tree.
func TestStringMeaning(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		q := &Query{Where: anyExpr(r, 0)}
		p, err := Parse(q.String())
		if err != nil {
			t.Fatalf("Parse(%q): %v", q.String(), err)
		}
		for range 20 {
			s := &Subject{AppID: []string{"app.a", "app b", ""}[r.IntN(3)], Timestamp: r.Int64N(13), Local: r.IntN(2) == 0}
			for _, tag := range []string{"a", "b", "c"} {
				if r.IntN(2) == 0 {
					s.Tags = append(s.Tags, tag)
				}
			}
			if q.Match(s) != p.Match(s) {
				t.Fatalf("%#v and its rendering %q disagree on %+v", q.Where, q.String(), s)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range validTests {
		f.Add(tt.src)
	}
	for _, tt := range errorTests {
		if len(tt.src) < 1000 {
			f.Add(tt.src)
		}
	}
	f.Add("FROM 'a' | 'b' & ('c' | isLocal)")
	f.Add("FEATURES(x) FROM allEvents END")
	f.Add("FROM appId(com.example.x) & from(2026-01-01) & to(2026-01-02T00:00:00Z)")
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line < 1 || se.Col < 1 {
				t.Fatalf("bad error for %q: %#v", src, err)
			}
			checkErrorPos(t, src, se)
			return
		}
		q.Match(&Subject{Tags: []string{"a"}})
		canon := q.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
		}
		if !reflect.DeepEqual(again.Where, q.Where) || !reflect.DeepEqual(again.Features, q.Features) {
			t.Fatalf("round trip of %q changed the query: %#v vs %#v", src, again.Where, q.Where)
		}
		if s := again.String(); s != canon {
			t.Fatalf("canonical form is not stable: %q then %q", canon, s)
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	q := MustParse("FROM ('machine:7' | 'machine:8') & 'temperature' & from(2026-01-01)")
	s := &Subject{Tags: []string{"machine:8", "temperature", "x"}, Timestamp: day("2026-05-01T00:00:00Z").UnixMicro()}
	b.ReportAllocs()
	for b.Loop() {
		if !q.Match(s) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	src := "FEATURES(zøg) FROM ('machine:7' | 'machine:8') & 'temperature' & from(2026-01-01) & appId(com.example.x)"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}

// hostileInputs are the largest inputs the parser accepts, shaped to make a
// careless parser quadratic.
var hostileInputs = []string{
	"FROM " + strings.Repeat("('a')|", (maxQueryBytes-10)/6) + "'a'",
	"FROM " + strings.Repeat("'a'|", (maxQueryBytes-10)/4) + "'a'",
	"FROM " + strings.Repeat("(", 64) + strings.Repeat("'a'&", (maxQueryBytes-200)/4) + "'a'" + strings.Repeat(")", 64),
}

// TestHostileInput checks that the largest inputs parse and match; their
// cost is measured by BenchmarkParseHostile (error positions are computed
// only for errors, so parentheses cost linear time).
func TestHostileInput(t *testing.T) {
	for _, src := range hostileInputs {
		q, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		q.Match(subject)
	}
}

func BenchmarkParseHostile(b *testing.B) {
	for b.Loop() {
		for _, src := range hostileInputs {
			if _, err := Parse(src); err != nil {
				b.Fatal(err)
			}
		}
	}
}
