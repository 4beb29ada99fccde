package scrape

// tracker turns the raw counters of successive expositions of one target
// into monotonic totals. It is not safe for concurrent use; the Scraper
// guards each tracker with its target's mutex.
//
// Rules (see doc.go): the first successful scrape is the baseline (adds
// nothing); afterwards each series adds its increase since the previous
// scrape. A series whose value dropped, or every series when the server's
// process_start_time_seconds changed, restarted: its new value is the
// increase since the restart and is added whole. A series first seen after
// the baseline was created after the previous scrape and is added whole.
// Skipped samples (NaN, Inf, negative, malformed) leave the series' last
// value untouched, so the next good value carries the whole increase.
type tracker struct {
	primed       bool
	server       Server // detected server, locked once known (auto only)
	procStart    float64
	hasProcStart bool
	last         map[string]float64 // series key → last good value
	totals       totals
	restarts     uint64
}

// apply adds one exposition's increases to the totals.
func (t *tracker) apply(e *exposition) {
	if t.last == nil {
		t.last = map[string]float64{}
	}
	restart := e.hasProcStart && t.hasProcStart && e.procStart != t.procStart
	if restart {
		t.restarts++
	}
	dropped := false
	for _, o := range e.obs {
		prev, seen := t.last[o.key]
		var delta float64
		switch {
		case !seen && !t.primed:
			delta = 0 // baseline
		case !seen, restart:
			delta = o.value
		case o.value < prev:
			delta = o.value
			dropped = true
		default:
			delta = o.value - prev
		}
		t.last[o.key] = o.value
		t.totals.add(o.role, o.model, o.sub, delta)
	}
	if dropped && !restart {
		t.restarts++
	}
	if e.hasProcStart {
		t.procStart, t.hasProcStart = e.procStart, true
	}
	t.primed = true
}
