//go:build linux && cgo

package nvml

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/internal/sourcetest"
)

// simGPU drives one mock H200: the test sets the fields, the mock's
// functions read them.
type simGPU struct {
	dev       *server.Device
	mu        sync.Mutex
	energyMJ  uint64
	energyRet gonvml.Return
	powerMW   uint32
	powerRet  gonvml.Return
	limitMW   uint32
	util      uint32
	procs     []gonvml.ProcessInfo
	procUtil  []gonvml.ProcessUtilizationSample
	utilTS    []uint64 // lastSeenTimestamp arguments received
}

func (g *simGPU) set(fn func(g *simGPU)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fn(g)
}

// newSim returns a dgxh200 server (8 H200) whose energy, power, limit,
// utilisation, process and MIG functions read simGPU state. Every GPU
// starts at 1000 J, 100 W, 700 W limit, no process, MIG disabled.
func newSim(t testing.TB) (*server.Server, []*simGPU) {
	t.Helper()
	srv := dgxh200.New()
	sims := make([]*simGPU, len(srv.Devices))
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		g := &simGPU{dev: dev, energyMJ: 1_000_000, powerMW: 100_000, limitMW: 700_000}
		sims[i] = g
		dev.GetTotalEnergyConsumptionFunc = func() (uint64, gonvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.energyRet != gonvml.SUCCESS {
				return 0, g.energyRet
			}
			return g.energyMJ, gonvml.SUCCESS
		}
		dev.GetPowerUsageFunc = func() (uint32, gonvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.powerRet != gonvml.SUCCESS {
				return 0, g.powerRet
			}
			return g.powerMW, gonvml.SUCCESS
		}
		dev.GetEnforcedPowerLimitFunc = func() (uint32, gonvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.limitMW, gonvml.SUCCESS
		}
		dev.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return gonvml.Utilization{Gpu: g.util}, gonvml.SUCCESS
		}
		dev.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.procs, gonvml.SUCCESS
		}
		dev.GetProcessUtilizationFunc = func(ts uint64) ([]gonvml.ProcessUtilizationSample, gonvml.Return) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.utilTS = append(g.utilTS, ts)
			var out []gonvml.ProcessUtilizationSample
			for _, s := range g.procUtil {
				if s.TimeStamp > ts {
					out = append(out, s)
				}
			}
			if len(out) == 0 {
				return nil, gonvml.ERROR_NOT_FOUND
			}
			return out, gonvml.SUCCESS
		}
		dev.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) { return 7, gonvml.SUCCESS }
		dev.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_NOT_FOUND }
	}
	return srv, sims
}

