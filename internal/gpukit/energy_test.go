package gpukit

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestCounterAcc(t *testing.T) {
	type step struct {
		at          time.Duration
		raw         uint64
		wantMJ      uint64
		reset, impl bool
	}
	cases := []struct {
		name    string
		ceiling float64
		steps   []step
	}{
		{"advance", 2000, []step{
			{0, 1_000_000, 0, false, false},
			{5 * time.Second, 1_123_456, 123_456, false, false},
			{10 * time.Second, 1_200_000, 200_000, false, false},
		}},
		{"unchanged adds nothing, next change adds the whole delta", 2000, []step{
			{0, 500, 0, false, false},
			{5 * time.Second, 500, 0, false, false},
			{10 * time.Second, 500, 0, false, false},
			{15 * time.Second, 20_500, 20_000, false, false},
		}},
		{"reset adds the value since reload", 2000, []step{
			{0, 9_000_000, 0, false, false},
			{5 * time.Second, 9_400_000, 400_000, false, false},
			{10 * time.Second, 300_000, 700_000, true, false},
			{15 * time.Second, 350_000, 750_000, false, false},
		}},
		{"implausible jump rejected, then rebased", 700, []step{
			{0, 1_000, 0, false, false},
			{5 * time.Second, 1_000_000_000, 0, false, true},
			{10 * time.Second, 1_001_000_000, 1_000_000, false, false},
		}},
		{"implausible reset rejected", 700, []step{
			{0, 9_000_000_000, 0, false, false},
			{time.Second, 8_000_000_000, 0, true, true},
		}},
		{"short window uses the minimum window", 1400, []step{
			{0, 0, 0, false, false},
			{time.Millisecond, 1_400_000, 1_400_000, false, false}, // 1400 W × 1 s
			{2 * time.Millisecond, 2_800_001, 1_400_000, false, true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a CounterAcc
			for i, s := range tc.steps {
				reset, impl := a.Update(s.raw, t0.Add(s.at), tc.ceiling, time.Second)
				if reset != s.reset || impl != s.impl {
					t.Fatalf("step %d: reset=%v implausible=%v, want %v %v", i, reset, impl, s.reset, s.impl)
				}
				if a.TotalMJ != s.wantMJ {
					t.Fatalf("step %d: total %d mJ, want %d", i, a.TotalMJ, s.wantMJ)
				}
			}
		})
	}
}

func TestPowerAccTrapezoid(t *testing.T) {
	var a PowerAcc
	steps := []struct {
		at     time.Duration
		mW     uint64
		wantMJ uint64
	}{
		{0, 300_000, 0},
		{2 * time.Second, 500_000, 800_000},                              // (300+500)/2 × 2 s
		{5 * time.Second, 500_000, 2_300_000},                            // + 500 × 3 s
		{6*time.Second + 500*time.Millisecond, 250_500, 2_862_875},       // + (500+250.5)/2 × 1.5 s
		{6*time.Second + 500*time.Millisecond + 1, 250_500, 2_862_875},   // 1 ns: sub-mJ, carried
		{6*time.Second + 500*time.Millisecond + 1e6, 250_500, 2_863_125}, // + 250.5 W × 1 ms = 250.5 mJ carried exactly
	}
	for i, s := range steps {
		if a.Update(s.mW, t0.Add(s.at), 2000, MaxPowerGap) {
			t.Fatalf("step %d rejected", i)
		}
		if a.TotalMJ != s.wantMJ {
			t.Fatalf("step %d: total %d mJ, want %d (rem %d)", i, a.TotalMJ, s.wantMJ, a.rem)
		}
	}
	// 250.5 W over 1 ms is 250.5 mJ: 0.5 mJ is in the remainder, exactly.
	if a.rem != halfPicoPerMJ/2 {
		t.Fatalf("remainder %d, want %d", a.rem, halfPicoPerMJ/2)
	}
}

func TestPowerAccRejectsAndGaps(t *testing.T) {
	var a PowerAcc
	if a.Update(100_000, t0, 1400, MaxPowerGap) {
		t.Fatal("first reading rejected")
	}
	if !a.Update(5_000_000, t0.Add(time.Second), 1400, MaxPowerGap) {
		t.Fatal("5 kW reading accepted under a 1400 W ceiling")
	}
	if a.TotalMJ != 0 {
		t.Fatalf("rejected reading integrated: %d mJ", a.TotalMJ)
	}
	// The trapezoid resumes from the last accepted reading.
	a.Update(100_000, t0.Add(2*time.Second), 1400, MaxPowerGap)
	if a.TotalMJ != 200_000 {
		t.Fatalf("total %d mJ, want 200000", a.TotalMJ)
	}
	// A gap longer than maxGap only moves the baseline.
	a.Update(100_000, t0.Add(2*time.Second+MaxPowerGap+time.Second), 1400, MaxPowerGap)
	if a.TotalMJ != 200_000 {
		t.Fatalf("gap integrated: %d mJ", a.TotalMJ)
	}
	// A clock going backwards adds nothing.
	a.Update(100_000, t0, 1400, MaxPowerGap)
	if a.TotalMJ != 200_000 {
		t.Fatalf("backwards clock integrated: %d mJ", a.TotalMJ)
	}
}

func TestCeilingWatts(t *testing.T) {
	if got := CeilingWatts(700); got != 1400 {
		t.Errorf("ceiling(700) = %v", got)
	}
	if got := CeilingWatts(0); got != defaultCeilingWatts {
		t.Errorf("ceiling(0) = %v", got)
	}
}
