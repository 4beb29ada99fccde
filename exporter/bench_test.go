package exporter_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/exporter"
)

// The scrape benchmarks serve GET /metrics through the agent's whole HTTP
// handler (exporter.NewHandler: mux, promhttp, gzip) into a recorder, over a
// static snapshot, with the headers Prometheus sends. The aiwatt collector
// touches no files; the registry's standard process collector still reads
// /proc/self (stat, limits, fd), as node_exporter's does, and the Go collector
// reads runtime/metrics. The CollectorOnly variants serve the aiwatt
// collector alone through promhttp, to show what those standard collectors
// cost.

// scrapeAccept is the Accept header of a Prometheus scrape.
const scrapeAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," +
	"text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// benchSource serves one fixed snapshot.
type benchSource struct{ snap *agent.Snapshot }

func (s benchSource) Snapshot() *agent.Snapshot { return s.snap }
func (s benchSource) ReloadStatus() agent.ReloadStatus {
	return agent.ReloadStatus{Success: true, LastSuccess: time.Unix(1_764_331_000, 0)}
}

// benchSnapshot is a snapshot with sockets × (package, core, uncore, dram)
// RAPL counters, psys when withPsys, and the rapl and cpu_model sources.
func benchSnapshot(sockets int, withPsys bool) *agent.Snapshot {
	s := &agent.Snapshot{Time: time.Unix(1_764_331_200, 500_000_000), Samples: 17_280}
	for i := range sockets {
		for j, zone := range []string{"package", "core", "uncore", "dram"} {
			s.CPU = append(s.CPU, agent.EnergyCounter{
				Socket: strconv.Itoa(i), Zone: zone, Source: agent.MethodRAPL,
				Joules: 123_456.789012 + float64(i*4+j), Watts: 87.5,
			})
		}
	}
	if withPsys {
		s.CPU = append(s.CPU, agent.EnergyCounter{Zone: "psys", Source: agent.MethodRAPL, Joules: 345_678.9, Watts: 210})
	}
	s.Sources = []agent.SourceStatus{
		{Name: agent.SourceCPUModel, Up: true, Errors: map[string]uint64{}, Duration: 40 * time.Microsecond},
		{Name: agent.SourceRAPL, Up: true, Errors: map[string]uint64{"implausible_delta": 1}, Duration: 35 * time.Microsecond},
	}
	return s
}

// agentHandler is the agent's whole HTTP handler over snap.
func agentHandler(b *testing.B, snap *agent.Snapshot) http.Handler {
	b.Helper()
	h, err := exporter.NewHandler(exporter.HandlerOptions{Source: benchSource{snap}})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// collectorOnlyHandler serves the aiwatt collector alone, with the agent's
// promhttp options.
func collectorOnlyHandler(b *testing.B, snap *agent.Snapshot) http.Handler {
	b.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporter.NewCollector(benchSource{snap}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}

// benchScrape serves GET /metrics from h with Prometheus's headers.
func benchScrape(b *testing.B, h http.Handler, snap *agent.Snapshot, wantCounters int) {
	b.Helper()
	if len(snap.CPU) != wantCounters {
		b.Fatalf("%d CPU counters, want %d", len(snap.CPU), wantCounters)
	}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", scrapeAccept)
	req.Header.Set("Accept-Encoding", "gzip")
	var bytes int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		bytes = rec.Body.Len()
	}
	b.ReportMetric(float64(bytes), "gzip-B/scrape")
}

// BenchmarkScrape2Sockets scrapes a snapshot of the intel-2socket machine:
// 9 CPU counters and two sources.
func BenchmarkScrape2Sockets(b *testing.B) {
	snap := benchSnapshot(2, true)
	benchScrape(b, agentHandler(b, snap), snap, 9)
}

// BenchmarkScrapeCollectorOnly2Sockets is BenchmarkScrape2Sockets without the
// Go, process and build-info collectors.
func BenchmarkScrapeCollectorOnly2Sockets(b *testing.B) {
	snap := benchSnapshot(2, true)
	benchScrape(b, collectorOnlyHandler(b, snap), snap, 9)
}

// BenchmarkScrape1000Zones scrapes a snapshot of 1000 CPU counters (250
// sockets × 4 zones) and two sources.
func BenchmarkScrape1000Zones(b *testing.B) {
	snap := benchSnapshot(250, false)
	benchScrape(b, agentHandler(b, snap), snap, 1000)
}

// BenchmarkScrapeCollectorOnly1000Zones is BenchmarkScrape1000Zones without
// the Go, process and build-info collectors.
func BenchmarkScrapeCollectorOnly1000Zones(b *testing.B) {
	snap := benchSnapshot(250, false)
	benchScrape(b, collectorOnlyHandler(b, snap), snap, 1000)
}
