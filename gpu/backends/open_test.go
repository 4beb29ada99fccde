package backends

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/inferensys/aiwatt/gpu"
)

func TestOpenNone(t *testing.T) {
	b, err := open(gpu.Config{Backend: gpu.BackendNone}, discard)
	if !errors.Is(err, gpu.ErrNoData) || b != nil {
		t.Fatalf("Open(none) = %v, %v; want gpu.ErrNoData", b, err)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	for _, cfg := range []gpu.Config{
		{Backend: "cuda"},
		{Backend: gpu.BackendDCGMExporter},
		{Backend: gpu.BackendDCGMExporter, ExporterURL: "127.0.0.1:9400/metrics"},
		{Backend: gpu.BackendDCGMExporter, ExporterURL: "ftp://127.0.0.1/metrics"},
	} {
		b, err := open(cfg.WithDefaults(), discard)
		if err == nil || errors.Is(err, gpu.ErrNoData) || b != nil {
			t.Errorf("Open(%+v) = %v, %v; want a configuration error", cfg, b, err)
		}
	}
}

func TestOpenExporter(t *testing.T) {
	b, err := open(gpu.Config{Backend: gpu.BackendDCGMExporter, ExporterURL: "http://127.0.0.1:9400/metrics"}, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != gpu.NameDCGMExporter {
		t.Fatalf("Name() = %q", b.Name())
	}
}

// TestOpenAuto holds on any node: with an NVIDIA driver Open picks NVML;
// without one it reports gpu.ErrNoData, or falls back to the exporter URL.
func TestOpenAuto(t *testing.T) {
	b, err := open(gpu.Config{}.WithDefaults(), discard)
	switch {
	case err == nil:
		if b.Name() != gpu.NameNVML {
			t.Fatalf("auto without URL picked %q", b.Name())
		}
		b.Close()
	case !errors.Is(err, gpu.ErrNoData):
		t.Fatalf("auto: %v; want gpu.ErrNoData", err)
	case !strings.Contains(err.Error(), "NVML"):
		t.Fatalf("auto: %v; want the NVML reason", err)
	}

	b, err = open(gpu.Config{ExporterURL: "http://127.0.0.1:9400/metrics"}.WithDefaults(), discard)
	if err != nil {
		t.Fatalf("auto with URL: %v", err)
	}
	defer b.Close()
	if n := b.Name(); n != gpu.NameNVML && n != gpu.NameDCGMExporter {
		t.Fatalf("auto with URL picked %q", n)
	}
}

var discard = slog.New(slog.DiscardHandler)
