package attribution

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Defaults of LedgerOptions.
const (
	// DefaultRetention keeps a finished workload's series for 5 minutes,
	// long enough for Prometheus to scrape its last increase.
	DefaultRetention = 5 * time.Minute
	// DefaultMaxKeys is the default cap on live workload series.
	DefaultMaxKeys = 2000
)

// LedgerOptions configure a Ledger.
type LedgerOptions struct {
	// Retention is how long a workload stays after it was last seen
	// (0 means DefaultRetention).
	Retention time.Duration
	// MaxKeys caps the live workloads (0 means DefaultMaxKeys); OtherKey
	// comes on top.
	MaxKeys int
}

// Ledger accumulates tick results into monotonic totals per workload and
// component, with a retention for finished workloads and a cap on live
// ones (see the package documentation). Its methods are safe for concurrent
// use; Add is meant to be called from one sampling loop, with times that do
// not go backwards.
type Ledger struct {
	retention time.Duration
	maxKeys   int

	mu           sync.Mutex
	live         map[Key]*entry
	folded       map[Key]time.Time // key → last seen, for keys folded into other
	other        Totals
	otherSeen    bool
	idle         Totals
	unattributed Totals
	foldedKeys   uint64
	foldedJoules Totals
	invalid      uint64
	newKeys      []Key // scratch
	// ents holds, for every part of the results of the current Add in
	// order, its live entry (nil when it had none at the first look), so
	// each part is looked up once. prev is the previous Add's: a sampling
	// loop names the same workloads in the same order tick after tick, so
	// the part at the same position is usually the same key, and its entry
	// is taken from there without hashing the key.
	ents, prev []*entry
	// sorted is the live entries in key order, for Snapshot; rebuilt only
	// after a key came or went (dirty).
	sorted []*entry
	dirty  bool
}

// entry is one live workload.
type entry struct {
	key      Key
	totals   Totals
	lastSeen time.Time
	gone     bool // expired: no longer in live (a safety net for Add's reuse of the previous Add's entries, which were seen then and so cannot have expired since)
}

