package attribution

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// world is a random node: pods, processes, CPU sockets and GPUs.
type world struct {
	r      *rand.Rand
	pods   []Key
	procs  []proc
	policy Policy
}

type proc struct {
	key    Key // zero: in no workload
	cpu    float64
	gpu    int // index of the GPU it uses, -1 none
	mig    int // MIG instance on that GPU, -1 none
	smUtil float64
}

var profiles = []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb", "1g.10gb+me", "bogus"}

func newWorld(seed uint64) *world {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &world{r: r}
	npods := r.IntN(40)
	for i := range npods {
		k := Key{Namespace: fmt.Sprintf("ns%d", r.IntN(4)), Pod: fmt.Sprintf("pod-%d", i), Container: "c"}
		if r.IntN(3) == 0 {
			k = Key{Project: fmt.Sprintf("p%d", i), WorkloadType: "batch"} // a config-rule workload
		}
		w.pods = append(w.pods, k)
	}
	return w
}

// weight returns a random weight, sometimes zero, negative, NaN or huge.
func (w *world) weight() float64 {
	switch w.r.IntN(40) {
	case 0:
		return 0
	case 1:
		return -w.r.Float64()
	case 2:
		return math.NaN()
	case 3:
		return math.Inf(1)
	case 4:
		return 1e300 * w.r.Float64()
	case 5:
		return 1e-300 * w.r.Float64()
	}
	return w.r.ExpFloat64() * 10
}

func (w *world) busy() float64 {
	switch w.r.IntN(12) {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return -0.01 // GPU util unknown
	case 3:
		return 1 + w.r.Float64()
	case 4:
		return math.NaN()
	}
	return w.r.Float64()
}

func (w *world) joules() float64 {
	switch w.r.IntN(20) {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return math.NaN()
	case 3:
		return 1e-12 * w.r.Float64()
	case 4:
		return 1e9 * w.r.Float64()
	}
	return w.r.Float64() * 500
}

func (w *world) key() Key {
	if len(w.pods) == 0 || w.r.IntN(6) == 0 {
		return Key{}
	}
	return w.pods[w.r.IntN(len(w.pods))]
}

func (w *world) shares(n int) []Share {
	out := make([]Share, n)
	for i := range out {
		out[i] = Share{Key: w.key(), Weight: w.weight()}
	}
	return out
}

// tick builds the devices of one random tick.
func (w *world) tick() []Device {
	r := w.r
	if r.IntN(50) == 0 { // pods come and go
		w.pods = append(w.pods, Key{Namespace: "late", Pod: fmt.Sprintf("p%d", r.Uint32())})
	}
	w.policy = Policy{Idle: []IdlePolicy{"", IdleNode, IdleAllocation}[r.IntN(3)]}
	ngpu := r.IntN(9)
	w.procs = w.procs[:0]
	for range r.IntN(120) {
		p := proc{key: w.key(), cpu: w.weight(), gpu: -1, mig: -1, smUtil: w.weight()}
		if ngpu > 0 && r.IntN(3) == 0 {
			p.gpu = r.IntN(ngpu)
			p.mig = r.IntN(4) - 1
		}
		w.procs = append(w.procs, p)
	}
	var devs []Device
	sockets := 1 + r.IntN(2)
	for s := range sockets {
		for _, c := range []Component{CPU, DRAM} {
			d := Device{ID: fmt.Sprintf("%d/%v", s, c), Component: c, Joules: w.joules(), Busy: w.busy()}
			for _, p := range w.procs {
				d.Activity = append(d.Activity, Share{Key: p.key, Weight: p.cpu})
			}
			d.Allocation = w.shares(r.IntN(10))
			devs = append(devs, d)
		}
	}
	for g := range ngpu {
		d := Device{ID: fmt.Sprintf("GPU-%d", g), Component: GPU, Joules: w.joules(), Busy: w.busy()}
		mode := r.IntN(5)
		switch mode {
		case 0: // exclusive
			k := w.key()
			d.Holder = &k
		case 1, 2: // shared or time-sliced
			for _, p := range w.procs {
				if p.gpu == g {
					d.Activity = append(d.Activity, Share{Key: p.key, Weight: p.smUtil})
				}
			}
			d.Allocation = w.shares(r.IntN(5))
		case 3, 4: // MIG, sometimes a whole parent held by one pod
			if r.IntN(6) == 0 {
				k := w.key()
				d.Holder = &k
			}
			if r.IntN(3) == 0 {
				d.MIGSlices = r.IntN(9)
			}
			for i := range r.IntN(5) {
				inst := MIGInstance{Profile: profiles[r.IntN(len(profiles))]}
				if r.IntN(4) == 0 {
					inst.Slices = r.IntN(8)
				}
				if r.IntN(3) == 0 {
					inst.Busy = ptr(w.busy())
				}
				switch r.IntN(3) {
				case 0:
					k := w.key()
					inst.Holder = &k
				case 1:
					for _, p := range w.procs {
						if p.gpu == g && p.mig == i {
							inst.Activity = append(inst.Activity, Share{Key: p.key, Weight: p.smUtil})
						}
					}
					inst.Allocation = w.shares(r.IntN(3))
				}
				d.MIG = append(d.MIG, inst)
			}
			if r.IntN(3) == 0 {
				d.Allocation = w.shares(r.IntN(4))
			}
		}
		devs = append(devs, d)
	}
	return devs
}

