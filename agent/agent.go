package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/rapl"
	"github.com/inferensys/aiwatt/scrape"
	"github.com/inferensys/aiwatt/source"
	"github.com/inferensys/aiwatt/workload"
)

// Options are the agent's fixed settings (flags); Config holds what a reload
// may change.
type Options struct {
	// Interval is the sampling period (--agent.interval).
	Interval time.Duration
	// SysfsRoot is the sysfs mount point (--path.sysfs), e.g. /host/sys.
	SysfsRoot string
	// ProcfsRoot is the procfs mount point (--path.procfs), e.g. /host/proc.
	ProcfsRoot string
	// ConfigFile is the file that Reload re-reads; empty means defaults.
	ConfigFile string
	// Clock returns the current time; nil means time.Now. Tests step a fake clock.
	Clock func() time.Time
	// Logger receives the agent's log lines; nil discards them.
	Logger *slog.Logger
	// NodeName is this node's Kubernetes name (--kubernetes.node-name, default
	// $NODE_NAME); empty outside Kubernetes, where pods are not watched.
	NodeName string
	// Kubeconfig is a kubeconfig file; empty means in-cluster configuration.
	Kubeconfig string
	// HostRoot is the host's root filesystem (for /etc/passwd of user rules); empty means /.
	HostRoot string
	// DCGMExporterURL overrides gpu.exporter_url (--dcgm.exporter-url).
	DCGMExporterURL string
	// GPUBackend opens the GPU backend; nil means gpu/backends.Open. Tests inject fakes.
	GPUBackend GPUBackendFactory
	// OnTick, when set, is called with every new snapshot from the sampling goroutine.
	OnTick func(*Snapshot)
}

// Agent samples every source on a clock and publishes immutable snapshots.
type Agent struct {
	opts   Options
	logger *slog.Logger

	mu      sync.Mutex // Serialises ticks and reloads.
	cfg     *Config
	rapl    *raplSource // nil while RAPL is disabled
	model   *modelSource
	gpu     *gpuSource // nil while the GPU backend is none
	work    *workloadSource
	infer   *inferenceSource
	slots   map[source.Source]*slot
	ctx     context.Context
	cancel  context.CancelFunc
	status  map[statusKey]*sourceState
	samples uint64

	cpuTotals cpuCounters
	gpuTotals gpuCounters

	snap   atomic.Pointer[Snapshot]
	reload atomic.Pointer[ReloadStatus]
	// wake tells Run that a reload ended on-demand mode (buffered, one).
	wake chan struct{}
	// idle is, in on-demand mode (see onDemand), the longest the agent goes
	// without a sample when nobody scrapes it; zero while it samples every
	// interval. Set at the end of every tick and reload.
	idle atomic.Int64
}

