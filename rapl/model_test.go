package rapl

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inferensys/aiwatt/workload"
)

// procCopy copies testdata/<tree> (a procfs root) to a temporary directory and returns it.
func procCopy(t *testing.T, tree string) string {
	t.Helper()
	dst := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", tree, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dst, "stat"), string(b))
	return dst
}

// writeStat replaces the aggregate cpu line of root/stat (fields: user nice system idle iowait
// irq softirq steal guest guest_nice, in USER_HZ ticks), keeping the rest of the file.
func writeStat(t *testing.T, root, cpuLine string) {
	t.Helper()
	p := filepath.Join(root, "stat")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if !strings.HasPrefix(lines[0], "cpu ") {
		t.Fatalf("%s does not start with the cpu line", p)
	}
	lines[0] = "cpu  " + cpuLine
	writeFile(t, p, strings.Join(lines, "\n"))
}

func wantEstimate(t *testing.T, got Estimate, joules, watts, u float64, cpus int) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }
	if !near(got.Joules, joules) || !near(got.Watts, watts) || !near(got.Utilisation, u) || got.CPUs != cpus {
		t.Fatalf("Estimate = %+v, want Joules=%v Watts=%v Utilisation=%v CPUs=%d", got, joules, watts, u, cpus)
	}
}

