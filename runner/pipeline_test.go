package runner

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// twinGPUs applies every change to two fake backends alike.
type twinGPUs [2]*dcgmtest.Fake

func (tw twinGPUs) SetSMUtil(i int, u float64) error {
	return errors.Join(tw[0].SetSMUtil(i, u), tw[1].SetSMUtil(i, u))
}

func (tw twinGPUs) SetProcesses(i int, procs []dcgm.Process) error {
	return errors.Join(tw[0].SetProcesses(i, procs), tw[1].SetProcesses(i, procs))
}

func (tw twinGPUs) AddEnergy(i int, j float64) error {
	return errors.Join(tw[0].AddEnergy(i, j), tw[1].AddEnergy(i, j))
}

// TestAgentAndRunAttributeAlike feeds the same node (processes, RAPL
// counters, GPUs with known and unknown SM utilisation, short-lived
// children reaped between scans) to `aiwatt agent`, with a rule naming the
// command's process tree, and to `aiwatt run`, and demands identical joules
// for the run's workload on every component, tick by tick.
func TestAgentAndRunAttributeAlike(t *testing.T) {
	s := newScenario(t, func(o *Options) { o.GPUDevices = nil })
	cfg, err := agent.ParseConfig("aiwatt.yml", []byte(`
workloads:
  rules:
    - name: run
      match: {cmdline: '^sh$'}
      labels: {workload_type: aiwatt_run}
`))
	must(t, err)
	// GPU backends hand out deltas since their last sample, so the agent
	// reads a twin of the run's fake GPUs, changed in step with it.
	agentGPUs := dcgmtest.NewWithGPUs(5)
	a, err := agent.New(agent.Options{Interval: 5 * time.Second, SysfsRoot: s.rapl.root, ProcfsRoot: s.proc.root, Clock: s.clock.now,
		GPUBackend: func(dcgm.Config, *slog.Logger) (dcgm.Backend, error) { return agentGPUs, nil }}, cfg)
	must(t, err)
	a.Tick() // the baseline, at the meter's Start
	g, p := twinGPUs{s.gpus, agentGPUs}, s.proc

	steps := []func(){
		func() {
			// GPU 0: SM utilisation unknown on the device and the processes.
			must(t, g.SetSMUtil(0, -1))
			must(t, g.SetProcesses(0, []dcgm.Process{{PID: 101, SMUtil: -1, MIGGPUInstanceID: -1}, {PID: 200, SMUtil: -1, MIGGPUInstanceID: -1}}))
			// GPU 1: device unknown, processes known.
			must(t, g.SetSMUtil(1, -1))
			must(t, g.SetProcesses(1, []dcgm.Process{{PID: 102, SMUtil: 30, MIGGPUInstanceID: -1}, {PID: 200, SMUtil: 10, MIGGPUInstanceID: -1}}))
			// GPU 2: only the run's processes.
			must(t, g.SetSMUtil(2, 40))
			must(t, g.SetProcesses(2, []dcgm.Process{{PID: 100, SMUtil: 25, MIGGPUInstanceID: -1}, {PID: 103, SMUtil: 15, MIGGPUInstanceID: -1}}))
			// GPU 3: someone else's.
			must(t, g.SetSMUtil(3, 90))
			must(t, g.SetProcesses(3, []dcgm.Process{{PID: 200, SMUtil: 90, MIGGPUInstanceID: -1}}))
			for i, j := range []float64{100, 200, 300, 400, 50} {
				must(t, g.AddEnergy(i, j))
			}
			p.run(101, 200, 0)
			p.run(102, 100, 30) // reaped a child no scan saw
			p.run(200, 100, 0)
			p.cpu(800, 1200)
			s.rapl.add("intel-rapl:0", 120)
			s.rapl.add("intel-rapl:1", 80)
			s.rapl.add("intel-rapl:0:2", 10)
		},
		func() {
			must(t, g.SetSMUtil(0, 60))
			must(t, g.SetProcesses(0, []dcgm.Process{{PID: 101, SMUtil: 20, MIGGPUInstanceID: -1}, {PID: 200, SMUtil: 40, MIGGPUInstanceID: -1}}))
			must(t, g.SetProcesses(1, nil))
			for i, j := range []float64{70, 30, 90, 10, 5} {
				must(t, g.AddEnergy(i, j))
			}
			p.run(100, 10, 40)
			p.run(103, 50, 0)
			p.run(200, 300, 20)
			p.cpu(600, 1400)
			s.rapl.add("intel-rapl:0", 90)
			s.rapl.add("intel-rapl:1", 50)
			s.rapl.add("intel-rapl:0:2", 8)
		},
	}
	runKey := attribution.Key{WorkloadType: "aiwatt_run"}
	for i, step := range steps {
		step()
		pr := s.tick(t)
		snap := a.Tick()
		var got attribution.Totals
		for _, w := range snap.Attribution.Workloads {
			if attribution.Key(w.Key) == runKey {
				got = attribution.Totals(w.Joules)
			}
		}
		want := attribution.Totals{pr.Energy.CPU, pr.Energy.DRAM, pr.Energy.GPU}
		for c := range got {
			if !near(got[c], want[c]) {
				t.Errorf("tick %d, %v: agent %v J, aiwatt run %v J", i+1, attribution.Component(c), got[c], want[c])
			}
		}
		if want.Sum() == 0 {
			t.Fatalf("tick %d: nothing attributed to the run", i+1)
		}
		// Conservation in both: workloads + idle + unattributed = device.
		r := s.meter.Report()
		if node := r.Node; !near(node.Total.Total, r.Energy.Total+node.Idle.Total+node.Unattributed.Total) {
			t.Errorf("tick %d: aiwatt run does not conserve: %+v", i+1, node)
		}
	}
}
