package agent

import (
	"math"
	"testing"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/workload"
)

// TestMIGSlicesComeFromTheBackend: the slice count a MIG GPU is split by is
// data from the GPU backend (gpu.GPUSample.MIGSlices), not a constant: one
// 1-slice instance in use gets 1/4 of an A30's energy and 1/7 of an A100's,
// H100's, H200's or B200's; the free slices stay node idle.
func TestMIGSlicesComeFromTheBackend(t *testing.T) {
	key := attribution.Key{Project: "chat", ModelID: "llama", WorkloadType: "inference"}
	for _, c := range []struct {
		model, profile string
		slices         int
	}{
		{"NVIDIA A30", "1g.6gb", 4},
		{"NVIDIA A100-SXM4-80GB", "1g.10gb", 7},
		{"NVIDIA H100 80GB HBM3", "1g.10gb", 7},
		{"NVIDIA H200", "1g.18gb", 7},
		{"NVIDIA B200", "1g.23gb", 7},
	} {
		t.Run(c.model, func(t *testing.T) {
			// What a backend reports: the dcgm-exporter backend from the model,
			// NVML from the driver's profiles (tested in their packages).
			slices := gpu.SlicesOf(c.model)
			if slices != c.slices {
				t.Fatalf("SlicesOf(%q) = %d, want %d", c.model, slices, c.slices)
			}
			s := gpu.GPUSample{
				GPU: gpu.GPU{UUID: "GPU-mig", Model: c.model, MIGMode: gpu.MIGModeEnabled, MIGSlices: slices,
					MIG: []gpu.MIGInstance{{GPUInstanceID: 1, Profile: c.profile}}},
				SMUtil:    -1,
				Processes: []gpu.Process{{PID: 100, SMUtil: -1, MIGGPUInstanceID: 1}},
			}
			owners := workload.NewResolver(nil, nil).Owners([]workload.Process{{PID: 100, Info: &workload.ProcessInfo{}}}, []attribution.Key{key})
			w := &workloadSource{owners: owners, attributor: attribution.Attributor{Policy: attribution.Policy{Idle: attribution.IdleNode}}}
			const joules = 700.0
			res := w.attributor.Attribute(w.gpuDevices([]gpuTick{{sample: s, joules: joules}}, nil))
			if len(res) != 1 || len(res[0].Workloads) != 1 {
				t.Fatalf("results %+v", res)
			}
			want := joules / float64(c.slices)
			if got := res[0].Workloads[0].Joules; math.Abs(got-want) > 1e-9 || res[0].Workloads[0].Key != key {
				t.Fatalf("instance got %v J, want %v J (1 of %d slices)", got, want, c.slices)
			}
			if math.Abs(res[0].Idle-(joules-want)) > 1e-9 {
				t.Fatalf("idle %v J, want %v J", res[0].Idle, joules-want)
			}
		})
	}
}