func openSim(t testing.TB, srv *server.Server) Backend {
	t.Helper()
	b, err := NewNVMLBackend(srv, nil)
	if err != nil {
		t.Fatalf("NewNVMLBackend: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestNVMLFailedInitMakesNoOtherCall(t *testing.T) {
	for _, ret := range []gonvml.Return{gonvml.ERROR_LIBRARY_NOT_FOUND, gonvml.ERROR_DRIVER_NOT_LOADED, gonvml.ERROR_NO_PERMISSION, gonvml.ERROR_UNKNOWN} {
		t.Run(ret.Error(), func(t *testing.T) {
			fail := func(name string) { t.Fatalf("%s called after a failed Init", name) }
			lib := &mock.Interface{
				InitFunc:     func() gonvml.Return { return ret },
				ShutdownFunc: func() gonvml.Return { fail("Shutdown"); return gonvml.SUCCESS },
				ExtensionsFunc: func() gonvml.ExtendedInterface {
					fail("Extensions")
					return nil
				},
				DeviceGetCountFunc:         func() (int, gonvml.Return) { fail("DeviceGetCount"); return 0, gonvml.SUCCESS },
				SystemGetDriverVersionFunc: func() (string, gonvml.Return) { fail("SystemGetDriverVersion"); return "", gonvml.SUCCESS },
				DeviceGetHandleByIndexFunc: func(int) (gonvml.Device, gonvml.Return) {
					fail("DeviceGetHandleByIndex")
					return nil, gonvml.SUCCESS
				},
				DeviceGetHandleByUUIDFunc: func(string) (gonvml.Device, gonvml.Return) {
					fail("DeviceGetHandleByUUID")
					return nil, gonvml.SUCCESS
				},
				ErrorStringFunc: func(gonvml.Return) string { fail("ErrorString"); return "" },
			}
			b, err := NewNVMLBackend(lib, nil)
			if b != nil || !errors.Is(err, gpu.ErrNoData) {
				t.Fatalf("NewNVMLBackend = %v, %v; want gpu.ErrNoData", b, err)
			}
			if !strings.Contains(err.Error(), "NVML init") {
				t.Fatalf("error %q does not say NVML init failed", err)
			}
			if n := len(lib.InitCalls()); n != 1 {
				t.Fatalf("Init called %d times", n)
			}
		})
	}
}

func TestNVMLNoDevice(t *testing.T) {
	srv := dgxh200.NewWithGPUs()
	b, err := NewNVMLBackend(srv, nil)
	if b != nil || !errors.Is(err, gpu.ErrNoData) {
		t.Fatalf("NewNVMLBackend(no GPU) = %v, %v; want gpu.ErrNoData", b, err)
	}
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Fatalf("Shutdown called %d times after a successful Init, want 1", n)
	}
}

func TestNVMLEnergyAdvance(t *testing.T) {
	srv, sims := newSim(t)
	b := openSim(t, srv)
	r := mustSample(t, b, t0)
	wantNoErrors(t, r)
	if len(r.GPUs) != 8 {
		t.Fatalf("%d GPUs, want 8", len(r.GPUs))
	}
	for i, g := range r.GPUs {
		if g.Index != i || g.UUID != sims[i].dev.UUID || g.Model != "NVIDIA H200 141GB HBM3e" || g.Driver != "550.54.15" {
			t.Fatalf("GPU %d identity %+v", i, g.GPU)
		}
		if g.Joules != 0 || !g.OK || g.Source != gpu.SourceNVML || g.Method != gpu.MethodEnergyCounter ||
			g.PowerWatts != 100 || g.PowerLimitWatts != 700 || g.MIGMode != gpu.MIGModeDisabled {
			t.Fatalf("GPU %d first sample %+v", i, g)
		}
	}
	var want [8]uint64
	for step := 1; step <= 3; step++ {
		for i, g := range sims {
			d := uint64(step*123_457 + i*1_001) // mJ, well under 1400 W × 5 s
			want[i] += d
			g.set(func(g *simGPU) { g.energyMJ += d })
		}
		r = mustSample(t, b, t0.Add(time.Duration(step)*5*time.Second))
		wantNoErrors(t, r)
		for i, g := range r.GPUs {
			if w := float64(want[i]) / 1000; g.Joules != w {
				t.Fatalf("step %d GPU %d: %v J, want exactly %v", step, i, g.Joules, w)
			}
		}
	}
}

func TestNVMLDriverReload(t *testing.T) {
	srv, sims := newSim(t)
	b := openSim(t, srv)
	g := sims[2]
	steps := []struct {
		counter    uint64
		wantJ      float64
		wantResets uint64
	}{
		{1_000_000, 0, 0},
		{1_500_000, 500, 0},
		{200_000, 700, 1}, // reload: the counter restarted at 0, 200 J since then
		{260_000, 760, 0},
	}
	for i, s := range steps {
		g.set(func(g *simGPU) { g.energyMJ = s.counter })
		r := mustSample(t, b, t0.Add(time.Duration(i)*5*time.Second))
		if got := r.GPUs[2].Joules; got != s.wantJ {
			t.Fatalf("step %d: %v J, want %v", i, got, s.wantJ)
		}
		if r.Errors[gpu.ReasonCounterReset] != s.wantResets {
			t.Fatalf("step %d: errors %v", i, r.Errors)
		}
		if r.GPUs[0].Joules != 0 {
			t.Fatalf("step %d: untouched GPU 0 has %v J", i, r.GPUs[0].Joules)
		}
	}
}

func TestNVMLImplausibleDelta(t *testing.T) {
	srv, sims := newSim(t)
	b := openSim(t, srv)
	mustSample(t, b, t0)
	// 1 GJ in 5 s is far above 2 × 700 W.
	sims[1].set(func(g *simGPU) { g.energyMJ += 1_000_000_000_000 })
	r := mustSample(t, b, t0.Add(5*time.Second))
	if r.Errors[gpu.ReasonImplausibleDelta] != 1 || r.GPUs[1].Joules != 0 || !r.GPUs[1].OK {
		t.Fatalf("implausible step: errors %v, GPU %+v", r.Errors, r.GPUs[1])
	}
	sims[1].set(func(g *simGPU) { g.energyMJ += 3_000_000 })
	r = mustSample(t, b, t0.Add(10*time.Second))
	wantNoErrors(t, r)
	if r.GPUs[1].Joules != 3000 {
		t.Fatalf("after rebase: %v J, want 3000", r.GPUs[1].Joules)
	}
}

func TestNVMLPowerIntegration(t *testing.T) {
	srv, sims := newSim(t)
	g := sims[0]
	g.set(func(g *simGPU) { g.energyRet = gonvml.ERROR_NOT_SUPPORTED; g.powerMW = 300_000 })
	b := openSim(t, srv)
	steps := []struct {
		at    time.Duration
		mW    uint32
		wantJ float64
	}{
		{0, 300_000, 0},
		{2 * time.Second, 500_000, 800},                        // (300+500)/2 × 2
		{5 * time.Second, 500_000, 2300},                       // + 500 × 3
		{6500 * time.Millisecond, 250_500, 2862.875},           // + (500+250.5)/2 × 1.5
		{8500 * time.Millisecond, 250_501, 2862.875 + 501.001}, // + (250.5+250.501)/2 × 2
	}
	for i, s := range steps {
		g.set(func(g *simGPU) { g.powerMW = s.mW })
		r := mustSample(t, b, t0.Add(s.at))
		wantNoErrors(t, r)
		got := r.GPUs[0]
		if got.Source != gpu.SourceNVMLPower || got.Method != gpu.MethodPowerIntegration || !got.OK {
			t.Fatalf("step %d: source %q method %q ok %v", i, got.Source, got.Method, got.OK)
		}
		if got.Joules != s.wantJ {
			t.Fatalf("step %d: %v J, want exactly %v", i, got.Joules, s.wantJ)
		}
		if got.PowerWatts != float64(s.mW)/1000 {
			t.Fatalf("step %d: %v W", i, got.PowerWatts)
		}
		if r.GPUs[1].Source != gpu.SourceNVML {
			t.Fatalf("GPU 1 source %q", r.GPUs[1].Source)
		}
	}
	if n := len(g.dev.GetTotalEnergyConsumptionCalls()); n != 1 {
		t.Fatalf("unsupported energy counter read %d times, want once", n)
	}
}

func TestNVMLMIG(t *testing.T) {
	srv, sims := newSim(t)
	g := sims[0]
	if ret, _ := g.dev.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		t.Fatal(ret)
	}
	// Instances in slot order 0..2, GI ids deliberately unsorted.
	gis := []int{5, 1, 3}
	profiles := []string{"1g.18gb", "3g.71gb", "2g.35gb"}
	migs := make([]*mock.Device, len(gis))
	for i := range gis {
		gi, prof := gis[i], profiles[i]
		migs[i] = &mock.Device{
			GetGpuInstanceIdFunc:     func() (int, gonvml.Return) { return gi, gonvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, gonvml.Return) { return 0, gonvml.SUCCESS },
			GetUUIDFunc:              func() (string, gonvml.Return) { return fmt.Sprintf("MIG-%d", gi), gonvml.SUCCESS },
			GetNameFunc:              func() (string, gonvml.Return) { return "NVIDIA H200 141GB HBM3e MIG " + prof, gonvml.SUCCESS },
			GetTotalEnergyConsumptionFunc: func() (uint64, gonvml.Return) {
				t.Error("energy read on a MIG handle")
				return 0, gonvml.ERROR_NOT_SUPPORTED
			},
		}
	}
	g.dev.GetMigDeviceHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
		if i < len(migs) {
			return migs[i], gonvml.SUCCESS
		}
		return nil, gonvml.ERROR_NOT_FOUND
	}
	g.dev.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
		t.Error("device utilisation read on a MIG-enabled GPU")
		return gonvml.Utilization{}, gonvml.ERROR_NOT_SUPPORTED
	}
	g.set(func(g *simGPU) {
		g.procs = []gonvml.ProcessInfo{
			{Pid: 4242, UsedGpuMemory: 1 << 30, GpuInstanceId: 3, ComputeInstanceId: 0},
			{Pid: 4343, UsedGpuMemory: 2 << 30, GpuInstanceId: 5, ComputeInstanceId: 0},
		}
	})
	b := openSim(t, srv)
	r := mustSample(t, b, t0)
	wantNoErrors(t, r)
	got := r.GPUs[0]
	wantMIG := []MIGInstance{
		{GPUInstanceID: 1, ComputeInstanceID: 0, UUID: "MIG-1", Profile: "3g.71gb"},
		{GPUInstanceID: 3, ComputeInstanceID: 0, UUID: "MIG-3", Profile: "2g.35gb"},
		{GPUInstanceID: 5, ComputeInstanceID: 0, UUID: "MIG-5", Profile: "1g.18gb"},
	}
	if got.MIGMode != gpu.MIGModeEnabled || fmt.Sprint(got.MIG) != fmt.Sprint(wantMIG) {
		t.Fatalf("MIG %q %+v, want enabled %+v", got.MIGMode, got.MIG, wantMIG)
	}
	if got.SMUtil != -1 {
		t.Fatalf("SMUtil %v on MIG GPU, want -1", got.SMUtil)
	}
	if got.MIGSlices != 7 {
		t.Fatalf("MIGSlices %d on an H200, want 7 (from the driver's GPU instance profiles)", got.MIGSlices)
	}
	if len(got.Processes) != 2 || got.Processes[0].MIGGPUInstanceID != 3 || got.Processes[1].MIGGPUInstanceID != 5 {
		t.Fatalf("processes %+v", got.Processes)
	}
	if r.GPUs[1].MIGMode != gpu.MIGModeDisabled || r.GPUs[1].MIG != nil {
		t.Fatalf("GPU 1 MIG %q %+v", r.GPUs[1].MIGMode, r.GPUs[1].MIG)
	}

	for _, s := range sims {
		s.set(func(g *simGPU) { g.energyMJ += 2_500_000 })
	}
	r = mustSample(t, b, t0.Add(5*time.Second))
	wantNoErrors(t, r)
	var sum float64
	for _, s := range r.GPUs {
		sum += s.Joules
	}
	// 8 physical GPUs × 2500 J: the 3 instances add nothing.
	if r.GPUs[0].Joules != 2500 || sum != 8*2500 {
		t.Fatalf("MIG GPU %v J, node %v J; want 2500 and 20000", r.GPUs[0].Joules, sum)
	}
	for _, s := range r.GPUs {
		if s.Delta != 2_500_000 {
			t.Fatalf("GPU %d: delta %d mJ, want 2500000", s.Index, s.Delta)
		}
	}
	for i, m := range migs {
		if n := len(m.GetTotalEnergyConsumptionCalls()); n != 0 {
			t.Fatalf("MIG handle %d energy read %d times", i, n)
		}
	}
}

