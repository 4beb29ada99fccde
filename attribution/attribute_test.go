package attribution

import (
	"fmt"
	"math"
	"testing"
)

var (
	kA = Key{Namespace: "ml", Pod: "a-0", Container: "main", Project: "search", ModelID: "llama-3-8b", WorkloadType: "inference"}
	kB = Key{Namespace: "ml", Pod: "b-0", Container: "main", Project: "search", WorkloadType: "training"}
	kC = Key{Project: "hpc", WorkloadType: "batch"}
)

func ptr[T any](v T) *T { return &v }

// want is the expected attribution of one device.
type want struct {
	parts        map[Key]float64
	idle, unattr float64
	invalid      bool
}

func TestAttributePolicies(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		policy IdlePolicy
		dev    Device
		want   want
	}{{
		name: "exclusive GPU gets everything, idle included",
		dev: Device{ID: "GPU-1", Component: GPU, Joules: 300, Busy: 0.4, Claims: Claims{
			Holder: &kA, Activity: []Share{{kB, 50}}, Allocation: []Share{{kB, 1}},
		}},
		want: want{parts: map[Key]float64{kA: 300}},
	}, {
		name:   "exclusive ignores the allocation policy",
		policy: IdleAllocation,
		dev:    Device{Component: GPU, Joules: 300, Busy: 0.1, Claims: Claims{Holder: &kA, Allocation: []Share{{kB, 1}}}},
		want:   want{parts: map[Key]float64{kA: 300}},
	}, {
		name: "shared CPU: active by CPU seconds, processes in no workload unattributed, idle stays",
		dev: Device{ID: "0/package", Component: CPU, Joules: 100, Busy: 0.5, Claims: Claims{
			Activity:   []Share{{kA, 3}, {kB, 1}, {Key{}, 1}},
			Allocation: []Share{{kA, 2}},
		}},
		want: want{parts: map[Key]float64{kA: 30, kB: 10}, unattr: 10, idle: 50},
	}, {
		name: "busy but no activity seen: active part unattributed",
		dev:  Device{Component: CPU, Joules: 100, Busy: 0.6},
		want: want{unattr: 60, idle: 40},
	}, {
		name: "activity all zero counts as none, workloads still listed",
		dev:  Device{Component: CPU, Joules: 100, Busy: 0.6, Claims: Claims{Activity: []Share{{kA, 0}}}},
		want: want{parts: map[Key]float64{kA: 0}, unattr: 60, idle: 40},
	}, {
		name:   "allocation policy spreads idle by requests",
		policy: IdleAllocation,
		dev: Device{Component: CPU, Joules: 100, Busy: 0.2, Claims: Claims{
			Activity:   []Share{{kA, 1}},
			Allocation: []Share{{kA, 1}, {kB, 3}},
		}},
		want: want{parts: map[Key]float64{kA: 20 + 20, kB: 60}},
	}, {
		name:   "allocation policy without weights keeps idle",
		policy: IdleAllocation,
		dev:    Device{Component: DRAM, Joules: 10, Busy: 0.3, Claims: Claims{Activity: []Share{{kA, 1}}}},
		want:   want{parts: map[Key]float64{kA: 3}, idle: 7},
	}, {
		name:   "allocation weight of the zero key stays idle",
		policy: IdleAllocation,
		dev:    Device{Component: CPU, Joules: 10, Busy: 0, Claims: Claims{Allocation: []Share{{kA, 1}, {Key{}, 1}}}},
		want:   want{parts: map[Key]float64{kA: 5}, idle: 5},
	}, {
		name: "busy above 1 is clamped",
		dev:  Device{Component: CPU, Joules: 50, Busy: 1.7, Claims: Claims{Activity: []Share{{kA, 1}}}},
		want: want{parts: map[Key]float64{kA: 50}},
	}, {
		name: "negative busy (GPU util unknown) is clamped to 0",
		dev:  Device{Component: GPU, Joules: 50, Busy: -0.01, Claims: Claims{Activity: []Share{{kA, 1}}}},
		want: want{parts: map[Key]float64{kA: 0}, idle: 50},
	}, {
		name: "NaN busy counts as 0",
		dev:  Device{Component: GPU, Joules: 50, Busy: nan, Claims: Claims{Activity: []Share{{kA, 1}}}},
		want: want{parts: map[Key]float64{kA: 0}, idle: 50},
	}, {
		name: "bad weights count as 0, duplicate keys add up",
		dev: Device{Component: CPU, Joules: 40, Busy: 1, Claims: Claims{
			Activity: []Share{{kA, 1}, {kA, 1}, {kB, 2}, {kC, -5}, {kC, nan}, {kC, math.Inf(1)}},
		}},
		want: want{parts: map[Key]float64{kA: 20, kB: 20, kC: 0}},
	}, {
		name: "time-sliced GPU: SM util per workload, idle stays",
		dev: Device{Component: GPU, Joules: 200, Busy: 0.4, Claims: Claims{
			Activity:   []Share{{kA, 30}, {kB, 10}},
			Allocation: []Share{{kA, 1}, {kB, 1}},
		}},
		want: want{parts: map[Key]float64{kA: 60, kB: 20}, idle: 120},
	}, {
		name:   "time-sliced GPU, allocation policy: idle by replicas",
		policy: IdleAllocation,
		dev: Device{Component: GPU, Joules: 200, Busy: 0.4, Claims: Claims{
			Activity:   []Share{{kA, 30}, {kB, 10}},
			Allocation: []Share{{kA, 1}, {kB, 1}},
		}},
		want: want{parts: map[Key]float64{kA: 120, kB: 80}},
	}, {
		name: "MIG: held instances by slices, unallocated slices idle",
		dev: Device{Component: GPU, Joules: 700, Busy: 0.9, MIG: []MIGInstance{
			{Profile: "1g.10gb", Claims: Claims{Holder: &kA}},
			{Profile: "3g.40gb", Claims: Claims{Holder: &kB}},
			{Profile: "1g.10gb"}, // created, allocated to nobody
		}},
		want: want{parts: map[Key]float64{kA: 100, kB: 300}, idle: 300},
	}, {
		name:   "MIG, allocation policy: free slices by held slices",
		policy: IdleAllocation,
		dev: Device{Component: GPU, Joules: 700, MIG: []MIGInstance{
			{Profile: "1g.10gb", Claims: Claims{Holder: &kA}},
			{Profile: "3g.40gb", Claims: Claims{Holder: &kB}},
		}},
		want: want{parts: map[Key]float64{kA: 100 + 75, kB: 300 + 225}},
	}, {
		name: "MIG instance shared by activity, with its own busy share",
		dev: Device{Component: GPU, Joules: 700, Busy: -1, MIG: []MIGInstance{
			{Profile: "3g.40gb", Busy: ptr(0.5), Claims: Claims{Activity: []Share{{kA, 2}, {kB, 2}}}},
		}},
		want: want{parts: map[Key]float64{kA: 75, kB: 75}, idle: 150 + 400},
	}, {
		name: "MIG instance used by processes in no workload",
		dev: Device{Component: GPU, Joules: 700, Busy: 1, MIG: []MIGInstance{
			{Profile: "2g.20gb", Claims: Claims{Activity: []Share{{Key{}, 5}}}},
		}},
		want: want{unattr: 200, idle: 500},
	}, {
		name: "A30: 4 slices",
		dev: Device{Component: GPU, Joules: 400, MIGSlices: 4, MIG: []MIGInstance{
			{Profile: "2g.12gb", Claims: Claims{Holder: &kA}},
		}},
		want: want{parts: map[Key]float64{kA: 200}, idle: 200},
	}, {
		name: "MIG instances beyond the total: their sum is the total",
		dev: Device{Component: GPU, Joules: 80, MIGSlices: 4, MIG: []MIGInstance{
			{Profile: "4g.40gb", Claims: Claims{Holder: &kA}},
			{Slices: 4, Profile: "bogus", Claims: Claims{Holder: &kB}},
		}},
		want: want{parts: map[Key]float64{kA: 40, kB: 40}},
	}, {
		name: "whole MIG parent held by one pod",
		dev: Device{Component: GPU, Joules: 700, Busy: 0.1, Claims: Claims{Holder: &kC}, MIG: []MIGInstance{
			{Profile: "3g.40gb", Claims: Claims{Holder: &kA}},
		}},
		want: want{parts: map[Key]float64{kC: 700}},
	}, {
		name: "negative energy is invalid",
		dev:  Device{Component: CPU, Joules: -1, Busy: 1, Claims: Claims{Holder: &kA}},
		want: want{invalid: true},
	}, {
		name: "NaN energy is invalid",
		dev:  Device{Component: CPU, Joules: nan, Busy: 1, Claims: Claims{Holder: &kA}},
		want: want{invalid: true},
	}, {
		name: "zero energy",
		dev:  Device{Component: CPU, Joules: 0, Busy: 1, Claims: Claims{Activity: []Share{{kA, 1}}}},
		want: want{parts: map[Key]float64{kA: 0}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Attribute(Policy{Idle: tc.policy}, []Device{tc.dev})
			if len(res) != 1 {
				t.Fatalf("got %d results", len(res))
			}
			r := res[0]
			if r.ID != tc.dev.ID || r.Component != tc.dev.Component {
				t.Errorf("ID, Component = %q, %v", r.ID, r.Component)
			}
			if r.Invalid != tc.want.invalid {
				t.Fatalf("Invalid = %v, want %v", r.Invalid, tc.want.invalid)
			}
			if r.Invalid {
				if r.Joules != 0 || len(r.Workloads) != 0 || r.Idle != 0 || r.Unattributed != 0 {
					t.Errorf("invalid result attributed something: %+v", r)
				}
				return
			}
			got := map[Key]float64{}
			for _, p := range r.Workloads {
				if _, dup := got[p.Key]; dup {
					t.Errorf("key listed twice: %v", p.Key)
				}
				got[p.Key] = p.Joules
			}
			if len(got) != len(tc.want.parts) {
				t.Errorf("workloads = %v, want %v", got, tc.want.parts)
			}
			for k, w := range tc.want.parts {
				if g, ok := got[k]; !ok || !near(g, w) {
					t.Errorf("%v: got %v (listed %v), want %v", k, g, ok, w)
				}
			}
			if !near(r.Idle, tc.want.idle) || !near(r.Unattributed, tc.want.unattr) {
				t.Errorf("idle, unattributed = %v, %v; want %v, %v", r.Idle, r.Unattributed, tc.want.idle, tc.want.unattr)
			}
			assertConserved(t, "", &r)
		})
	}
}

