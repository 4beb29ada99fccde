package exporter

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inferensys/aiwatt/agent"
)

// staticSource serves a fixed snapshot.
type staticSource struct {
	snap   *agent.Snapshot
	reload agent.ReloadStatus
}

func (s *staticSource) Snapshot() *agent.Snapshot        { return s.snap }
func (s *staticSource) ReloadStatus() agent.ReloadStatus { return s.reload }

func testSnapshot() *agent.Snapshot {
	return &agent.Snapshot{
		Time:    time.Unix(1764331200, 500_000_000),
		Samples: 7,
		CPU: []agent.EnergyCounter{
			{Socket: "0", Zone: "package", Source: "rapl", Joules: 1234.5, Watts: 80},
			{Socket: "0", Zone: "dram", Source: "rapl", Joules: 10.25, Watts: 4},
			{Zone: "package", Source: "estimate", Joules: 99, Watts: 8},
		},
		Sources: []agent.SourceStatus{
			{Name: "cpu_model", Up: true, Duration: 250 * time.Microsecond},
			{Name: "rapl", Up: false, Errors: map[string]uint64{"permission_denied": 3, "implausible_delta": 1}, Duration: time.Millisecond},
		},
	}
}

func TestCollectorExposition(t *testing.T) {
	src := &staticSource{snap: testSnapshot(), reload: agent.ReloadStatus{Success: false, LastSuccess: time.Unix(1764331000, 0)}}
	want := `
# HELP aiwatt_config_last_reload_success_timestamp_seconds Time of the last successful configuration load, in seconds since the epoch.
# TYPE aiwatt_config_last_reload_success_timestamp_seconds gauge
aiwatt_config_last_reload_success_timestamp_seconds 1.764331e+09
# HELP aiwatt_config_last_reload_successful 1 when the last configuration reload succeeded.
# TYPE aiwatt_config_last_reload_successful gauge
aiwatt_config_last_reload_successful 0
# HELP aiwatt_cpu_energy_joules_total CPU and DRAM energy since the agent started, per RAPL zone; source=estimate is the utilisation model, not a measurement.
# TYPE aiwatt_cpu_energy_joules_total counter
aiwatt_cpu_energy_joules_total{socket="",source="estimate",zone="package"} 99
aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="dram"} 10.25
aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="package"} 1234.5
# HELP aiwatt_last_sample_timestamp_seconds Time of the latest sampling tick, in seconds since the epoch.
# TYPE aiwatt_last_sample_timestamp_seconds gauge
aiwatt_last_sample_timestamp_seconds 1.7643312005e+09
# HELP aiwatt_sample_duration_seconds How long the source's last sample took.
# TYPE aiwatt_sample_duration_seconds gauge
aiwatt_sample_duration_seconds{source="cpu_model"} 0.00025
aiwatt_sample_duration_seconds{source="rapl"} 0.001
# HELP aiwatt_samples_total Sampling ticks since the agent started.
# TYPE aiwatt_samples_total counter
aiwatt_samples_total 7
# HELP aiwatt_source_errors_total Errors of a source since the agent started, by reason.
# TYPE aiwatt_source_errors_total counter
aiwatt_source_errors_total{reason="implausible_delta",source="rapl"} 1
aiwatt_source_errors_total{reason="permission_denied",source="rapl"} 3
# HELP aiwatt_source_up 1 when the source's last sample succeeded, 0 when it is absent or failing.
# TYPE aiwatt_source_up gauge
aiwatt_source_up{source="cpu_model"} 1
aiwatt_source_up{source="rapl"} 0
`
	if err := testutil.CollectAndCompare(NewCollector(src), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(NewCollector(src)); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

func TestHandlerEndpoints(t *testing.T) {
	src := &staticSource{snap: testSnapshot(), reload: agent.ReloadStatus{Success: true}}
	reloads := 0
	var reloadErr error
	h, err := NewHandler(HandlerOptions{Source: src, Reload: func() error { reloads++; return reloadErr }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		contains     string
	}{
		{"GET", "/", 200, "/metrics"},
		{"GET", "/metrics", 200, `aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="package"} 1234.5`},
		{"GET", "/metrics", 200, "aiwatt_build_info{"},
		{"GET", "/metrics", 200, "go_goroutines"},
		{"GET", "/-/healthy", 200, "OK"},
		{"GET", "/-/ready", 200, "OK"},
		{"GET", "/-/reload", 405, "POST"},
		{"POST", "/-/reload", 200, "reloaded"},
	} {
		code, body := get(tc.method, tc.path)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s: %d %q, want %d containing %q", tc.method, tc.path, code, firstLine(body), tc.code, tc.contains)
		}
	}
	reloadErr = fmt.Errorf("aiwatt.yml:3: field x not found")
	if code, body := get("POST", "/-/reload"); code != 500 || !strings.Contains(body, "aiwatt.yml:3:") {
		t.Errorf("failed reload: %d %q", code, body)
	}
	if reloads != 2 {
		t.Errorf("reload called %d times, want 2", reloads)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

var _ prometheus.Collector = NewCollector(&staticSource{})

// countingCollector counts how often it is collected.
type countingCollector struct {
	desc  *prometheus.Desc
	calls int
}

func (c *countingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *countingCollector) Collect(ch chan<- prometheus.Metric) {
	c.calls++
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.calls))
}

func TestCachedCollectorServesFromMemory(t *testing.T) {
	inner := &countingCollector{desc: prometheus.NewDesc("x", "x", nil, nil)}
	now := time.Unix(0, 0)
	c := newCachedCollector(inner, 5*time.Second)
	c.now = func() time.Time { return now }
	for range 3 {
		if got := testutil.ToFloat64(c); got != 1 {
			t.Fatalf("within the TTL: %v, want the first collection (1)", got)
		}
	}
	now = now.Add(5 * time.Second)
	if got := testutil.ToFloat64(c); got != 2 || inner.calls != 2 {
		t.Fatalf("after the TTL: %v (%d calls)", got, inner.calls)
	}
}
