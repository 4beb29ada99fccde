package runner

import (
	"context"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// BenchmarkTick is one sampling tick on a node of 1000 processes, 16 of them
// in the run, with the two-socket RAPL fixture and 8 GPUs (two of them used
// by the run).
func BenchmarkTick(b *testing.B) {
	p := newFakeProc(b)
	clock := newClock()
	p.spawn(1, 0, "init", 1000, 0, 1)
	p.spawn(100, 1, "sh", 0, 0, 1000)
	for pid := 101; pid < 116; pid++ {
		p.spawn(pid, 100, "worker", 0, 0, 1001)
	}
	for pid := 2000; pid < 2984; pid++ {
		p.spawn(pid, 1, "other", 10, 0, 500)
	}
	gpus := dcgmtest.NewWithGPUs(8)
	_ = gpus.SetProcesses(0, []dcgm.Process{{PID: 101, SMUtil: 50}})
	_ = gpus.SetProcesses(1, []dcgm.Process{{PID: 102, SMUtil: 30}, {PID: 2000, SMUtil: 20}})
	m, err := New(Options{SysfsRoot: newRAPL(b).root, ProcfsRoot: p.root, ClockTicks: 100, GPU: gpus, Now: clock.now})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx, 100); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		clock.step(time.Second)
		if _, err := m.Tick(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