// TestNVMLMIGSlicesFromProfiles: the slice count is the largest GPU
// instance profile the driver offers: 4 on an A30, 7 on an A100, H100,
// H200 or B200 (none offers the 8-slice profile).
func TestNVMLMIGSlicesFromProfiles(t *testing.T) {
	for _, c := range []struct {
		model string
		max   int // largest supported GPU_INSTANCE_PROFILE_<n>_SLICE
	}{{"NVIDIA A30", 4}, {"NVIDIA A100-SXM4-80GB", 7}, {"NVIDIA H100 80GB HBM3", 7}, {"NVIDIA H200", 7}, {"NVIDIA B200", 7}} {
		t.Run(c.model, func(t *testing.T) {
			srv, sims := newSim(t)
			g := sims[0]
			if ret, _ := g.dev.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
				t.Fatal(ret)
			}
			slices := map[int]uint32{gonvml.GPU_INSTANCE_PROFILE_1_SLICE: 1, gonvml.GPU_INSTANCE_PROFILE_2_SLICE: 2,
				gonvml.GPU_INSTANCE_PROFILE_3_SLICE: 3, gonvml.GPU_INSTANCE_PROFILE_4_SLICE: 4, gonvml.GPU_INSTANCE_PROFILE_7_SLICE: 7}
			g.dev.GetGpuInstanceProfileInfoFunc = func(p int) (gonvml.GpuInstanceProfileInfo, gonvml.Return) {
				n, ok := slices[p]
				if !ok || int(n) > c.max {
					return gonvml.GpuInstanceProfileInfo{}, gonvml.ERROR_NOT_SUPPORTED
				}
				return gonvml.GpuInstanceProfileInfo{Id: uint32(p), SliceCount: n}, gonvml.SUCCESS
			}
			g.dev.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, gonvml.ERROR_NOT_FOUND }
			g.dev.GetNameFunc = func() (string, gonvml.Return) { return c.model, gonvml.SUCCESS }
			r := mustSample(t, openSim(t, srv), t0)
			if got := r.GPUs[0]; got.MIGMode != gpu.MIGModeEnabled || got.MIGSlices != c.max {
				t.Fatalf("MIG %s, %d slices; want enabled, %d", got.MIGMode, got.MIGSlices, c.max)
			}
		})
	}
}

