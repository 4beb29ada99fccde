package main

import (
	"math"
	"testing"
	"time"
)

// TestPerSecond checks the arithmetic of the table: the background share of
// a block of scrapes is taken out before dividing by the scrapes, and a
// second of operation is what a paced window cost per second of its length.
func TestPerSecond(t *testing.T) {
	r := result{
		idleCPU: 600 * time.Millisecond, idleWall: 60 * time.Second, // 10 ms/s idle
		blockCPU: 1100 * time.Millisecond, blockWall: 10 * time.Second, // 100 ms of it background
		scrapes:   1000,
		pacedCPU:  []time.Duration{90 * time.Millisecond, 120 * time.Millisecond},
		pacedWall: []time.Duration{60 * time.Second, 120 * time.Second},
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %g, want %g", name, got, want)
		}
	}
	near("idlePerSecond", r.idlePerSecond(), 0.010)
	near("perScrape", r.perScrape(), 0.001)
	near("perSecondAt(0)", r.perSecondAt(0), 0.0015)
	near("perSecondAt(1)", r.perSecondAt(1), 0.001)
	near("perSecondAt(2), not measured", r.perSecondAt(2), 0)
	r.blockCPU = 50 * time.Millisecond // less than the idle rate predicts
	near("perScrape floored", r.perScrape(), 0)
}

func TestParseProcFiles(t *testing.T) {
	ticks, err := parseStatCPU([]byte("1234 (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 1000 1000000 1000\n"))
	if err != nil || ticks != 325 {
		t.Errorf("parseStatCPU = %d, %v; want 325", ticks, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x S 1")); err == nil {
		t.Error("parseStatCPU accepted a line without ')'")
	}
	ns, err := parseSchedstat([]byte("671746 103960 2\n"))
	if err != nil || ns != 671746 {
		t.Errorf("parseSchedstat = %d, %v; want 671746", ns, err)
	}
	if _, err := parseSchedstat([]byte("x 1 2")); err == nil {
		t.Error("parseSchedstat accepted a non-number")
	}
}

func TestParseStatus(t *testing.T) {
	total, anon, err := parseStatus([]byte("Name:\taiwatt\nVmRSS:\t   51412 kB\nRssAnon:\t    5772 kB\nRssFile:\t   45640 kB\n"))
	if err != nil || total != 51412*1024 || anon != 5772*1024 {
		t.Errorf("parseStatus = %d, %d, %v; want %d, %d", total, anon, err, 51412*1024, 5772*1024)
	}
	if _, _, err := parseStatus([]byte("Name:\tx\nVmRSS:\t 1 kB\n")); err == nil {
		t.Error("parseStatus accepted a status without RssAnon")
	}
}

func TestCountSeries(t *testing.T) {
	body := []byte("# HELP a x\n# TYPE a counter\na_total 1\na_total{b=\"c\"} 2\n\nup 1\n# EOF\n")
	if got := countSeries(body); got != 3 {
		t.Errorf("countSeries = %d, want 3", got)
	}
	if got := countLines(body, "a_total"); got != 2 {
		t.Errorf("countLines = %d, want 2", got)
	}
}

func TestParseLists(t *testing.T) {
	if v, err := parseInts("80, 570"); err != nil || len(v) != 2 || v[0] != 80 || v[1] != 570 {
		t.Errorf("parseInts = %v, %v", v, err)
	}
	if _, err := parseInts("80,x"); err == nil {
		t.Error("parseInts accepted x")
	}
	if v, err := parseDurations("15s,30s"); err != nil || len(v) != 2 || v[1] != 30*time.Second {
		t.Errorf("parseDurations = %v, %v", v, err)
	}
	if _, err := parseDurations("0s"); err == nil {
		t.Error("parseDurations accepted 0s")
	}
}
