//go:build linux && cgo

package nvml

import (
	"context"
	"math"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// BenchmarkNVMLSample8GPUs64Procs is one sampling tick of a DGX H200 with 64
// compute processes per GPU, each with a utilisation sample. The go-nvml
// mock records every call, so part of the allocations are the mock's.
func BenchmarkNVMLSample8GPUs64Procs(b *testing.B) {
	srv, sims := newSim(b)
	for gi, g := range sims {
		procs := make([]gonvml.ProcessInfo, 64)
		util := make([]gonvml.ProcessUtilizationSample, 64)
		for p := range procs {
			pid := uint32(10_000 + gi*100 + p)
			procs[p] = gonvml.ProcessInfo{Pid: pid, UsedGpuMemory: 1 << 30, GpuInstanceId: math.MaxUint32, ComputeInstanceId: math.MaxUint32}
			util[p] = gonvml.ProcessUtilizationSample{Pid: pid, SmUtil: uint32(p), TimeStamp: 1}
		}
		g.procs = procs
		// Always a fresh sample, whatever the timestamp asked for.
		g.dev.GetProcessUtilizationFunc = func(uint64) ([]gonvml.ProcessUtilizationSample, gonvml.Return) {
			return util, gonvml.SUCCESS
		}
		var e uint64 = 1_000_000
		g.dev.GetTotalEnergyConsumptionFunc = func() (uint64, gonvml.Return) {
			e += 1_000
			return e, gonvml.SUCCESS
		}
	}
	be := openSim(b, srv)
	ctx := context.Background()
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		r, err := be.Sample(ctx, now)
		if err != nil || len(r.GPUs[7].Processes) != 64 {
			b.Fatalf("sample: %v", err)
		}
	}
}