func TestAttributeOrderAndReuse(t *testing.T) {
	var a Attributor
	devs := []Device{
		{ID: "x", Component: CPU, Joules: 10, Busy: 1, Claims: Claims{Activity: []Share{{kB, 1}, {kA, 1}}, Allocation: []Share{{kC, 1}}}},
		{ID: "y", Component: GPU, Joules: 10, Busy: 1, Claims: Claims{Activity: []Share{{kA, 1}}}},
	}
	for range 2 { // the scratch index must not leak between devices or calls
		res := a.Attribute(devs)
		if got := res[0].Workloads; len(got) != 3 || got[0].Key != kB || got[1].Key != kA || got[2].Key != kC {
			t.Fatalf("order of first appearance: %+v", got)
		}
		if got := res[1].Workloads; len(got) != 1 || got[0].Key != kA || got[0].Joules != 10 {
			t.Fatalf("second device: %+v", got)
		}
	}
}

// AttributeTo gives what Attribute gives, in the results passed back to
// it: a device that names fewer workloads, or becomes invalid, keeps none
// of the previous tick's parts.
func TestAttributeToReuses(t *testing.T) {
	var a, fresh Attributor
	many := []Device{
		{ID: "x", Component: CPU, Joules: 10, Busy: 0.5, Claims: Claims{Activity: []Share{{kB, 1}, {kA, 3}, {Key{}, 1}}}},
		{ID: "y", Component: GPU, Joules: 4, Busy: 1, Claims: Claims{Activity: []Share{{kC, 1}, {kA, 1}}}},
	}
	few := []Device{
		{ID: "x", Component: CPU, Joules: 6, Busy: 1, Claims: Claims{Activity: []Share{{kC, 1}}}},
		{ID: "y", Component: GPU, Joules: math.NaN()},
	}
	var buf []Result
	for i, devs := range [][]Device{many, few, many, many} {
		got := a.AttributeTo(buf, devs)
		if want := fresh.Attribute(devs); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("call %d: %+v, want %+v", i, got, want)
		}
		if i == 3 && &got[0].Workloads[0] != &buf[0].Workloads[0] {
			t.Errorf("call %d did not reuse the parts", i)
		}
		buf = got
	}
	if n := testing.AllocsPerRun(10, func() { buf = a.AttributeTo(buf, many) }); n != 0 {
		t.Errorf("AttributeTo allocates %v times", n)
	}
}

