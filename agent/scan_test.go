package agent

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// TestAgentScansProcessesOnlyWithAWorkloadSource: with nothing that can name
// a workload (no rules, no Kubernetes, no inference targets) the tick runs
// no process scan, so the procfs source is not listed and the CPU's active
// energy, by /proc/stat's busy share, is unattributed. A reload that adds a
// rule starts the scan from a fresh baseline, and the next tick gives the
// named process its share; a reload that removes it stops the scan again.
// Conservation holds throughout.
func TestAgentScansProcessesOnlyWithAWorkloadSource(t *testing.T) {
	sys := fixture(t, "intel-2socket")
	proc := fakeProc{t: t, root: t.TempDir()}
	proc.stat(0, 0)
	proc.process(100, "python", "python train.py --model resnet50", "/system.slice/train.service", 1000, 0)
	cfgPath := filepath.Join(t.TempDir(), "aiwatt.yml")
	writeConfig(t, cfgPath, "")
	cfg, err := LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	a, err := New(Options{Interval: 5 * time.Second, SysfsRoot: sys, ProcfsRoot: proc.root, ConfigFile: cfgPath, Clock: clk.now,
		GPUBackend: fakeGPUs(dcgmtest.NewWithGPUs(1), nil)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var user, idle, utime uint64
	var cpuJ float64 // package energy added so far
	// step advances one 5 s tick: 4 CPUs 75 % busy, the process busy for
	// 1 s of it, 160 J of package energy.
	step := func() *Snapshot {
		t.Helper()
		user, idle, utime = user+1500, idle+500, utime+100
		proc.stat(user, idle)
		proc.process(100, "python", "python train.py --model resnet50", "/system.slice/train.service", 1000+utime, 0)
		addUJ(t, sys, "intel-rapl:0", 100_000_000)
		addUJ(t, sys, "intel-rapl:1", 60_000_000)
		cpuJ += 160
		clk.step(5 * time.Second)
		return a.Tick()
	}
	conserved := func(s *Snapshot) {
		t.Helper()
		at := s.Attribution
		sum := at.Idle[attribution.CPU] + at.Unattributed[attribution.CPU]
		for _, w := range at.Workloads {
			sum += w.Joules[attribution.CPU]
		}
		if !near(sum, cpuJ) {
			t.Errorf("CPU: workloads + idle + unattributed = %v J, device %v J", sum, cpuJ)
		}
	}
	a.Tick() // Baselines.

	s := step()
	if st, ok := status(s, SourceProcfs); ok {
		t.Errorf("nothing configured: the procfs source ran (%+v)", st)
	}
	at := s.Attribution
	if len(at.Workloads) != 0 || !near(at.Unattributed[attribution.CPU], 120) || !near(at.Idle[attribution.CPU], 40) {
		t.Errorf("nothing configured: %d workloads, CPU unattributed %v J (want 120), idle %v J (want 40)",
			len(at.Workloads), at.Unattributed[attribution.CPU], at.Idle[attribution.CPU])
	}
	conserved(s)

	writeConfig(t, cfgPath, `
workloads:
  rules:
    - match: {cmdline: 'train\.py --model (\S+)'}
      labels: {project: vision, model_id: $1, workload_type: training}
`)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	s = step() // The scan's baseline: no CPU time yet.
	if st, ok := status(s, SourceProcfs); !ok || !st.Up {
		t.Errorf("with a rule: procfs source %+v (listed %v), want up", st, ok)
	}
	conserved(s)
	s = step()
	train := Workload{Project: "vision", ModelID: "resnet50", WorkloadType: "training"}
	var got float64
	for _, w := range s.Attribution.Workloads {
		if w.Key == train {
			got = w.Joules[attribution.CPU]
		}
	}
	// The 120 J of active energy split by the processes' CPU time: the named
	// process is the only one that used any.
	if !near(got, 120) {
		t.Errorf("with a rule: %v has %v J of CPU, want 120", train, got)
	}
	conserved(s)

	writeConfig(t, cfgPath, "")
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	s = step()
	if st, ok := status(s, SourceProcfs); ok {
		t.Errorf("rule removed: the procfs source ran (%+v)", st)
	}
	conserved(s)
}
