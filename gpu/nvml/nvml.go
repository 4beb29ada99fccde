//go:build linux && cgo

package nvml

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/internal/gpukit"
	"github.com/inferensys/aiwatt/source"
)

// nvmlMinWindow is the shortest window the plausibility ceiling is applied
// over, so two samples a few milliseconds apart are not rejected for the
// counter's millijoule granularity or for a clock step.
const nvmlMinWindow = time.Second

// closeWait bounds how long Close waits for a running sample.
const closeWait = 5 * time.Second

// notAvailable is NVML_VALUE_NOT_AVAILABLE for 64-bit values, and for the
// 32-bit GPU instance id of a process outside MIG.
const (
	notAvailable64 = ^uint64(0)
	notAvailable32 = ^uint32(0)
)

// nvmlFunc names an optional NVML entry point that old drivers may lack.
type nvmlFunc int

const (
	fnEnergy nvmlFunc = iota
	fnPower
	fnLimit
	fnUtil
	fnProcs
	fnProcUtil
	fnMIGMode
	fnMIGList
	nvmlFuncCount
)

// nvmlSymbols lists, per optional function, the library symbols of which at
// least one must exist. Calling a missing symbol through go-nvml's lazy
// binding would abort the process, so each is looked up once after Init.
var nvmlSymbols = [nvmlFuncCount][]string{
	fnEnergy:   {"nvmlDeviceGetTotalEnergyConsumption"},
	fnPower:    {"nvmlDeviceGetPowerUsage"},
	fnLimit:    {"nvmlDeviceGetEnforcedPowerLimit"},
	fnUtil:     {"nvmlDeviceGetUtilizationRates"},
	fnProcs:    {"nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2", "nvmlDeviceGetComputeRunningProcesses"},
	fnProcUtil: {"nvmlDeviceGetProcessUtilization"},
	fnMIGMode:  {"nvmlDeviceGetMigMode"},
	fnMIGList:  {"nvmlDeviceGetMaxMigDeviceCount"},
}

// nvmlMIGListSymbols must all exist for MIG instances to be listed.
var nvmlMIGListSymbols = []string{
	"nvmlDeviceGetMaxMigDeviceCount",
	"nvmlDeviceGetMigDeviceHandleByIndex",
	"nvmlDeviceGetGpuInstanceId",
	"nvmlDeviceGetComputeInstanceId",
}

var nvmlFuncNames = [nvmlFuncCount]string{
	fnEnergy: "GetTotalEnergyConsumption", fnPower: "GetPowerUsage", fnLimit: "GetEnforcedPowerLimit",
	fnUtil: "GetUtilizationRates", fnProcs: "GetComputeRunningProcesses", fnProcUtil: "GetProcessUtilization",
	fnMIGMode: "GetMigMode", fnMIGList: "GetMigDeviceHandleByIndex",
}

type energyMode int

const (
	modeCounter energyMode = iota
	modePower
)

// nvmlGPU is the state kept for one physical GPU.
type nvmlGPU struct {
	index   int
	dev     gonvml.Device // nil until a handle is obtained (again)
	info    GPU
	mode    energyMode
	counter gpukit.CounterAcc
	power   gpukit.PowerAcc
	procTS  uint64 // last GetProcessUtilization timestamp seen
	powerW  float64
	limitW  float64
	lost    bool
	// reported is the total millijoules already handed out as deltas.
	reported uint64
	logged   [nvmlFuncCount]bool // "not supported" already logged
	// warnedNoEnergy: "neither counter nor power" already logged.
	warnedNoEnergy bool
}

func (g *nvmlGPU) energyMJ() uint64 { return g.counter.TotalMJ + g.power.TotalMJ }

// take returns the energy accepted since the previous take, as the delta
// of this sample.
func (g *nvmlGPU) take() source.Millijoules {
	t := g.energyMJ()
	d := t - g.reported
	g.reported = t
	return source.Millijoules(d)
}

func (g *nvmlGPU) source() (source, method string) {
	if g.mode == modePower {
		return gpu.SourceNVMLPower, gpu.MethodPowerIntegration
	}
	return gpu.SourceNVML, gpu.MethodEnergyCounter
}

