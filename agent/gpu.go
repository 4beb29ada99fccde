package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
)

// DefaultDCGMExporterURL is where a dcgm-exporter on this node answers when
// it runs with host networking or as a systemd service (its default port).
const DefaultDCGMExporterURL = "http://127.0.0.1:9400/metrics"

// GPUBackendFactory opens a GPU backend; tests inject a fake.
type GPUBackendFactory func(cfg dcgm.Config, logger *slog.Logger) (dcgm.Backend, error)

// GPUCounter is one physical GPU in a snapshot: what the backend sampled,
// with Joules replaced by the agent's own monotonic total.
type GPUCounter struct {
	dcgm.GPUSample
}

// gpuSource keeps the agent's GPU totals, by UUID, across backend rebuilds.
type gpuSource struct {
	cfg     GPUConfig
	backend dcgm.Backend
	openErr error
	name    string // source label while the backend is absent
	prevJ   map[string]float64
	totals  map[string]float64
}

func newGPUSource(opts Options, cfg *Config, logger *slog.Logger) *gpuSource {
	s := &gpuSource{cfg: cfg.GPU, prevJ: map[string]float64{}, totals: map[string]float64{}, name: dcgm.SourceNVML}
	if cfg.GPU.Backend == dcgm.BackendNone {
		return s
	}
	dc := dcgm.Config{
		Backend:         cfg.GPU.Backend,
		ExporterURL:     cfg.GPU.ExporterURL,
		ExporterTimeout: cfg.GPU.ExporterTimeout,
		MinRefresh:      cfg.GPU.ExporterMinRefresh,
	}
	if opts.DCGMExporterURL != "" {
		dc.ExporterURL = opts.DCGMExporterURL
	}
	if dc.Backend == dcgm.BackendDCGMExporter {
		s.name = dcgm.SourceDCGMExporter
	}
	open := opts.GPUBackend
	if open == nil {
		open = dcgm.Open
	}
	b, err := open(dc, logger)
	if err != nil && dc.Backend == dcgm.BackendAuto && dc.ExporterURL == "" && errors.Is(err, dcgm.ErrNoData) && opts.GPUBackend == nil {
		// No NVML here: a dcgm-exporter on this node may still serve the GPUs.
		if probeDCGMExporter(DefaultDCGMExporterURL) {
			dc.ExporterURL = DefaultDCGMExporterURL
			logger.Info("NVML unavailable; found a dcgm-exporter on this node", "url", dc.ExporterURL, "nvml", err)
			b, err = open(dc, logger)
		}
	}
	if err != nil {
		s.openErr = err
		return s
	}
	s.backend = b
	s.name = b.Name()
	logger.Info("GPU backend ready", "backend", b.Name())
	return s
}

// probeDCGMExporter reports whether url answers with DCGM metrics within a second.
func probeDCGMExporter(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(buf[:n]), "DCGM_FI_")
}

// sample reads the GPUs once and returns them with the agent's totals,
// and each GPU's energy this tick for attribution.
func (s *gpuSource) sample(ctx context.Context, now time.Time, record recordFunc) ([]GPUCounter, []gpuTick) {
	if s.cfg.Backend == dcgm.BackendNone {
		return nil, nil
	}
	if s.backend == nil {
		record(s.name, s.openErr, nil, 0)
		return nil, nil
	}
	start := time.Now()
	res, err := s.backend.Sample(ctx, now)
	record(s.backend.Name(), err, res.Errors, time.Since(start))
	out := make([]GPUCounter, 0, len(res.GPUs))
	ticks := make([]gpuTick, 0, len(res.GPUs))
	for _, g := range res.GPUs {
		key := g.UUID
		if key == "" {
			key = "index:" + strconv.Itoa(g.Index)
		}
		var delta float64
		if prev, ok := s.prevJ[key]; ok && g.Joules >= prev {
			delta = g.Joules - prev
			s.totals[key] += delta
		} else if !ok {
			s.totals[key] += 0
		}
		s.prevJ[key] = g.Joules
		ticks = append(ticks, gpuTick{sample: g, joules: delta})
		g.Joules = s.totals[key]
		out = append(out, GPUCounter{GPUSample: g})
	}
	return out, ticks
}

func (s *gpuSource) close() error {
	if s.backend == nil {
		return nil
	}
	if err := s.backend.Close(); err != nil {
		return fmt.Errorf("close GPU backend: %w", err)
	}
	return nil
}
