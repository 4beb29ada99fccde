package agent

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// fakeProc is a procfs tree the test writes: /proc/stat, and per process
// stat, cmdline, status and cgroup.
type fakeProc struct {
	t    *testing.T
	root string
}

func (p fakeProc) write(rel, content string) {
	p.t.Helper()
	path := filepath.Join(p.root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// process writes one process with utime/stime in clock ticks (100 Hz).
func (p fakeProc) process(pid int, comm, cmdline, cgroup string, utime, stime uint64) {
	p.child(pid, 1, comm, cmdline, cgroup, utime, stime)
}

// child writes one process whose parent is ppid.
func (p fakeProc) child(pid, ppid int, comm, cmdline, cgroup string, utime, stime uint64) {
	fields := make([]string, 0, 50)
	fields = append(fields, "S", fmt.Sprint(ppid), fmt.Sprint(pid), fmt.Sprint(pid), "0", "-1", "4194560", "0", "0", "0", "0",
		fmt.Sprint(utime), fmt.Sprint(stime), "0", "0", "20", "0", "1", "0", "1000")
	for len(fields) < 50 {
		fields = append(fields, "0")
	}
	p.write(fmt.Sprintf("%d/stat", pid), fmt.Sprintf("%d (%s) %s\n", pid, comm, strings.Join(fields, " ")))
	p.write(fmt.Sprintf("%d/cmdline", pid), strings.ReplaceAll(cmdline, " ", "\x00")+"\x00")
	p.write(fmt.Sprintf("%d/status", pid), fmt.Sprintf("Name:\t%s\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", comm))
	p.write(fmt.Sprintf("%d/cgroup", pid), "0::"+cgroup+"\n")
}

// stat writes /proc/stat with user and idle jiffies summed over 4 CPUs.
func (p fakeProc) stat(user, idle uint64) {
	var b strings.Builder
	fmt.Fprintf(&b, "cpu  %d 0 0 %d 0 0 0 0 0 0\n", user, idle)
	for i := range 4 {
		fmt.Fprintf(&b, "cpu%d 0 0 0 0 0 0 0 0 0 0\n", i)
	}
	b.WriteString("intr 0\nctxt 0\nbtime 1764331200\nprocesses 10\nprocs_running 1\nprocs_blocked 0\n")
	p.write("stat", b.String())
	p.write("uptime", "1000.00 3000.00\n")
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestAgentAttributesWorkloads drives one tick with known inputs and checks
// every number by hand: CPU and DRAM split by CPU-time share of the busy
// energy, a shared GPU split by SM utilisation, idle GPUs kept as node idle,
// a system process unattributed, conservation per component, and CO2e equal
// to energy times the zone's intensity.
func TestAgentAttributesWorkloads(t *testing.T) {
	sys := fixture(t, "intel-2socket")
	proc := fakeProc{t: t, root: t.TempDir()}
	proc.stat(0, 0)
	proc.process(100, "python", "python train.py --model resnet50", "/system.slice/train.service", 1000, 0)
	proc.process(200, "vllm", "vllm serve llama-3-8b", "/system.slice/vllm.service", 500, 0)
	proc.process(300, "sshd", "/usr/sbin/sshd -D", "/system.slice/ssh.service", 50, 0)
	proc.child(101, 100, "pt_data_worker", "python -c from multiprocessing.spawn import spawn_main", "/system.slice/train.service", 0, 0)

	cfgYAML := `
workloads:
  rules:
    - name: training
      match: {cmdline: 'train\.py --model (\S+)'}
      labels: {project: vision, model_id: $1, workload_type: training}
    - name: serving
      match: {cmdline: 'vllm serve (\S+)'}
      labels: {project: chat, model_id: $1, workload_type: inference}
carbon:
  zone: DE
`
	cfg, err := ParseConfig("aiwatt.yml", []byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	gpus := dcgmtest.NewWithGPUs(2)
	clk := newClock()
	a, err := New(Options{Interval: 5 * time.Second, SysfsRoot: sys, ProcfsRoot: proc.root, Clock: clk.now, GPUBackend: fakeGPUs(gpus, nil)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick() // Baselines everywhere.

	// One 5 s tick: 4 CPUs 75 % busy; processes 2 s, 1 s and 1 s of CPU.
	proc.stat(1500, 500)
	proc.process(100, "python", "python train.py --model resnet50", "/system.slice/train.service", 1100, 0)
	// The trainer's data-loader worker matches no rule: it inherits the trainer's workload.
	proc.child(101, 100, "pt_data_worker", "python -c from multiprocessing.spawn import spawn_main", "/system.slice/train.service", 100, 0)
	proc.process(200, "vllm", "vllm serve llama-3-8b", "/system.slice/vllm.service", 600, 0)
	proc.process(300, "sshd", "/usr/sbin/sshd -D", "/system.slice/ssh.service", 150, 0)
	addUJ(t, sys, "intel-rapl:0", 100_000_000) // package 100 J
	addUJ(t, sys, "intel-rapl:1", 60_000_000)  // package 60 J
	addUJ(t, sys, "intel-rapl:0:2", 20_000_000)
	addUJ(t, sys, "intel-rapl:0:0", 50_000_000) // core: part of package, not added again
	_ = gpus.AddEnergy(0, 100)
	_ = gpus.SetSMUtil(0, 80)
	_ = gpus.SetProcesses(0, []dcgm.Process{{PID: 100, SMUtil: 60, MIGGPUInstanceID: -1}, {PID: 200, SMUtil: 20, MIGGPUInstanceID: -1}})
	_ = gpus.AddEnergy(1, 30)
	_ = gpus.SetSMUtil(1, 0)
	clk.step(5 * time.Second)
	s := a.Tick()

	train := attribution.Key{Project: "vision", ModelID: "resnet50", WorkloadType: "training"}
	serve := attribution.Key{Project: "chat", ModelID: "llama-3-8b", WorkloadType: "inference"}
	want := map[attribution.Key]attribution.Totals{
		// CPU 160 J × 0.75 busy = 120 J active, split 2:1:1 (sshd unattributed).
		// DRAM 20 J × 0.75 = 15 J likewise. GPU0: 100 J × 0.8 = 80 J split 60:20.
		train: {60, 7.5, 60},
		serve: {30, 3.75, 20},
	}
	got := map[attribution.Key]WorkloadEnergy{}
	for _, w := range s.Attribution.Workloads {
		got[attribution.Key(w.Key)] = w
	}
	if len(got) != 2 {
		t.Fatalf("workloads: %+v", s.Attribution.Workloads)
	}
	for k, tot := range want {
		for c := range attribution.NumComponents {
			if !near(got[k].Joules[c], tot[c]) {
				t.Errorf("%v %v: %v J, want %v J", k, attribution.Component(c), got[k].Joules[c], tot[c])
			}
		}
	}
	at := s.Attribution
	wantIdle := attribution.Totals{40, 5, 20 + 30}
	wantUnattr := attribution.Totals{30, 3.75, 0}
	for c := range attribution.NumComponents {
		if !near(at.Idle[c], wantIdle[c]) || !near(at.Unattributed[c], wantUnattr[c]) {
			t.Errorf("%v: idle %v (want %v), unattributed %v (want %v)", attribution.Component(c), at.Idle[c], wantIdle[c], at.Unattributed[c], wantUnattr[c])
		}
	}
	// Conservation against the device counters the agent exports.
	device := attribution.Totals{160, 20, 130}
	for c := range attribution.NumComponents {
		sum := at.Idle[c] + at.Unattributed[c]
		for _, w := range at.Workloads {
			sum += w.Joules[c]
		}
		if !near(sum, device[c]) {
			t.Errorf("%v: workloads + idle + unattributed = %v J, device %v J", attribution.Component(c), sum, device[c])
		}
	}

	// CO2e: the workload's energy in kWh times the zone's intensity over the tick.
	table, err := carbon.DefaultTable()
	if err != nil {
		t.Fatal(err)
	}
	static, err := carbon.NewStatic(table)
	if err != nil {
		t.Fatal(err)
	}
	in, err := static.Intensity(context.Background(), "DE", clk.now())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []attribution.Key{train, serve} {
		wantG := want[k].Sum() / 3.6e6 * float64(in.Value)
		if !near(got[k].CO2eLocation, wantG) {
			t.Errorf("%v: %v g CO2e, want %v g", k, got[k].CO2eLocation, wantG)
		}
	}
	if len(at.Intensity) != 1 || at.Intensity[0].Zone != "DE" || !near(at.Intensity[0].GramsPerKWh, float64(in.Value)) {
		t.Errorf("intensity %+v, want DE %v", at.Intensity, in.Value)
	}
	if st, ok := status(s, SourceProcfs); !ok || !st.Up {
		t.Errorf("procfs status %+v", s.Sources)
	}
}

// TestAgentAttributionConservesProperty runs random ticks through the whole
// agent (procfs, RAPL, fake GPUs) and checks that, per component, the
// workload totals plus idle plus unattributed equal the device energy the
// agent measured, after every tick.
func TestAgentAttributionConservesProperty(t *testing.T) {
	sys := fixture(t, "intel-2socket")
	proc := fakeProc{t: t, root: t.TempDir()}
	cmd := []string{"python train.py --model a", "vllm serve b", "sleep 1000", "python train.py --model c"}
	cpu := []uint64{100, 200, 300, 400}
	var user, idle uint64 = 1000, 1000
	write := func() {
		proc.stat(user, idle)
		for i, c := range cmd {
			proc.process(100+i, strings.Fields(c)[0], c, "/system.slice/x.service", cpu[i], 0)
		}
	}
	write()
	cfg, err := ParseConfig("aiwatt.yml", []byte("workloads:\n  rules:\n    - match: {cmdline: '(train|serve)\\S* (\\S+ )?(\\S+)$'}\n      labels: {model_id: $3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	gpus := dcgmtest.NewWithGPUs(3)
	clk := newClock()
	a, err := New(Options{Interval: time.Second, SysfsRoot: sys, ProcfsRoot: proc.root, Clock: clk.now, GPUBackend: fakeGPUs(gpus, nil)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.Tick()
	var device attribution.Totals
	for step := 0; step < 60; step++ {
		r := uint64(step*7919) % 97
		for i := range cpu {
			cpu[i] += (r + uint64(i*13)) % 50
		}
		user += 50 + r
		idle += 100 - r
		write()
		pkg := 1_000_000 + r*100_000
		addUJ(t, sys, "intel-rapl:0", pkg)
		addUJ(t, sys, "intel-rapl:1:2", r*10_000)
		device[attribution.CPU] += float64(pkg) / 1e6
		device[attribution.DRAM] += float64(r*10_000) / 1e6
		for g := range 3 {
			j := float64((int(r)+g*31)%90) + 0.25
			_ = gpus.AddEnergy(g, j)
			device[attribution.GPU] += j
			_ = gpus.SetSMUtil(g, float64((int(r)+g*17)%101))
			_ = gpus.SetProcesses(g, []dcgm.Process{{PID: uint32(100 + (step+g)%4), SMUtil: float64(r % 40), MIGGPUInstanceID: -1},
				{PID: 999, SMUtil: 5, MIGGPUInstanceID: -1}})
		}
		clk.step(time.Second)
		at := a.Tick().Attribution
		for c := range attribution.NumComponents {
			sum := at.Idle[c] + at.Unattributed[c]
			for _, w := range at.Workloads {
				sum += w.Joules[c]
			}
			if math.Abs(sum-device[c]) > 1e-6 {
				t.Fatalf("step %d %v: attributed %v J, device %v J", step, attribution.Component(c), sum, device[c])
			}
		}
	}
}