// New builds an agent from its options and configuration (nil means defaults).
// Missing hardware is not an error: that source reports down and the agent runs.
func New(opts Options, cfg *Config) (*Agent, error) {
	if opts.Interval <= 0 {
		return nil, fmt.Errorf("interval must be positive, got %s", opts.Interval)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg == nil {
		cfg = DefaultConfig()
	}
	a := &Agent{opts: opts, logger: opts.Logger, status: map[statusKey]*sourceState{}, slots: map[source.Source]*slot{},
		wake: make(chan struct{}, 1)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if err := a.apply(cfg); err != nil {
		return nil, err
	}
	a.reload.Store(&ReloadStatus{Success: true, LastSuccess: opts.Clock()})
	a.snap.Store(&Snapshot{Time: opts.Clock()})
	return a, nil
}

// modelOptions turns the configuration into the CPU model's options.
func modelOptions(cfg *Config) rapl.ModelOptions {
	return rapl.ModelOptions{
		MinWattsPerCPU: *cfg.CPUModel.MinWattsPerCPU,
		MaxWattsPerCPU: *cfg.CPUModel.MaxWattsPerCPU,
		CPUs:           cfg.CPUModel.CPUs,
	}
}

// apply makes the sources match cfg. It is the one path of configuration
// changes: a source that exists is reconfigured in place and keeps its
// baselines, the totals live in the agent, so whatever a reload changes it
// loses no energy. Only turning a source off and on again starts a new
// baseline (nothing was measured in between).
func (a *Agent) apply(cfg *Config) error {
	// Workloads first: the only part that can refuse a configuration.
	if err := a.applyWorkloads(cfg); err != nil {
		return err
	}
	a.cfg = cfg
	switch {
	case !cfg.RAPLEnabled():
		a.rapl = nil
	case a.rapl == nil:
		a.rapl = newRAPLSource(a.opts.SysfsRoot, cfg.RAPL.MaxPowerWatts)
	default:
		a.rapl.reconfigure(cfg.RAPL.MaxPowerWatts)
	}
	if a.model == nil {
		a.model = newModelSource(a.opts.ProcfsRoot, modelOptions(cfg))
	} else {
		a.model.reconfigure(modelOptions(cfg))
	}
	switch {
	case cfg.GPU.Backend == gpu.BackendNone:
		if a.gpu != nil {
			if err := a.gpu.close(); err != nil {
				a.logger.Warn("closing the GPU backend", "err", err)
			}
		}
		a.gpu = nil
	case a.gpu == nil:
		a.gpu = newGPUSource(a.opts, cfg, a.logger)
	default:
		a.gpu.apply(gpuConfig(a.opts, cfg))
	}
	// Back to the steady rate until the next sample decides the mode again;
	// Run's clock, which may be waiting for the idle bound, wakes up.
	a.idle.Store(0)
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// sources lists this tick's sources in a stable order.
func (a *Agent) sources() []source.Source {
	out := make([]source.Source, 0, 8)
	if a.rapl != nil {
		out = append(out, a.rapl)
	}
	out = append(out, a.model)
	if a.gpu != nil {
		out = append(out, a.gpu)
	}
	w := a.work
	if w.scan {
		out = append(out, scanSource{w.scanner})
	}
	if w.pods != nil {
		out = append(out, kubeSource{w.pods})
	}
	if w.podRes != nil {
		out = append(out, podResSource{w.podRes})
	}
	out = append(out, a.infer, w.carbon)
	return out
}

// slotsFor returns the slots of srcs, keeping the slot (and a Sample still
// in flight) of every source that stays, and dropping the others.
func (a *Agent) slotsFor(srcs []source.Source) []*slot {
	out := make([]*slot, len(srcs))
	keep := make(map[source.Source]*slot, len(srcs))
	for i, src := range srcs {
		sl := a.slots[src]
		if sl == nil {
			sl = newSlot(src)
		}
		keep[src] = sl
		out[i] = sl
	}
	for src, sl := range a.slots {
		if _, ok := keep[src]; !ok {
			sl.stop()
		}
	}
	a.slots = keep
	return out
}

// Snapshot returns the latest published snapshot; never nil.
func (a *Agent) Snapshot() *Snapshot { return a.snap.Load() }

// ReloadStatus returns the outcome of the last reload.
func (a *Agent) ReloadStatus() ReloadStatus { return *a.reload.Load() }

// Config returns the configuration in force.
func (a *Agent) Config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Reload re-reads the configuration file and applies it. A bad file is
// refused: the running configuration stays and the error is returned.
func (a *Agent) Reload() error {
	cfg := DefaultConfig()
	if a.opts.ConfigFile != "" {
		var err error
		if cfg, err = LoadConfigFile(a.opts.ConfigFile); err != nil {
			prev := a.reload.Load()
			a.reload.Store(&ReloadStatus{Success: false, LastSuccess: prev.LastSuccess})
			a.logger.Error("configuration reload refused; keeping the running configuration", "err", err)
			return err
		}
	}
	a.mu.Lock()
	err := a.apply(cfg)
	a.mu.Unlock()
	if err != nil {
		prev := a.reload.Load()
		a.reload.Store(&ReloadStatus{Success: false, LastSuccess: prev.LastSuccess})
		a.logger.Error("configuration reload refused; keeping the running configuration", "err", err)
		return err
	}
	a.reload.Store(&ReloadStatus{Success: true, LastSuccess: a.opts.Clock()})
	a.logger.Info("configuration reloaded", "file", a.opts.ConfigFile)
	return nil
}

// MaxIdle is the longest an agent in on-demand mode goes without a sample
// when nobody scrapes it (shorter when a RAPL counter could wrap sooner).
const MaxIdle = time.Minute

// idleSlack is how much before the idle bound the clock samples in
// on-demand mode, so that a late timer and the sample's own duration keep
// the gap between two samples under the bound: a second, or a tenth of a
// short bound.
func idleSlack(idle time.Duration) time.Duration { return min(time.Second, idle/10) }

// Run samples every interval until ctx is cancelled, then returns nil. The
// first sample is taken at once. In on-demand mode (see Fresh) the clock
// samples only when the latest sample reaches the idle bound (less
// idleSlack): scrapes take the samples, and a clock sample that comes just
// before a scrape serves it.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	w := a.work
	a.mu.Unlock()
	w.run(ctx)
	// The ticker starts before the first sample, so the ticks keep their
	// interval from the start even when the first one waits for its deadline.
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	a.Tick()
	ticking := true
	for {
		idle := time.Duration(a.idle.Load())
		if idle == 0 {
			if !ticking {
				t.Reset(a.opts.Interval)
				ticking = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				a.clockTick()
			case <-a.wake:
			}
			continue
		}
		if ticking {
			t.Stop()
			ticking = false
		}
		timer := time.NewTimer(a.idleWait(idle))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
			a.clockTick()
		case <-a.wake:
			timer.Stop()
		}
	}
}

// idleWait is how long Run's clock waits in on-demand mode before the
// latest sample reaches the idle bound less idleSlack; zero when it has.
func (a *Agent) idleWait(idle time.Duration) time.Duration {
	s := a.snap.Load()
	return max(s.Time.Add(idle-idleSlack(idle)).Sub(a.opts.Clock()), 0)
}

// clockTick is one tick of Run's clock: a sample, or in on-demand mode a
// sample only when the latest is as old as the idle bound less idleSlack
// (a scrape may have taken one since the clock was set).
func (a *Agent) clockTick() {
	idle := time.Duration(a.idle.Load())
	if idle == 0 {
		a.Tick()
		return
	}
	a.sampleIfOlder(idle - idleSlack(idle))
}

// Fresh returns the snapshot a scrape serves. Most of the time that is the
// latest one (Snapshot). In on-demand mode, when nothing configured needs
// samples at a steady rate (no workload source, no inference target, no
// carbon zone, no --agent.live, and GPUs, if any, with hardware energy
// counters read through NVML), the clock samples only every idle bound and
// a scrape that finds the latest sample older than the interval takes a new
// one first. Energy is read from the same counters either way, so the
// totals are the same; only how often the hardware is read changes: with
// nothing to attribute, a node scraped every 15 s is read every 15 s and
// not every 5 s.
func (a *Agent) Fresh() *Snapshot {
	s := a.snap.Load()
	if a.idle.Load() == 0 || a.opts.Clock().Sub(s.Time) < a.opts.Interval {
		return s
	}
	return a.sampleIfOlder(a.opts.Interval)
}

// sampleIfOlder takes a sample when the latest is at least age old (or the
// agent is not in on-demand mode any more) and returns the latest snapshot.
// Concurrent callers wait for one sample.
func (a *Agent) sampleIfOlder(age time.Duration) *Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.snap.Load()
	if a.idle.Load() != 0 && s.Samples > 0 && a.opts.Clock().Sub(s.Time) < age {
		return s
	}
	return a.tick()
}