func TestNVMLGPULost(t *testing.T) {
	srv, sims := newSim(t)
	b := openSim(t, srv)
	mustSample(t, b, t0)
	for _, s := range sims {
		s.set(func(g *simGPU) { g.energyMJ += 1_000_000 })
	}
	mustSample(t, b, t0.Add(5*time.Second))

	sims[3].set(func(g *simGPU) { g.energyRet = gonvml.ERROR_GPU_IS_LOST })
	for _, s := range sims {
		s.set(func(g *simGPU) { g.energyMJ += 1_000_000 })
	}
	for i := 2; i <= 3; i++ {
		r := mustSample(t, b, t0.Add(time.Duration(i)*5*time.Second))
		if r.Errors[gpu.ReasonGPULost] != 1 || len(r.Errors) != 1 {
			t.Fatalf("sample %d: errors %v, want gpu_lost=1", i, r.Errors)
		}
		lost := r.GPUs[3]
		if lost.OK || lost.Joules != 1000 || lost.UUID != sims[3].dev.UUID || lost.Index != 3 {
			t.Fatalf("sample %d: lost GPU %+v, want OK=false with 1000 J kept", i, lost)
		}
		if !r.GPUs[4].OK || r.GPUs[4].Joules != 2000 {
			t.Fatalf("sample %d: GPU 4 %+v", i, r.GPUs[4])
		}
	}
	// The handle is obtained again by UUID.
	if n := len(srv.DeviceGetHandleByUUIDCalls()); n == 0 {
		t.Fatal("lost GPU never looked up again by UUID")
	}

	// Back after a reset: the counter restarted from zero.
	sims[3].set(func(g *simGPU) { g.energyRet = gonvml.SUCCESS; g.energyMJ = 40_000 })
	r := mustSample(t, b, t0.Add(20*time.Second))
	if r.Errors[gpu.ReasonCounterReset] != 1 || r.Errors[gpu.ReasonGPULost] != 0 {
		t.Fatalf("recovery errors %v", r.Errors)
	}
	if g := r.GPUs[3]; !g.OK || g.Joules != 1040 {
		t.Fatalf("recovered GPU %+v, want OK with 1040 J", g)
	}

	// Every GPU lost: Sample fails but still reports the totals.
	for _, s := range sims {
		s.set(func(g *simGPU) { g.energyRet = gonvml.ERROR_GPU_IS_LOST })
	}
	r, err := b.Sample(context.Background(), t0.Add(25*time.Second))
	if err == nil || r.Errors[gpu.ReasonGPULost] != 8 || len(r.GPUs) != 8 || r.GPUs[0].Joules != 2000 {
		t.Fatalf("all lost: err %v, errors %v, GPUs %d", err, r.Errors, len(r.GPUs))
	}
}

