//go:build linux && cgo

package dcgm

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// BenchmarkNVMLSample8GPUs64Procs is one sampling tick of a DGX H200 with 64
// compute processes per GPU, each with a utilisation sample. The go-nvml
// mock records every call, so part of the allocations are the mock's.
func BenchmarkNVMLSample8GPUs64Procs(b *testing.B) {
	srv, sims := newSim(b)
	for gi, g := range sims {
		procs := make([]nvml.ProcessInfo, 64)
		util := make([]nvml.ProcessUtilizationSample, 64)
		for p := range procs {
			pid := uint32(10_000 + gi*100 + p)
			procs[p] = nvml.ProcessInfo{Pid: pid, UsedGpuMemory: 1 << 30, GpuInstanceId: math.MaxUint32, ComputeInstanceId: math.MaxUint32}
			util[p] = nvml.ProcessUtilizationSample{Pid: pid, SmUtil: uint32(p), TimeStamp: 1}
		}
		g.procs = procs
		// Always a fresh sample, whatever the timestamp asked for.
		g.dev.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
			return util, nvml.SUCCESS
		}
		var e uint64 = 1_000_000
		g.dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
			e += 1_000
			return e, nvml.SUCCESS
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

// BenchmarkExporterParse parses the L4 GPU Operator capture and folds it
// into the per-GPU state: the exporter backend's work per scrape, without
// the HTTP round trip.
func BenchmarkExporterParse(b *testing.B) {
	body := []byte(readFixture(b, "dcgm_exporter_l4_gpu_operator.prom"))
	be, err := NewExporterBackend(Config{ExporterURL: "http://127.0.0.1:9400/metrics"}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	eb := be.(*exporterBackend)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	now := t0
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		now = now.Add(5 * time.Second)
		r := newResult(1)
		if err := eb.apply(mfs, now, &r); err != nil || len(r.GPUs) != 1 {
			b.Fatalf("apply: %v", err)
		}
	}
}

// BenchmarkExporterScrape is a whole scrape of the L4 capture over HTTP on
// 127.0.0.1.
func BenchmarkExporterScrape(b *testing.B) {
	_, be := newScripted(b, readFixture(b, "dcgm_exporter_l4_gpu_operator.prom"), Config{})
	ctx := context.Background()
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(5 * time.Second)
		if _, err := be.Sample(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
}
