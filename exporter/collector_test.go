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

var vllm = agent.Workload{Namespace: "llm", Pod: "vllm-0", Container: "vllm", Project: "chat", ModelID: "llama-3-8b", WorkloadType: "inference"}

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
			{Name: "scrape", Target: "pod/llm/vllm-0:8000", Up: true, Errors: map[string]uint64{"timeout": 2}, Duration: 2 * time.Millisecond},
		},
		Attribution: agent.Attribution{
			Policy: "node",
			Workloads: []agent.WorkloadEnergy{{
				Key:          vllm,
				Joules:       agent.Joules{100, 10, 900},
				CO2eLocation: 0.25, CO2eMarket: 0.1, HasMarket: true,
			}},
			Idle:                  agent.Joules{50, 5, 20},
			Unattributed:          agent.Joules{7, 1, 0},
			FoldedKeys:            2,
			FoldedJoules:          agent.Joules{3, 0, 0},
			UnaccountedCPUSeconds: 1.5,
			Intensity: []agent.Intensity{
				{Zone: "DE", Provider: "static", Basis: "location", GramsPerKWh: 362.92, ValidFrom: time.Unix(1764331200-3600, 0)},
			},
		},
		Inference: []agent.InferenceCounter{
			{Key: vllm, Server: "vllm", Kind: agent.InferenceRequests, FinishedReason: "stop", Value: 40},
			{Key: vllm, Server: "vllm", Kind: agent.InferenceInputTokens, Value: 4000},
			{Key: vllm, Server: "vllm", Kind: agent.InferenceOutputTokens, Value: 800},
			{Key: vllm, Server: "triton", Kind: agent.InferenceInferences, Value: 96},
			{Server: "vllm", Kind: agent.InferenceRequests, Value: 3, Unattributed: true, Reason: "workload_unresolved"},
		},
	}
}

