package scrape

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary expositions (seeded with every capture) through
// the parsing and accumulation path. Run it bounded in CI:
//
//	go test ./scrape -run '^$' -fuzz '^FuzzParse$' -fuzztime 10s
//
// Invariants: no panic; every reported value finite and non-negative;
// issues only of known reasons; applying the same exposition twice adds
// nothing; a second exposition never lowers a total; and every counter,
// gauge or untyped sample that expfmt accepts is read identically.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no captures in %s: %v", fixtureDir, err)
	}
	for i, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		next := rewriteValues(string(b), func(v float64) float64 { return v + 7 })
		f.Add(b, []byte(next), uint8(i))
		restart := rewriteValues(string(b), func(float64) float64 { return 1 })
		f.Add(b, []byte(restart), uint8(0))
	}
	f.Fuzz(func(t *testing.T, body, next []byte, which uint8) {
		servers := append([]Server{ServerAuto}, Servers...)
		server := servers[int(which)%len(servers)]

		r, err := Parse(body, server, "")
		if err == nil {
			checkReading(t, r)
		}

		var p lineParser
		e, err := p.read(body, server, "")
		if err != nil {
			return
		}
		var tr tracker
		tr.apply(&e)
		first := snapshot(t, &tr)
		tr.apply(&e) // same exposition again: nothing to add
		if again := snapshot(t, &tr); !equalTotals(first, again) {
			t.Fatalf("re-applying the same exposition changed totals: %v -> %v", first, again)
		}
		if e2, err := p.read(next, server, ""); err == nil {
			tr.apply(&e2)
			after := snapshot(t, &tr)
			for k, v := range first {
				if after[k] < v {
					t.Fatalf("total %v went down: %v -> %v", k, v, after[k])
				}
			}
		}

		if !hasBraceFirstLine(body) {
			theirs, err := expfmtSamples(body, false)
			if err == nil {
				ours, _ := ourSamples(body)
				if missing := missingFrom(theirs, ours); len(missing) > 0 {
					t.Fatalf("expfmt reads %v, the parser does not", missing[0])
				}
			}
		}
	})
}

var knownIssues = map[string]bool{
	ErrReasonBadLine: true, ErrReasonNaN: true, ErrReasonInf: true, ErrReasonNegative: true,
	ErrReasonTooLarge: true, ErrReasonDuplicate: true,
}

func checkReading(t *testing.T, r Reading) {
	t.Helper()
	ok := func(what string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Fatalf("%s = %v", what, v)
		}
	}
	for _, m := range r.Models {
		for reason, v := range m.Requests {
			ok("requests["+reason+"]", v)
		}
		ok("input", m.InputTokens)
		ok("output", m.OutputTokens)
		ok("inferences", m.Inferences)
	}
	for _, g := range r.GPUEnergy {
		ok("energy", g.Joules)
	}
	for reason := range r.Issues {
		if !knownIssues[reason] {
			t.Fatalf("unknown issue reason %q", reason)
		}
	}
}

// snapshot returns the tracker's totals, checking each is finite and >= 0.
func snapshot(t *testing.T, tr *tracker) map[aggKey]float64 {
	t.Helper()
	out := make(map[aggKey]float64, len(tr.totals.m))
	for k, v := range tr.totals.m {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			t.Fatalf("total %v = %v", k, v)
		}
		out[k] = v
	}
	return out
}

func equalTotals(a, b map[aggKey]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// hasBraceFirstLine reports a line starting with '{' (UTF-8 name syntax).
// expfmt reads such a line's labels before it knows the metric, against the
// previous line's family (a summary drops its quantile label, a histogram
// its le), so it is no oracle for them.
func hasBraceFirstLine(body []byte) bool {
	found := false
	forEachLine(body, func(line []byte) {
		if l := bytes.TrimLeft(line, " \t"); len(l) > 0 && l[0] == '{' {
			found = true
		}
	})
	return found
}