// onDemand returns the idle bound of on-demand mode (see Fresh), or zero when
// the agent must sample every interval. a.mu is held.
func (a *Agent) onDemand(snap *Snapshot) time.Duration {
	if a.opts.OnTick != nil || a.work.scan || a.work.pods != nil || a.work.podRes != nil ||
		len(a.cfg.Inference.Targets) > 0 || a.work.carbon.err == nil {
		return 0
	}
	for _, g := range snap.GPU {
		if g.Source != gpu.SourceNVML {
			return 0 // integrated power or an HTTP backend: sampled at a steady rate
		}
	}
	idle := MaxIdle
	if a.rapl != nil {
		// Nine tenths of the shortest time in which a zone can wrap at the
		// plausibility ceiling: reads that far apart never miss a wrap.
		if w := time.Duration(a.rapl.wrap.Load()) / 10 * 9; w > 0 && w < idle {
			idle = w
		}
	}
	if idle < 2*a.opts.Interval {
		return 0 // nothing to gain
	}
	return idle
}

// Tick samples every source once at the clock's current time and publishes
// a new snapshot, which it returns. The sources run concurrently under one
// deadline, four fifths of the interval; a source that misses it is
// reported as timeout, and its energy is counted when its sample returns.
func (a *Agent) Tick() *Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tick()
}