// TestPropertyConservation attributes thousands of random ticks and checks,
// for every device of every tick, that Σ workloads + idle + unattributed =
// ΔE, that no part is negative, and that a ledger fed the same results
// accounts for every joule.
func TestPropertyConservation(t *testing.T) {
	seeds := []uint64{1, 2, 3, 42, 2026}
	ticks := 1000
	if testing.Short() {
		ticks = 200
	}
	for _, seed := range seeds {
		w := newWorld(seed)
		var a Attributor
		// No expiry, a small cap: the ledger must fold and still conserve.
		l, err := NewLedger(LedgerOptions{Retention: 1000 * time.Hour, MaxKeys: 15})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var energy Totals
		for i := range ticks {
			devs := w.tick()
			a.Policy = w.policy
			res := a.Attribute(devs)
			if len(res) != len(devs) {
				t.Fatalf("seed %d tick %d: %d results for %d devices", seed, i, len(res), len(devs))
			}
			for j := range res {
				r := &res[j]
				ctx := fmt.Sprintf("seed %d tick %d policy %q", seed, i, w.policy.Idle)
				wantInvalid := !(devs[j].Joules >= 0) || math.IsInf(devs[j].Joules, 0)
				if r.Invalid != wantInvalid {
					t.Fatalf("%s device %q: Invalid = %v for ΔE %v", ctx, r.ID, r.Invalid, devs[j].Joules)
				}
				assertConserved(t, ctx, r)
				seen := map[Key]bool{}
				for _, p := range r.Workloads {
					if seen[p.Key] {
						t.Fatalf("%s device %q: %v listed twice", ctx, r.ID, p.Key)
					}
					seen[p.Key] = true
				}
				if d := devs[j]; d.Holder != nil && !r.Invalid && !d.Holder.IsZero() {
					if len(r.Workloads) != 1 || r.Workloads[0].Key != *d.Holder || r.Workloads[0].Joules != d.Joules {
						t.Fatalf("%s device %q: exclusive holder did not get everything: %+v", ctx, r.ID, r.Workloads)
					}
				}
				if w.policy.Idle != IdleAllocation && len(devs[j].MIG) == 0 && devs[j].Holder == nil && !r.Invalid {
					if want := devs[j].Joules * (1 - clampBusy(devs[j].Busy)); !nearTol(r.Idle, want, devs[j].Joules) {
						t.Fatalf("%s device %q: idle %v, want ΔE×(1−busy) = %v", ctx, r.ID, r.Idle, want)
					}
				}
				if !r.Invalid {
					energy[r.Component] += r.Joules
				}
			}
			now = now.Add(5 * time.Second)
			l.Add(now, res)
		}
		s := l.Snapshot()
		var got Totals
		for _, wt := range s.Workloads {
			for c, v := range wt.Joules {
				got[c] += v
			}
		}
		for c := range got {
			got[c] += s.Idle[c] + s.Unattributed[c]
			if !nearTol(got[c], energy[c], energy[c]) {
				t.Errorf("seed %d: ledger %v total %.17g, devices %.17g", seed, Component(c), got[c], energy[c])
			}
		}
		if s.Live > 15 {
			t.Errorf("seed %d: %d live keys over the cap", seed, s.Live)
		}
	}
}

func nearTol(a, b, scale float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(scale))
}

// TestPropertyLedgerDeterministic feeds the same ticks in a different order
// of devices and shares: the set of live keys and folded keys must not change.
func TestPropertyLedgerDeterministic(t *testing.T) {
	for _, seed := range []uint64{7, 8, 9} {
		w := newWorld(seed)
		l1, _ := NewLedger(LedgerOptions{MaxKeys: 10, Retention: time.Minute})
		l2, _ := NewLedger(LedgerOptions{MaxKeys: 10, Retention: time.Minute})
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		shuffle := rand.New(rand.NewPCG(seed, 1))
		for range 300 {
			devs := w.tick()
			res := Attribute(w.policy, devs)
			l1.Add(now, res)
			rev := slices.Clone(res)
			slices.Reverse(rev)
			for i := range rev {
				rev[i].Workloads = slices.Clone(rev[i].Workloads)
				shuffle.Shuffle(len(rev[i].Workloads), func(a, b int) {
					rev[i].Workloads[a], rev[i].Workloads[b] = rev[i].Workloads[b], rev[i].Workloads[a]
				})
			}
			l2.Add(now, rev)
			now = now.Add(5 * time.Second)
		}
		s1, s2 := l1.Snapshot(), l2.Snapshot()
		if len(s1.Workloads) != len(s2.Workloads) || s1.FoldedKeys != s2.FoldedKeys {
			t.Fatalf("seed %d: %d/%d workloads, %d/%d folded", seed, len(s1.Workloads), len(s2.Workloads), s1.FoldedKeys, s2.FoldedKeys)
		}
		for i := range s1.Workloads {
			a, b := s1.Workloads[i], s2.Workloads[i]
			if a.Key != b.Key {
				t.Fatalf("seed %d: workload %d is %v in one ledger, %v in the other", seed, i, a.Key, b.Key)
			}
			for c := range a.Joules {
				if !nearTol(a.Joules[c], b.Joules[c], a.Joules[c]) {
					t.Fatalf("seed %d: %v %v: %v vs %v", seed, a.Key, Component(c), a.Joules[c], b.Joules[c])
				}
			}
		}
	}
}
