package attribution

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// res builds one result of component c giving each key j joules.
func res(c Component, j float64, keys ...Key) Result {
	r := Result{ID: "d", Component: c}
	for _, k := range keys {
		r.Workloads = append(r.Workloads, Part{Key: k, Joules: j})
		r.Joules += j
	}
	return r
}

func totals(t *testing.T, s LedgerSnapshot) map[Key]Totals {
	t.Helper()
	out := map[Key]Totals{}
	for _, w := range s.Workloads {
		if _, dup := out[w.Key]; dup {
			t.Fatalf("%v twice in snapshot", w.Key)
		}
		out[w.Key] = w.Joules
	}
	return out
}

func TestLedgerAccumulates(t *testing.T) {
	l, err := NewLedger(LedgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Add(t0, []Result{
		{Component: CPU, Joules: 10, Workloads: []Part{{kA, 4}, {kB, 1}}, Idle: 3, Unattributed: 2},
		{Component: GPU, Joules: 100, Workloads: []Part{{kA, 100}}},
		{Component: DRAM, Invalid: true},
		{Component: NumComponents, Joules: 5, Workloads: []Part{{kA, 5}}},
	})
	l.Add(t0.Add(5*time.Second), []Result{
		{Component: CPU, Joules: 10, Workloads: []Part{{kA, 5}}, Idle: 5},
		{Component: DRAM, Joules: 1, Workloads: []Part{{kB, 1}}},
	})
	s := l.Snapshot()
	got := totals(t, s)
	if want := (Totals{CPU: 9, GPU: 100}); got[kA] != want {
		t.Errorf("A = %v, want %v", got[kA], want)
	}
	if want := (Totals{CPU: 1, DRAM: 1}); got[kB] != want {
		t.Errorf("B = %v, want %v", got[kB], want)
	}
	if s.Idle != (Totals{CPU: 8}) || s.Unattributed != (Totals{CPU: 2}) {
		t.Errorf("idle %v, unattributed %v", s.Idle, s.Unattributed)
	}
	if s.InvalidResults != 2 || s.Live != 2 || s.FoldedKeys != 0 || len(s.Workloads) != 2 {
		t.Errorf("snapshot %+v", s)
	}
	if s.Workloads[0].Key != kA || s.Workloads[1].Key != kB {
		t.Errorf("not sorted: %+v", s.Workloads)
	}
}

func TestLedgerRetention(t *testing.T) {
	l, _ := NewLedger(LedgerOptions{}) // default 5 minutes
	l.Add(t0, []Result{res(CPU, 1, kA, kB)})
	// B keeps running with 0 J (listed, idle): it is seen.
	for i := 1; i <= 60; i++ {
		l.Add(t0.Add(time.Duration(i)*5*time.Second), []Result{res(CPU, 0, kB)})
	}
	// A was last seen at t0; at t0+5m it is still exposed...
	got := totals(t, l.Snapshot())
	if _, ok := got[kA]; !ok {
		t.Fatalf("A dropped before its retention ended: %v", got)
	}
	// ...and one tick later it is gone, B stays.
	l.Add(t0.Add(5*time.Minute+5*time.Second), []Result{res(CPU, 0, kB)})
	got = totals(t, l.Snapshot())
	if _, ok := got[kA]; ok {
		t.Fatalf("A kept after its retention: %v", got)
	}
	if got[kB][CPU] != 1 {
		t.Fatalf("B = %v", got[kB])
	}
	// A comes back: a new series from 0.
	l.Add(t0.Add(6*time.Minute), []Result{res(GPU, 2, kA)})
	if got := totals(t, l.Snapshot()); got[kA] != (Totals{GPU: 2}) {
		t.Fatalf("A after return = %v", got[kA])
	}
}

func TestLedgerCap(t *testing.T) {
	l, _ := NewLedger(LedgerOptions{MaxKeys: 2, Retention: time.Minute})
	// C and A arrive together: both fit.
	l.Add(t0, []Result{res(CPU, 1, kC, kA)})
	// B and D arrive while full: both fold, A and C keep their series.
	kD := Key{Namespace: "z", Pod: "d"}
	l.Add(t0.Add(time.Second), []Result{res(CPU, 2, kB, kD, kA), res(GPU, 3, kD)})
	s := l.Snapshot()
	got := totals(t, s)
	if len(got) != 3 || got[kA][CPU] != 3 || got[kC][CPU] != 1 {
		t.Fatalf("live after folding: %v", got)
	}
	if want := (Totals{CPU: 4, GPU: 3}); got[OtherKey] != want || s.FoldedJoules != want {
		t.Fatalf("other %v, folded joules %v; want %v", got[OtherKey], s.FoldedJoules, want)
	}
	if s.FoldedKeys != 2 || s.Workloads[len(s.Workloads)-1].Key != OtherKey || s.Live != 2 {
		t.Fatalf("snapshot %+v", s)
	}
	// A real workload named like OtherKey is accounted there, not folded.
	l.Add(t0.Add(2*time.Second), []Result{res(CPU, 5, OtherKey, kB)})
	s = l.Snapshot()
	if s.FoldedKeys != 2 || s.FoldedJoules[CPU] != 9 || totals(t, s)[OtherKey][CPU] != 14 {
		t.Fatalf("OtherKey workload: %+v", s)
	}
	// C stops; after its retention its slot frees. B is still seen: it stays
	// folded (no reshuffling); a new key E takes the slot.
	kE := Key{Namespace: "e"}
	for i := 3; i <= 70; i++ {
		l.Add(t0.Add(time.Duration(i)*time.Second), []Result{res(CPU, 1, kA, kB)})
	}
	l.Add(t0.Add(71*time.Second), []Result{res(CPU, 1, kA, kB, kE)})
	s = l.Snapshot()
	got = totals(t, s)
	if _, ok := got[kC]; ok {
		t.Fatalf("C not dropped: %v", got)
	}
	if _, ok := got[kB]; ok {
		t.Fatalf("B promoted out of other: %v", got)
	}
	if got[kE][CPU] != 1 || s.FoldedKeys != 2 || s.Live != 2 {
		t.Fatalf("E should take the free slot: %v, %+v", got, s)
	}
	// D, folded and then unseen past the retention, is forgotten: when it
	// returns it is folded again (the cap is full) and counted again.
	l.Add(t0.Add(72*time.Second), []Result{res(CPU, 1, kD)})
	if s = l.Snapshot(); s.FoldedKeys != 3 {
		t.Fatalf("folded keys %d, want 3", s.FoldedKeys)
	}
}

func TestLedgerCapOrderIndependent(t *testing.T) {
	var keys []Key
	for i := range 10 {
		keys = append(keys, Key{Pod: fmt.Sprintf("p%02d", i)})
	}
	rev := make([]Key, len(keys))
	for i, k := range keys {
		rev[len(keys)-1-i] = k
	}
	for _, order := range [][]Key{keys, rev} {
		l, _ := NewLedger(LedgerOptions{MaxKeys: 4})
		l.Add(t0, []Result{res(CPU, 1, order...)})
		s := l.Snapshot()
		for i, w := range s.Workloads[:4] {
			if w.Key != keys[i] {
				t.Fatalf("admitted %v, want the 4 smallest keys", s.Workloads)
			}
		}
		if s.FoldedKeys != 6 || totals(t, s)[OtherKey][CPU] != 6 {
			t.Fatalf("snapshot %+v", s)
		}
	}
}

func TestLedgerMonotonic(t *testing.T) {
	l, _ := NewLedger(LedgerOptions{MaxKeys: 3, Retention: 20 * time.Second})
	w := newWorld(11)
	prev := map[Key]Totals{}
	now := t0
	for range 500 {
		l.Add(now, Attribute(Policy{Idle: IdleAllocation}, w.tick()))
		now = now.Add(5 * time.Second)
		s := l.Snapshot()
		cur := totals(t, s)
		for k, tot := range cur {
			if p, ok := prev[k]; ok {
				for c := range tot {
					if tot[c] < p[c] {
						t.Fatalf("%v %v went down: %v → %v", k, Component(c), p[c], tot[c])
					}
				}
			}
		}
		prev = cur
	}
}

func TestNewLedgerRefusesNegative(t *testing.T) {
	if _, err := NewLedger(LedgerOptions{Retention: -1}); err == nil {
		t.Error("negative retention accepted")
	}
	if _, err := NewLedger(LedgerOptions{MaxKeys: -1}); err == nil {
		t.Error("negative cap accepted")
	}
}

// The snapshot's workloads stay in key order, with current totals, as keys
// come and go between snapshots (the ledger keeps the order and sorts again
// only when its keys changed).
func TestLedgerSnapshotOrderFollowsKeys(t *testing.T) {
	l, err := NewLedger(LedgerOptions{Retention: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	order := func(s LedgerSnapshot) []Key {
		var ks []Key
		for _, w := range s.Workloads {
			ks = append(ks, w.Key)
		}
		return ks
	}
	// kC sorts first (empty namespace), then kA, then kB.
	l.Add(t0, []Result{res(CPU, 1, kB, kC)})
	if got := order(l.Snapshot()); fmt.Sprint(got) != fmt.Sprint([]Key{kC, kB}) {
		t.Fatalf("order %v", got)
	}
	l.Add(t0.Add(5*time.Second), []Result{res(CPU, 2, kA, kB)})
	s := l.Snapshot()
	if got := order(s); fmt.Sprint(got) != fmt.Sprint([]Key{kC, kA, kB}) {
		t.Fatalf("after kA came: order %v", got)
	}
	if s.Workloads[2].Joules[CPU] != 3 || s.Workloads[1].Joules[CPU] != 2 {
		t.Fatalf("totals %+v", s.Workloads)
	}
	// kC is last seen at t0: gone 10 s later; the others keep counting.
	l.Add(t0.Add(11*time.Second), []Result{res(CPU, 1, kA, kB)})
	s = l.Snapshot()
	if got := order(s); fmt.Sprint(got) != fmt.Sprint([]Key{kA, kB}) || s.Live != 2 {
		t.Fatalf("after kC expired: order %v, live %d", got, s.Live)
	}
	if s.Workloads[0].Joules[CPU] != 3 || s.Workloads[1].Joules[CPU] != 4 {
		t.Fatalf("totals %+v", s.Workloads)
	}
}

// SnapshotTo gives what Snapshot gives, in the array passed back to it once
// that is large enough.
func TestLedgerSnapshotTo(t *testing.T) {
	l, err := NewLedger(LedgerOptions{MaxKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	l.Add(t0, []Result{res(CPU, 1, kA, kB, kC)}) // kC folded into other
	var buf []WorkloadTotal
	for i := range 3 {
		l.Add(t0.Add(time.Duration(i)*time.Second), []Result{res(GPU, float64(i), kA, kB)})
		s := l.SnapshotTo(buf)
		if want := l.Snapshot(); fmt.Sprint(s) != fmt.Sprint(want) {
			t.Fatalf("SnapshotTo %+v, Snapshot %+v", s, want)
		}
		if i > 0 && &s.Workloads[0] != &buf[0] {
			t.Errorf("snapshot %d did not reuse the array", i)
		}
		buf = s.Workloads
	}
	if a := testing.AllocsPerRun(10, func() { buf = l.SnapshotTo(buf).Workloads }); a != 0 {
		t.Errorf("SnapshotTo allocates %v times", a)
	}
}

// Add takes a part's entry from the same position of the previous Add when
// the key there is the same: a swapped order, a key that expired and came
// back at its old position (a new series from 0) and one folded into other
// all count as if every part were looked up by its key.
func TestLedgerAddReusesPositions(t *testing.T) {
	l, err := NewLedger(LedgerOptions{Retention: 10 * time.Second, MaxKeys: 2})
	if err != nil {
		t.Fatal(err)
	}
	l.Add(t0, []Result{res(CPU, 1, kA, kB)})
	l.Add(t0.Add(time.Second), []Result{res(CPU, 1, kA, kB)})
	l.Add(t0.Add(2*time.Second), []Result{res(CPU, 10, kB, kA)}) // swapped
	got := totals(t, l.Snapshot())
	if got[kA][CPU] != 12 || got[kB][CPU] != 12 {
		t.Fatalf("after the swap: %v", got)
	}
	// kA is not named for 10 s and expires; kB goes on (kC folds: cap 2).
	l.Add(t0.Add(13*time.Second), []Result{res(CPU, 1, kC, kB)})
	l.Add(t0.Add(14*time.Second), []Result{res(CPU, 5, kA, kB)}) // kA back at its old position
	s := l.Snapshot()
	got = totals(t, s)
	if got[kA][CPU] != 5 || got[kB][CPU] != 18 || got[OtherKey][CPU] != 1 || s.FoldedKeys != 1 {
		t.Fatalf("after kA expired and came back: %v, folded %d", got, s.FoldedKeys)
	}
}

// AddScaled(f) accounts what Add accounts of the results with every energy
// multiplied by f, folding and expiring the same keys.
func TestLedgerAddScaled(t *testing.T) {
	scaled, err := NewLedger(LedgerOptions{MaxKeys: 2, Retention: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := NewLedger(LedgerOptions{MaxKeys: 2, Retention: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const f = 0.25
	for i, keys := range [][]Key{{kA, kB, kC}, {kB}, {kA, kB}, {kC}} {
		now := t0.Add(time.Duration(i) * 6 * time.Second)
		r := []Result{res(CPU, 8, keys...), {Component: GPU, Joules: 4, Idle: 4, Workloads: []Part{{kB, 0}}}, {Component: DRAM, Invalid: true}}
		r[0].Idle, r[0].Unattributed = 2, 6
		scaled.AddScaled(now, r, f)
		m := []Result{res(CPU, 8*f, keys...), {Component: GPU, Joules: 4 * f, Idle: 4 * f, Workloads: []Part{{kB, 0}}}, {Component: DRAM, Invalid: true}}
		m[0].Idle, m[0].Unattributed = 2*f, 6*f
		plain.Add(now, m)
		if a, b := scaled.Snapshot(), plain.Snapshot(); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("tick %d: AddScaled %+v, Add of scaled results %+v", i, a, b)
		}
	}
}