// tick is Tick with a.mu held.
func (a *Agent) tick() *Snapshot {
	now := a.opts.Clock()
	a.samples++
	snap := &Snapshot{Time: now, Samples: a.samples}

	a.infer.prepare(a.work)
	b := budget(a.opts.Interval)
	ctx, cancel := context.WithTimeout(a.ctx, b)
	outcomes := runSources(ctx, now, a.slotsFor(a.sources()))
	cancel()

	var energy tickEnergy
	var in tickInputs
	var scraped []scrape.Result
	energy.busy = -1
	var modelOuts []*outcome
	raplOK := false
	gpuSeen := false
	for i := range outcomes {
		o := &outcomes[i]
		switch o.src.(type) {
		case *raplSource:
			raplOK = a.foldRAPL(o, &energy) || raplOK
		case *modelSource:
			if d, ok := o.reading.Detail.(modelDetail); ok && !o.late {
				energy.busy, energy.stat = d.busy, d.stat
			}
			modelOuts = append(modelOuts, o)
			continue // Health and energy once RAPL's state is known.
		case *gpuSource:
			if !gpuSeen {
				a.gpuTotals.markStale()
				gpuSeen = true
			}
			a.foldGPU(o, &energy)
		case scanSource:
			if scan, ok := o.reading.Detail.(*workload.ScanResult); ok {
				in.scan = scan
			}
		case podResSource:
			if allocs, ok := o.reading.Detail.([]workload.DeviceAllocation); ok {
				in.allocs = allocs
			}
		case *inferenceSource:
			if res, ok := o.reading.Detail.([]scrape.Result); ok {
				scraped = append(scraped, res...)
			}
		case *carbonSource:
			if d, ok := o.reading.Detail.(*carbonTick); ok && !o.late {
				in.em, in.marginal = d.location, d.marginal
			}
		}
		a.recordOutcome(*o, b)
	}
	for _, o := range modelOuts {
		a.foldModel(o, raplOK, &energy, b)
	}

	snap.CPU = a.cpuTotals.counters()
	if a.gpu != nil || len(a.gpuTotals.last) > 0 {
		snap.GPU = a.gpuTotals.counters()
	}
	snap.Attribution = a.work.attribute(now, energy, in)
	snap.Inference = a.infer.fold(now, scraped, a.work)
	snap.Sources = a.statuses()
	a.snap.Store(snap)
	a.idle.Store(int64(a.onDemand(snap)))
	if a.opts.OnTick != nil {
		a.opts.OnTick(snap)
	}
	return snap
}

// foldRAPL adds one RAPL outcome to the totals and this tick's CPU and DRAM
// energy; it reports whether some zone was read.
func (a *Agent) foldRAPL(o *outcome, e *tickEnergy) bool {
	zones, _ := o.reading.Detail.([]zoneDetail)
	ok := false
	for i, d := range o.reading.Energy {
		if i >= len(zones) {
			break
		}
		z := zones[i]
		a.cpuTotals.add(zoneKey{socket: z.socket, zone: z.zone, source: MethodRAPL}, d.Energy, z.watts)
		switch z.zone {
		case rapl.ZonePackage:
			e.cpuJ += d.Energy.Joules()
		case rapl.ZoneDRAM:
			e.dramJ += d.Energy.Joules()
		}
		ok = ok || z.ok
	}
	return ok && !o.late
}

// foldModel applies the CPU model: its energy counts (and its health shows)
// only while it is in use: always, or, in auto mode, while no RAPL zone
// was read.
func (a *Agent) foldModel(o *outcome, raplOK bool, e *tickEnergy, b time.Duration) {
	mode := a.cfg.CPUModel.Estimate
	active := mode == EstimateAlways || (mode == EstimateAuto && !raplOK)
	if !active {
		return
	}
	a.recordOutcome(*o, b)
	var d source.Microjoules
	if len(o.reading.Energy) > 0 {
		d = o.reading.Energy[0].Energy
	}
	watts := 0.0
	if md, ok := o.reading.Detail.(modelDetail); ok && o.err == nil {
		watts = md.watts
	}
	a.cpuTotals.add(zoneKey{zone: rapl.ZonePackage, source: MethodEstimate}, d, watts)
	if !raplOK {
		e.cpuJ += d.Joules()
	}
}

// foldGPU adds one GPU outcome to the totals and this tick's GPU energy.
func (a *Agent) foldGPU(o *outcome, e *tickEnergy) {
	gpus, _ := o.reading.Detail.([]gpu.GPUSample)
	for i, g := range gpus {
		var d source.Microjoules
		if i < len(o.reading.Energy) {
			d = o.reading.Energy[i].Energy
		}
		a.gpuTotals.add(g, d)
		e.gpus = append(e.gpus, gpuTick{sample: g, joules: d.Joules()})
	}
}

// Close stops the agent's sources (the GPU backend); Run must have returned.
func (a *Agent) Close() error {
	a.cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sl := range a.slots {
		sl.stop()
	}
	a.slots = map[source.Source]*slot{}
	a.work.close()
	if a.gpu == nil {
		return nil
	}
	return a.gpu.close()
}
