package scrape

import (
	"log/slog"
	"time"
)

// Counter kinds of a [Ledger]'s series.
const (
	// KindRequests counts finished requests, by finished reason.
	KindRequests = "requests"
	// KindInputTokens counts prompt (prefill) tokens.
	KindInputTokens = "input_tokens"
	// KindOutputTokens counts generated tokens.
	KindOutputTokens = "output_tokens"
	// KindInferences counts inferences, batch items included (Triton's
	// nv_inference_count): the unit of energy per inference for batched
	// non-LLM models.
	KindInferences = "inferences"
)

// ReasonWorkloadUnresolved is the reason of counts dropped because their
// target's workload stayed unknown for longer than [LedgerOptions.Hold].
const ReasonWorkloadUnresolved = "workload_unresolved"

// Defaults of [LedgerOptions].
const (
	// DefaultLedgerRetention is how long a series, or a target's last
	// values, are kept after they were last seen.
	DefaultLedgerRetention = 5 * time.Minute
	// DefaultHold is how long counts of a target whose workload is unknown
	// are held, waiting for it to be resolved.
	DefaultHold = 30 * time.Second
)

// LedgerOptions configure a Ledger.
type LedgerOptions struct {
	// Retention bounds how long state not seen is kept: a workload's
	// series, and a target's last value per model (default
	// DefaultLedgerRetention; the agent passes attribution.retention).
	Retention time.Duration
	// Hold is how long the counts of a target whose workload is not known
	// yet are held (default DefaultHold). Resolved within it, they go to
	// the workload; otherwise they are dropped and counted under
	// ReasonWorkloadUnresolved, never exported under an empty workload.
	Hold time.Duration
	// Logger gets one line per target whose counts are dropped (once per
	// target until it resolves again); nil discards.
	Logger *slog.Logger
}

// Series is one monotonic inference counter of one workload.
type Series[K comparable] struct {
	// Key is the workload.
	Key K
	// Server is the server family (vllm, triton, …).
	Server string
	// Kind is one of the Kind constants.
	Kind string
	// Reason is the finished reason (KindRequests only).
	Reason string
	// Value is the total since the series was first seen.
	Value float64
}

// Unattributed is a count dropped because its workload could not be
// resolved, by server, kind and reason.
type Unattributed struct {
	// Server and Kind say what was dropped.
	Server, Kind string
	// Reason is why (ReasonWorkloadUnresolved).
	Reason string
	// Value is the total dropped since the ledger started.
	Value float64
}

// Ledger turns the per-target, per-model totals of [Scraper] results into
// monotonic counters per workload (K: the caller's workload key, such as
// the agent's label set), so that a server restart, a target that moves to
// another process or a changed set of models never makes a counter go
// backwards. Its state is bounded: a target's last value per model and a
// workload's series expire after Retention without being seen (the
// Scraper's own model cap, [Options.MaxModels], bounds the models per
// target). It is not safe for concurrent use.
type Ledger[K comparable] struct {
	opts    LedgerOptions
	last    map[lastKey]lastValue
	totals  map[seriesKey[K]]*seriesValue
	pending map[string]*held
	dropped map[droppedKey]float64
	logged  map[string]bool
}

type lastKey struct{ target, model, kind, reason string }

type lastValue struct {
	v    float64
	seen time.Time
}

type seriesKey[K comparable] struct {
	key                  K
	server, kind, reason string
}

type seriesValue struct {
	v    float64
	seen time.Time
}

type incKey struct{ kind, reason string }

// held is what a target counted while its workload was unknown.
type held struct {
	server string
	since  time.Time
	inc    map[incKey]float64
}

type droppedKey struct{ server, kind, reason string }

