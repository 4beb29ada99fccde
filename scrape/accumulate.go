package scrape

import "time"

// OtherModel is the model that a target's models beyond its cap
// ([Options.MaxModels]) are folded into.
const OtherModel = "other"

// Defaults of the per-target state bounds.
const (
	// DefaultMaxModels is the most distinct models kept per target; more
	// are folded into OtherModel and counted as ErrReasonModelsFolded.
	DefaultMaxModels = 100
	// DefaultMaxSeries is the most series whose last value is kept per
	// target; a new series beyond it is skipped and counted as
	// ErrReasonSeriesCap.
	DefaultMaxSeries = 10000
	// DefaultRetention is how long a series or a model that a target no
	// longer exports is remembered.
	DefaultRetention = 5 * time.Minute
)

// tracker turns the raw counters of successive expositions of one target
// into monotonic totals. It is not safe for concurrent use; the Scraper
// guards each tracker with its target's mutex.
//
// Rules (see doc.go): the first successful scrape is the baseline (adds
// nothing); afterwards each series adds its increase since the previous
// scrape. A series whose value dropped, or whose _created time changed, or
// every series when the server's process_start_time_seconds changed,
// restarted: its new value is the increase since the restart and is added
// whole. A series first seen after the baseline was created after the
// previous scrape and is added whole. Skipped samples (NaN, Inf, negative,
// malformed) leave the series' last value untouched, so the next good value
// carries the whole increase.
//
// Its state is bounded: at most maxModels models (the rest fold into
// OtherModel), at most maxSeries series, and a series or model not exported
// for retention is forgotten (a series that comes back afterwards counts as
// new).
type tracker struct {
	primed       bool
	server       Server // detected server, locked once known (auto only)
	procStart    float64
	hasProcStart bool
	last         map[string]lastSample // series key → last good value
	created      map[string]float64    // series key → last _created value
	models       map[string]time.Time  // model → last seen
	totals       totals
	restarts     uint64

	maxModels, maxSeries int
	retention            time.Duration
}

type lastSample struct {
	v    float64
	seen time.Time
}

// apply adds one exposition's increases to the totals, at an unknown time
// (nothing expires).
func (t *tracker) apply(e *exposition) { t.applyAt(e, time.Time{}) }

// applyAt adds one exposition's increases to the totals at now, and returns
// how many of its series were folded into OtherModel and how many were
// skipped by the series cap.
func (t *tracker) applyAt(e *exposition, now time.Time) (folded, capped uint64) {
	if t.last == nil {
		t.last, t.created, t.models = map[string]lastSample{}, map[string]float64{}, map[string]time.Time{}
	}
	maxModels, maxSeries := t.maxModels, t.maxSeries
	if maxModels <= 0 {
		maxModels = DefaultMaxModels
	}
	if maxSeries <= 0 {
		maxSeries = DefaultMaxSeries
	}
	restart := e.hasProcStart && t.hasProcStart && e.procStart != t.procStart
	if restart {
		t.restarts++
	}
	dropped := false
	for _, o := range e.obs {
		prev, seen := t.last[o.key]
		if !seen && len(t.last) >= maxSeries {
			capped++
			continue
		}
		recreated := false
		if c, ok := e.created[o.key]; ok {
			if pc, had := t.created[o.key]; had && pc != c {
				recreated = true
			}
			t.created[o.key] = c
		}
		var delta float64
		switch {
		case !seen && !t.primed:
			delta = 0 // baseline
		case !seen, restart, recreated:
			delta = o.value
			if recreated && !restart {
				dropped = true
			}
		case o.value < prev.v:
			delta = o.value
			dropped = true
		default:
			delta = o.value - prev.v
		}
		t.last[o.key] = lastSample{v: o.value, seen: now}
		model := o.model
		if o.role != roleEnergy {
			if _, known := t.models[model]; !known && model != OtherModel && t.modelCount() >= maxModels {
				model = OtherModel
				folded++
			}
			t.models[model] = now
		}
		t.totals.add(o.role, model, o.sub, delta)
	}
	if dropped && !restart {
		t.restarts++
	}
	if e.hasProcStart {
		t.procStart, t.hasProcStart = e.procStart, true
	}
	t.primed = true
	t.expire(now)
	return folded, capped
}

// modelCount is the number of models kept, OtherModel not included.
func (t *tracker) modelCount() int {
	n := len(t.models)
	if _, ok := t.models[OtherModel]; ok {
		n--
	}
	return n
}

// expire forgets series and models not seen for the retention.
func (t *tracker) expire(now time.Time) {
	if now.IsZero() {
		return
	}
	ret := t.retention
	if ret <= 0 {
		ret = DefaultRetention
	}
	for k, v := range t.last {
		if now.Sub(v.seen) > ret {
			delete(t.last, k)
			delete(t.created, k)
		}
	}
	for m, seen := range t.models {
		if now.Sub(seen) > ret {
			delete(t.models, m)
			t.totals.dropModel(m)
		}
	}
}
