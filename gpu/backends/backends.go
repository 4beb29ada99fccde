// Package backends selects and opens a GPU energy backend: NVML in process,
// or a dcgm-exporter endpoint, including the probe of a dcgm-exporter on
// this node when NVML is unavailable and no URL is configured. The agent
// asks it for a gpu.Backend and knows no backend itself.
package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/gpu/nvml"
)

// DefaultDCGMExporterURL is where a dcgm-exporter on this node answers when
// it runs with host networking or as a systemd service (its default port).
const DefaultDCGMExporterURL = "http://127.0.0.1:9400/metrics"

// probeTimeout bounds the probe of a local dcgm-exporter.
const probeTimeout = time.Second

// Options tunes Open.
type Options struct {
	// ProbeURL is the local dcgm-exporter tried when NVML is unavailable
	// and cfg names no URL; empty: DefaultDCGMExporterURL.
	ProbeURL string
	// Client makes the probe; nil: http.DefaultClient.
	Client *http.Client
	// NoProbe never probes (aiwatt run, which measures one command, does not).
	NoProbe bool
}

// Open builds the backend cfg selects: "nvml", "dcgm-exporter" (which needs
// cfg.ExporterURL), "none", or "auto" (empty): NVML, else the configured
// dcgm-exporter, else a dcgm-exporter found on this node by the probe. It
// returns an error wrapping gpu.ErrNoData, with the reason, when there is no
// GPU to read; any other error is a configuration error. A nil logger
// discards logs.
func Open(cfg gpu.Config, logger *slog.Logger, o Options) (gpu.Backend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	b, err := open(cfg, logger)
	if err == nil || o.NoProbe || cfg.Backend != gpu.BackendAuto || cfg.ExporterURL != "" || !errors.Is(err, gpu.ErrNoData) {
		return b, err
	}
	url := o.ProbeURL
	if url == "" {
		url = DefaultDCGMExporterURL
	}
	if !probe(o.Client, url) {
		return nil, err
	}
	logger.Info("NVML unavailable; found a dcgm-exporter on this node", "url", url, "nvml", err)
	cfg.ExporterURL = url
	return open(cfg, logger)
}

// open builds the backend cfg selects, without the probe.
func open(cfg gpu.Config, logger *slog.Logger) (gpu.Backend, error) {
	switch cfg.Backend {
	case gpu.BackendNone:
		return nil, fmt.Errorf("%w: GPU backend is %q", gpu.ErrNoData, gpu.BackendNone)
	case gpu.BackendNVML:
		return nvml.Open(logger)
	case gpu.BackendDCGMExporter:
		if cfg.ExporterURL == "" {
			return nil, fmt.Errorf("gpu: backend %q needs an exporter URL", gpu.BackendDCGMExporter)
		}
		return dcgm.NewExporterBackend(cfg, nil, logger)
	case gpu.BackendAuto:
		b, err := nvml.Open(logger)
		if err == nil {
			return b, nil
		}
		if cfg.ExporterURL == "" {
			return nil, err
		}
		logger.Info("NVML unavailable, using dcgm-exporter", "reason", err, "url", cfg.ExporterURL)
		return dcgm.NewExporterBackend(cfg, nil, logger)
	default:
		return nil, fmt.Errorf("gpu: unknown backend %q (want %s, %s, %s or %s)",
			cfg.Backend, gpu.BackendAuto, gpu.BackendNVML, gpu.BackendDCGMExporter, gpu.BackendNone)
	}
}

// probe reports whether url answers with DCGM metrics within probeTimeout.
func probe(client *http.Client, url string) bool {
	if client == nil {
		client = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	n, _ := resp.Body.Read(buf)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(buf[:n]), "DCGM_FI_")
}