func TestNVMLProcesses(t *testing.T) {
	srv, sims := newSim(t)
	g := sims[0]
	g.set(func(g *simGPU) {
		g.util = 77
		g.procs = []gonvml.ProcessInfo{
			{Pid: 100, UsedGpuMemory: 1 << 30, GpuInstanceId: math.MaxUint32, ComputeInstanceId: math.MaxUint32},
			{Pid: 200, UsedGpuMemory: math.MaxUint64, GpuInstanceId: math.MaxUint32, ComputeInstanceId: math.MaxUint32},
			{Pid: 300, UsedGpuMemory: 4096, GpuInstanceId: math.MaxUint32, ComputeInstanceId: math.MaxUint32},
		}
		g.procUtil = []gonvml.ProcessUtilizationSample{
			{Pid: 100, TimeStamp: 1_000, SmUtil: 40},
			{Pid: 100, TimeStamp: 2_000, SmUtil: 60},
			{Pid: 200, TimeStamp: 1_500, SmUtil: 10},
			{Pid: 999, TimeStamp: 1_700, SmUtil: 90}, // exited, not listed
		}
	})
	b := openSim(t, srv)
	r := mustSample(t, b, t0)
	wantNoErrors(t, r)
	got := r.GPUs[0]
	want := []Process{
		{PID: 100, UsedMemoryBytes: 1 << 30, SMUtil: 50, MIGGPUInstanceID: -1},
		{PID: 200, UsedMemoryBytes: 0, SMUtil: 10, MIGGPUInstanceID: -1},
		{PID: 300, UsedMemoryBytes: 4096, SMUtil: -1, MIGGPUInstanceID: -1},
	}
	if got.SMUtil != 77 || fmt.Sprint(got.Processes) != fmt.Sprint(want) {
		t.Fatalf("util %v processes %+v, want 77 %+v", got.SMUtil, got.Processes, want)
	}
	if r.GPUs[1].Processes != nil || r.GPUs[1].SMUtil != 0 {
		t.Fatalf("GPU 1: %+v", r.GPUs[1])
	}
	// No new sample: every process unknown; the last timestamp is passed on.
	r = mustSample(t, b, t0.Add(5*time.Second))
	for _, p := range r.GPUs[0].Processes {
		if p.SMUtil != -1 {
			t.Fatalf("stale utilisation %+v", p)
		}
	}
	g.set(func(g *simGPU) {
		g.procUtil = append(g.procUtil, gonvml.ProcessUtilizationSample{Pid: 300, TimeStamp: 3_000, SmUtil: 25})
	})
	r = mustSample(t, b, t0.Add(10*time.Second))
	if p := r.GPUs[0].Processes; p[0].SMUtil != -1 || p[2].SMUtil != 25 {
		t.Fatalf("third sample processes %+v", p)
	}
	g.set(func(g *simGPU) {
		if fmt.Sprint(g.utilTS) != "[0 2000 2000]" {
			t.Errorf("lastSeenTimestamp arguments %v, want [0 2000 2000]", g.utilTS)
		}
	})
}

