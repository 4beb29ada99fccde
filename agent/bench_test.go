package agent_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
	"github.com/inferensys/aiwatt/internal/sysfsfixture"
	"github.com/inferensys/aiwatt/rapl"
)

// The tick benchmarks measure Agent.Tick, the work of one sampling interval:
// read every energy_uj, advance the wrap-safe totals, run the CPU model's
// /proc/stat read (estimate: auto samples it every tick so that it can take
// over with a fresh baseline), scan the procfs root for processes when
// something can name a workload (TickWorkloads…: a rule), record source
// health, attribute and publish a snapshot.
//
// Their floors make the same system calls and nothing else (checked with
// strace: docs/performance.md says how):
//   - TickFloor…: the RAPL reads (open, read, close per energy_uj, as the
//     meter reads), a listing of class/powercap every third tick (hot-plug
//     discovery), and the head of /proc/stat through os.File (as the CPU
//     model reads it). With nothing configured that is the whole tick: no
//     process scan. The RAPL-only ticks make the same calls: the agent reads
//     /proc/stat for the busy share whatever cpu_model.estimate says.
//   - TickFloorWorkloads…: the same plus the process scan (open the root,
//     uptime, getdents, openat+read+close of every PID/stat) and the read of
//     every workload cgroup's CPU counter. /proc/stat is read once: the
//     workload step's busy share uses the CPU model's reading.
//   - BareLoop…: the RAPL reads alone, the floor of the meter inside a tick.
//
// scripts/bench.sh prints each tick's ratio to its floor.
//
// The agent runs its default configuration apart from cpu_model.estimate, so
// every other source is whatever the host offers: on a host without NVML or
// a dcgm-exporter the GPU source is down and costs one health update a tick.
//
// The counters stay still between iterations (every delta is 0): rewriting
// the files inside the timed loop would measure the benchmark, not the agent,
// and a read costs the same whatever digits the file holds.

// benchProcfs is a real /proc/stat capture of a 4-vCPU VM.
const benchProcfs = "../rapl/testdata/proc-4cpu"

// intel2Socket materialises the intel-2socket fixture: 2 sockets × package,
// core, uncore, dram, plus psys (9 zones).
func intel2Socket(b *testing.B) string {
	b.Helper()
	return sysfsfixture.Materialize(b, filepath.Join("..", "rapl", "testdata", "intel-2socket.sysfs"))
}

// synthetic1000Zones is 250 sockets × package, core, uncore, dram.
func synthetic1000Zones(b *testing.B) string { return sysfsfixture.Synthetic(b, 250) }

// benchTick runs Agent.Tick with a fake clock stepped by the interval each
// iteration. estimate is the cpu_model.estimate setting.
func benchTick(b *testing.B, sysfs string, wantZones int, estimate string) {
	b.Helper()
	const interval = 5 * time.Second
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	cfg := agent.DefaultConfig()
	cfg.CPUModel.Estimate = estimate
	a, err := agent.New(agent.Options{
		Interval:   interval,
		SysfsRoot:  sysfs,
		ProcfsRoot: benchProcfs,
		Clock:      func() time.Time { return now },
	}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	check := func(s *agent.Snapshot) {
		if len(s.CPU) != wantZones {
			b.Fatalf("%d CPU counters, want %d", len(s.CPU), wantZones)
		}
		// Only RAPL must be up: other sources (the GPU source, on a host
		// without GPUs) may be down, as they would be in production.
		for _, src := range s.Sources {
			if src.Name == agent.SourceRAPL && !src.Up {
				b.Fatalf("source %s is down", src.Name)
			}
		}
	}
	check(a.Tick()) // The first tick is only a baseline.
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(interval)
		a.Tick()
	}
	b.StopTimer()
	check(a.Snapshot())
}

