package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// fakeGPUs returns a factory that hands out f and remembers the config it got.
func fakeGPUs(f *dcgmtest.Fake, got *dcgm.Config) GPUBackendFactory {
	return func(cfg dcgm.Config, _ *slog.Logger) (dcgm.Backend, error) {
		if got != nil {
			*got = cfg
		}
		return f, nil
	}
}

// noGPUs is a factory for a machine without GPUs.
func noGPUs(dcgm.Config, *slog.Logger) (dcgm.Backend, error) {
	return nil, fmt.Errorf("%w: no libnvidia-ml.so.1", dcgm.ErrNoData)
}

func gpuOf(t *testing.T, s *Snapshot, uuid string) GPUCounter {
	t.Helper()
	for _, g := range s.GPU {
		if g.UUID == uuid {
			return g
		}
	}
	t.Fatalf("no GPU %s in %+v", uuid, s.GPU)
	return GPUCounter{}
}

func TestAgentGPUTotals(t *testing.T) {
	f := dcgmtest.NewWithGPUs(8)
	var got dcgm.Config
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: clk.now,
		GPUBackend: fakeGPUs(f, &got), DCGMExporterURL: "http://127.0.0.1:9400/metrics"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Backend != dcgm.BackendAuto || got.ExporterURL != "http://127.0.0.1:9400/metrics" || got.ExporterTimeout != 5*time.Second {
		t.Fatalf("backend config %+v", got)
	}
	a.Tick()
	for i := range 8 {
		if err := f.AddEnergy(i, float64(100*(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SetPower(3, 650); err != nil {
		t.Fatal(err)
	}
	clk.step(time.Second)
	s := a.Tick()
	if len(s.GPU) != 8 {
		t.Fatalf("%d GPUs", len(s.GPU))
	}
	for i, g := range s.GPU {
		if g.Index != i || g.Joules != float64(100*(i+1)) {
			t.Errorf("GPU %d: index %d, %v J", i, g.Index, g.Joules)
		}
	}
	if g := gpuOf(t, s, "GPU-fake-0003"); g.PowerWatts != 650 || g.Source != dcgm.SourceNVML {
		t.Fatalf("GPU 3: %+v", g)
	}
	if st, ok := status(s, dcgm.NameNVML); !ok || !st.Up {
		t.Fatalf("nvml status: %+v", s.Sources)
	}
}

func TestAgentGPUAbsentKeepsRunning(t *testing.T) {
	proc := t.TempDir()
	procStat(t, proc, 0, 0, 2)
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: proc, Clock: newClock().now, GPUBackend: noGPUs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Tick()
	st, ok := status(s, dcgm.NameNVML)
	if !ok || st.Up || len(st.Errors) != 0 {
		t.Fatalf("absent GPUs must be down without errors: %+v", s.Sources)
	}
	if len(s.GPU) != 0 {
		t.Fatalf("GPUs from nowhere: %+v", s.GPU)
	}
	if cm, ok := status(s, SourceCPUModel); !ok || !cm.Up {
		t.Fatalf("the rest of the agent must keep working: %+v", s.Sources)
	}
}

func TestAgentGPUNoneIsNotASource(t *testing.T) {
	calls := 0
	cfg := cfgWith(func(c *Config) { c.GPU.Backend = dcgm.BackendNone })
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: newClock().now,
		GPUBackend: func(dcgm.Config, *slog.Logger) (dcgm.Backend, error) {
			calls++
			return nil, errors.New("must not open")
		}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Tick()
	if _, ok := status(s, dcgm.NameNVML); ok || calls != 0 {
		t.Fatalf("gpu.backend none: %d opens, sources %+v", calls, s.Sources)
	}
}

func TestAgentGPUFailureAndLostGPU(t *testing.T) {
	f := dcgmtest.NewWithGPUs(2)
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: clk.now, GPUBackend: fakeGPUs(f, nil)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick()
	_ = f.AddEnergy(0, 50)
	_ = f.AddEnergy(1, 70)
	clk.step(time.Second)
	a.Tick()

	// A whole sample fails: the source is down, totals are kept.
	f.FailNext(errors.New("nvml: driver not loaded"))
	clk.step(time.Second)
	s := a.Tick()
	if st, _ := status(s, dcgm.NameNVML); st.Up {
		t.Fatal("a failed sample must mark the source down")
	}
	// GPU 1 is lost: it stays with its total and OK=false; GPU 0 goes on.
	_ = f.SetOK(1, false)
	_ = f.AddEnergy(0, 25)
	clk.step(time.Second)
	s = a.Tick()
	if g := gpuOf(t, s, "GPU-fake-0000"); g.Joules != 75 || !g.OK {
		t.Fatalf("GPU 0: %+v", g)
	}
	if g := gpuOf(t, s, "GPU-fake-0001"); g.Joules != 70 || g.OK {
		t.Fatalf("GPU 1: %+v", g)
	}
	if st, _ := status(s, dcgm.NameNVML); !st.Up || st.Errors[dcgm.ReasonGPULost] != 1 {
		t.Fatalf("status after a lost GPU: %+v", st)
	}
}

func TestAgentGPUReloadKeepsTotals(t *testing.T) {
	f1, f2 := dcgmtest.NewWithGPUs(1), dcgmtest.NewWithGPUs(1)
	backends := []*dcgmtest.Fake{f1, f2}
	opened := 0
	factory := func(dcgm.Config, *slog.Logger) (dcgm.Backend, error) { b := backends[opened]; opened++; return b, nil }
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: clk.now, GPUBackend: factory}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick()
	_ = f1.AddEnergy(0, 40)
	clk.step(time.Second)
	a.Tick()
	a.mu.Lock()
	a.apply(cfgWith(func(c *Config) { c.GPU.ExporterTimeout = 2 * time.Second }))
	a.mu.Unlock()
	if closed, _ := f1.Closed(); !closed || opened != 2 {
		t.Fatalf("a changed GPU section must close the old backend and open a new one (closed %v, opened %d)", closed, opened)
	}
	a.Tick() // Baseline of the new backend.
	_ = f2.AddEnergy(0, 2)
	clk.step(time.Second)
	if g := gpuOf(t, a.Tick(), "GPU-fake-0000"); g.Joules != 42 {
		t.Fatalf("after reload: %v J, want 42", g.Joules)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if closed, _ := f2.Closed(); !closed {
		t.Fatal("Close must close the GPU backend")
	}
}

// TestAgentGPUBackendThatAppearsLater: a GPU backend absent at start (no
// driver yet) is opened again every gpuReopen ticks and serves from then on.
func TestAgentGPUBackendThatAppearsLater(t *testing.T) {
	f := dcgmtest.NewWithGPUs(2)
	var present atomic.Bool
	open := func(dcgm.Config, *slog.Logger) (dcgm.Backend, error) {
		if !present.Load() {
			return nil, fmt.Errorf("%w: no libnvidia-ml.so.1 yet", dcgm.ErrNoData)
		}
		return f, nil
	}
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: t.TempDir(), Clock: clk.now, GPUBackend: open}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if st, ok := status(a.Tick(), dcgm.NameNVML); !ok || st.Up || len(st.Errors) != 0 {
		t.Fatalf("absent GPU: %+v", st)
	}
	present.Store(true)
	var s *Snapshot
	for n := 1; n <= gpuReopen; n++ {
		clk.step(time.Second)
		if s = a.Tick(); len(s.GPU) == 2 {
			break
		}
	}
	if len(s.GPU) != 2 {
		t.Fatalf("the GPU backend was not opened within %d ticks", gpuReopen)
	}
	if err := f.AddEnergy(1, 42); err != nil {
		t.Fatal(err)
	}
	clk.step(time.Second)
	if g := gpuOf(t, a.Tick(), "GPU-fake-0001"); g.Joules != 42 {
		t.Fatalf("%v J, want 42", g.Joules)
	}
}
