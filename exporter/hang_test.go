package exporter_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/exporter"
	"github.com/inferensys/aiwatt/internal/sourcetest"
	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

const hangGPU = "GPU-5e3f7a1c-0000-4000-8000-000000000002"

func dcgmBody(mJ uint64) string { return sourcetest.DCGMBody(hangGPU, "NVIDIA H100 80GB HBM3", mJ) }

const vllmBody = "# TYPE vllm:request_success_total counter\nvllm:request_success_total{finished_reason=\"stop\",model_name=\"m\"} 5\n"

// TestEverythingHangingAtOnce runs the agent on its own clock with a
// dcgm-exporter, an inference server and a carbon provider that all accept
// connections and never answer. The figures (a 5 s interval, 60 s,
// at least 11 ticks) are scaled by 1/10: a 500 ms interval over 6 s. Every
// bound in the tick scales with the interval (the sources' deadline is 4/5
// of it, the carbon chain gives a link half the time left, the scrape 9/10
// of the deadline), so the scaled run exercises the same code paths in a
// tenth of the time. It checks that the ticks keep coming, that /metrics
// answers from memory while everything hangs, that each hung source shows
// timeout, that CO2e continues from the static table, and that the GPU
// energy of the outage is counted exactly once when the exporter recovers.
func TestEverythingHangingAtOnce(t *testing.T) {
	const (
		interval = 500 * time.Millisecond
		window   = 12 * interval // the 60 s at 5 s
		minTicks = 11
	)
	sysfs := sysfsfixture.Materialize(t, filepath.Join("..", "rapl", "testdata", "intel-2socket.sysfs"))
	procfs := filepath.Join("..", "rapl", "testdata", "proc-4cpu")
	var mJ atomic.Uint64
	mJ.Store(500_000_000)
	dcgm := sourcetest.NewHangable(t, dcgmBody(mJ.Load()))
	vllm := sourcetest.NewHangable(t, vllmBody)
	ukci := sourcetest.NewHangable(t, "{}")
	ukci.Hang(true) // The carbon provider never answers, from the first tick.

	cfgPath := filepath.Join(t.TempDir(), "aiwatt.yml")
	cfgText := fmt.Sprintf(`gpu:
  backend: dcgm-exporter
  exporter_url: %s/metrics
inference:
  targets:
    - url: %s/metrics
      server: vllm
carbon:
  zone: GB
  providers:
    - type: ukci
      base_url: %s
`, dcgm.URL, vllm.URL, ukci.URL)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var ticks atomic.Int64
	a, err := agent.New(agent.Options{Interval: interval, SysfsRoot: sysfs, ProcfsRoot: procfs, ConfigFile: cfgPath,
		OnTick: func(*agent.Snapshot) { ticks.Add(1) }}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := exporter.NewHandler(exporter.HandlerOptions{Source: a, ProcessMetricsTTL: interval})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(h)
	defer web.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, limit time.Duration, ok func(*agent.Snapshot) bool) *agent.Snapshot {
		t.Helper()
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			if s := a.Snapshot(); ok(s) {
				return s
			}
			pollPause()
		}
		t.Fatalf("%s: not within %s; last snapshot %+v", what, limit, a.Snapshot().Sources)
		return nil
	}
	gpuJ := func(s *agent.Snapshot) float64 {
		for _, g := range s.GPU {
			if g.UUID == hangGPU {
				return g.Joules
			}
		}
		return -1
	}
	// Healthy: the GPU counts, CO2e comes from the static table from the first ticks.
	var injected uint64
	step := func(d uint64) { injected += d; mJ.Add(d); dcgm.Set(dcgmBody(mJ.Load())) }
	waitFor("a first GPU baseline", 5*time.Second, func(s *agent.Snapshot) bool { return gpuJ(s) >= 0 })
	step(100_000)
	s := waitFor("the first GPU delta", 5*time.Second, func(s *agent.Snapshot) bool { return gpuJ(s) == 100 })
	if len(s.Attribution.Intensity) == 0 || s.Attribution.Intensity[0].Provider != "static" {
		t.Fatalf("CO2e not on the static table: %+v", s.Attribution.Intensity)
	}

	scrapeOnce := func() time.Duration {
		t0 := time.Now()
		resp, err := web.Client().Get(web.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0)
	}
	pace := time.NewTicker(interval / 5)
	defer pace.Stop()
	var healthy []time.Duration
	for range 10 {
		<-pace.C
		healthy = append(healthy, scrapeOnce())
	}

	// Everything hangs.
	dcgm.Hang(true)
	vllm.Hang(true)
	start, startTicks := time.Now(), ticks.Load()
	var hung []time.Duration
	for time.Since(start) < window {
		<-pace.C
		step(40_000) // 40 J per 100 ms: 400 W while nobody can read it
		hung = append(hung, scrapeOnce())
	}
	n := ticks.Load() - startTicks
	if n < minTicks {
		t.Errorf("%d ticks in %s at a %s interval, want at least %d", n, window, interval, minTicks)
	}
	// A scrape that waited on a tick would take about the sources' deadline
	// (4/5 of the interval); one served from memory takes what it takes
	// while the sources answer. Medians, so that a loaded test machine's
	// outliers do not decide.
	if h, u := median(healthy), median(hung); u > 2*h+interval/10 {
		t.Errorf("/metrics median %s while the sources hung, %s while they answered", u, h)
	}
	s = a.Snapshot()
	for _, want := range []struct{ source, target string }{
		{"dcgm_exporter", ""}, {"scrape", vllm.URL + "/metrics"}, {"carbon", "ukci"},
	} {
		st := findStatus(s, want.source, want.target)
		if st == nil || st.Errors["timeout"] == 0 {
			t.Errorf("%s %q: %+v, want timeout counted", want.source, want.target, st)
		}
	}
	if st := findStatus(s, "dcgm_exporter", ""); st == nil || st.Up {
		t.Errorf("dcgm_exporter: %+v, want down", st)
	}
	if len(s.Attribution.Intensity) == 0 || s.Attribution.Intensity[0].Provider != "static" {
		t.Errorf("CO2e stopped: %+v", s.Attribution.Intensity)
	}

	// Recovery: the outage's energy arrives once, exactly.
	dcgm.Hang(false)
	vllm.Hang(false)
	want := float64(injected*1000) / 1e6
	waitFor("the outage's GPU energy", 5*time.Second, func(s *agent.Snapshot) bool { return gpuJ(s) == want })
	after := ticks.Load()
	s = waitFor("two more ticks", 5*time.Second, func(*agent.Snapshot) bool { return ticks.Load() >= after+2 })
	if got := gpuJ(s); got != want || math.IsNaN(got) {
		t.Fatalf("GPU %v J after recovery, want %v J (injected), counted once", got, want)
	}
	if st := findStatus(s, "dcgm_exporter", ""); st == nil || !st.Up {
		t.Fatalf("dcgm_exporter after recovery: %+v", st)
	}
}

func findStatus(s *agent.Snapshot, src, target string) *agent.SourceStatus {
	for i := range s.Sources {
		if s.Sources[i].Name == src && s.Sources[i].Target == target {
			return &s.Sources[i]
		}
	}
	return nil
}

// median returns the median of d (sorted in place).
func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

// pollPause is the pause between two polls of waitFor (which has a deadline).
func pollPause() { time.Sleep(5 * time.Millisecond) }