// energyFiles lists the energy_uj files the agent reads, in its order.
func energyFiles(b *testing.B, sysfs string, wantZones int) []string {
	b.Helper()
	m, err := rapl.NewMeter(sysfs, rapl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var files []string
	for _, z := range m.Zones() {
		files = append(files, filepath.Join(z.Path, "energy_uj"))
	}
	if len(files) != wantZones {
		b.Fatalf("%d zones, want %d", len(files), wantZones)
	}
	return files
}

// benchBareLoop is the floor of the RAPL reads: the meter's system calls
// (open, read, close) and strconv.ParseUint over the energy_uj files the
// agent reads, in the agent's order.
func benchBareLoop(b *testing.B, sysfs string, wantZones int) {
	b.Helper()
	sysfsfixture.BenchReadRaw(b, energyFiles(b, sysfs, wantZones))
}

// benchTickFloor is the floor of a whole tick: the RAPL reads, /proc/stat
// and, when wantProcs > 0, the process scan of procfs, with the agent's
// system calls and nothing else. wantProcs is the number of PID/stat files
// the scan must read.
func benchTickFloor(b *testing.B, sysfs, procfs string, wantZones, wantProcs int, cgroups *sysfsfixture.CgroupFloor) {
	b.Helper()
	files := energyFiles(b, sysfs, wantZones)
	powercap := filepath.Join(sysfs, "class", "powercap")
	buf := make([]byte, 64)
	pf := sysfsfixture.NewProcFloor(procfs)
	var sum uint64
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	cpu := sysfsfixture.StartCPU()
	for b.Loop() {
		sum += sysfsfixture.ReadRawFiles(b, files, buf)
		if i++; i%3 == 0 { // The RAPL source lists powercap every third tick for hot-plugged zones.
			if err := sysfsfixture.ListDir(powercap); err != nil {
				b.Fatal(err)
			}
		}
		if n, err := pf.ReadStat(); err != nil || n == 0 {
			b.Fatalf("read stat: %d bytes, %v", n, err)
		}
		if wantProcs > 0 {
			// The workload step takes the busy share from the CPU model's
			// reading of /proc/stat: no second read.
			if n, err := pf.Scan(); err != nil || n != wantProcs {
				b.Fatalf("scan: %d processes (want %d), %v", n, wantProcs, err)
			}
			if cgroups != nil {
				if n, err := cgroups.Read(); err != nil || n == 0 {
					b.Fatalf("cgroup counters: %d bytes, %v", n, err)
				}
			}
		}
	}
	cpu.Report(b)
	if sum == 0 {
		b.Fatal("read nothing")
	}
}

// BenchmarkTick2Sockets is one tick with the default configuration
// (estimate: auto) over the intel-2socket fixture.
func BenchmarkTick2Sockets(b *testing.B) {
	benchTick(b, intel2Socket(b), 9, agent.EstimateAuto)
}

// BenchmarkTickRAPLOnly2Sockets is one tick with the CPU model off
// (estimate: never): RAPL and bookkeeping only, no /proc/stat.
func BenchmarkTickRAPLOnly2Sockets(b *testing.B) {
	benchTick(b, intel2Socket(b), 9, agent.EstimateNever)
}

// BenchmarkBareLoop2Sockets is the floor for the 2-socket ticks.
func BenchmarkBareLoop2Sockets(b *testing.B) {
	benchBareLoop(b, intel2Socket(b), 9)
}

// BenchmarkTickFloor2Sockets is the same-system-calls floor of Tick2Sockets.
func BenchmarkTickFloor2Sockets(b *testing.B) {
	benchTickFloor(b, intel2Socket(b), benchProcfs, 9, 0, nil)
}

// BenchmarkTick1000Zones is one tick with the default configuration over a
// synthetic 1000-zone tree.
func BenchmarkTick1000Zones(b *testing.B) {
	benchTick(b, synthetic1000Zones(b), 1000, agent.EstimateAuto)
}

// BenchmarkTickRAPLOnly1000Zones is one tick over 1000 zones with the CPU
// model off.
func BenchmarkTickRAPLOnly1000Zones(b *testing.B) {
	benchTick(b, synthetic1000Zones(b), 1000, agent.EstimateNever)
}

// BenchmarkBareLoop1000Zones is the floor for the 1000-zone ticks.
func BenchmarkBareLoop1000Zones(b *testing.B) {
	benchBareLoop(b, synthetic1000Zones(b), 1000)
}

// BenchmarkTickFloor1000Zones is the same-system-calls floor of Tick1000Zones.
func BenchmarkTickFloor1000Zones(b *testing.B) {
	benchTickFloor(b, synthetic1000Zones(b), benchProcfs, 1000, 0, nil)
}

// podCgroup is the cgroup v2 path of pod's one container (kubepods
// systemd layout, a containerd scope), as workloadTree's processes name it.
func podCgroup(pod int) string {
	uid := fmt.Sprintf("%08x_1111_2222_3333_%012x", pod, pod)
	return fmt.Sprintf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%064x.scope", uid, pod)
}

// cgroupTree writes the cgroup v2 file system under sysfs (fs/cgroup, where
// the agent looks for it) with a cpu.stat for each of the pods' containers,
// so the workload tick charges every pod by its cgroup counter as on a real
// node, and returns the floor of those reads.
func cgroupTree(b *testing.B, sysfs string, pods int) *sysfsfixture.CgroupFloor {
	b.Helper()
	root := filepath.Join(sysfs, "fs", "cgroup")
	var files []string
	for pod := range pods {
		f := filepath.Join(root, podCgroup(pod), "cpu.stat")
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			b.Fatal(err)
		}
		stat := fmt.Appendf(nil, "usage_usec %d\nuser_usec %d\nsystem_usec %d\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
			3_000_000+pod, 2_000_000+pod, 1_000_000)
		if err := os.WriteFile(f, stat, 0o644); err != nil {
			b.Fatal(err)
		}
		files = append(files, f)
	}
	return sysfsfixture.NewCgroupFloor(root, files)
}

