package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dashboards"
	"github.com/inferensys/aiwatt/internal/kubetest"
	"github.com/inferensys/aiwatt/internal/promtest"
)

// fakeVLLM serves a real vLLM capture whose request and token counters the
// test advances.
type fakeVLLM struct {
	srv     *httptest.Server
	mu      sync.Mutex
	capture string
	added   float64
	scrapes int
}

var vllmCounter = regexp.MustCompile(`(?m)^(vllm:(?:request_success_total|generation_tokens_total|prompt_tokens_total)\{[^}]*\}) ([0-9.e+]+)$`)

func startFakeVLLM(t *testing.T) *fakeVLLM {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "scrape", "testdata", "captures", "vllm_v0engine_full_dump_qwen3_0.6b.prom"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVLLM{capture: string(b)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		add := f.added
		f.scrapes++
		f.mu.Unlock()
		body := vllmCounter.ReplaceAllStringFunc(f.capture, func(line string) string {
			m := vllmCounter.FindStringSubmatch(line)
			v, _ := strconv.ParseFloat(m[2], 64)
			if strings.Contains(m[1], "request_success_total") {
				return fmt.Sprintf("%s %g", m[1], v+add)
			}
			return fmt.Sprintf("%s %g", m[1], v+add*100) // 100 tokens per request
		})
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeVLLM) add(requests float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added += requests
}

func (f *fakeVLLM) port(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// vllmPod is the pod the fake API server lists on node-1: labelled with
// aiwatt's project, model and workload type, annotated for scraping.
func vllmPod(port int) map[string]any {
	return map[string]any{
		"metadata": map[string]any{
			"name": "vllm-0", "namespace": "llm", "uid": "0b9c2f1e-4a55-4c1e-9d3e-6f1f2b7c8d90", "resourceVersion": "100",
			"labels": map[string]any{"app": "vllm", "aiwatt.io/project": "chat"},
			"annotations": map[string]any{
				"aiwatt.io/model-id": "qwen3-0.6b", "aiwatt.io/workload-type": "inference",
				"aiwatt.io/scrape": "true", "aiwatt.io/port": strconv.Itoa(port), "aiwatt.io/server": "vllm",
			},
		},
		"spec": map[string]any{
			"nodeName":   "node-1",
			"containers": []any{map[string]any{"name": "vllm", "image": "vllm/vllm-openai:v0.6.3", "resources": map[string]any{"limits": map[string]any{"nvidia.com/gpu": "1"}}}},
		},
		"status": map[string]any{
			"phase": "Running", "podIP": "127.0.0.1",
			"containerStatuses": []any{map[string]any{"name": "vllm", "ready": true, "containerID": "containerd://4f0c1d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"}},
		},
	}
}

// TestEndToEndEnergyPerRequest runs the agent binary as a Kubernetes node
// agent: pod metadata from a (fake) API server, GPU energy from a
// dcgm-exporter whose rows name the pod, requests from the pod's vLLM,
// found by its annotations. A real Prometheus scrapes the agent with the
// recording rules loaded; the recorded joules per request and gCO2e per 1k
// requests equal the injected GPU energy over the requests served, and every
// dashboard query returns data.
func TestEndToEndEnergyPerRequest(t *testing.T) {
	dir := t.TempDir()
	root := sysfsfixtureMaterialize(t)
	vllm := startFakeVLLM(t)
	api := kubetest.NewAPIServer(t, "node-1", false, []map[string]any{vllmPod(vllm.port(t))}, 100)
	kubeconfig := api.WriteKubeconfig(t, filepath.Join(dir, "kubeconfig"))

	dcgmSrv := startFakeDCGM(t)
	// The GPU Operator's dcgm-exporter labels each GPU row with the pod that holds it.
	dcgmSrv.mu.Lock()
	dcgmSrv.capture = regexp.MustCompile(`(?m)^(DCGM_FI_[A-Z_]+\{[^}]*)\}`).ReplaceAllString(dcgmSrv.capture, `$1,namespace="llm",pod="vllm-0",container="vllm"}`)
	dcgmSrv.mu.Unlock()

	cfg := filepath.Join(dir, "aiwatt.yml")
	if err := os.WriteFile(cfg, []byte(e2eConfig+"carbon:\n  zone: DE\nkubernetes:\n  pod_resources_socket: "+filepath.Join(dir, "none.sock")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, nil, "--path.sysfs="+root, "--path.procfs="+fixtureProc, "--agent.interval=200ms", "--config.file="+cfg,
		"--dcgm.exporter-url="+dcgmSrv.url(), "--kubernetes.node-name=node-1", "--kubernetes.kubeconfig="+kubeconfig)
	metricsURL := "http://" + p.addr + "/metrics"
	labels := `container="vllm",model_id="qwen3-0.6b",namespace="llm",pod="vllm-0",project="chat",workload_type="inference"`
	gpuSeries := `aiwatt_workload_energy_joules_total{component="gpu",` + labels + `}`
	reqSeries := `aiwatt_inference_requests_total{container="vllm",finished_reason="length",model_id="qwen3-0.6b",namespace="llm",pod="vllm-0",project="chat",server="vllm",workload_type="inference"}`
	co2Series := `aiwatt_workload_co2e_grams_total{basis="location",` + labels + `}`
	waitFor(t, "the pod's energy and requests series", 30*time.Second, func() (bool, error) {
		body, err := scrape(nil, metricsURL)
		_, okE := sampleValue(body, gpuSeries)
		_, okR := sampleValue(body, reqSeries)
		if !(okE && okR) && err == nil {
			err = fmt.Errorf("no %s or %s in:\n%s", gpuSeries, reqSeries, grepLines(body, "workload_energy", "inference_", "source_up"))
		}
		return okE && okR, err
	})

	prom := promtest.Start(t, promtest.Options{
		// Short intervals: while the series are young, rate() extrapolation moves each recorded
		// rate by up to half a scrape interval over the series' age, and the per-request rules
		// divide rates recorded by different groups at different instants.
		Config: fmt.Sprintf("global:\n  scrape_interval: 200ms\n  evaluation_interval: 200ms\nscrape_configs:\n  - job_name: aiwatt\n    static_configs:\n      - targets: [%q]\n", p.addr),
		RuleFiles: []string{
			filepath.Join("..", "..", "alerts", "rules", "aiwatt-recording.yml"),
			filepath.Join("..", "..", "alerts", "rules", "aiwatt-config.yml"),
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Two scrapes of the baseline, then 60 requests served with 300 J of GPU energy.
	waitFor(t, "Prometheus to scrape the baseline", 30*time.Second, func() (bool, error) {
		n, err := promScalar(ctx, prom.URL, `count_over_time(aiwatt_samples_total[1m])`)
		return err == nil && n >= 2, err
	})
	const joules, requests = 300.0, 60.0
	dcgmSrv.add(uint64(joules * 1000))
	vllm.add(requests)
	var body string
	waitFor(t, "the agent to attribute the injected energy and requests", 30*time.Second, func() (bool, error) {
		var err error
		body, err = scrape(nil, metricsURL)
		e, _ := sampleValue(body, gpuSeries)
		r, _ := sampleValue(body, reqSeries)
		return e == joules && r == requests, err
	})
	// The same arithmetic on the scraped counters that the rules do.
	co2, _ := sampleValue(body, co2Series)
	table, err := carbon.DefaultTable()
	if err != nil {
		t.Fatal(err)
	}
	static, err := carbon.NewStatic(table)
	if err != nil {
		t.Fatal(err)
	}
	in, err := static.Intensity(ctx, "DE", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wantCO2 := joules / 3.6e6 * float64(in.Value)
	if math.Abs(co2-wantCO2)/wantCO2 > 1e-9 {
		t.Fatalf("agent CO2e %v g, want %v g (300 J at %v g/kWh)", co2, wantCO2, in.Value)
	}

	// The recorded rules, evaluated by Prometheus over the agent's series.
	checks := []struct {
		query string
		want  float64
	}{
		{`model_id:aiwatt_inference_joules_per_request:rate5m{model_id="qwen3-0.6b"}`, joules / requests},
		{`model_id:aiwatt_inference_joules_per_output_token:rate5m{model_id="qwen3-0.6b"}`, joules / (requests * 100)},
		{`model_id:aiwatt_inference_co2e_grams_per_1k_requests:rate5m{model_id="qwen3-0.6b"}`, wantCO2 / requests * 1000},
	}
	for _, c := range checks {
		var got float64
		waitFor(t, c.query, 30*time.Second, func() (bool, error) {
			var err error
			got, err = promScalar(ctx, prom.URL, c.query)
			return err == nil && math.Abs(got-c.want)/c.want <= 0.01, fmt.Errorf("%s = %v (%v), want %v within 1%%", c.query, got, err, c.want)
		})
	}
	checkDashboardsReturnData(ctx, t, prom.URL)
}

// sysfsfixtureMaterialize is the Intel fixture, unchanged during the test:
// CPU energy stays 0 so the workload's energy is its GPU's.
func sysfsfixtureMaterialize(t *testing.T) string {
	t.Helper()
	return materialize(t, intelFixture)
}

// promQuery runs an instant query and returns its result series.
func promQuery(ctx context.Context, base, query string) ([]json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", query, r.Error)
	}
	return r.Data.Result, nil
}

// promScalar runs an instant query and returns its single value.
func promScalar(ctx context.Context, base, query string) (float64, error) {
	series, err := promQuery(ctx, base, query)
	if err != nil {
		return 0, err
	}
	if len(series) != 1 {
		return 0, fmt.Errorf("query %s: %d series", query, len(series))
	}
	var one struct {
		Value [2]any `json:"value"`
	}
	if err := json.Unmarshal(series[0], &one); err != nil {
		return 0, err
	}
	s, _ := one.Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// dashboardVariables stand in for Grafana's when a panel query runs against
// Prometheus directly.
var dashboardVariables = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval_ms", "60000", "$__interval", "1m",
	"$__range_s", "300", "$__range", "5m",
	"$cluster", ".*", "$node", ".*", "$namespace", ".*", "$model_id", ".*", "$basis", "location",
)

// dashboardsWithoutData are panel queries that cannot have data in this
// test, and why.
var dashboardsWithoutData = map[string]string{
	"aiwatt_project_energy_budget_joules": "no project budget is declared in aiwatt-config.yml",
	"budget":                              "no project budget is declared in aiwatt-config.yml",
	"market":                              "no market instruments are configured",
	"marginal":                            "no marginal signal is configured",
	"aiwatt_source_errors_total":          "no source fails in this run",
	"aiwatt_gpu_power_limit_watts":        "the dcgm-exporter capture reports no power limit",
	"avg7d":                               "a 7-day baseline needs at least a day of history",
}

// checkDashboardsReturnData runs every panel query of the generated
// dashboards and requires data, except where the test deliberately has none.
func checkDashboardsReturnData(ctx context.Context, t *testing.T, promURL string) {
	t.Helper()
	queries, err := dashboards.Queries()
	if err != nil {
		t.Fatal(err)
	}
	empty := 0
	for _, dq := range queries {
		q := dashboardVariables.Replace(dq.Expr)
		series, err := promSeriesCount(ctx, promURL, q)
		if err != nil {
			t.Errorf("%s: panel %q: %v", dq.File, dq.Panel, err)
			continue
		}
		if series == 0 {
			why := ""
			for k, v := range dashboardsWithoutData {
				if strings.Contains(strings.ToLower(q+" "+dq.Panel), k) {
					why = v
				}
			}
			if why == "" {
				t.Errorf("%s: panel %q returns no data: %s", dq.File, dq.Panel, q)
			}
			empty++
		}
	}
	if len(queries) == 0 {
		t.Fatal("no dashboard queries")
	}
	t.Logf("%d dashboard queries, %d without data by design", len(queries), empty)
}

func promSeriesCount(ctx context.Context, base, query string) (int, error) {
	series, err := promQuery(ctx, base, query)
	return len(series), err
}

// grepLines keeps the lines of body that contain one of words.
func grepLines(body string, words ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) && !strings.HasPrefix(l, "#") {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