func TestNVMLMissingSymbols(t *testing.T) {
	srv, sims := newSim(t)
	missing := map[string]bool{
		"nvmlDeviceGetTotalEnergyConsumption": true,
		"nvmlDeviceGetProcessUtilization":     true,
		"nvmlDeviceGetMigMode":                true,
		"nvmlDeviceGetMaxMigDeviceCount":      true,
	}
	srv.LookupSymbolFunc = func(s string) error {
		if missing[s] {
			return fmt.Errorf("%s: undefined symbol", s)
		}
		return nil
	}
	for _, s := range sims {
		d := s.dev
		d.GetTotalEnergyConsumptionFunc = func() (uint64, gonvml.Return) {
			t.Error("missing symbol GetTotalEnergyConsumption called")
			return 0, gonvml.ERROR_FUNCTION_NOT_FOUND
		}
		d.GetProcessUtilizationFunc = func(uint64) ([]gonvml.ProcessUtilizationSample, gonvml.Return) {
			t.Error("missing symbol GetProcessUtilization called")
			return nil, gonvml.ERROR_FUNCTION_NOT_FOUND
		}
		d.GetMigModeFunc = func() (int, int, gonvml.Return) {
			t.Error("missing symbol GetMigMode called")
			return 0, 0, gonvml.ERROR_FUNCTION_NOT_FOUND
		}
		s.set(func(g *simGPU) { g.procs = []gonvml.ProcessInfo{{Pid: 1, GpuInstanceId: math.MaxUint32}} })
	}
	b := openSim(t, srv)
	mustSample(t, b, t0)
	r := mustSample(t, b, t0.Add(time.Second))
	wantNoErrors(t, r)
	for _, g := range r.GPUs {
		if g.Source != gpu.SourceNVMLPower || g.Joules != 100 || g.MIGMode != gpu.MIGModeUnsupported ||
			len(g.Processes) != 1 || g.Processes[0].SMUtil != -1 {
			t.Fatalf("degraded GPU %+v", g)
		}
	}
}

