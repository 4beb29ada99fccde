package agent_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/internal/sysfsfixture"
	"github.com/inferensys/aiwatt/rapl"
)

// The tick benchmarks measure Agent.Tick, the work of one sampling interval:
// read every energy_uj, advance the wrap-safe totals, run the CPU model's
// /proc/stat read (estimate: auto samples it every tick so that it can take
// over with a fresh baseline), record source health and publish a snapshot.
// The bare-loop benchmarks are the floor: os.ReadFile and strconv.ParseUint
// over the same energy_uj files and nothing else. The goal is a tick of at
// most 1.5× the bare loop; scripts/bench.sh prints the ratio.
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

// synthetic1000Zones writes 250 sockets × package, core, uncore, dram (1000
// zones, named like the kernel names them: intel-rapl:<hex>[:n]) into a
// temporary sysfs root.
func synthetic1000Zones(b *testing.B) string {
	b.Helper()
	root := filepath.Join(b.TempDir(), "sys")
	const sockets = 250
	for s := range sockets {
		zones := []struct{ dir, name string }{
			{fmt.Sprintf("intel-rapl:%x", s), fmt.Sprintf("package-%d", s)},
			{fmt.Sprintf("intel-rapl:%x:0", s), "core"},
			{fmt.Sprintf("intel-rapl:%x:1", s), "uncore"},
			{fmt.Sprintf("intel-rapl:%x:2", s), "dram"},
		}
		for i, z := range zones {
			dir := filepath.Join(root, "class", "powercap", z.dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for file, content := range map[string]string{
				"name":                z.name,
				"energy_uj":           strconv.FormatUint(100_000_000_000+uint64(s*4+i)*1_000_003, 10),
				"max_energy_range_uj": "262143328850",
				"enabled":             "1",
			} {
				if err := os.WriteFile(filepath.Join(dir, file), []byte(content+"\n"), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return root
}

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

// benchBareLoop is the floor: os.ReadFile and strconv.ParseUint over the
// energy_uj files the agent reads, in the agent's order.
func benchBareLoop(b *testing.B, sysfs string, wantZones int) {
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
	var sum uint64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			v, err := strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += v
		}
	}
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