// nvmlBackend reads GPUs through NVML in process.
type nvmlBackend struct {
	lib    gonvml.Interface
	logger *slog.Logger
	mu     gpukit.Lock
	closed bool
	driver string
	has    [nvmlFuncCount]bool
	gpus   []*nvmlGPU
	// sinceCount counts samples since the last device count.
	sinceCount int
}

var _ Backend = (*nvmlBackend)(nil)

// Open initialises the real NVML library (libnvidia-ml.so.1) and returns
// its backend, or an error wrapping gpu.ErrNoData when there is no GPU to
// read.
func Open(logger *slog.Logger) (Backend, error) {
	return NewNVMLBackend(gonvml.New(), logger)
}

// NewNVMLBackend initialises NVML through lib (the real library from
// gonvml.New, or a go-nvml mock) and enumerates the GPUs. It calls Init once;
// when Init fails it makes no further NVML call and returns an error
// wrapping gpu.ErrNoData, as it does when there is no GPU. A nil logger
// discards logs.
func NewNVMLBackend(lib gonvml.Interface, logger *slog.Logger) (Backend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if lib == nil {
		return nil, fmt.Errorf("%w: no NVML library", gpu.ErrNoData)
	}
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("%w: NVML init: %s", gpu.ErrNoData, initHint(ret))
	}
	b := &nvmlBackend{lib: lib, logger: logger, mu: gpukit.NewLock()}
	n, ret := lib.DeviceGetCount()
	if ret != gonvml.SUCCESS || n <= 0 {
		lib.Shutdown()
		if ret != gonvml.SUCCESS {
			return nil, fmt.Errorf("%w: NVML device count: %s", gpu.ErrNoData, ret.Error())
		}
		return nil, fmt.Errorf("%w: NVML reports no device", gpu.ErrNoData)
	}
	b.lookupSymbols()
	if v, ret := lib.SystemGetDriverVersion(); ret == gonvml.SUCCESS {
		b.driver = v
	} else {
		logger.Warn("NVML driver version unavailable", "err", ret.Error())
	}
	b.addGPUs(n)
	logger.Info("NVML backend ready", "gpus", n, "driver", b.driver)
	return b, nil
}

// addGPUs adds the GPUs with indices len(b.gpus)..n-1.
func (b *nvmlBackend) addGPUs(n int) {
	for i := len(b.gpus); i < n; i++ {
		g := &nvmlGPU{index: i, info: GPU{Index: i, Driver: b.driver, MIGMode: gpu.MIGModeUnsupported}}
		if !b.has[fnEnergy] {
			g.mode = modePower
		}
		if ret := b.attach(g); ret != gonvml.SUCCESS {
			b.logger.Warn("NVML GPU handle unavailable", "gpu", i, "err", ret.Error())
		}
		b.gpus = append(b.gpus, g)
	}
}

// Rediscover is how many samples apart the backend asks NVML for its device
// count, to pick up GPUs that appeared after start (one cheap call). GPUs
// that vanish are handled as lost, with their totals kept.
const Rediscover = 12

// rediscover adds the GPUs NVML reports beyond those known, every
// Rediscover samples.
func (b *nvmlBackend) rediscover() {
	if b.sinceCount++; b.sinceCount < Rediscover {
		return
	}
	b.sinceCount = 0
	if n, ret := b.lib.DeviceGetCount(); ret == gonvml.SUCCESS && n > len(b.gpus) {
		b.logger.Info("NVML reports more GPUs than at start", "was", len(b.gpus), "now", n)
		b.addGPUs(n)
	}
}

// initHint explains a failed nvmlInit.
func initHint(ret gonvml.Return) string {
	switch ret {
	case gonvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so.1 not found (no NVIDIA driver on this node, or not mounted into the container)"
	case gonvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA kernel driver not loaded"
	case gonvml.ERROR_NO_PERMISSION:
		return "no permission to the NVIDIA device files"
	case gonvml.ERROR_LIB_RM_VERSION_MISMATCH:
		return "NVML library and kernel driver versions differ (driver upgraded without reboot?)"
	default:
		return ret.Error()
	}
}

