package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
	ctx     context.Context
	cancel  context.CancelFunc
	status  map[string]*sourceState
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
	a := &Agent{opts: opts, logger: opts.Logger, status: map[string]*sourceState{}}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.apply(cfg)
	a.reload.Store(&ReloadStatus{Success: true, LastSuccess: opts.Clock()})
	a.snap.Store(&Snapshot{Time: opts.Clock()})
	return a, nil
}

// apply builds the sources for cfg, keeping the exported totals continuous.
func (a *Agent) apply(cfg *Config) {
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
	a.apply(cfg)
	a.mu.Unlock()
	a.reload.Store(&ReloadStatus{Success: true, LastSuccess: a.opts.Clock()})
	a.logger.Info("configuration reloaded", "file", a.opts.ConfigFile)
	return nil
}

// Run samples every interval until ctx is cancelled, then returns nil. The
// first sample is taken at once.
func (a *Agent) Run(ctx context.Context) error {
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
	snap.CPU = a.cpu.sample(now, a.record)
	ctx, cancel := context.WithTimeout(a.ctx, a.opts.Interval)
	snap.GPU = a.gpu.sample(ctx, now, a.record)
	cancel()
	for _, name := range slices.Sorted(maps.Keys(a.status)) {
		st := a.status[name]
		if !st.touched { // No longer in use since a reload: drop it.
			delete(a.status, name)
			continue
		}
		snap.Sources = append(snap.Sources, SourceStatus{
			Name: name, Up: st.up, Errors: maps.Clone(st.errors), Duration: st.duration,
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
	return a.gpu.close()
}

// recordFunc reports one source's health after a sample.
type recordFunc func(source string, err error, reasons map[string]uint64, took time.Duration)

// record updates a source's health: up or not, errors by reason from this
// sample, and how long the sample took. It logs transitions only, so a
// source that stays down does not flood the log.
func (a *Agent) record(source string, err error, reasons map[string]uint64, took time.Duration) {
	st := a.status[source]
	if st == nil {
		st = &sourceState{errors: map[string]uint64{}}
		a.status[source] = st
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
		if errors.Is(err, rapl.ErrNoData) || errors.Is(err, dcgm.ErrNoData) {
			level = slog.LevelInfo
		}
		a.logger.Log(context.Background(), level, "source down", "source_name", source, "err", err)
	case up && !st.up && st.seen:
		a.logger.Info("source up", "source_name", source)
	}
	st.up, st.seen = up, true
	if err != nil {
		st.lastErr = err.Error()
	} else {
		st.lastErr = ""
	}
}
