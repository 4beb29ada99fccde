package agent

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// fakeClock is stepped by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock                { return &fakeClock{t: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)} }
func ptr[T any](v T) *T                   { return &v }
func cfgWith(f func(*Config)) *Config     { c := DefaultConfig(); f(c); return c }
func zonePath(root, zone string) string {
	return filepath.Join(root, "class", "powercap", zone, "energy_uj")
}
func fixture(t *testing.T, name string) string {
	t.Helper()
	return sysfsfixture.Materialize(t, filepath.Join("..", "rapl", "testdata", name+".sysfs"))
}

func addUJ(t *testing.T, root, zone string, delta uint64) {
	t.Helper()
	b, err := os.ReadFile(zonePath(root, zone))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err := os.WriteFile(zonePath(root, zone), []byte(strconv.FormatUint(v+delta, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// procStat writes a /proc/stat with one aggregate line and n cpuN lines.
func procStat(t *testing.T, root string, user, idle uint64, n int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("cpu  " + strconv.FormatUint(user, 10) + " 0 0 " + strconv.FormatUint(idle, 10) + " 0 0 0 0 0 0\n")
	for i := range n {
		b.WriteString("cpu" + strconv.Itoa(i) + " 0 0 0 0 0 0 0 0 0 0\n")
	}
	b.WriteString("intr 0\nctxt 0\nbtime 1764331200\nprocesses 1\nprocs_running 1\nprocs_blocked 0\n")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func counter(t *testing.T, s *Snapshot, socket, zone, source string) EnergyCounter {
	t.Helper()
	for _, e := range s.CPU {
		if e.Socket == socket && e.Zone == zone && e.Source == source {
			return e
		}
	}
	t.Fatalf("no counter socket=%q zone=%q source=%q in %+v", socket, zone, source, s.CPU)
	return EnergyCounter{}
}

func status(s *Snapshot, name string) (SourceStatus, bool) {
	for _, st := range s.Sources {
		if st.Name == name {
			return st, true
		}
	}
	return SourceStatus{}, false
}

func TestAgentRAPLTotals(t *testing.T) {
	root := fixture(t, "intel-2socket")
	clk := newClock()
	a, err := New(Options{Interval: 5 * time.Second, SysfsRoot: root, ProcfsRoot: t.TempDir(), Clock: clk.now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Tick()
	if got := counter(t, s, "0", "package", MethodRAPL); got.Joules != 0 {
		t.Fatalf("first tick is a baseline, got %v J", got.Joules)
	}
	addUJ(t, root, "intel-rapl:0", 500_000_001) // 500.000001 J over 5 s = 100.0000002 W
	addUJ(t, root, "intel-rapl:1:2", 25_000_000)
	clk.step(5 * time.Second)
	s = a.Tick()
	if got := counter(t, s, "0", "package", MethodRAPL); got.Joules != 500.000001 || math.Abs(got.Watts-100.0000002) > 1e-9 {
		t.Fatalf("package-0: %+v", got)
	}
	if got := counter(t, s, "1", "dram", MethodRAPL); got.Joules != 25 {
		t.Fatalf("dram-1: %+v", got)
	}
	if st, ok := status(s, SourceRAPL); !ok || !st.Up {
		t.Fatalf("rapl status %+v", s.Sources)
	}
	if _, ok := status(s, SourceCPUModel); ok {
		t.Fatal("the CPU model must be off while RAPL works (estimate: auto)")
	}
	if s.Samples != 2 || !s.Time.Equal(clk.now()) {
		t.Fatalf("snapshot bookkeeping: %d %v", s.Samples, s.Time)
	}
	if a.Snapshot() != s {
		t.Fatal("Snapshot does not return the latest tick")
	}
}

func TestAgentFallsBackToModelWithoutRAPL(t *testing.T) {
	proc := t.TempDir()
	procStat(t, proc, 0, 0, 4)
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: proc, Clock: clk.now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick()
	// 4 CPUs, 10 s, half busy: W = 4 × (0.74 + 0.5 × (3.5 − 0.74)) = 8.48 W, 84.8 J.
	procStat(t, proc, 2000, 2000, 4)
	clk.step(10 * time.Second)
	s := a.Tick()
	e := counter(t, s, "", "package", MethodEstimate)
	if math.Abs(e.Watts-8.48) > 1e-9 || math.Abs(e.Joules-84.8) > 1e-9 {
		t.Fatalf("estimate %+v, want 8.48 W and 84.8 J", e)
	}
	raplSt, ok := status(s, SourceRAPL)
	if !ok || raplSt.Up {
		t.Fatalf("rapl must be reported down (absent): %+v", s.Sources)
	}
	if len(raplSt.Errors) != 0 {
		t.Fatalf("absent hardware is not an error: %+v", raplSt.Errors)
	}
	if st, ok := status(s, SourceCPUModel); !ok || !st.Up {
		t.Fatalf("cpu_model status %+v", s.Sources)
	}
}

func TestAgentEstimateModes(t *testing.T) {
	root := fixture(t, "intel-2socket")
	proc := t.TempDir()
	procStat(t, proc, 0, 0, 2)
	for _, tc := range []struct {
		mode      string
		rapl      bool
		wantModel bool
	}{
		{EstimateAlways, true, true},
		{EstimateNever, false, false},
		{EstimateAuto, true, false},
		{EstimateAuto, false, true},
	} {
		cfg := cfgWith(func(c *Config) { c.CPUModel.Estimate = tc.mode; c.RAPL.Enabled = ptr(tc.rapl) })
		a, err := New(Options{Interval: time.Second, SysfsRoot: root, ProcfsRoot: proc, Clock: newClock().now}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := a.Tick()
		_, hasModel := status(s, SourceCPUModel)
		_, hasRAPL := status(s, SourceRAPL)
		if hasModel != tc.wantModel || hasRAPL != tc.rapl {
			t.Errorf("mode %s rapl %v: sources %+v", tc.mode, tc.rapl, s.Sources)
		}
	}
}

func TestAgentReloadKeepsCountersContinuous(t *testing.T) {
	root := fixture(t, "intel-2socket")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "aiwatt.yml")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rapl:\n  max_power_watts: 1000\n")
	cfg, err := LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: root, ProcfsRoot: dir, ConfigFile: cfgPath, Clock: clk.now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick()
	addUJ(t, root, "intel-rapl:0", 100_000_000)
	clk.step(time.Second)
	a.Tick()

	// Unchanged CPU settings: the meter and its baselines stay; nothing is lost.
	write("rapl:\n  max_power_watts: 1000\n# only a comment changed\n")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	addUJ(t, root, "intel-rapl:0", 50_000_000)
	clk.step(time.Second)
	if got := counter(t, a.Tick(), "0", "package", MethodRAPL).Joules; got != 150 {
		t.Fatalf("after a no-op reload: %v J, want 150", got)
	}

	// A refused file keeps the running configuration and says so.
	write("rapl:\n  max_power_wats: 10\n")
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), cfgPath+":2:") {
		t.Fatalf("bad reload: %v", err)
	}
	if a.ReloadStatus().Success || a.Config().RAPL.MaxPowerWatts != 1000 {
		t.Fatalf("status %+v, config %+v", a.ReloadStatus(), a.Config().RAPL)
	}

	// A changed ceiling rebuilds the meter: the exported total continues from
	// where it was (never resets), and the new meter's first read is a baseline.
	write("rapl:\n  max_power_watts: 1500\n")
	if err := a.Reload(); err != nil || !a.ReloadStatus().Success {
		t.Fatalf("good reload: %v", err)
	}
	clk.step(time.Second)
	if got := counter(t, a.Tick(), "0", "package", MethodRAPL).Joules; got != 150 {
		t.Fatalf("after a rebuilding reload: %v J, want 150", got)
	}
	addUJ(t, root, "intel-rapl:0", 7_000_000)
	clk.step(time.Second)
	if got := counter(t, a.Tick(), "0", "package", MethodRAPL).Joules; got != 157 {
		t.Fatalf("after the reload: %v J, want 157", got)
	}
}

func TestAgentImplausibleJumpIsCountedNotAdded(t *testing.T) {
	root := fixture(t, "intel-2socket")
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: root, ProcfsRoot: t.TempDir(), Clock: clk.now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick()
	addUJ(t, root, "intel-rapl:0", 5_000_000_000) // 5 kJ in 1 s: over the 2000 W default ceiling.
	clk.step(time.Second)
	s := a.Tick()
	if got := counter(t, s, "0", "package", MethodRAPL).Joules; got != 0 {
		t.Fatalf("implausible jump added: %v J", got)
	}
	st, _ := status(s, SourceRAPL)
	if st.Errors["implausible_delta"] != 1 || !st.Up {
		t.Fatalf("status %+v", st)
	}
}
