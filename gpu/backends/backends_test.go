package backends

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/inferensys/aiwatt/gpu"
)

// TestOpenProbesALocalDCGMExporter: without NVML (this test binary has no
// GPU library, or NVML finds no device) and without a configured URL, Open
// finds a dcgm-exporter that answers DCGM metrics, and ignores one that
// does not.
func TestOpenProbesALocalDCGMExporter(t *testing.T) {
	dcgmBody := "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-1\"} 50\n"
	for _, c := range []struct {
		name, body string
		want       bool
	}{{"dcgm metrics", dcgmBody, true}, {"other metrics", "up 1\n", false}} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(c.body)) }))
			defer srv.Close()
			b, err := Open(gpu.Config{Backend: gpu.BackendAuto}, nil, Options{ProbeURL: srv.URL + "/metrics", Client: srv.Client()})
			if b != nil {
				defer b.Close()
			}
			if err == nil && b.Name() == gpu.NameNVML {
				return // A machine with a working NVML: auto prefers it and never probes.
			}
			got := err == nil && b != nil && b.Name() == gpu.NameDCGMExporter
			if got != c.want {
				t.Fatalf("Open = %v, %v; want dcgm-exporter %v", b, err, c.want)
			}
			if !c.want && !errors.Is(err, gpu.ErrNoData) {
				t.Fatalf("err %v, want ErrNoData", err)
			}
		})
	}
}
