package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// scenario is a fake node: a process tree under PID 100 (the command),
// foreign processes 1, 50 (aiwatt) and 200, the Intel two-socket RAPL
// fixture and five fake GPUs.
type scenario struct {
	clock *fakeClock
	proc  *fakeProc
	rapl  *raplFixture
	gpus  *dcgmtest.Fake
	meter *Meter
}

func newScenario(t *testing.T, mod func(*Options)) *scenario {
	t.Helper()
	s := &scenario{clock: newClock(), proc: newFakeProc(t), rapl: newRAPL(t), gpus: dcgmtest.NewWithGPUs(5)}
	p := s.proc
	p.spawn(1, 0, "init", 1000, 0, 1)
	p.spawn(50, 1, "aiwatt", 500, 0, 900)
	p.spawn(200, 1, "foreign", 300, 0, 500)
	p.spawn(100, 50, "sh", 0, 0, 1000)
	p.spawn(101, 100, "worker", 0, 0, 1001)
	p.spawn(102, 100, "worker", 0, 0, 1001)
	p.spawn(103, 101, "grandchild", 0, 0, 1002)
	opts := Options{
		SysfsRoot:  s.rapl.root,
		ProcfsRoot: p.root,
		ClockTicks: 100,
		GPU:        s.gpus,
		GPUDevices: []string{"GPU-fake-0004"},
		Zone:       "DE",
		Now:        s.clock.now,
	}
	if mod != nil {
		mod(&opts)
	}
	m, err := New(opts)
	must(t, err)
	must(t, m.Start(context.Background(), 100))
	s.meter = m
	return s
}

func (s *scenario) tick(t *testing.T) Progress {
	t.Helper()
	s.clock.step(5 * time.Second)
	pr, err := s.meter.Tick(context.Background())
	must(t, err)
	return pr
}

