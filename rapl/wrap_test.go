package rapl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMeterWrapExact drives one counter with a small range through thousands of wraps, at random
// intervals shorter than the wrap time and random power below the ceiling, and checks the meter's
// total against the true energy exactly, every step.
func TestMeterWrapExact(t *testing.T) {
	const (
		top     = 1_000_000 // max_energy_range_uj: the counter shows 0..top, i.e. energy mod top+1
		mod     = top + 1
		ceiling = 2000.0 // W
		steps   = 5000
		dir     = "intel-rapl:0"
	)
	for _, seed := range []uint64{1, 2, 3, 42, 0x5eed} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
			root := t.TempDir()
			trueE := r.Uint64N(1 << 40) // µJ since boot; the counter shows it modulo top+1
			writeZone(t, root, dir, "package-0", trueE%mod, top)
			m := newMeter(t, root, Options{MaxPowerWatts: ceiling})

			now := time.Unix(1_750_000_000, 0)
			s := m.Sample(now)
			if got := s.Zones[0].Microjoules; got != 0 || !s.Zones[0].OK {
				t.Fatalf("baseline: %+v", s.Zones[0])
			}
			start, wraps := trueE, 0
			var deltas uint64 // the agent's total: the sum of the deltas
			for step := range steps {
				p := 1 + r.Float64()*(ceiling-2)        // W, in [1, ceiling-1)
				wrapNs := int64(float64(mod) / p * 1e3) // ns for top+1 µJ at p W
				dtNs := 1 + r.Int64N(wrapNs-1)          // shorter than the wrap time
				e := uint64(p * float64(dtNs) / 1e3)    // µJ = W * µs, < top+1
				if trueE/mod != (trueE+e)/mod {
					wraps++
				}
				trueE += e
				now = now.Add(time.Duration(dtNs))
				setEnergy(t, root, dir, trueE%mod)

				s := m.Sample(now)
				z := s.Zones[0]
				if len(s.Errors) != 0 || !z.OK {
					t.Fatalf("step %d (p=%.1f W, dt=%d ns, e=%d µJ): errors %v, zone %+v", step, p, dtNs, e, s.Errors, z)
				}
				deltas += uint64(z.Delta)
				if want := trueE - start; z.Microjoules != want || deltas != want {
					t.Fatalf("step %d: Microjoules = %d, deltas add up to %d, want %d (after %d wraps)",
						step, z.Microjoules, deltas, want, wraps)
				}
				if want := float64(e) / 1e6 / (float64(dtNs) / 1e9); math.Abs(z.Watts-want) > 1e-9*max(1, want) {
					t.Fatalf("step %d: Watts = %v, want %v", step, z.Watts, want)
				}
			}
			if wraps < steps/10 {
				t.Fatalf("only %d wraps in %d steps: the test does not exercise wrapping", wraps, steps)
			}
			t.Logf("seed %d: %d steps, %d wraps, %d µJ", seed, steps, wraps, trueE-start)
		})
	}
}
