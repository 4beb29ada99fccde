package source

import (
	"context"
	"errors"
	"maps"
	"time"
)

// ErrAbsent marks a source that has nothing to read on this machine, or is
// off by configuration. Test for it with errors.Is.
var ErrAbsent = errors.New("source absent")

// Source is one thing the agent samples every tick.
//
// Sample must return promptly once ctx is done (its deadline is the tick's),
// with what it has; the agent does not wait past the deadline, and a source
// still running at the next tick is not started again until it returns.
// Sample is never called concurrently with itself. It returns an error only
// when the source as a whole failed (or wraps ErrAbsent when it is absent);
// partial failures are counted in Reading.Errors.
type Source interface {
	// Name is the source label of the self-metrics, e.g. "rapl".
	Name() string
	// Sample reads the source at the caller's time now.
	Sample(ctx context.Context, now time.Time) (Reading, error)
}

// Reading is what a source saw since its previous Sample.
type Reading struct {
	// Energy holds one delta per device the source measures.
	Energy []Delta
	// Errors counts this sample's errors by reason; nil when there were none.
	Errors Errors
	// Targets holds the health of each target of a source that has several
	// (inference servers, carbon providers); empty for the others.
	Targets []Target
	// Detail is what the source saw besides energy, for the agent's
	// attribution step (a process scan, GPU identities, an intensity).
	Detail any
}

// Delta is the energy one device used since the source's previous reading.
type Delta struct {
	// Device names the device within its source, stably across samples
	// (e.g. "0/package" for a RAPL zone, a GPU UUID).
	Device string
	// Energy is the energy since the previous reading.
	Energy Microjoules
}

// Target is the health of one target of a source in one sample.
type Target struct {
	// Name is the target label (a scrape target ID, a provider name).
	Name string
	// Err is why the target failed; nil when it answered.
	Err error
	// Errors counts the target's errors in this sample by reason.
	Errors Errors
	// Duration is how long the target took.
	Duration time.Duration
}

// Microjoules is an energy in integer microjoules: exact to add, and one
// joule is 1e6 of them.
type Microjoules uint64

// Millijoules is an energy in integer millijoules (NVML's unit).
type Millijoules uint64

// Microjoules converts to microjoules, exactly.
func (m Millijoules) Microjoules() Microjoules { return Microjoules(m) * 1000 }

// Joules converts to joules for exposition.
func (u Microjoules) Joules() float64 { return float64(u) / 1e6 }

// Errors counts errors by reason.
type Errors map[Reason]uint64

// Add counts n errors of reason r, allocating the map when needed, and
// returns it.
func (e Errors) Add(r Reason, n uint64) Errors {
	if n == 0 {
		return e
	}
	if e == nil {
		e = make(Errors, 2)
	}
	e[r] += n
	return e
}

// Merge adds every count of o into e and returns it.
func (e Errors) Merge(o Errors) Errors {
	for r, n := range o {
		e = e.Add(r, n)
	}
	return e
}

// Clone returns a copy of e (nil for an empty e).
func (e Errors) Clone() Errors {
	if len(e) == 0 {
		return nil
	}
	return maps.Clone(e)
}