func TestCollectorExposition(t *testing.T) {
	src := &staticSource{snap: testSnapshot(), reload: agent.ReloadStatus{Success: false, LastSuccess: time.Unix(1764331000, 0)}}
	want := `
# HELP aiwatt_attribution_info The attribution policy in force; always 1. idle=node keeps idle energy of shared devices as node idle, idle=allocation spreads it by allocation.
# TYPE aiwatt_attribution_info gauge
aiwatt_attribution_info{idle="node"} 1
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
# HELP aiwatt_grid_carbon_intensity_age_seconds Age of the applied intensity value: the sample time minus the start of the value's validity window.
# TYPE aiwatt_grid_carbon_intensity_age_seconds gauge
aiwatt_grid_carbon_intensity_age_seconds{basis="location",provider="static",zone="DE"} 3600.5
# HELP aiwatt_grid_carbon_intensity_grams_per_kwh Grid carbon intensity applied to the last sample (time-weighted over it).
# TYPE aiwatt_grid_carbon_intensity_grams_per_kwh gauge
aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="static",zone="DE"} 362.92
# HELP aiwatt_inference_inferences_total Inferences of a workload's inference server, batch items counted one by one (Triton's nv_inference_count): energy per inference for batched models.
# TYPE aiwatt_inference_inferences_total counter
aiwatt_inference_inferences_total{container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",server="triton",workload_type="inference"} 96
# HELP aiwatt_inference_input_tokens_total Prompt (input) tokens processed by a workload's inference server.
# TYPE aiwatt_inference_input_tokens_total counter
aiwatt_inference_input_tokens_total{container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",server="vllm",workload_type="inference"} 4000
# HELP aiwatt_inference_output_tokens_total Generated (output) tokens of a workload's inference server.
# TYPE aiwatt_inference_output_tokens_total counter
aiwatt_inference_output_tokens_total{container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",server="vllm",workload_type="inference"} 800
# HELP aiwatt_inference_unattributed_total Inference counts not exported under any workload because the target's workload could not be resolved, by counter (requests, input_tokens, output_tokens, inferences) and reason.
# TYPE aiwatt_inference_unattributed_total counter
aiwatt_inference_unattributed_total{counter="requests",reason="workload_unresolved",server="vllm"} 3
# HELP aiwatt_inference_requests_total Finished inference requests of a workload's server, by finished_reason.
# TYPE aiwatt_inference_requests_total counter
aiwatt_inference_requests_total{container="vllm",finished_reason="stop",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",server="vllm",workload_type="inference"} 40
# HELP aiwatt_last_sample_timestamp_seconds Time of the latest sampling tick, in seconds since the epoch.
# TYPE aiwatt_last_sample_timestamp_seconds gauge
aiwatt_last_sample_timestamp_seconds 1.7643312005e+09
# HELP aiwatt_node_idle_energy_joules_total Idle energy of shared devices that stays with the node (attribution.idle: node).
# TYPE aiwatt_node_idle_energy_joules_total counter
aiwatt_node_idle_energy_joules_total{component="cpu"} 50
aiwatt_node_idle_energy_joules_total{component="dram"} 5
aiwatt_node_idle_energy_joules_total{component="gpu"} 20
# HELP aiwatt_node_unattributed_energy_joules_total Active energy of processes that belong to no workload (system daemons, kernel threads).
# TYPE aiwatt_node_unattributed_energy_joules_total counter
aiwatt_node_unattributed_energy_joules_total{component="cpu"} 7
aiwatt_node_unattributed_energy_joules_total{component="dram"} 1
aiwatt_node_unattributed_energy_joules_total{component="gpu"} 0
# HELP aiwatt_node_unaccounted_cpu_seconds_total Busy CPU time of the node (steal excluded) that no scanned process or workload cgroup accounts for; its energy went to the workloads seen.
# TYPE aiwatt_node_unaccounted_cpu_seconds_total counter
aiwatt_node_unaccounted_cpu_seconds_total 1.5
# HELP aiwatt_sample_duration_seconds How long the source's last sample took.
# TYPE aiwatt_sample_duration_seconds gauge
aiwatt_sample_duration_seconds{source="cpu_model",target=""} 0.00025
aiwatt_sample_duration_seconds{source="rapl",target=""} 0.001
aiwatt_sample_duration_seconds{source="scrape",target="pod/llm/vllm-0:8000"} 0.002
# HELP aiwatt_samples_total Sampling ticks since the agent started.
# TYPE aiwatt_samples_total counter
aiwatt_samples_total 7
# HELP aiwatt_source_errors_total Errors of a source since the agent started, by reason.
# TYPE aiwatt_source_errors_total counter
aiwatt_source_errors_total{reason="implausible_delta",source="rapl",target=""} 1
aiwatt_source_errors_total{reason="permission_denied",source="rapl",target=""} 3
aiwatt_source_errors_total{reason="timeout",source="scrape",target="pod/llm/vllm-0:8000"} 2
# HELP aiwatt_source_up 1 when the source's last sample succeeded, 0 when it is absent or failing; target names an inference server.
# TYPE aiwatt_source_up gauge
aiwatt_source_up{source="cpu_model",target=""} 1
aiwatt_source_up{source="rapl",target=""} 0
aiwatt_source_up{source="scrape",target="pod/llm/vllm-0:8000"} 1
# HELP aiwatt_workload_co2e_grams_total CO2e of a workload's energy, time-matched to the grid intensity, by basis (location, market).
# TYPE aiwatt_workload_co2e_grams_total counter
aiwatt_workload_co2e_grams_total{basis="location",container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",workload_type="inference"} 0.25
aiwatt_workload_co2e_grams_total{basis="market",container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",workload_type="inference"} 0.1
# HELP aiwatt_workload_energy_joules_total Energy attributed to a workload since it was first seen, by component (cpu, dram, gpu).
# TYPE aiwatt_workload_energy_joules_total counter
aiwatt_workload_energy_joules_total{component="cpu",container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",workload_type="inference"} 100
aiwatt_workload_energy_joules_total{component="dram",container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",workload_type="inference"} 10
aiwatt_workload_energy_joules_total{component="gpu",container="vllm",model_id="llama-3-8b",namespace="llm",pod="vllm-0",project="chat",workload_type="inference"} 900
# HELP aiwatt_workloads_folded_energy_joules_total Energy of workloads folded into workload_type="other" by the cardinality cap.
# TYPE aiwatt_workloads_folded_energy_joules_total counter
aiwatt_workloads_folded_energy_joules_total{component="cpu"} 3
aiwatt_workloads_folded_energy_joules_total{component="dram"} 0
aiwatt_workloads_folded_energy_joules_total{component="gpu"} 0
# HELP aiwatt_workloads_folded_total Workloads folded into workload_type="other" by the cardinality cap (attribution.max_workloads).
# TYPE aiwatt_workloads_folded_total counter
aiwatt_workloads_folded_total 2
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
