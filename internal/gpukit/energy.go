package gpukit

import (
	"math"
	"math/bits"
	"time"
)

// Plausibility: an energy step is rejected when its average power over the
// step exceeds ceilingFactor times the enforced power limit, or
// defaultCeilingWatts when the limit is unknown.
const (
	ceilingFactor       = 2
	defaultCeilingWatts = 2000
)

// CeilingWatts is the plausibility ceiling for a GPU with the given enforced
// power limit (0 unknown).
func CeilingWatts(limitWatts float64) float64 {
	if limitWatts > 0 && !math.IsInf(limitWatts, 0) && !math.IsNaN(limitWatts) {
		return ceilingFactor * limitWatts
	}
	return defaultCeilingWatts
}

// allowanceMJ is the largest plausible energy in millijoules over window at
// ceiling watts. window is raised to minWindow first.
func allowanceMJ(ceiling float64, window, minWindow time.Duration) float64 {
	if window < minWindow {
		window = minWindow
	}
	return ceiling * window.Seconds() * 1000
}

// CounterAcc turns a hardware energy counter (millijoules since driver
// load) into a monotonic total in integer millijoules.
type CounterAcc struct {
	primed  bool
	last    uint64    // last raw counter value, mJ
	lastAt  time.Time // when last was first seen
	TotalMJ uint64
}

// Update feeds one raw reading taken at now. It returns the reasons to
// count (at most counter_reset and implausible_delta). An unchanged value
// adds nothing and keeps its original timestamp, so the next change is
// checked over the whole time since the previous change.
func (a *CounterAcc) Update(raw uint64, now time.Time, ceiling float64, minWindow time.Duration) (reset, implausible bool) {
	if !a.primed {
		a.primed, a.last, a.lastAt = true, raw, now
		return false, false
	}
	if raw == a.last {
		return false, false
	}
	var delta uint64
	if raw > a.last {
		delta = raw - a.last
	} else {
		// The counter restarted from zero at the reload, so its value is
		// the energy since then.
		reset = true
		delta = raw
	}
	if float64(delta) > allowanceMJ(ceiling, now.Sub(a.lastAt), minWindow) {
		implausible = true
	} else {
		a.TotalMJ += delta
	}
	a.last, a.lastAt = raw, now
	return reset, implausible
}

// Unprime forgets the baseline: the next reading only sets it. Used when the
// reading method changes, so one interval is never counted twice.
func (a *CounterAcc) Unprime() { a.primed = false }

// halfPicoPerMJ is 1 mJ in the integration unit of PowerAcc: (p1+p2)·Δt,
// with p in mW and Δt in ns, is twice the energy in pJ.
const halfPicoPerMJ = 2_000_000_000

// PowerAcc integrates power readings (milliwatts) over the caller's clock
// with the trapezoid rule, exactly, in integer arithmetic: (p1+p2)·Δt with p
// in mW and Δt in ns is energy in units of 0.5 pJ; 2e9 of them are 1 mJ.
// The sub-millijoule remainder is carried to the next step.
type PowerAcc struct {
	primed  bool
	lastMW  uint64
	lastAt  time.Time
	TotalMJ uint64
	rem     uint64 // < halfPicoPerMJ
}

// MaxPowerGap is the longest interval integrated with the trapezoid rule:
// after a longer gap (failed reads, a stopped agent) the reading only
// starts a new trapezoid, since two distant readings say nothing of the
// power in between.
const MaxPowerGap = 5 * time.Minute

// Update feeds one power reading taken at now. It reports whether the
// reading was rejected as implausible (above ceiling), in which case it is
// ignored entirely. Intervals longer than maxGap are not integrated.
func (a *PowerAcc) Update(mW uint64, now time.Time, ceiling float64, maxGap time.Duration) (implausible bool) {
	if float64(mW) > ceiling*1000 {
		return true
	}
	if !a.primed {
		a.primed, a.lastMW, a.lastAt = true, mW, now
		return false
	}
	dt := now.Sub(a.lastAt)
	if dt > 0 && dt <= maxGap {
		hi, lo := bits.Mul64(a.lastMW+mW, uint64(dt))
		var carry uint64
		lo, carry = bits.Add64(lo, a.rem, 0)
		hi += carry
		if hi >= halfPicoPerMJ {
			// Beyond any real interval; cannot happen with readings under
			// the ceiling, but never panic in Div64.
			a.lastMW, a.lastAt = mW, now
			return true
		}
		q, r := bits.Div64(hi, lo, halfPicoPerMJ)
		a.TotalMJ += q
		a.rem = r
	}
	// A clock that went backwards only moves the baseline.
	a.lastMW, a.lastAt = mW, now
	return false
}

// Unprime forgets the previous reading; the next reading starts a new
// trapezoid (used after a gap such as a lost GPU or a method change).
func (a *PowerAcc) Unprime() { a.primed = false }

// Joules converts integer millijoules to joules.
func Joules(mJ uint64) float64 { return float64(mJ) / 1000 }
