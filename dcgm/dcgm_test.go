package dcgm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOpenNone(t *testing.T) {
	b, err := Open(Config{Backend: BackendNone}, nil)
	if !errors.Is(err, ErrNoData) || b != nil {
		t.Fatalf("Open(none) = %v, %v; want ErrNoData", b, err)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Backend: "cuda"},
		{Backend: BackendDCGMExporter},
		{Backend: BackendDCGMExporter, ExporterURL: "127.0.0.1:9400/metrics"},
		{Backend: BackendDCGMExporter, ExporterURL: "ftp://127.0.0.1/metrics"},
	} {
		b, err := Open(cfg, nil)
		if err == nil || errors.Is(err, ErrNoData) || b != nil {
			t.Errorf("Open(%+v) = %v, %v; want a configuration error", cfg, b, err)
		}
	}
}

func TestOpenExporter(t *testing.T) {
	b, err := Open(Config{Backend: BackendDCGMExporter, ExporterURL: "http://127.0.0.1:9400/metrics"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != NameDCGMExporter {
		t.Fatalf("Name() = %q", b.Name())
	}
}

// TestOpenAuto holds on any node: with an NVIDIA driver Open picks NVML;
// without one it reports ErrNoData, or falls back to the exporter URL.
func TestOpenAuto(t *testing.T) {
	b, err := Open(Config{}, nil)
	switch {
	case err == nil:
		if b.Name() != NameNVML {
			t.Fatalf("auto without URL picked %q", b.Name())
		}
		b.Close()
	case !errors.Is(err, ErrNoData):
		t.Fatalf("auto: %v; want ErrNoData", err)
	case !strings.Contains(err.Error(), "NVML"):
		t.Fatalf("auto: %v; want the NVML reason", err)
	}

	b, err = Open(Config{ExporterURL: "http://127.0.0.1:9400/metrics"}, nil)
	if err != nil {
		t.Fatalf("auto with URL: %v", err)
	}
	defer b.Close()
	if n := b.Name(); n != NameNVML && n != NameDCGMExporter {
		t.Fatalf("auto with URL picked %q", n)
	}
}

func mustSample(t testing.TB, b Backend, now time.Time) Result {
	t.Helper()
	r, err := b.Sample(context.Background(), now)
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	return r
}

func wantNoErrors(t *testing.T, r Result) {
	t.Helper()
	if len(r.Errors) != 0 {
		t.Fatalf("errors %v, want none", r.Errors)
	}
}