func TestProfileSlices(t *testing.T) {
	for profile, want := range map[string]int{
		"1g.10gb": 1, "2g.20gb": 2, "3g.40gb": 3, "4g.40gb": 4, "7g.80gb": 7, "1g.18gb": 1,
		"1g.10gb+me": 1, "1c.3g.40gb": 3, "1g.6gb": 1, "": 0, "gpu": 0, "g.10gb": 0, "x1g.5gb": 0,
		"99999999999g.1gb": 0,
	} {
		if got := ProfileSlices(profile); got != want {
			t.Errorf("ProfileSlices(%q) = %d, want %d", profile, got, want)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, p := range []IdlePolicy{"", IdleNode, IdleAllocation} {
		if err := (Policy{Idle: p}).Validate(); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	if err := (Policy{Idle: "spread"}).Validate(); err == nil {
		t.Error("accepted an unknown policy")
	}
}

func TestComponentString(t *testing.T) {
	if CPU.String() != "cpu" || DRAM.String() != "dram" || GPU.String() != "gpu" || NumComponents.Valid() {
		t.Error("component names")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// assertConserved checks conservation and the sanity of every part.
func assertConserved(t *testing.T, ctx string, r *Result) {
	t.Helper()
	if r.Invalid {
		return
	}
	if !near(r.Total(), r.Joules) {
		t.Fatalf("%s device %q: Σ workloads + idle + unattributed = %.17g, ΔE = %.17g", ctx, r.ID, r.Total(), r.Joules)
	}
	if r.Idle < 0 || r.Unattributed < 0 || math.IsNaN(r.Idle) || math.IsNaN(r.Unattributed) {
		t.Fatalf("%s device %q: idle %v, unattributed %v", ctx, r.ID, r.Idle, r.Unattributed)
	}
	for _, p := range r.Workloads {
		if p.Joules < 0 || math.IsNaN(p.Joules) || p.Key.IsZero() {
			t.Fatalf("%s device %q: bad part %+v", ctx, r.ID, p)
		}
	}
}
