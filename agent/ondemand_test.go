package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
	"github.com/inferensys/aiwatt/gpu"
)

// intelWrap is how soon intel-2socket's smallest zone (dram, 65712999613
// µJ) can wrap at the default 2000 W ceiling; the on-demand idle bound is
// nine tenths of it.
const intelWrap = 32856499 * time.Microsecond

// rulesYAML names one workload by a process rule.
const rulesYAML = `
workloads:
  rules:
    - name: python
      match: {cmdline: 'python'}
      labels: {project: p, model_id: m, workload_type: training}
`

func onDemandAgent(t *testing.T, cfg *Config, mod func(*Options)) (*Agent, *fakeClock, string) {
	t.Helper()
	root := fixture(t, "intel-2socket")
	procfs := t.TempDir()
	procStat(t, procfs, 100, 900, 4)
	clk := newClock()
	opts := Options{Interval: 5 * time.Second, SysfsRoot: root, ProcfsRoot: procfs, Clock: clk.now}
	if mod != nil {
		mod(&opts)
	}
	a, err := New(opts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, clk, root
}

// TestOnDemandSamplesOnScrape: with nothing to attribute, the clock samples
// only when the latest sample nears the idle bound, a scrape (Fresh) samples
// when the latest is older than the interval, and the energy totals are
// exact whoever took the samples.
func TestOnDemandSamplesOnScrape(t *testing.T) {
	a, clk, root := onDemandAgent(t, nil, nil)
	a.Tick() // baseline
	idle := time.Duration(a.idle.Load())
	if want := intelWrap / 10 * 9; idle != want {
		t.Fatalf("idle bound %s, want %s (nine tenths of the shortest wrap)", idle, want)
	}
	var added uint64
	add := func(uj uint64) { addUJ(t, root, "intel-rapl:0", uj); added += uj }

	// A scrape younger than the interval is served the latest sample.
	clk.step(4 * time.Second)
	if s := a.Fresh(); s.Samples != 1 {
		t.Fatalf("scrape 4 s after a sample took a new one (samples %d)", s.Samples)
	}
	// Older: the scrape samples first.
	add(1_000_000)
	clk.step(time.Second)
	s := a.Fresh()
	if s.Samples != 2 || !s.Time.Equal(clk.now()) {
		t.Fatalf("scrape 5 s after a sample: samples %d at %v, want 2 at %v", s.Samples, s.Time, clk.now())
	}
	if got := counter(t, s, "0", "package", MethodRAPL).Joules; got != 1 {
		t.Fatalf("package-0 after the scrape's sample: %v J, want 1", got)
	}
	// The clock leaves the samples to the scrapes until the latest reaches
	// the idle bound less its slack, and is set to wake exactly then.
	due := idle - idleSlack(idle)
	if got := a.idleWait(idle); got != due {
		t.Fatalf("clock set for %s after a sample, want %s", got, due)
	}
	clk.step(due - time.Millisecond)
	if got := a.idleWait(idle); got != time.Millisecond {
		t.Fatalf("clock set for %s a millisecond before the bound", got)
	}
	a.clockTick()
	if got := a.Snapshot().Samples; got != 2 {
		t.Fatalf("clock tick %s after the last sample sampled (samples %d)", clk.now().Sub(s.Time), got)
	}
	add(2_500_000)
	last := s.Time
	clk.step(time.Millisecond)
	if got := a.idleWait(idle); got != 0 {
		t.Fatalf("clock set for %s at the bound", got)
	}
	a.clockTick()
	s = a.Snapshot()
	if s.Samples != 3 || !s.Time.Equal(clk.now()) {
		t.Fatalf("clock tick %s after the last sample: samples %d, want the third", clk.now().Sub(last), s.Samples)
	}
	if gap := s.Time.Sub(last); gap >= idle {
		t.Fatalf("%s between clock samples, not under the %s idle bound", gap, idle)
	}
	// A clock sample just before a scrape serves it.
	clk.step(a.opts.Interval - time.Millisecond)
	if got := a.Fresh().Samples; got != 3 {
		t.Fatalf("a scrape %s after the clock's sample took a new one (samples %d)", a.opts.Interval-time.Millisecond, got)
	}
	if got := counter(t, s, "0", "package", MethodRAPL).Joules; got != float64(added)/1e6 {
		t.Fatalf("package-0 total %v J, want %v", got, float64(added)/1e6)
	}
}

// TestOnDemandConcurrentScrapesSampleOnce: scrapes that arrive together
// while the latest sample is old take one sample between them.
func TestOnDemandConcurrentScrapesSampleOnce(t *testing.T) {
	a, clk, _ := onDemandAgent(t, nil, nil)
	a.Tick()
	clk.step(10 * time.Second)
	done := make(chan uint64)
	for range 8 {
		go func() { done <- a.Fresh().Samples }()
	}
	for range 8 {
		if got := <-done; got != 2 {
			t.Fatalf("a scrape saw sample %d, want 2", got)
		}
	}
}

// TestOnDemandOnlyWhenNothingNeedsARate: anything that attributes, scrapes
// inference servers, computes CO2e, prints every sample or integrates GPU
// power keeps the steady rate, where the clock samples every interval and a
// scrape never samples.
func TestOnDemandOnlyWhenNothingNeedsARate(t *testing.T) {
	parse := func(y string) *Config {
		c, err := ParseConfig("aiwatt.yml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	power := dcgmtest.New(dcgm.NameNVML)
	power.AddGPU(dcgm.GPU{Index: 0, UUID: "GPU-old", Model: "Tesla P100"}, dcgm.SourceNVMLPower)
	for _, tc := range []struct {
		name string
		cfg  *Config
		mod  func(*Options)
	}{
		{"workload rules", parse(rulesYAML), nil},
		{"carbon zone", parse("carbon:\n  zone: DE\n"), nil},
		{"--agent.live", nil, func(o *Options) { o.OnTick = func(*Snapshot) {} }},
		{"integrated GPU power", nil, func(o *Options) {
			o.GPUBackend = func(gpu.Config, *slog.Logger) (gpu.Backend, error) { return power, nil }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, clk, _ := onDemandAgent(t, tc.cfg, tc.mod)
			a.Tick()
			if idle := a.idle.Load(); idle != 0 {
				t.Fatalf("on-demand with %s (idle bound %s)", tc.name, time.Duration(idle))
			}
			clk.step(time.Second)
			a.clockTick()
			if got := a.Snapshot().Samples; got != 2 {
				t.Fatalf("clock tick did not sample (samples %d)", got)
			}
			clk.step(time.Hour)
			if got := a.Fresh().Samples; got != 2 {
				t.Fatalf("a scrape sampled at a steady rate (samples %d)", got)
			}
		})
	}
}

// TestOnDemandGPUWithEnergyCounters: NVML GPUs with hardware energy counters
// are read as exactly on demand as RAPL.
func TestOnDemandGPUWithEnergyCounters(t *testing.T) {
	f := dcgmtest.NewWithGPUs(2)
	a, clk, _ := onDemandAgent(t, nil, func(o *Options) {
		o.GPUBackend = func(gpu.Config, *slog.Logger) (gpu.Backend, error) { return f, nil }
	})
	a.Tick()
	if a.idle.Load() == 0 {
		t.Fatal("NVML GPUs with energy counters turned on-demand mode off")
	}
	if err := f.AddEnergy(1, 42); err != nil {
		t.Fatal(err)
	}
	clk.step(20 * time.Second)
	if g := gpuOf(t, a.Fresh(), "GPU-fake-0001"); g.Joules != 42 {
		t.Fatalf("GPU 1 after a scrape: %v J, want 42", g.Joules)
	}
}

// TestOnDemandReloadDecidesAgain: a reload that adds rules ends on-demand
// mode at once: the next clock tick samples, whatever the age of the latest.
func TestOnDemandReloadDecidesAgain(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "aiwatt.yml")
	writeConfig(t, file, "rapl:\n  max_power_watts: 500\n")
	a, clk, _ := onDemandAgent(t, nil, func(o *Options) { o.ConfigFile = file })
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	a.Tick()
	if got, want := time.Duration(a.idle.Load()), MaxIdle; got != want {
		// 65.7 kJ at 500 W wraps in 131 s: the one-minute cap applies.
		t.Fatalf("idle bound at a 500 W ceiling: %s, want %s", got, want)
	}
	writeConfig(t, file, rulesYAML)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	clk.step(time.Second)
	a.clockTick()
	if got := a.Snapshot().Samples; got != 2 {
		t.Fatalf("first clock tick after the reload did not sample (samples %d)", got)
	}
	if a.idle.Load() != 0 {
		t.Fatal("still on demand with workload rules")
	}
}

// TestOnDemandRunWakesOnReload: Run's clock, waiting up to the idle bound in
// on-demand mode, goes back to the steady rate as soon as a reload names a
// workload, not when the bound comes.
func TestOnDemandRunWakesOnReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "aiwatt.yml")
	writeConfig(t, file, "rapl:\n  max_power_watts: 500\n")
	root := fixture(t, "intel-2socket")
	procfs := t.TempDir()
	procStat(t, procfs, 100, 900, 4)
	const interval = 50 * time.Millisecond
	a, err := New(Options{Interval: interval, SysfsRoot: root, ProcfsRoot: procfs, ConfigFile: file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10 s", what)
			}
			pollPause()
		}
	}
	waitUntil("first sample in on-demand mode", func() bool { return a.Snapshot().Samples >= 1 && a.idle.Load() != 0 })
	if got := time.Duration(a.idle.Load()); got != MaxIdle {
		t.Fatalf("idle bound %s, want %s", got, MaxIdle)
	}
	writeConfig(t, file, rulesYAML)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	n := a.Snapshot().Samples
	waitUntil("samples at the steady rate after the reload", func() bool { return a.Snapshot().Samples >= n+3 })
}