func TestNVMLFunctionNotFoundAtRuntime(t *testing.T) {
	srv, sims := newSim(t)
	calls := 0
	for _, s := range sims {
		s.dev.GetProcessUtilizationFunc = func(uint64) ([]gonvml.ProcessUtilizationSample, gonvml.Return) {
			calls++
			return nil, gonvml.ERROR_FUNCTION_NOT_FOUND
		}
		s.set(func(g *simGPU) { g.procs = []gonvml.ProcessInfo{{Pid: 1, GpuInstanceId: math.MaxUint32}} })
	}
	b := openSim(t, srv)
	for i := range 3 {
		wantNoErrors(t, mustSample(t, b, t0.Add(time.Duration(i)*time.Second)))
	}
	if calls != 1 {
		t.Fatalf("GetProcessUtilization called %d times after FUNCTION_NOT_FOUND, want 1", calls)
	}
}

func TestNVMLSampleReturnsOnCancel(t *testing.T) {
	srv, sims := newSim(t)
	b := openSim(t, srv)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sims[5].dev.GetTotalEnergyConsumptionFunc = func() (uint64, gonvml.Return) {
		once.Do(func() { close(entered) })
		<-release // a hung driver call
		return 1_000_000, gonvml.SUCCESS
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Sample(ctx, t0)
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sample after cancel: %v", err)
	}
	// A deadline: counted as a timeout. The hung call still holds the
	// backend, so this one gives up waiting for it.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	r, err := b.Sample(dctx, t0)
	if !errors.Is(err, context.DeadlineExceeded) || r.Errors[gpu.ReasonTimeout] != 1 {
		t.Fatalf("Sample with deadline: %v %v", err, r.Errors)
	}
	close(release)
	// The abandoned sample finishes; the backend works again.
	r = mustSample(t, b, t0.Add(time.Second))
	if len(r.GPUs) != 8 {
		t.Fatalf("%d GPUs after recovery", len(r.GPUs))
	}
}

func TestNVMLClose(t *testing.T) {
	srv, _ := newSim(t)
	b, err := NewNVMLBackend(srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != gpu.NameNVML {
		t.Fatalf("Name() = %q", b.Name())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Fatalf("Shutdown called %d times", n)
	}
	if _, err := b.Sample(context.Background(), t0); !errors.Is(err, gpu.ErrClosed) {
		t.Fatalf("Sample after Close: %v", err)
	}
}

// t0 is the fake clock's start.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

var (
	mustSample   = sourcetest.MustSample
	wantNoErrors = sourcetest.WantNoErrors
)

// TestNVMLPicksUpAGPUThatAppears: a GPU that NVML reports after start is
// read within Rediscover samples, counting from its first read.
func TestNVMLPicksUpAGPUThatAppears(t *testing.T) {
	srv, sims := newSim(t)
	late := srv.Devices[7]
	srv.Devices = srv.Devices[:7]
	b := openSim(t, srv)
	if r := mustSample(t, b, t0); len(r.GPUs) != 7 {
		t.Fatalf("%d GPUs at start, want 7", len(r.GPUs))
	}
	srv.Devices = append(srv.Devices, late)
	var r Result
	for n := 1; n <= Rediscover; n++ {
		if r = mustSample(t, b, t0.Add(time.Duration(n)*time.Second)); len(r.GPUs) == 8 {
			break
		}
	}
	if len(r.GPUs) != 8 || r.GPUs[7].Index != 7 || !r.GPUs[7].OK {
		t.Fatalf("the new GPU is not read within %d samples: %+v", Rediscover, r.GPUs)
	}
	sims[7].set(func(g *simGPU) { g.energyMJ += 123_456 })
	r = mustSample(t, b, t0.Add(time.Duration(Rediscover+1)*time.Second))
	if r.GPUs[7].Delta != 123_456 {
		t.Fatalf("new GPU delta %d mJ, want 123456", r.GPUs[7].Delta)
	}
}
