package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/rapl"
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
	// GPUBackend opens the GPU backend; nil means dcgm.Open. Tests inject fakes.
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
	cpu     *cpuSource
	gpu     *gpuSource
	work    *workloadSource
	infer   *inferenceSource
	ctx     context.Context
	cancel  context.CancelFunc
	status  map[statusKey]*sourceState
	samples uint64

	snap   atomic.Pointer[Snapshot]
	reload atomic.Pointer[ReloadStatus]
}

type sourceState struct {
	up       bool
	seen     bool
	errors   map[string]uint64
	duration time.Duration
	lastErr  string
	touched  bool
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
	a := &Agent{opts: opts, logger: opts.Logger, status: map[statusKey]*sourceState{}}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if err := a.apply(cfg); err != nil {
		return nil, err
	}
	a.reload.Store(&ReloadStatus{Success: true, LastSuccess: opts.Clock()})
	a.snap.Store(&Snapshot{Time: opts.Clock()})
	return a, nil
}

// apply builds the sources for cfg, keeping the exported totals continuous.
func (a *Agent) apply(cfg *Config) error {
	// Workloads first: the only part that can refuse a configuration.
	if err := a.applyWorkloads(cfg); err != nil {
		return err
	}
	a.cfg = cfg
	// A source whose settings did not change keeps its baselines; a rebuilt
	// one inherits the totals so that no exported counter resets.
	if prev := a.cpu; prev == nil || !prev.sameConfig(cfg) {
		a.cpu = newCPUSource(a.opts, cfg, a.logger)
		if prev != nil {
			a.cpu.totals = prev.totals
			a.cpu.estimateJ = prev.estimateJ
		}
	}
	if prev := a.gpu; prev == nil || prev.cfg != cfg.GPU {
		if prev != nil {
			if err := prev.close(); err != nil {
				a.logger.Warn("closing the previous GPU backend", "err", err)
			}
		}
		a.gpu = newGPUSource(a.opts, cfg, a.logger)
		if prev != nil {
			a.gpu.totals = prev.totals
		}
	}
	return nil
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

// Run samples every interval until ctx is cancelled, then returns nil. The
// first sample is taken at once.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	w := a.work
	a.mu.Unlock()
	w.run(ctx)
	a.Tick()
	t := time.NewTicker(a.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.Tick()
		}
	}
}

// Tick samples every source once at the clock's current time and publishes
// a new snapshot, which it returns.
func (a *Agent) Tick() *Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Clock()
	a.samples++
	snap := &Snapshot{Time: now, Samples: a.samples}
	for _, st := range a.status {
		st.touched = false
	}
	var energy tickEnergy
	snap.CPU, energy.cpuJ, energy.dramJ, energy.busy = a.cpu.sample(now, a.record)
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.Interval)
	snap.GPU, energy.gpus = a.gpu.sample(ctx, now, a.record)
	cancel()
	snap.Attribution = a.work.sample(a.ctx, now, energy, a.record)
	snap.Inference = a.infer.sample(a.ctx, now, a.work, a.recordTarget)
	keys := slices.SortedFunc(maps.Keys(a.status), func(x, y statusKey) int {
		return strings.Compare(x.source+"\x00"+x.target, y.source+"\x00"+y.target)
	})
	for _, k := range keys {
		st := a.status[k]
		if !st.touched { // No longer in use (a reload, a target gone): drop it.
			delete(a.status, k)
			continue
		}
		snap.Sources = append(snap.Sources, SourceStatus{
			Name: k.source, Target: k.target, Up: st.up, Errors: maps.Clone(st.errors), Duration: st.duration,
		})
	}
	a.snap.Store(snap)
	if a.opts.OnTick != nil {
		a.opts.OnTick(snap)
	}
	return snap
}

// Close stops the agent's sources (the GPU backend); Run must have returned.
func (a *Agent) Close() error {
	a.cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.work.close()
	return a.gpu.close()
}

// recordFunc reports one source's health after a sample.
type recordFunc func(source string, err error, reasons map[string]uint64, took time.Duration)

// statusKey names one source, or one target of a source (scrape targets).
type statusKey struct{ source, target string }

// record updates a source's health (see recordTarget).
func (a *Agent) record(source string, err error, reasons map[string]uint64, took time.Duration) {
	a.recordTarget(source, "", err, reasons, took)
}

// recordTarget updates the health of a source's target: up or not, errors
// by reason from this sample, and how long the sample took. It logs
// transitions only, so a source that stays down does not flood the log.
func (a *Agent) recordTarget(source, target string, err error, reasons map[string]uint64, took time.Duration) {
	k := statusKey{source, target}
	st := a.status[k]
	if st == nil {
		st = &sourceState{errors: map[string]uint64{}}
		a.status[k] = st
	}
	for r, n := range reasons {
		st.errors[r] += n
	}
	st.duration = took
	st.touched = true
	up := err == nil
	switch {
	case !up && (st.up || !st.seen || err.Error() != st.lastErr):
		level := slog.LevelWarn
		if errors.Is(err, rapl.ErrNoData) || errors.Is(err, dcgm.ErrNoData) || errors.Is(err, errNotConfigured) {
			level = slog.LevelInfo
		}
		a.logger.Log(context.Background(), level, "source down", "source_name", source, "target", target, "err", err)
	case up && !st.up && st.seen:
		a.logger.Info("source up", "source_name", source, "target", target)
	}
	st.up, st.seen = up, true
	if err != nil {
		st.lastErr = err.Error()
	} else {
		st.lastErr = ""
	}
}