// NewLedger returns an empty ledger.
func NewLedger[K comparable](opts LedgerOptions) *Ledger[K] {
	if opts.Retention <= 0 {
		opts.Retention = DefaultLedgerRetention
	}
	if opts.Hold <= 0 {
		opts.Hold = DefaultHold
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Ledger[K]{opts: opts, last: map[lastKey]lastValue{}, totals: map[seriesKey[K]]*seriesValue{},
		pending: map[string]*held{}, dropped: map[droppedKey]float64{}, logged: map[string]bool{}}
}

// Add folds one target's result into the counters of workload key. known
// false means the target's workload is not resolved yet: the increase is
// held (see LedgerOptions.Hold) and goes to the first known key given for
// the target within the hold.
func (l *Ledger[K]) Add(now time.Time, r Result, key K, known bool) {
	id := r.Target.ID
	if id == "" {
		id = r.Target.URL
	}
	server := string(r.Server)
	inc := map[incKey]float64{}
	bump := func(model, kind, reason string, v float64) {
		lk := lastKey{id, model, kind, reason}
		p, ok := l.last[lk]
		d := v
		if ok && v >= p.v {
			d = v - p.v
		}
		l.last[lk] = lastValue{v: v, seen: now}
		inc[incKey{kind, reason}] += d
	}
	for _, m := range r.Models {
		for reason, v := range m.Requests {
			bump(m.Model, KindRequests, reason, v)
		}
		if m.HasInputTokens {
			bump(m.Model, KindInputTokens, "", m.InputTokens)
		}
		if m.HasOutputTokens {
			bump(m.Model, KindOutputTokens, "", m.OutputTokens)
		}
		if m.HasInferences {
			bump(m.Model, KindInferences, "", m.Inferences)
		}
	}
	if !known {
		h := l.pending[id]
		if h == nil {
			h = &held{server: server, since: now, inc: map[incKey]float64{}}
			l.pending[id] = h
		}
		for k, d := range inc {
			h.inc[k] += d
		}
		return
	}
	if h := l.pending[id]; h != nil {
		for k, d := range h.inc {
			inc[k] += d
		}
		delete(l.pending, id)
	}
	delete(l.logged, id)
	for k, d := range inc {
		sk := seriesKey[K]{key: key, server: server, kind: k.kind, reason: k.reason}
		cur := l.totals[sk]
		if cur == nil {
			cur = &seriesValue{}
			l.totals[sk] = cur
		}
		cur.v += d
		cur.seen = now
	}
}

// Expire drops what was not seen for Retention, and the held counts of
// targets unresolved for longer than Hold (counting them as Unattributed,
// with one log line per target). Call it once per tick.
func (l *Ledger[K]) Expire(now time.Time) {
	for k, v := range l.last {
		if now.Sub(v.seen) > l.opts.Retention {
			delete(l.last, k)
		}
	}
	for k, v := range l.totals {
		if now.Sub(v.seen) > l.opts.Retention {
			delete(l.totals, k)
		}
	}
	for id, h := range l.pending {
		if now.Sub(h.since) <= l.opts.Hold {
			continue
		}
		var n float64
		for k, d := range h.inc {
			l.dropped[droppedKey{h.server, k.kind, ReasonWorkloadUnresolved}] += d
			n += d
		}
		delete(l.pending, id)
		if n > 0 && !l.logged[id] { // a target that never answered dropped nothing
			l.logged[id] = true
			l.opts.Logger.Warn("inference counts dropped: the target's workload could not be resolved; they are counted in aiwatt_inference_unattributed_total",
				"target", id, "held_for", h.since.Sub(now).Abs(), "count", n)
		}
	}
	// A target gone for longer than Retention is forgotten entirely.
	for id := range l.logged {
		if _, ok := l.pending[id]; !ok && !l.hasTarget(id) {
			delete(l.logged, id)
		}
	}
}

func (l *Ledger[K]) hasTarget(id string) bool {
	for k := range l.last {
		if k.target == id {
			return true
		}
	}
	return false
}

// Series returns every live series, unordered.
func (l *Ledger[K]) Series() []Series[K] {
	out := make([]Series[K], 0, len(l.totals))
	for k, v := range l.totals {
		out = append(out, Series[K]{Key: k.key, Server: k.server, Kind: k.kind, Reason: k.reason, Value: v.v})
	}
	return out
}

// Unattributed returns the counts dropped so far, unordered.
func (l *Ledger[K]) Unattributed() []Unattributed {
	out := make([]Unattributed, 0, len(l.dropped))
	for k, v := range l.dropped {
		out = append(out, Unattributed{Server: k.server, Kind: k.kind, Reason: k.reason, Value: v})
	}
	return out
}

// Size returns how many entries the ledger holds (last values, series and
// held targets), to show that its state is bounded.
func (l *Ledger[K]) Size() int { return len(l.last) + len(l.totals) + len(l.pending) }