// lookupSymbols records which optional entry points the library has.
func (b *nvmlBackend) lookupSymbols() {
	ext := b.lib.Extensions()
	found := func(sym string) bool { return ext == nil || ext.LookupSymbol(sym) == nil }
	for fn, syms := range nvmlSymbols {
		for _, s := range syms {
			if found(s) {
				b.has[fn] = true
				break
			}
		}
		if !b.has[fn] {
			b.logger.Info("NVML function not in this driver, degrading", "function", nvmlFuncNames[fn])
		}
	}
	if b.has[fnMIGList] {
		for _, s := range nvmlMIGListSymbols {
			if !found(s) {
				b.has[fnMIGList] = false
			}
		}
	}
}

// attach gets the device handle (by UUID once known, so a re-enumeration
// never swaps GPUs) and the static identity.
func (b *nvmlBackend) attach(g *nvmlGPU) gonvml.Return {
	var (
		dev gonvml.Device
		ret gonvml.Return
	)
	if g.info.UUID != "" {
		dev, ret = b.lib.DeviceGetHandleByUUID(g.info.UUID)
	} else {
		dev, ret = b.lib.DeviceGetHandleByIndex(g.index)
	}
	if ret != gonvml.SUCCESS {
		return ret
	}
	if dev == nil {
		return gonvml.ERROR_UNKNOWN
	}
	if g.info.UUID == "" {
		uuid, ret := dev.GetUUID()
		if ret != gonvml.SUCCESS {
			return ret
		}
		g.info.UUID = uuid
	}
	if g.info.Model == "" {
		if name, ret := dev.GetName(); ret == gonvml.SUCCESS {
			g.info.Model = name
		}
	}
	g.dev = dev
	return gonvml.SUCCESS
}

// Name returns "nvml".
func (b *nvmlBackend) Name() string { return gpu.NameNVML }

// Sample reads every GPU. NVML calls run in a goroutine so that Sample
// returns when ctx ends even if the driver hangs; state read by an
// abandoned call is kept and shows in the next sample.
func (b *nvmlBackend) Sample(ctx context.Context, now time.Time) (Result, error) {
	if err := b.mu.Acquire(ctx); err != nil {
		return gpukit.CtxResult(err), fmt.Errorf("nvml sample: %w", err)
	}
	if b.closed {
		b.mu.Release()
		return newResult(0), gpu.ErrClosed
	}
	type out struct {
		r   Result
		err error
	}
	ch := make(chan out, 1)
	go func() {
		defer b.mu.Release()
		r, err := b.sample(ctx, now)
		ch <- out{r, err}
	}()
	select {
	case o := <-ch:
		return o.r, o.err
	case <-ctx.Done():
		return gpukit.CtxResult(ctx.Err()), fmt.Errorf("nvml sample: %w", ctx.Err())
	}
}

func (b *nvmlBackend) sample(ctx context.Context, now time.Time) (Result, error) {
	b.rediscover()
	r := newResult(len(b.gpus))
	ok := 0
	for _, g := range b.gpus {
		if ctx.Err() != nil {
			return r, fmt.Errorf("nvml sample: %w", ctx.Err())
		}
		s := b.readGPU(g, now, r.Errors)
		if s.OK {
			ok++
		}
		r.GPUs = append(r.GPUs, s)
	}
	if ok == 0 {
		return r, fmt.Errorf("nvml sample: none of %d GPUs could be read", len(b.gpus))
	}
	return r, nil
}

// unsupported reports a return code meaning "this GPU or driver cannot do
// that", which is not an error.
func unsupported(ret gonvml.Return) bool {
	return ret == gonvml.ERROR_NOT_SUPPORTED || ret == gonvml.ERROR_NO_PERMISSION || ret == gonvml.ERROR_FUNCTION_NOT_FOUND
}

// degrade handles an unsupported return: a missing function is switched off
// for all GPUs, and each case is logged once per GPU.
func (b *nvmlBackend) degrade(g *nvmlGPU, fn nvmlFunc, ret gonvml.Return) {
	if ret == gonvml.ERROR_FUNCTION_NOT_FOUND {
		b.has[fn] = false
	}
	if !g.logged[fn] {
		g.logged[fn] = true
		b.logger.Info("NVML function unavailable on GPU", "gpu", g.index, "function", nvmlFuncNames[fn], "reason", ret.Error())
	}
}

