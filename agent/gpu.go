package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/gpu/backends"
	"github.com/inferensys/aiwatt/source"
)

// DefaultDCGMExporterURL is where a dcgm-exporter on this node answers when
// it runs with host networking or as a systemd service (its default port).
const DefaultDCGMExporterURL = backends.DefaultDCGMExporterURL

// GPUBackendFactory opens a GPU backend; tests inject a fake.
type GPUBackendFactory func(cfg gpu.Config, logger *slog.Logger) (gpu.Backend, error)

// gpuSource samples the GPU backend. It keeps the backend (and so its
// baselines) across reloads when the backend can take the new settings in
// place; the agent keeps the totals.
type gpuSource struct {
	logger *slog.Logger
	open   GPUBackendFactory

	mu      sync.Mutex // guards the fields below against a reload during a Sample
	cfg     gpu.Config
	backend gpu.Backend
	openErr error
	name    string // source label while the backend is absent
	retryIn int    // ticks until an absent backend is opened again
}

// gpuReopen is how many ticks apart an absent GPU backend is opened again
// (5 minutes at the default interval; opening tries NVML and probes a local
// dcgm-exporter, which is not free),
// so a driver loaded (or a dcgm-exporter started) after the agent is picked
// up without a restart.
const gpuReopen = 60

var _ source.Source = (*gpuSource)(nil)

// gpuConfig turns the agent's configuration into the backend's.
func gpuConfig(opts Options, cfg *Config) gpu.Config {
	gc := gpu.Config{
		Backend:         cfg.GPU.Backend,
		ExporterURL:     cfg.GPU.ExporterURL,
		ExporterTimeout: cfg.GPU.ExporterTimeout,
		MinRefresh:      cfg.GPU.ExporterMinRefresh,
	}
	if opts.DCGMExporterURL != "" {
		gc.ExporterURL = opts.DCGMExporterURL
	}
	return gc
}

func newGPUSource(opts Options, cfg *Config, logger *slog.Logger) *gpuSource {
	open := opts.GPUBackend
	if open == nil {
		open = func(c gpu.Config, l *slog.Logger) (gpu.Backend, error) {
			return backends.Open(c, l, backends.Options{})
		}
	}
	s := &gpuSource{logger: logger, open: open}
	s.apply(gpuConfig(opts, cfg))
	return s
}

// apply takes a new configuration: in place when the backend can, else by
// opening another backend (a new kind of backend starts new baselines).
func (s *gpuSource) apply(gc gpu.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil && s.cfg == gc {
		return
	}
	if r, ok := s.backend.(gpu.Reconfigurer); ok && s.cfg.Backend == gc.Backend && r.Reconfigure(gc) {
		s.cfg = gc
		return
	}
	if s.backend != nil {
		if err := s.backend.Close(); err != nil {
			s.logger.Warn("closing the previous GPU backend", "err", err)
		}
		s.backend = nil
	}
	s.cfg = gc
	s.name = gpu.NameNVML
	if gc.Backend == gpu.BackendDCGMExporter {
		s.name = gpu.NameDCGMExporter
	}
	s.tryOpen()
}

// tryOpen opens the backend of s.cfg; called with s.mu held.
func (s *gpuSource) tryOpen() {
	s.retryIn = gpuReopen - 1
	b, err := s.open(s.cfg, s.logger)
	if err != nil {
		s.openErr = err
		return
	}
	s.backend, s.openErr, s.name = b, nil, b.Name()
	s.logger.Info("GPU backend ready", "backend", b.Name())
}

// Name implements source.Source: the backend's name (nvml, dcgm_exporter).
func (s *gpuSource) Name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.name
}

// quick reports a source without a backend that will not try to open one
// this tick: its Sample only reports why.
func (s *gpuSource) quick() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backend == nil && s.retryIn > 0
}

// Sample implements source.Source: one delta per GPU; the GPUs themselves
// are the detail.
func (s *gpuSource) Sample(ctx context.Context, now time.Time) (source.Reading, error) {
	s.mu.Lock()
	reopen := false
	if s.backend == nil {
		if s.retryIn > 0 {
			s.retryIn--
		} else if errors.Is(s.openErr, gpu.ErrNoData) {
			// Absent so far: a driver or an exporter may have come since.
			reopen, s.retryIn = true, gpuReopen-1
		}
	}
	cfg, b, openErr := s.cfg, s.backend, s.openErr
	s.mu.Unlock()
	if reopen {
		b, openErr = s.reopen(cfg)
	}
	if b == nil {
		return source.Reading{}, openErr
	}
	res, err := b.Sample(ctx, now)
	r := source.Reading{Errors: source.Errors(res.Errors).Clone(), Detail: res.GPUs}
	for _, g := range res.GPUs {
		r.Energy = append(r.Energy, source.Delta{Device: gpuKey(g), Energy: g.Delta.Microjoules()})
	}
	return r, err
}

// reopen opens the backend of cfg outside the lock (opening may probe the
// network) and installs it unless a reload changed the configuration
// meanwhile.
func (s *gpuSource) reopen(cfg gpu.Config) (gpu.Backend, error) {
	nb, err := s.open(cfg, s.logger)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend != nil || s.cfg != cfg {
		if err == nil {
			_ = nb.Close()
		}
		return s.backend, s.openErr
	}
	if err != nil {
		s.openErr = err
		return nil, err
	}
	s.backend, s.openErr, s.name = nb, nil, nb.Name()
	s.logger.Info("GPU backend ready", "backend", nb.Name())
	return nb, nil
}

func (s *gpuSource) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.backend == nil {
		return nil
	}
	if err := s.backend.Close(); err != nil {
		return fmt.Errorf("close GPU backend: %w", err)
	}
	return nil
}

// gpuKey names a GPU across samples: its UUID, else its index.
func gpuKey(g gpu.GPUSample) string {
	if g.UUID != "" {
		return g.UUID
	}
	return "index:" + strconv.Itoa(g.Index)
}

// gpuCounters holds the agent's GPU totals by GPU, across backend changes.
type gpuCounters struct {
	totals map[string]source.Microjoules
	last   map[string]GPUCounter // latest label-ready view of each GPU
}

// add folds one GPU's reading into its total and its latest view.
func (c *gpuCounters) add(g gpu.GPUSample, d source.Microjoules) {
	if c.totals == nil {
		c.totals, c.last = map[string]source.Microjoules{}, map[string]GPUCounter{}
	}
	k := gpuKey(g)
	c.totals[k] += d
	c.last[k] = GPUCounter{
		Index: g.Index, UUID: g.UUID, Model: g.Model, Driver: g.Driver, MIGMode: g.MIGMode, Source: g.Source,
		PowerWatts: g.PowerWatts, PowerLimitWatts: g.PowerLimitWatts, OK: g.OK,
	}
}

// markStale marks every GPU unread, before this tick's reading (if any)
// updates the ones it read.
func (c *gpuCounters) markStale() {
	for k, g := range c.last {
		g.OK = false
		c.last[k] = g
	}
}

// counters returns every GPU ever seen, sorted by index then UUID.
func (c *gpuCounters) counters() []GPUCounter {
	out := make([]GPUCounter, 0, len(c.last))
	for k, g := range c.last {
		g.Joules = c.totals[k].Joules()
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b GPUCounter) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		switch {
		case a.UUID < b.UUID:
			return -1
		case a.UUID > b.UUID:
			return 1
		}
		return 0
	})
	return out
}