// NewLedger returns an empty ledger. It refuses negative options.
func NewLedger(opts LedgerOptions) (*Ledger, error) {
	if opts.Retention < 0 {
		return nil, fmt.Errorf("ledger retention must not be negative, got %s", opts.Retention)
	}
	if opts.MaxKeys < 0 {
		return nil, fmt.Errorf("ledger max keys must not be negative, got %d", opts.MaxKeys)
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxKeys == 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	return &Ledger{
		retention: opts.Retention,
		maxKeys:   opts.MaxKeys,
		live:      make(map[Key]*entry),
		folded:    make(map[Key]time.Time),
	}, nil
}

// Add accounts one tick's results at time now. Every workload named in a
// result is seen at now, even with 0 J. Keys not yet live are admitted in
// Key.Compare order while fewer than MaxKeys are live; the others fold into
// OtherKey. Afterwards workloads unseen for longer than the retention are
// dropped. Results with Invalid set are only counted.
func (l *Ledger) Add(now time.Time, results []Result) { l.AddScaled(now, results, 1) }

// AddScaled is Add with every energy of results multiplied by f: a ledger
// of another quantity derived from the same attribution (grams of CO2e at
// f grams per joule) sees the same workloads at the same times, without a
// scaled copy of the results.
func (l *Ledger) AddScaled(now time.Time, results []Result, f float64) {
	l.mu.Lock()
	defer l.mu.Unlock()

	// Admit new keys first, in a fixed order, so that which keys fold does
	// not depend on the order of devices or of shares.
	l.newKeys = l.newKeys[:0]
	l.ents = l.ents[:0]
	for i := range results {
		for _, p := range results[i].Workloads {
			if p.Key == OtherKey {
				l.ents = append(l.ents, nil)
				continue
			}
			var e *entry
			if n := len(l.ents); n < len(l.prev) && l.prev[n] != nil && !l.prev[n].gone && l.prev[n].key == p.Key {
				e = l.prev[n]
			} else {
				e = l.live[p.Key]
			}
			l.ents = append(l.ents, e)
			if e != nil {
				e.lastSeen = now
				continue
			}
			if _, ok := l.folded[p.Key]; ok {
				l.folded[p.Key] = now
				continue
			}
			l.newKeys = append(l.newKeys, p.Key)
		}
	}
	slices.SortFunc(l.newKeys, Key.Compare)
	l.newKeys = slices.Compact(l.newKeys)
	for _, k := range l.newKeys {
		if len(l.live) < l.maxKeys {
			l.live[k] = &entry{key: k, lastSeen: now}
			l.dirty = true
			continue
		}
		l.folded[k] = now
		l.foldedKeys++
	}

	ents := l.ents
	for i := range results {
		r := &results[i]
		parts := ents[:len(r.Workloads)]
		ents = ents[len(r.Workloads):]
		if r.Invalid || !r.Component.Valid() {
			l.invalid++
			continue
		}
		c := r.Component
		l.idle[c] += r.Idle * f
		l.unattributed[c] += r.Unattributed * f
		for j, p := range r.Workloads {
			e := parts[j]
			if e == nil && len(l.newKeys) > 0 && p.Key != OtherKey {
				e = l.live[p.Key] // live since the first look, or folded
				parts[j] = e
			}
			if e != nil {
				e.totals[c] += p.Joules * f
				continue
			}
			// Folded, or OtherKey itself.
			l.other[c] += p.Joules * f
			l.otherSeen = true
			if p.Key != OtherKey {
				l.foldedJoules[c] += p.Joules * f
			}
		}
	}

	cutoff := now.Add(-l.retention)
	for k, e := range l.live {
		if e.lastSeen.Before(cutoff) {
			delete(l.live, k)
			e.gone = true
			l.dirty = true
		}
	}
	for k, seen := range l.folded {
		if seen.Before(cutoff) {
			delete(l.folded, k)
		}
	}
	l.prev, l.ents = l.ents, l.prev[:0]
}

// WorkloadTotal is one workload's totals.
type WorkloadTotal struct {
	// Key is the workload; OtherKey for the folded ones.
	Key Key
	// Joules holds the monotonic totals per component since the workload
	// was admitted.
	Joules Totals
}

// LedgerSnapshot is a copy of a ledger's totals.
type LedgerSnapshot struct {
	// Workloads holds the live workloads sorted by Key, then OtherKey last
	// once anything was folded into it.
	Workloads []WorkloadTotal
	// Idle is node idle energy per component.
	Idle Totals
	// Unattributed is active energy that no workload got, per component.
	Unattributed Totals
	// FoldedKeys counts keys folded into OtherKey because of the cap (a key
	// folded, forgotten after the retention and folded again counts twice).
	FoldedKeys uint64
	// FoldedJoules is the energy of folded keys, per component; a part of
	// OtherKey's totals.
	FoldedJoules Totals
	// InvalidResults counts results skipped because they were Invalid or
	// had an unknown component.
	InvalidResults uint64
	// Live is the number of live workloads, OtherKey excluded.
	Live int
}

// Snapshot returns a copy of the totals.
func (l *Ledger) Snapshot() LedgerSnapshot { return l.SnapshotTo(nil) }

// SnapshotTo is Snapshot with its Workloads written into buf's array when
// it is large enough: a caller that consumes each snapshot before the next
// passes the previous one's Workloads back and allocates none.
func (l *Ledger) SnapshotTo(buf []WorkloadTotal) LedgerSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LedgerSnapshot{
		Workloads:      slices.Grow(buf[:0], len(l.live)+1),
		Idle:           l.idle,
		Unattributed:   l.unattributed,
		FoldedKeys:     l.foldedKeys,
		FoldedJoules:   l.foldedJoules,
		InvalidResults: l.invalid,
		Live:           len(l.live),
	}
	if l.dirty {
		l.sorted = l.sorted[:0]
		for _, e := range l.live {
			l.sorted = append(l.sorted, e)
		}
		slices.SortFunc(l.sorted, func(a, b *entry) int { return a.key.Compare(b.key) })
		l.dirty = false
	}
	for _, e := range l.sorted {
		s.Workloads = append(s.Workloads, WorkloadTotal{Key: e.key, Joules: e.totals})
	}
	if l.otherSeen {
		s.Workloads = append(s.Workloads, WorkloadTotal{Key: OtherKey, Joules: l.other})
	}
	return s
}