// lose marks g lost: its total is kept, the next power reading starts a new
// trapezoid, and the handle is obtained again by UUID next time.
func (b *nvmlBackend) lose(g *nvmlGPU, s GPUSample, errs map[string]uint64, ret gonvml.Return) GPUSample {
	if !g.lost {
		b.logger.Warn("GPU lost, keeping its energy total", "gpu", g.index, "uuid", g.info.UUID, "err", ret.Error())
	}
	g.lost = true
	g.dev = nil
	g.power.Unprime()
	errs[gpu.ReasonGPULost]++
	s.OK = false
	s.Delta = g.take()
	return s
}

func (b *nvmlBackend) readGPU(g *nvmlGPU, now time.Time, errs map[string]uint64) GPUSample {
	s := GPUSample{GPU: g.info, SMUtil: -1, Joules: gpukit.Joules(g.energyMJ()), PowerWatts: g.powerW, PowerLimitWatts: g.limitW}
	s.Source, s.Method = g.source()
	if g.dev == nil {
		if ret := b.attach(g); ret != gonvml.SUCCESS {
			return b.lose(g, s, errs, ret)
		}
		s.GPU = g.info
	}
	dev := g.dev

	// Power limit first: it sets the plausibility ceiling.
	if b.has[fnLimit] {
		mw, ret := dev.GetEnforcedPowerLimit()
		switch {
		case ret == gonvml.SUCCESS:
			g.limitW = float64(mw) / 1000
		case ret == gonvml.ERROR_GPU_IS_LOST:
			return b.lose(g, s, errs, ret)
		case unsupported(ret):
			b.degrade(g, fnLimit, ret)
		default:
			errs[gpu.ReasonReadError]++
		}
	}
	ceiling := gpukit.CeilingWatts(g.limitW)

	energyOK := false
	if g.mode == modeCounter && b.has[fnEnergy] {
		mj, ret := dev.GetTotalEnergyConsumption()
		switch {
		case ret == gonvml.SUCCESS:
			reset, implausible := g.counter.Update(mj, now, ceiling, nvmlMinWindow)
			if reset {
				errs[gpu.ReasonCounterReset]++
				b.logger.Warn("GPU energy counter went backwards (driver reload or GPU reset)", "gpu", g.index, "uuid", g.info.UUID)
			}
			if implausible {
				errs[gpu.ReasonImplausibleDelta]++
				b.logger.Warn("implausible GPU energy step rejected", "gpu", g.index, "uuid", g.info.UUID, "ceiling_watts", ceiling)
			}
			energyOK = true
		case ret == gonvml.ERROR_GPU_IS_LOST:
			return b.lose(g, s, errs, ret)
		case unsupported(ret):
			b.degrade(g, fnEnergy, ret)
			g.mode = modePower
		default:
			errs[gpu.ReasonReadError]++
		}
	} else if g.mode == modeCounter {
		g.mode = modePower
	}
	s.Source, s.Method = g.source()

	if b.has[fnPower] {
		mw, ret := dev.GetPowerUsage()
		switch {
		case ret == gonvml.SUCCESS:
			if g.mode == modePower {
				if g.power.Update(uint64(mw), now, ceiling, gpukit.MaxPowerGap) {
					errs[gpu.ReasonImplausibleDelta]++
					b.logger.Warn("implausible GPU power reading rejected", "gpu", g.index, "uuid", g.info.UUID, "watts", float64(mw)/1000)
				} else {
					g.powerW = float64(mw) / 1000
					energyOK = true
				}
			} else if float64(mw) <= ceiling*1000 {
				g.powerW = float64(mw) / 1000
			}
		case ret == gonvml.ERROR_GPU_IS_LOST:
			return b.lose(g, s, errs, ret)
		case unsupported(ret):
			b.degrade(g, fnPower, ret)
		default:
			errs[gpu.ReasonReadError]++
		}
	}
	if g.mode == modePower && !b.has[fnPower] && !g.warnedNoEnergy {
		g.warnedNoEnergy = true
		b.logger.Warn("GPU has neither an energy counter nor power readings", "gpu", g.index, "uuid", g.info.UUID)
	}
	if g.lost && energyOK {
		g.lost = false
		b.logger.Info("GPU back", "gpu", g.index, "uuid", g.info.UUID)
	}

	b.readMIG(g, dev, errs)
	if b.has[fnUtil] && g.info.MIGMode != gpu.MIGModeEnabled {
		u, ret := dev.GetUtilizationRates()
		switch {
		case ret == gonvml.SUCCESS:
			s.SMUtil = gpukit.ClampUtil(float64(u.Gpu))
		case unsupported(ret):
			if ret == gonvml.ERROR_FUNCTION_NOT_FOUND {
				b.degrade(g, fnUtil, ret)
			}
		case ret == gonvml.ERROR_GPU_IS_LOST:
			return b.lose(g, s, errs, ret)
		default:
			errs[gpu.ReasonReadError]++
		}
	}
	s.Processes = b.readProcesses(g, dev, errs)

	s.GPU = g.info
	s.Joules = gpukit.Joules(g.energyMJ())
	s.Delta = g.take()
	s.PowerWatts = g.powerW
	s.PowerLimitWatts = g.limitW
	s.OK = energyOK
	return s
}

