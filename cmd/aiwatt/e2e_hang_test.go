package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// hungListener accepts connections on 127.0.0.1 and never answers them, as a
// wedged dcgm-exporter, inference server or carbon API does. The connections
// are closed when the test ends.
func hungListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

// TestEndToEndEverythingHangingRealTime runs the real binary as a user
// would, at the default 5 s interval for 60 s, with the dcgm-exporter, an
// inference target and the carbon provider all accepting connections and
// never answering: the agent keeps ticking (at least 11 ticks), /metrics
// answers at once throughout, every hung source shows timeout, and CO2e
// intensity comes from the next link (the static table) from the first
// interval with energy.
func TestEndToEndEverythingHangingRealTime(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := sysfsfixture.Materialize(t, intelFixture)
	token := filepath.Join(dir, "em-token")
	if err := os.WriteFile(token, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gpuAddr, inferAddr, carbonAddr := hungListener(t), hungListener(t), hungListener(t)
	cfg := filepath.Join(dir, "aiwatt.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`gpu:
  backend: dcgm-exporter
  exporter_url: http://%s/metrics
inference:
  targets:
    - {url: http://%s/metrics, server: vllm}
carbon:
  zone: DE
  providers:
    - {type: electricitymaps, token: {file: %s}, base_url: http://%s}
`, gpuAddr, inferAddr, token, carbonAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startAgent(t, nil, "--path.sysfs="+root, "--path.procfs="+fixtureProc, "--agent.interval=5s", "--config.file="+cfg)
	url := "http://" + p.addr + "/metrics"

	// Scrape every 5 s for 60 s of operation, timing each scrape.
	var slowest time.Duration
	var body string
	sawEnergyTick := false
	tick := time.NewTicker(5 * time.Second) // the measurement's cadence, not synchronisation
	defer tick.Stop()
	for time.Since(start) < 60*time.Second {
		<-tick.C
		t0 := time.Now()
		b, err := scrape(nil, url)
		took := time.Since(t0)
		if err != nil {
			t.Fatalf("scrape at %s: %v", time.Since(start).Round(time.Millisecond), err)
		}
		body, slowest = b, max(slowest, took)
		if n, _ := sampleValue(body, "aiwatt_samples_total"); n >= 2 && !sawEnergyTick {
			sawEnergyTick = true
			// The first interval with energy (the first tick takes the
			// baselines): the static table already answers.
			if _, ok := sampleValue(body, `aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="static",zone="DE"}`); !ok {
				t.Errorf("after the first tick, no intensity from the static table:\n%s", grepLines(body, "aiwatt_grid_carbon"))
			}
		}
	}
	elapsed := time.Since(start)
	if !sawEnergyTick {
		t.Error("no scrape saw a tick with energy")
	}
	if n, _ := sampleValue(body, "aiwatt_samples_total"); n < 11 {
		t.Errorf("%v ticks in %s with every source hung, want at least 11", n, elapsed.Round(time.Millisecond))
	}
	if slowest > time.Second {
		t.Errorf("slowest /metrics answer %s while the sources hung", slowest)
	}
	for _, series := range []string{
		`aiwatt_source_errors_total{reason="timeout",source="dcgm_exporter",target=""}`,
		fmt.Sprintf(`aiwatt_source_errors_total{reason="timeout",source="scrape",target="http://%s/metrics"}`, inferAddr),
		`aiwatt_source_errors_total{reason="timeout",source="carbon",target="electricitymaps"}`,
	} {
		if v, ok := sampleValue(body, series); !ok || v < 1 {
			t.Errorf("%s = %v (present %v), want at least 1:\n%s", series, v, ok, grepLines(body, "aiwatt_source_"))
		}
	}
	if _, ok := sampleValue(body, `aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="static",zone="DE"}`); !ok {
		t.Errorf("no intensity from the static table:\n%s", grepLines(body, "aiwatt_grid_carbon"))
	}
	n, _ := sampleValue(body, "aiwatt_samples_total")
	t.Logf("%v ticks in %s; slowest /metrics %s", n, elapsed.Round(time.Millisecond), slowest)
}