// TestMeterAttribution steps a fake node through four ticks and checks every
// joule the run gets: CPU and DRAM by the tree's CPU-time share of the busy
// energy, GPUs exclusive, shared by SM utilisation, shared by process count,
// not used and assigned; short-lived and orphaned descendants; the root's
// final rusage; conservation; CO2e.
func TestMeterAttribution(t *testing.T) {
	s := newScenario(t, func(o *Options) {
		o.BudgetJoules = 400
		sf := carbon.GramsPerKWh(100)
		o.Market = &carbon.Market{SupplierFactor: &sf, SupplierSource: "test supplier", CoveredShare: 0.5, CoveredSource: "test PPA"}
	})
	p, g := s.proc, s.gpus

	// Tick 1. CPU: packages +60 J and +40 J, dram +12 J and +8 J (core,
	// uncore and psys must not count); busy share 0.5; the tree used 300
	// ticks, everyone else 100: the run gets 100*0.5*0.75 = 37.5 J of CPU and
	// 20*0.5*0.75 = 7.5 J of DRAM.
	s.rapl.add("intel-rapl:0", 60)
	s.rapl.add("intel-rapl:1", 40)
	s.rapl.add("intel-rapl:0:2", 12)
	s.rapl.add("intel-rapl:1:2", 8)
	s.rapl.add("intel-rapl:0:0", 30)
	s.rapl.add("intel-rapl:2", 500)
	p.cpu(400, 400)
	p.run(100, 20, 0)
	p.run(101, 120, 0)
	p.run(102, 110, 0)
	p.run(103, 50, 0)
	p.run(200, 90, 0)
	p.run(50, 10, 0)
	// GPUs. 0: only the run's processes: exclusive, 300 J. 1: the run's
	// worker at 30 % SM and a foreign process at 20 %, device 50 %: the run
	// gets 60 % of 200 J * 0.5 = 60 J. 2: foreign only: 0 of 100 J. 3: SM
	// unknown, device 80 %: one process each, 50 % of 100 J * 0.8 = 40 J.
	// 4: no process, assigned to the run: 50 J.
	must(t, g.SetProcesses(0, []dcgm.Process{{PID: 100, SMUtil: 40}, {PID: 103, SMUtil: 20}}))
	must(t, g.SetSMUtil(0, 60))
	must(t, g.SetProcesses(1, []dcgm.Process{{PID: 101, SMUtil: 30}, {PID: 200, SMUtil: 20}}))
	must(t, g.SetSMUtil(1, 50))
	must(t, g.SetProcesses(2, []dcgm.Process{{PID: 200, SMUtil: 70}}))
	must(t, g.SetSMUtil(2, 70))
	must(t, g.SetProcesses(3, []dcgm.Process{{PID: 102, SMUtil: -1}, {PID: 200, SMUtil: -1}}))
	must(t, g.SetSMUtil(3, 80))
	for i, j := range []float64{300, 200, 100, 100, 50} {
		must(t, g.AddEnergy(i, j))
	}
	pr := s.tick(t)
	wantGPU := 300.0 + 60 + 0 + 40 + 50
	if pr.Energy.CPU != 37.5 || pr.Energy.DRAM != 7.5 || pr.Energy.GPU != wantGPU || pr.Energy.Total != 37.5+7.5+wantGPU {
		t.Fatalf("tick 1: %+v", pr.Energy)
	}
	if pr.Watts != (37.5+7.5+wantGPU)/5 || pr.Processes != 4 {
		t.Fatalf("tick 1: %v W, %d processes", pr.Watts, pr.Processes)
	}
	if !pr.BudgetExceeded || pr.BudgetUsed != 495.0/400 {
		t.Fatalf("tick 1: budget %v used, exceeded %v", pr.BudgetUsed, pr.BudgetExceeded)
	}

	// Tick 2. 103 (seen at 50 ticks) used 10 more and was reaped by 101,
	// with a child never seen by any scan that used 40: 101's cutime grows
	// by 100 but only 50 are new. 104 is new (30 ticks), 100 used 20: 100
	// ticks for the tree, 100 for the others, busy 0.25, package +80 J:
	// 80*0.25*0.5 = 10 J.
	for i := range 5 {
		must(t, g.SetProcesses(i, nil))
	}
	p.uptime(105)
	p.exit(103)
	p.run(101, 0, 100)
	p.spawn(104, 102, "short", 30, 0, 10200)
	p.run(100, 20, 0)
	p.run(200, 100, 0)
	p.cpu(200, 600)
	s.rapl.add("intel-rapl:0", 80)
	pr = s.tick(t)
	if pr.Energy.CPU != 37.5+10 || pr.Energy.DRAM != 7.5 || pr.Processes != 4 {
		t.Fatalf("tick 2: %+v, %d processes", pr.Energy, pr.Processes)
	}

	// Tick 3. 102 exits, reaped by 100 (cutime +120, of which 110 were
	// seen); its child 104 is orphaned to init and stays in the run (+40).
	// 50 ticks for the tree, 50 for the others, busy 1, +40 J: 20 J.
	p.exit(102)
	p.run(100, 0, 120)
	p.reparent(104, 1)
	p.run(104, 40, 0)
	p.run(200, 50, 0)
	p.cpu(800, 0)
	s.rapl.add("intel-rapl:0", 40)
	pr = s.tick(t)
	if pr.Energy.CPU != 37.5+10+20 || pr.Processes != 3 {
		t.Fatalf("tick 3: %+v, %d processes", pr.Energy, pr.Processes)
	}

	// Tick 4. 101 (+5 self) is reaped by 100 (+10 self), which exits; its
	// rusage says 395 ticks in all, of which 380 were seen. 104 used 10: 25
	// ticks for the tree, 25 for the others, busy 1, +10 J: 5 J.
	p.exit(101)
	p.exit(100)
	p.run(104, 10, 0)
	p.run(200, 25, 0)
	p.cpu(400, 0)
	s.rapl.add("intel-rapl:0", 10)
	s.meter.RootExited(3950 * time.Millisecond)
	pr = s.tick(t)
	if pr.Energy.CPU != 37.5+10+20+5 || pr.Processes != 1 {
		t.Fatalf("tick 4: %+v, %d processes", pr.Energy, pr.Processes)
	}

	r := s.meter.Report()
	if !near(r.Tree.CPUSeconds, 3+1+0.5+0.25) || !near(r.Tree.OtherCPUSeconds, 1+1+0.5+0.25) ||
		r.Tree.ProcessesSeen != 5 || r.Tree.MaxProcesses != 4 || r.Tree.RootPID != 100 {
		t.Fatalf("tree: %+v", r.Tree)
	}
	if r.Node.Total.CPU != 230 || r.Node.Total.DRAM != 20 || r.Node.Total.GPU != 750 {
		t.Fatalf("node: %+v", r.Node.Total)
	}
	// Conservation, per component, over the run.
	for _, c := range []struct {
		name                   string
		run, node, idle, unatt float64
	}{
		{"cpu", r.Energy.CPU, r.Node.Total.CPU, r.Node.Idle.CPU, r.Node.Unattributed.CPU},
		{"dram", r.Energy.DRAM, r.Node.Total.DRAM, r.Node.Idle.DRAM, r.Node.Unattributed.DRAM},
		{"gpu", r.Energy.GPU, r.Node.Total.GPU, r.Node.Idle.GPU, r.Node.Unattributed.GPU},
	} {
		if !near(c.run+c.idle+c.unatt, c.node) {
			t.Errorf("%s: run %v + idle %v + unattributed %v != node %v", c.name, c.run, c.idle, c.unatt, c.node)
		}
	}
	wantAttr := []struct {
		run  float64
		node float64
		how  string
	}{{300, 300, GPUExclusive}, {60, 200, GPUSharedSM}, {0, 100, GPUNotUsed}, {40, 100, GPUSharedCount}, {50, 50, GPUAssigned}}
	if len(r.Measurement.GPUs) != 5 {
		t.Fatalf("GPUs: %+v", r.Measurement.GPUs)
	}
	for i, w := range wantAttr {
		gr := r.Measurement.GPUs[i]
		// The rule is the one that applied while the GPU used energy, not the
		// last tick's (whose process lists are empty).
		if gr.RunJoules != w.run || gr.NodeJoules != w.node || gr.Attribution != w.how || gr.Sources[0] != dcgm.SourceNVML ||
			gr.Rules[0].Rule != w.how || gr.Rules[0].RunJoules != w.run || gr.Rules[0].NodeJoules != w.node {
			t.Errorf("GPU %d: %+v, want run %v of %v (%s)", i, gr, w.run, w.node, w.how)
		}
	}
	if r.Measurement.CPU.Method != MethodRAPL || r.Measurement.DRAM.Method != MethodRAPL || r.Measurement.GPU.Method != "nvml" {
		t.Fatalf("methods: %+v", r.Measurement)
	}
	if !r.BudgetExceeded || r.DurationSeconds != 20 || r.Samples != 4 || r.Power.PeakWatts != 99 || r.Power.AvgWatts != r.Energy.Total/20 {
		t.Fatalf("report: exceeded %v, %v s, %d samples, power %+v", r.BudgetExceeded, r.DurationSeconds, r.Samples, r.Power)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "GPU 3 (GPU-fake-0003) is shared and per-process SM utilisation is unknown") {
		t.Fatalf("notes: %q", r.Notes)
	}

	// CO2e: the static table's DE factor (its newest data year, 2024, for
	// 2026), location and market (supplier 100 g/kWh, half covered).
	in := r.Carbon.Intensity
	if in.Zone != "DE" || in.Provider != "static" || in.Provenance.Licence == "" || !strings.Contains(in.Provenance.Dataset, "2024") {
		t.Fatalf("intensity: %+v", in)
	}
	kwh := r.Energy.Total / 3.6e6
	if !near(r.CO2e.LocationGrams, kwh*float64(in.Value)) || r.CO2e.MarketGrams == nil || !near(*r.CO2e.MarketGrams, kwh*0.5*100) || !r.CO2e.Complete {
		t.Fatalf("co2e %+v, want %v location", r.CO2e, kwh*float64(in.Value))
	}
	if len(r.Carbon.Sources) != 1 || !near(r.Carbon.Sources[0].EnergyJoules, r.Energy.Total) || r.Carbon.Market == nil {
		t.Fatalf("carbon sources %+v", r.Carbon)
	}
}

