// Package backends selects and opens a GPU energy backend: NVML in process,
// or a dcgm-exporter endpoint, including the probe of a dcgm-exporter on
// this node when NVML is unavailable and no URL is configured. The agent
// asks it for a gpu.Backend and knows no backend itself.
package backends

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/gpu"
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
}

// Open builds the backend cfg selects (gpu.BackendAuto: NVML, else the
// configured dcgm-exporter, else a dcgm-exporter found on this node). It
// returns an error wrapping gpu.ErrNoData when there is no GPU to read.
func Open(cfg gpu.Config, logger *slog.Logger, o Options) (gpu.Backend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b, err := dcgm.Open(cfg, logger)
	if err == nil || cfg.WithDefaults().Backend != gpu.BackendAuto || cfg.ExporterURL != "" || !errors.Is(err, gpu.ErrNoData) {
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
	return dcgm.Open(cfg, logger)
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