// readMIG refreshes the MIG mode and the instance list of g.
func (b *nvmlBackend) readMIG(g *nvmlGPU, dev gonvml.Device, errs map[string]uint64) {
	if !b.has[fnMIGMode] {
		g.info.MIGMode, g.info.MIG = gpu.MIGModeUnsupported, nil
		return
	}
	cur, _, ret := dev.GetMigMode()
	switch {
	case ret == gonvml.SUCCESS:
	case unsupported(ret):
		if ret == gonvml.ERROR_FUNCTION_NOT_FOUND {
			b.degrade(g, fnMIGMode, ret)
		}
		g.info.MIGMode, g.info.MIG = gpu.MIGModeUnsupported, nil
		return
	default:
		errs[gpu.ReasonReadError]++
		return // keep the previous view
	}
	if cur != gonvml.DEVICE_MIG_ENABLE {
		g.info.MIGMode, g.info.MIG = gpu.MIGModeDisabled, nil
		return
	}
	g.info.MIGMode = gpu.MIGModeEnabled
	if g.info.MIGSlices == 0 {
		g.info.MIGSlices = migSlices(dev, g.info.Model)
	}
	if !b.has[fnMIGList] {
		g.info.MIG = nil
		return
	}
	slots, ret := dev.GetMaxMigDeviceCount()
	if ret != gonvml.SUCCESS {
		if unsupported(ret) {
			b.degrade(g, fnMIGList, ret)
		} else {
			errs[gpu.ReasonReadError]++
		}
		return
	}
	var list []MIGInstance
	for i := 0; i < slots; i++ {
		m, ret := dev.GetMigDeviceHandleByIndex(i)
		if ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT {
			continue // empty slot
		}
		if ret != gonvml.SUCCESS || m == nil {
			errs[gpu.ReasonReadError]++
			continue
		}
		inst := MIGInstance{GPUInstanceID: -1, ComputeInstanceID: -1}
		if id, ret := m.GetGpuInstanceId(); ret == gonvml.SUCCESS {
			inst.GPUInstanceID = id
		}
		if id, ret := m.GetComputeInstanceId(); ret == gonvml.SUCCESS {
			inst.ComputeInstanceID = id
		}
		if uuid, ret := m.GetUUID(); ret == gonvml.SUCCESS {
			inst.UUID = uuid
		}
		if name, ret := m.GetName(); ret == gonvml.SUCCESS {
			inst.Profile = migProfile(name)
		}
		list = append(list, inst)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].GPUInstanceID != list[j].GPUInstanceID {
			return list[i].GPUInstanceID < list[j].GPUInstanceID
		}
		return list[i].ComputeInstanceID < list[j].ComputeInstanceID
	})
	g.info.MIG = list
}