// TestMeterCPUModelWithoutRAPL: no powercap, so CPU energy is the model's
// (4 CPUs at busy 0.5: 4*(0.74+0.5*2.76) W = 8.48 W for 5 s = 42.4 J), DRAM
// is not measured, and the run gets half of the busy half.
func TestMeterCPUModelWithoutRAPL(t *testing.T) {
	s := newScenario(t, func(o *Options) {
		o.SysfsRoot = t.TempDir()
		o.GPU = nil
	})
	s.proc.cpu(400, 400)
	s.proc.run(101, 50, 0)
	s.proc.run(200, 50, 0)
	pr := s.tick(t)
	if !near(pr.Energy.CPU, 42.4*0.5*0.5) || pr.Energy.DRAM != 0 || pr.Energy.GPU != 0 {
		t.Fatalf("%+v", pr.Energy)
	}
	r := s.meter.Report()
	if r.Measurement.CPU.Method != MethodEstimate || r.Measurement.DRAM.Method != "none" || r.Measurement.GPU.Method != "none" || !near(r.Node.Total.CPU, 42.4) {
		t.Fatalf("%+v %+v", r.Measurement, r.Node)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "no RAPL") {
		t.Fatalf("notes %q", r.Notes)
	}
}

// TestMeterGPUDevicesByIndexAndUnknownBusy: a GPU assigned by index is the
// run's; a shared GPU without a device utilisation is busy by the sum of its
// processes' SM utilisation (30+10 %: 40 % of 100 J, 3/4 to the run).
func TestMeterGPUDevicesByIndexAndUnknownBusy(t *testing.T) {
	s := newScenario(t, func(o *Options) { o.GPUDevices = []string{"2"} })
	g := s.gpus
	must(t, g.SetProcesses(1, []dcgm.Process{{PID: 102, SMUtil: 30}, {PID: 200, SMUtil: 10}}))
	must(t, g.SetSMUtil(1, -1))
	must(t, g.AddEnergy(1, 100))
	must(t, g.AddEnergy(2, 70))
	must(t, g.AddEnergy(4, 70))
	pr := s.tick(t)
	if pr.Energy.GPU != 30+70 {
		t.Fatalf("GPU %v J", pr.Energy.GPU)
	}
	r := s.meter.Report()
	if r.Measurement.GPUs[1].Attribution != GPUSharedSM || r.Measurement.GPUs[2].Attribution != GPUAssigned || r.Measurement.GPUs[4].RunJoules != 0 {
		t.Fatalf("%+v", r.Measurement.GPUs)
	}
}

func TestMeterZoneAndStartErrors(t *testing.T) {
	p := newFakeProc(t)
	m, err := New(Options{SysfsRoot: t.TempDir(), ProcfsRoot: p.root, Zone: "Atlantis"})
	must(t, err)
	if err := m.Start(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "Atlantis") {
		t.Fatalf("unknown zone: %v", err)
	}
	if _, err := m.Tick(context.Background()); err == nil {
		t.Fatal("Tick before Start succeeded")
	}
	if _, err := New(Options{ProcfsRoot: t.TempDir()}); err == nil {
		t.Fatal("New without /proc/stat succeeded")
	}
	if _, err := New(Options{ProcfsRoot: p.root, BudgetJoules: -1}); err == nil {
		t.Fatal("negative budget accepted")
	}
}