func TestEstimatorHandComputed(t *testing.T) {
	root := procCopy(t, "proc-4cpu")
	e, err := NewEstimator(root, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeStat(t, root, "1000 0 500 580000 20 0 10 0 0 0")
	got, err := e.Sample(at(0))
	if err != nil {
		t.Fatal(err)
	}
	wantEstimate(t, got, 0, 0, 0, 4) // baseline

	// +1000 ticks: user +200, system +100, idle +650, iowait +50 -> busy 300, u = 0.3.
	// W = 4 * (0.74 + 0.3*(3.5-0.74)) = 4 * 1.568 = 6.272; 10 s -> 62.72 J.
	writeStat(t, root, "1200 0 600 580650 70 0 10 0 0 0")
	got, err = e.Sample(at(10))
	if err != nil {
		t.Fatal(err)
	}
	wantEstimate(t, got, 62.72, 6.272, 0.3, 4)

	// +1000 ticks: user +100 (all of it guest, which user already includes), idle +900 -> u = 0.1.
	// W = 4 * (0.74 + 0.1*2.76) = 4.064; 5 s -> 20.32 J, total 83.04 J.
	writeStat(t, root, "1300 0 600 581550 70 0 10 0 100 0")
	got, err = e.Sample(at(15))
	if err != nil {
		t.Fatal(err)
	}
	wantEstimate(t, got, 83.04, 4.064, 0.1, 4)

	// irq and softirq count as busy, steal as neither: +50 irq, +50 softirq, +100 steal, +700 idle
	// -> busy 100 of 800, u = 0.125. W = 4 * (0.74 + 0.125*2.76) = 4.34; 2.5 s -> 10.85 J, total
	// 93.89 J.
	writeStat(t, root, "1300 0 600 582250 70 50 60 100 100 0")
	got, err = e.Sample(at(17.5))
	if err != nil {
		t.Fatal(err)
	}
	wantEstimate(t, got, 93.89, 4.34, 0.125, 4)
}

// TestEstimatorExcludesSteal: on a VM whose hypervisor gave most of the interval to other guests
// (testdata/proc-steal), the model's busy share leaves steal out exactly as the attribution's
// busy share does (workload.BusyShare over the same two readings), so the modelled power is that
// of the work this node did.
func TestEstimatorExcludesSteal(t *testing.T) {
	root := procCopy(t, "proc-steal")
	e, err := NewEstimator(root, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Sample(at(0)); err != nil {
		t.Fatal(err)
	}
	before, err := workload.ReadNodeCPU(root, 100)
	if err != nil {
		t.Fatal(err)
	}
	later, err := os.ReadFile(filepath.Join("testdata", "proc-steal", "stat.later"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "stat"), string(later))
	got, err := e.Sample(at(10))
	if err != nil {
		t.Fatal(err)
	}
	// user +300, system +100, softirq +100 busy; idle +300; steal +1200 in neither: u = 500/800.
	// W = 2 * (0.74 + 0.625*2.76) = 4.93; 10 s -> 49.3 J. (Steal counted busy would give 0.85.)
	wantEstimate(t, got, 49.3, 4.93, 0.625, 2)
	after, err := workload.ReadNodeCPU(root, 100)
	if err != nil {
		t.Fatal(err)
	}
	if share := workload.BusyShare(before, after); math.Abs(share-got.Utilisation) > 1e-12 {
		t.Fatalf("model utilisation %v, attribution busy share %v: one definition expected", got.Utilisation, share)
	}
	// The sample's own reading, which the agent hands to the attribution
	// instead of a second read, is the same node CPU time.
	shared := workload.NodeCPUFromTicks(got.StatBusy, got.StatTotal, 100)
	if math.Abs(shared.Busy-after.Busy) > 1e-9 || math.Abs(shared.Total-after.Total) > 1e-9 {
		t.Fatalf("shared reading %+v, attribution's own reading %+v", shared, after)
	}
}

func TestEstimatorOptions(t *testing.T) {
	root := procCopy(t, "proc-4cpu")
	e, err := NewEstimator(root, ModelOptions{MinWattsPerCPU: 1, MaxWattsPerCPU: 3, CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	writeStat(t, root, "0 0 0 0 0 0 0 0 0 0")
	if _, err := e.Sample(at(0)); err != nil {
		t.Fatal(err)
	}
	// u = 0.25 (nice counts as busy): W = 2 * (1 + 0.25*2) = 3; 4 s -> 12 J.
	writeStat(t, root, "0 100 0 300 0 0 0 0 0 0")
	got, err := e.Sample(at(4))
	if err != nil {
		t.Fatal(err)
	}
	wantEstimate(t, got, 12, 3, 0.25, 2)
}

func TestEstimatorEdges(t *testing.T) {
	root := procCopy(t, "proc-4cpu")
	e, err := NewEstimator(root, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const maxW, minW = 4 * 3.5, 4 * 0.74
	writeStat(t, root, "100 0 0 100 100 0 0 0 0 0")
	mustSample(t, e, 0)

	// No time passed: nothing is added, the estimate is unchanged.
	writeStat(t, root, "200 0 0 100 100 0 0 0 0 0")
	wantEstimate(t, mustSample(t, e, 0), 0, 0, 0, 4)

	// iowait going backwards makes busy exceed total: u is clamped to 1. Deltas since the
	// re-baseline at t=0: user +100, iowait -50 -> total +50, busy +100.
	writeStat(t, root, "300 0 0 100 50 0 0 0 0 0")
	wantEstimate(t, mustSample(t, e, 1), maxW, maxW, 1, 4)

	// No tick at all: the interval counts as idle.
	wantEstimate(t, mustSample(t, e, 2), maxW+minW, minW, 0, 4)

	// The clock goes backwards: nothing is added, the last estimate is kept.
	writeStat(t, root, "400 0 0 100 50 0 0 0 0 0")
	wantEstimate(t, mustSample(t, e, 1), maxW+minW, minW, 0, 4)

	// An unreadable stat returns the last estimate and an error naming the file; the baseline
	// (taken at t=1 above) survives.
	p := filepath.Join(root, "stat")
	if err := os.Rename(p, p+".away"); err != nil {
		t.Fatal(err)
	}
	got, err := e.Sample(at(3))
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Sample with stat missing: err = %v", err)
	}
	wantEstimate(t, got, maxW+minW, minW, 0, 4)
	if err := os.Rename(p+".away", p); err != nil {
		t.Fatal(err)
	}
	writeStat(t, root, "500 0 0 200 50 0 0 0 0 0") // +100 busy, +100 idle since t=1: u = 0.5
	w := 4 * (0.74 + 0.5*(3.5-0.74))
	wantEstimate(t, mustSample(t, e, 4), maxW+minW+3*w, w, 0.5, 4)
}

func mustSample(t *testing.T, e *Estimator, sec float64) Estimate {
	t.Helper()
	got, err := e.Sample(at(sec))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestNewEstimatorErrors(t *testing.T) {
	good := filepath.Join("testdata", "proc-4cpu")
	noCPU := t.TempDir()
	writeFile(t, filepath.Join(noCPU, "stat"), "intr 0\nctxt 1\nbtime 2\n")
	for _, tc := range []struct {
		name, root string
		opts       ModelOptions
		mention    string
	}{
		{"no stat", t.TempDir(), ModelOptions{}, "stat"},
		{"no root", filepath.Join(t.TempDir(), "proc"), ModelOptions{}, "proc"},
		{"no cpu lines", noCPU, ModelOptions{}, "cpu"},
		{"min above max", good, ModelOptions{MinWattsPerCPU: 4, MaxWattsPerCPU: 3}, "MinWattsPerCPU"},
		{"negative min", good, ModelOptions{MinWattsPerCPU: -1}, "MinWattsPerCPU"},
		{"negative cpus", good, ModelOptions{CPUs: -2}, "CPUs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEstimator(tc.root, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("NewEstimator = %v, want an error mentioning %q", err, tc.mention)
			}
		})
	}
	e, err := NewEstimator(good, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Sample(at(0)); got.CPUs != 4 {
		t.Fatalf("CPUs = %d, want the 4 cpuN lines of the fixture", got.CPUs)
	}
}