// migProfile extracts the profile from a MIG device name such as
// "NVIDIA H200 MIG 1g.18gb".
func migProfile(name string) string {
	if i := strings.LastIndex(name, " MIG "); i >= 0 {
		return strings.TrimSpace(name[i+len(" MIG "):])
	}
	return ""
}

// readProcesses lists the compute processes of g with their SM
// utilisation since the previous sample.
func (b *nvmlBackend) readProcesses(g *nvmlGPU, dev gonvml.Device, errs map[string]uint64) []Process {
	if !b.has[fnProcs] {
		return nil
	}
	infos, ret := dev.GetComputeRunningProcesses()
	switch {
	case ret == gonvml.SUCCESS:
	case unsupported(ret):
		b.degrade(g, fnProcs, ret)
		return nil
	default:
		errs[gpu.ReasonReadError]++
		return nil
	}
	if len(infos) == 0 {
		return nil
	}
	procs := make([]Process, len(infos))
	for i, p := range infos {
		procs[i] = Process{PID: p.Pid, UsedMemoryBytes: p.UsedGpuMemory, SMUtil: -1, MIGGPUInstanceID: -1}
		if p.UsedGpuMemory == notAvailable64 {
			procs[i].UsedMemoryBytes = 0
		}
		if g.info.MIGMode == gpu.MIGModeEnabled && p.GpuInstanceId != notAvailable32 {
			procs[i].MIGGPUInstanceID = int(p.GpuInstanceId)
		}
	}
	if !b.has[fnProcUtil] {
		return procs
	}
	samples, ret := dev.GetProcessUtilization(g.procTS)
	switch {
	case ret == gonvml.SUCCESS:
	case ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INSUFFICIENT_SIZE:
		// No sample since the last timestamp.
		return procs
	case unsupported(ret):
		if ret == gonvml.ERROR_FUNCTION_NOT_FOUND {
			b.degrade(g, fnProcUtil, ret)
		}
		return procs
	default:
		errs[gpu.ReasonReadError]++
		return procs
	}
	// Several samples per process can arrive; their mean is the process's
	// utilisation over the interval.
	type acc struct {
		sum float64
		n   int
	}
	byPID := make(map[uint32]acc, len(procs))
	var maxTS uint64
	for _, u := range samples {
		if u.TimeStamp > maxTS {
			maxTS = u.TimeStamp
		}
		a := byPID[u.Pid]
		a.sum += float64(u.SmUtil)
		a.n++
		byPID[u.Pid] = a
	}
	if maxTS > g.procTS {
		g.procTS = maxTS
	}
	for i := range procs {
		if a, ok := byPID[procs[i].PID]; ok {
			procs[i].SMUtil = gpukit.ClampUtil(a.sum / float64(a.n))
		}
	}
	return procs
}

// Close shuts NVML down once. It waits for a running sample, at most a few
// seconds.
func (b *nvmlBackend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	if err := b.mu.Acquire(ctx); err != nil {
		return fmt.Errorf("nvml close: sample still running: %w", err)
	}
	defer b.mu.Release()
	if b.closed {
		return nil
	}
	b.closed = true
	if ret := b.lib.Shutdown(); ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", ret.Error())
	}
	return nil
}

// migProfiles are the GPU instance profiles that span a whole GPU, largest
// first: the first one the GPU supports gives its slice count.
var migProfiles = []int{
	gonvml.GPU_INSTANCE_PROFILE_8_SLICE, gonvml.GPU_INSTANCE_PROFILE_7_SLICE, gonvml.GPU_INSTANCE_PROFILE_6_SLICE,
	gonvml.GPU_INSTANCE_PROFILE_4_SLICE, gonvml.GPU_INSTANCE_PROFILE_3_SLICE, gonvml.GPU_INSTANCE_PROFILE_2_SLICE,
}

// migSlices asks the driver how many compute slices dev has: the slice
// count of its largest GPU instance profile. Where the driver cannot say,
// the model decides (gpu.SlicesOf).
func migSlices(dev gonvml.Device, model string) int {
	for _, p := range migProfiles {
		if info, ret := dev.GetGpuInstanceProfileInfo(p); ret == gonvml.SUCCESS && info.SliceCount > 0 {
			return int(info.SliceCount)
		}
	}
	return gpu.SlicesOf(model)
}
