package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/internal/sourcetest"
	"github.com/inferensys/aiwatt/rapl"
)

const testGPU = "GPU-5e3f7a1c-0000-4000-8000-000000000001"

func dcgmBody(mJ uint64) string { return sourcetest.DCGMBody(testGPU, "NVIDIA H100 80GB HBM3", mJ) }

func writeConfig(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sumRAPL(s *Snapshot) (n int, joules map[string]float64) {
	joules = map[string]float64{}
	for _, c := range s.CPU {
		if c.Source == MethodRAPL {
			joules[c.Socket+"/"+c.Zone] = c.Joules
			n++
		}
	}
	return n, joules
}

// TestAgentReloadOnEveryTickIsExact reloads with a changed RAPL setting and
// a changed GPU setting (dcgm-exporter timeout) on every one of 100 ticks
// while the counters advance: the exported joules equal the injected ones
// to the microjoule (RAPL) and the millijoule (GPU).
func TestAgentReloadOnEveryTickIsExact(t *testing.T) {
	root := fixture(t, "intel-2socket")
	dir := t.TempDir()
	procStat(t, dir, 100, 100, 4)
	var gpuMJ uint64 = 912_345_678_901
	dcgm := sourcetest.NewHangable(t, dcgmBody(gpuMJ))
	cfgPath := filepath.Join(dir, "aiwatt.yml")
	config := func(i int) string {
		return fmt.Sprintf("rapl:\n  max_power_watts: %d\ngpu:\n  backend: dcgm-exporter\n  exporter_url: %s/metrics\n  exporter_timeout: %dms\n",
			1000+i%2, dcgm.URL, 4000+i%3)
	}
	writeConfig(t, cfgPath, config(0))
	cfg, err := LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: root, ProcfsRoot: dir, ConfigFile: cfgPath, Clock: clk.now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Tick() // baselines

	zones := map[string]string{ // zone directory → socket/zone series
		"intel-rapl:0": "0/package", "intel-rapl:0:0": "0/core", "intel-rapl:0:2": "0/dram",
		"intel-rapl:1": "1/package", "intel-rapl:1:2": "1/dram", "intel-rapl:2": "/psys",
	}
	wantUJ := map[string]uint64{}
	var wantGPUmJ uint64
	for i := 1; i <= 100; i++ {
		for dir, series := range zones {
			d := uint64(100_000_000 + 7_919*i + len(dir)) // 100 J and an odd tail
			addUJ(t, root, dir, d)
			wantUJ[series] += d
		}
		d := uint64(250_000 + 13*i) // 250 J and an odd tail
		gpuMJ += d
		wantGPUmJ += d
		dcgm.Set(dcgmBody(gpuMJ))

		writeConfig(t, cfgPath, config(i))
		if err := a.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		clk.step(time.Second)
		a.Tick()
	}
	s := a.Snapshot()
	_, got := sumRAPL(s)
	for series, uj := range wantUJ {
		if got[series] != source2J(uj) {
			t.Errorf("%s: exported %v J, injected %v J", series, got[series], source2J(uj))
		}
	}
	g := gpuOf(t, s, testGPU)
	if g.Joules != source2J(wantGPUmJ*1000) || g.Source != "dcgm_exporter" {
		t.Errorf("GPU: exported %v J (%s), injected %v J", g.Joules, g.Source, source2J(wantGPUmJ*1000))
	}
	// No workload source is configured, so there is no process scan to
	// check (TestAgentScansProcessesOnlyWithAWorkloadSource).
	for _, name := range []string{SourceRAPL, "dcgm_exporter"} {
		if st, ok := status(s, name); !ok || !st.Up || len(st.Errors) != 0 {
			t.Errorf("source %s: %+v", name, st)
		}
	}
}

// source2J is how the agent turns its integer microjoules into joules.
func source2J(uj uint64) float64 { return float64(uj) / 1e6 }

// TestAgentPicksUpHotPluggedZones adds a zone and then a whole socket to a
// fixture tree while the agent runs: each is exported within raplRediscover
// ticks and counts exactly from then on. A zone whose max_energy_range_uj
// is removed fails alone: RAPL stays up, the others keep counting.
func TestAgentPicksUpHotPluggedZones(t *testing.T) {
	root := t.TempDir()
	zone := func(dir, name string, energy uint64) {
		p := filepath.Join(root, "class", "powercap", dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, v := range map[string]string{"name": name, "energy_uj": strconv.FormatUint(energy, 10), "max_energy_range_uj": "262143328850"} {
			writeConfig(t, filepath.Join(p, f), v+"\n")
		}
	}
	zone("intel-rapl:0", "package-0", 5_000)
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: root, ProcfsRoot: t.TempDir(), Clock: clk.now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tick := func() *Snapshot { clk.step(time.Second); return a.Tick() }
	tick()
	within := func(series string) {
		t.Helper()
		for n := 1; n <= raplRediscover; n++ {
			if _, j := sumRAPL(tick()); j != nil {
				if _, ok := j[series]; ok {
					return
				}
			}
		}
		t.Fatalf("%s not exported within %d ticks", series, raplRediscover)
	}
	zone("intel-rapl:0:0", "dram", 70)
	within("0/dram")
	zone("intel-rapl:1", "package-1", 9)
	zone("intel-rapl:1:0", "dram", 11)
	within("1/package")
	tick() // every new zone has its baseline now
	before := a.Snapshot()
	_, b := sumRAPL(before)
	add := map[string]uint64{"intel-rapl:0": 30_000_001, "intel-rapl:0:0": 2_000_002, "intel-rapl:1": 40_000_003, "intel-rapl:1:0": 3_000_004}
	series := map[string]string{"intel-rapl:0": "0/package", "intel-rapl:0:0": "0/dram", "intel-rapl:1": "1/package", "intel-rapl:1:0": "1/dram"}
	for dir, d := range add {
		addUJ(t, root, dir, d)
	}
	n, j := sumRAPL(tick())
	if n != 4 {
		t.Fatalf("%d RAPL series, want 4: %v", n, j)
	}
	for dir, d := range add {
		if got := microjoules(j[series[dir]] - b[series[dir]]); got != d {
			t.Errorf("%s: +%d µJ, want +%d µJ", series[dir], got, d)
		}
	}

	// Socket 1's package loses max_energy_range_uj; a new entry makes the
	// listing change, as a real hot-plug would.
	if err := os.Remove(filepath.Join(root, "class", "powercap", "intel-rapl:1", "max_energy_range_uj")); err != nil {
		t.Fatal(err)
	}
	zone("intel-rapl:2", "psys", 1)
	var s *Snapshot
	for n := 0; n <= raplRediscover; n++ {
		s = tick()
	}
	addUJ(t, root, "intel-rapl:0", 1_000_000)
	_, b = sumRAPL(s)
	s = tick()
	_, j = sumRAPL(s)
	st, _ := status(s, SourceRAPL)
	if !st.Up || st.Errors[rapl.ReasonReadError] == 0 {
		t.Fatalf("rapl status %+v; want up with read_error counted", st)
	}
	if got := microjoules(j["0/package"] - b["0/package"]); got != 1_000_000 {
		t.Fatalf("0/package +%d µJ after socket 1's package broke, want +1 J", got)
	}
	if j["1/package"] != b["1/package"] {
		t.Fatalf("the broken zone moved: %v → %v", b["1/package"], j["1/package"])
	}
}

// TestAgentCarbonProviderThatNeverAnswers: a provider that accepts the
// connection and never answers must not stop CO2e. From the first tick
// with an interval the chain falls through to the static table inside the
// tick's deadline, the failure is counted under the provider's name, and
// the provider backs off instead of being waited on every tick.
func TestAgentCarbonProviderThatNeverAnswers(t *testing.T) {
	hung := sourcetest.NewHangable(t, "{}")
	hung.Hang(true)
	dir := t.TempDir()
	procStat(t, dir, 100, 100, 4)
	cfgPath := filepath.Join(dir, "aiwatt.yml")
	writeConfig(t, cfgPath, "gpu:\n  backend: none\ncarbon:\n  zone: GB\n  providers:\n    - type: ukci\n      base_url: "+hung.URL+"\n")
	cfg, err := LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	const interval = time.Second
	a, err := New(Options{Interval: interval, SysfsRoot: t.TempDir(), ProcfsRoot: dir, Clock: clk.now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Tick()
	for i := 1; i <= 3; i++ {
		procStat(t, dir, uint64(100+50*i), uint64(100+50*i), 4)
		clk.step(interval)
		start := time.Now()
		s := a.Tick()
		if took := time.Since(start); took >= interval {
			t.Fatalf("tick %d took %s, past its interval", i, took)
		}
		if len(s.Attribution.Intensity) == 0 || s.Attribution.Intensity[0].Provider != "static" || s.Attribution.Intensity[0].Zone != "GB" {
			t.Fatalf("tick %d: intensity %+v, want GB from the static table", i, s.Attribution.Intensity)
		}
		st, ok := status(s, SourceCarbon)
		if !ok || !st.Up {
			t.Fatalf("tick %d: carbon %+v", i, st)
		}
		var prov *SourceStatus
		for j := range s.Sources {
			if s.Sources[j].Name == SourceCarbon && s.Sources[j].Target == "ukci" {
				prov = &s.Sources[j]
			}
		}
		if prov == nil || prov.Up || prov.Errors["timeout"] != 1 {
			t.Fatalf("tick %d: provider status %+v, want down with one timeout (then backing off)", i, prov)
		}
	}
	if n := hung.Hits.Load(); n != 1 {
		t.Fatalf("the hung provider was called %d times in 3 ticks, want 1 (backoff)", n)
	}
}

// microjoules rounds a difference of two exported totals (each exact to
// the microjoule) back to microjoules.
func microjoules(j float64) uint64 { return uint64(math.Round(j * 1e6)) }

// TestAgentReloadLeavesNoCO2eGap reloads on every tick, alternately with
// the same and with changed carbon settings: every tick still has its
// intensity (the interval continues from the tick before the reload).
func TestAgentReloadLeavesNoCO2eGap(t *testing.T) {
	dir := t.TempDir()
	procStat(t, dir, 100, 100, 4)
	cfgPath := filepath.Join(dir, "aiwatt.yml")
	config := func(i int) string {
		return fmt.Sprintf("gpu:\n  backend: none\nrapl:\n  max_power_watts: %d\ncarbon:\n  zone: DE\n  retry_interval: %dm\n", 1000+i%2, 1+i/2%2)
	}
	writeConfig(t, cfgPath, config(0))
	cfg, err := LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: dir, ConfigFile: cfgPath, Clock: clk.now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Tick()
	for i := 1; i <= 8; i++ {
		writeConfig(t, cfgPath, config(i))
		if err := a.Reload(); err != nil {
			t.Fatal(err)
		}
		clk.step(time.Second)
		if s := a.Tick(); len(s.Attribution.Intensity) == 0 {
			t.Fatalf("tick %d after a reload: no intensity, a CO2e gap", i)
		}
	}
}

// stubborn is a GPU backend that ignores its context: a Sample blocks until
// the test releases it, then returns what the fake has.
type stubborn struct {
	*dcgmtest.Fake
	release chan struct{}
}

func (s *stubborn) Sample(_ context.Context, now time.Time) (gpu.Result, error) {
	<-s.release
	return s.Fake.Sample(context.Background(), now)
}

// TestAgentLateSampleCountsOnce: a source whose Sample outlives the tick's
// deadline (it ignores its context) is reported as timeout, is not started
// again while it runs, and its reading, when it returns, is added at the
// next tick: the energy is counted exactly once, and the tick never waits
// past its deadline.
func TestAgentLateSampleCountsOnce(t *testing.T) {
	f := dcgmtest.NewWithGPUs(1)
	b := &stubborn{Fake: f, release: make(chan struct{}, 8)}
	clk := newClock()
	const interval = 100 * time.Millisecond
	a, err := New(Options{Interval: interval, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: clk.now,
		GPUBackend: func(gpu.Config, *slog.Logger) (gpu.Backend, error) { return b, nil }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	tick := func() *Snapshot {
		clk.step(interval)
		start := time.Now()
		s := a.Tick()
		if took := time.Since(start); took >= interval {
			t.Fatalf("tick took %s, past its %s interval", took, interval)
		}
		return s
	}
	b.release <- struct{}{}
	tick() // baseline
	if err := f.AddEnergy(0, 10); err != nil {
		t.Fatal(err)
	}
	s := tick() // blocks: misses the deadline
	if st, _ := status(s, "nvml"); st.Up || st.Errors["timeout"] != 1 {
		t.Fatalf("late GPU: %+v", st)
	}
	s = tick() // still blocked: not started again, timeout again
	if st, _ := status(s, "nvml"); st.Errors["timeout"] != 2 || f.Samples() != 1 {
		t.Fatalf("still late: %+v, %d samples started", st, f.Samples())
	}
	if err := f.AddEnergy(0, 5); err != nil {
		t.Fatal(err)
	}
	b.release <- struct{}{} // the late sample returns, with 15 J
	b.release <- struct{}{} // and the next one answers at once
	deadline := time.Now().Add(5 * time.Second)
	for f.Samples() < 2 && time.Now().Before(deadline) {
		pollPause()
	}
	s = tick()
	if g := gpuOf(t, s, "GPU-fake-0000"); g.Joules != 15 {
		t.Fatalf("after the late sample: %v J, want 15", g.Joules)
	}
	if st, _ := status(s, "nvml"); !st.Up || st.Errors["timeout"] != 2 {
		t.Fatalf("recovered GPU: %+v", st)
	}
	b.release <- struct{}{}
	if g := gpuOf(t, tick(), "GPU-fake-0000"); g.Joules != 15 {
		t.Fatalf("counted twice: %v J", g.Joules)
	}
}

// pollPause is the pause between two polls of a condition with a deadline.
func pollPause() { time.Sleep(time.Millisecond) }