// workloadTree writes a procfs root with /proc/stat and n processes spread
// over pods pods (cgroup v2 kubepods paths, containerd scopes), as a node
// running many small pods looks.
func workloadTree(b *testing.B, n, pods int) string {
	b.Helper()
	root := b.TempDir()
	stat, err := os.ReadFile(filepath.Join(benchProcfs, "stat"))
	if err != nil {
		b.Fatal(err)
	}
	write := func(rel string, data []byte) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("stat", stat)
	write("uptime", []byte("100000.00 300000.00\n"))
	for i := range n {
		pid := 1000 + i
		pod := i % pods
		cg := "0::" + podCgroup(pod) + "\n"
		write(fmt.Sprintf("%d/stat", pid), fmt.Appendf(nil, "%d (python3) S 1 %d %d 0 -1 4194560 100 0 0 0 %d %d 0 0 20 0 4 0 %d 1000000 1000 18446744073709551615 4194304 4200000 140730000000000 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", pid, pid, pid, 100+i, 50+i, 1000+i))
		write(fmt.Sprintf("%d/cmdline", pid), fmt.Appendf(nil, "python3\x00serve.py\x00--model\x00model-%d\x00", pod))
		write(fmt.Sprintf("%d/status", pid), []byte("Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\n"))
		write(fmt.Sprintf("%d/cgroup", pid), []byte(cg))
	}
	return root
}

// BenchmarkTickWorkloads2000Procs is a whole tick of a busy GPU
// node: 9 RAPL zones, 2000 processes in 200 pods named by a rule, each
// pod's CPU time read from its container's cgroup v2 cpu.stat (as on a real
// node: the cgroup file system is there), 8 GPUs with 64 processes each (the
// cgo-free fake backend), attribution of every device, the energy and CO2e
// ledgers, and a snapshot.
func BenchmarkTickWorkloads2000Procs(b *testing.B) {
	proc := workloadTree(b, 2000, 200)
	cfg, err := agent.ParseConfig("bench.yml", []byte(`
workloads:
  rules:
    - match: {cmdline: 'serve\.py --model (\S+)'}
      labels: {project: bench, model_id: $1, workload_type: inference}
carbon:
  zone: DE
`))
	if err != nil {
		b.Fatal(err)
	}
	gpus := dcgmtest.NewWithGPUs(8)
	for g := range 8 {
		procs := make([]dcgm.Process, 64)
		for i := range procs {
			procs[i] = dcgm.Process{PID: uint32(1000 + g*64 + i), SMUtil: float64(i % 50), MIGGPUInstanceID: -1}
		}
		if err := gpus.SetProcesses(g, procs); err != nil {
			b.Fatal(err)
		}
		_ = gpus.SetSMUtil(g, 70)
	}
	sysfs := intel2Socket(b)
	cgroupTree(b, sysfs, 200)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	a, err := agent.New(agent.Options{
		Interval: 5 * time.Second, SysfsRoot: sysfs, ProcfsRoot: proc, Clock: func() time.Time { return now },
		GPUBackend: func(dcgm.Config, *slog.Logger) (dcgm.Backend, error) { return gpus, nil },
	}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	a.Tick()
	if s := a.Tick(); len(s.Attribution.Workloads) != 200 {
		b.Fatalf("%d workloads, want 200", len(s.Attribution.Workloads))
	}
	b.ReportAllocs()
	cpu := sysfsfixture.StartCPU()
	for b.Loop() {
		now = now.Add(5 * time.Second)
		for g := range 8 {
			_ = gpus.AddEnergy(g, 1500)
		}
		a.Tick()
	}
	cpu.Report(b)
}

// BenchmarkTickFloorWorkloads2000Procs is the floor of the workload tick
// with the same system calls: the 9 RAPL reads, /proc/stat, the
// steady-state process scan (uptime, getdents, openat+read+close of every
// one of the 2000 PID/stat files) and the cgroup counters (a stat of the
// cgroup root, then openat+read+close of each of the 200 cpu.stat files); the GPU
// backend is a fake and makes none.
func BenchmarkTickFloorWorkloads2000Procs(b *testing.B) {
	sysfs := intel2Socket(b)
	benchTickFloor(b, sysfs, workloadTree(b, 2000, 200), 9, 2000, cgroupTree(b, sysfs, 200))
}
