package alerts

import (
	"bytes"
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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/promtest"

	"go.yaml.in/yaml/v3"

	"github.com/inferensys/aiwatt/dashboards"
)

// TestPagingEndToEnd runs the whole paging path on 127.0.0.1: a synthetic aiwatt agent (httptest)
// scraped by Debian's prometheus with the real rule files, which sends to prometheus-alertmanager
// running the example configuration, which pages a fake PagerDuty (Events API v2, httptest).
//
// The page needs days of history (a 7-day baseline, a 1-day guard) and 30 minutes of `for`. No rule
// is changed for the test; instead the history Prometheus would have recorded is backfilled with
// promtool before it starts, as if it had been running for two days:
//
//   - the agent's counters for the last two hours (the regression is already in them: 33 J per
//     request for llama-e2e against 22 J before; steady-e2e stays at 22 J);
//   - the one-hour recording rules up to an hour ago (two days at 22 J per request), which the
//     baseline and its 1-day guard read;
//   - the last minutes of the 7-day baselines (their group runs every 5 minutes, so its first live
//     evaluation may come minutes after start);
//   - ALERTS_FOR_STATE of the pending alert (active for 45 minutes), which Prometheus restores at
//     start, exactly as after a restart, so that `for: 30m` is already served.
//
// What is evaluated live: rate1h over the scraped/backfilled counters, energy per request, the
// alert and its annotations (including the baseline query), routing, grouping and the PagerDuty
// payload. The Alertmanager configuration is the example's with only timing (group_wait,
// group_interval), the PagerDuty URL and the secret file paths changed. Prometheus resends firing
// alerts every 2 s, so "exactly one event" also shows that Alertmanager deduplicates them.
func TestPagingEndToEnd(t *testing.T) {
	alertmanager, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatalf("prometheus-alertmanager not found (%v): apt-get install prometheus-alertmanager (make test does) to run the paging test", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	start := now.Add(-2 * time.Hour) // the agent's counters start here

	// The fake PagerDuty.
	pd := &fakePagerDuty{events: make(chan pdEvent, 16)}
	pdSrv := httptest.NewServer(pd)
	defer pdSrv.Close()

	// The synthetic agent.
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, exposition(start, time.Now()))
	}))
	defer agent.Close()
	target := strings.TrimPrefix(agent.URL, "http://")

	// Alertmanager with the example configuration.
	amPort := freePort(t)
	routingKey := "e2e-routing-key-0123456789abcdef"
	amConfig := exampleAMConfigForTest(t, dir, pdSrv.URL+"/v2/enqueue", routingKey)
	amCmd := startProcess(ctx, t, filepath.Join(dir, "alertmanager.log"), alertmanager,
		"--config.file="+amConfig,
		"--storage.path="+filepath.Join(dir, "alertmanager"),
		"--web.listen-address=127.0.0.1:"+amPort,
		"--cluster.listen-address=",
		"--log.level=warn")
	waitReady(ctx, t, "http://127.0.0.1:"+amPort+"/-/ready", amCmd)

	// Prometheus with the real rule files, over the backfilled history.
	rules, err := filepath.Glob(filepath.Join("rules", "*.yml"))
	if err != nil || len(rules) == 0 {
		t.Fatalf("rule files: %v", err)
	}
	prom := promtest.Start(t, promtest.Options{
		OpenMetrics: backfill(target, start, now),
		RuleFiles:   rules,
		Config: fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:%s"]
scrape_configs:
  - job_name: aiwatt
    static_configs:
      - targets: [%q]
        labels:
          cluster: e2e
          node: n1
`, amPort, target),
		// Prometheus drops alerts it fires before it has discovered the Alertmanager and resends
		// them after this delay (default 1m); Alertmanager deduplicates the resends.
		Args: []string{"--rules.alert.resend-delay=2s", "--log.level=warn"},
	})
	promURL := prom.URL
	t.Logf("%s: prometheus ready", time.Since(now))
	debug := func() {
		for _, p := range []string{"/api/v1/alerts", "/api/v1/rules?type=alert"} {
			if b, err := httpGet(ctx, promURL+p); err == nil {
				t.Logf("GET %s: %.4000s", p, b)
			}
		}
		t.Logf("prometheus.log:\n%.4000s", prom.Logs())
		b, _ := os.ReadFile(filepath.Join(dir, "alertmanager.log"))
		t.Logf("alertmanager.log:\n%.4000s", b)
	}

	// Exactly one page arrives.
	var ev pdEvent
	select {
	case ev = <-pd.events:
	case <-time.After(45 * time.Second): // typically 5 s
		debug()
		t.Fatal("no PagerDuty event within 45 s")
	}
	t.Logf("%s: page received", time.Since(now))
	quiet := time.NewTimer(5 * time.Second) // several group_intervals: no second page
	select {
	case extra := <-pd.events:
		debug()
		t.Fatalf("a second PagerDuty event arrived: %+v", extra)
	case <-quiet.C:
	case <-ctx.Done():
	}

	if ev.RoutingKey != routingKey {
		t.Errorf("routing_key %q, want the key from routing_key_file", ev.RoutingKey)
	}
	if ev.EventAction != "trigger" || ev.Payload.Severity != "critical" {
		t.Errorf("event_action %q, severity %q; want trigger, critical", ev.EventAction, ev.Payload.Severity)
	}
	details := ev.Payload.CustomDetails
	if details["model_id"] != "llama-e2e" {
		t.Errorf("custom_details.model_id = %v, want llama-e2e", details["model_id"])
	}
	baseline, err := strconv.ParseFloat(fmt.Sprint(details["baseline_joules_per_request"]), 64)
	if err != nil || math.Abs(baseline-22) > 0.5 {
		t.Errorf("custom_details.baseline_joules_per_request = %v, want about 22", details["baseline_joules_per_request"])
	}
	runbook := RunbookBaseURL + "AiwattInferenceEnergyPerRequestRegression.md"
	if details["runbook_url"] != runbook {
		t.Errorf("custom_details.runbook_url = %v, want %s", details["runbook_url"], runbook)
	}
	if len(ev.Links) == 0 || ev.Links[0].Href != runbook {
		t.Errorf("links %+v, want the runbook first", ev.Links)
	}
	desc := fmt.Sprint(details["description"])
	for _, want := range []string{"llama-e2e", "33 J per request", "baseline of 22"} {
		if !strings.Contains(desc, want) {
			t.Errorf("description %q lacks %q", desc, want)
		}
	}
	if !strings.Contains(ev.Payload.Summary, "model_id=llama-e2e") {
		t.Errorf("summary %q does not name the model", ev.Payload.Summary)
	}

	// Every rule evaluates without error against a real Prometheus, and every dashboard query runs.
	checkRuleHealth(ctx, t, promURL)
	checkDashboardQueries(ctx, t, promURL)
	if t.Failed() {
		debug()
	}
}

// checkRuleHealth fails on any rule whose last evaluation failed (e.g. many-to-many matching).
func checkRuleHealth(ctx context.Context, t *testing.T, promURL string) {
	t.Helper()
	b, err := httpGet(ctx, promURL+"/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range resp.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				t.Errorf("rule %s/%s: %s", g.Name, r.Name, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("Prometheus loaded no rules")
	}
}

// grafanaSubstitutions stand in for Grafana's variables when a dashboard query runs against
// Prometheus directly.
var grafanaSubstitutions = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval_ms", "3600000", "$__interval", "1h",
	"$__range_s", "3600", "$__range", "1h",
	"$cluster", ".*", "$node", ".*", "$namespace", ".*", "$model_id", ".*", "$basis", "location",
)

// checkDashboardQueries runs every panel query of the generated dashboards.
func checkDashboardQueries(ctx context.Context, t *testing.T, promURL string) {
	t.Helper()
	queries, err := dashboards.Queries()
	if err != nil {
		t.Fatal(err)
	}
	for _, dq := range queries {
		q := grafanaSubstitutions.Replace(dq.Expr)
		if _, err := httpGet(ctx, promURL+"/api/v1/query?query="+url.QueryEscape(q)); err != nil {
			t.Errorf("%s: panel %q: query %s: %v", dq.File, dq.Panel, q, err)
		}
	}
	if len(queries) == 0 {
		t.Error("no dashboard queries")
	}
}

// exposition is the synthetic agent's /metrics at time now: llama-e2e serves 10 requests/s at
// 33 J each, steady-e2e 10 requests/s at 22 J each, both since start.
func exposition(start, now time.Time) string {
	s := now.Sub(start).Seconds()
	var b strings.Builder
	b.WriteString("# TYPE aiwatt_workload_energy_joules_total counter\n")
	for _, m := range e2eModels {
		fmt.Fprintf(&b, "aiwatt_workload_energy_joules_total{%s,component=\"gpu\"} %g\n", m.labels(), m.watts*s)
	}
	b.WriteString("# TYPE aiwatt_inference_requests_total counter\n")
	for _, m := range e2eModels {
		fmt.Fprintf(&b, "aiwatt_inference_requests_total{%s,server=\"vllm\",finished_reason=\"stop\"} %g\n", m.labels(), 10*s)
	}
	fmt.Fprintf(&b, "# TYPE aiwatt_source_up gauge\naiwatt_source_up{source=\"nvml\"} 1\n")
	fmt.Fprintf(&b, "# TYPE aiwatt_last_sample_timestamp_seconds gauge\naiwatt_last_sample_timestamp_seconds %d\n", now.Unix())
	fmt.Fprintf(&b, "# TYPE aiwatt_config_last_reload_successful gauge\naiwatt_config_last_reload_successful 1\n")
	return b.String()
}

type e2eModel struct {
	id    string
	watts float64 // now; before the regression every model used 220 W for 10 requests/s
}

func (m e2eModel) labels() string {
	return fmt.Sprintf(`namespace="serving",pod="%s-0",container="vllm",project="chat",model_id="%s",workload_type="inference"`, m.id, m.id)
}

var e2eModels = []e2eModel{{"llama-e2e", 330}, {"steady-e2e", 220}}

// backfill is what Prometheus would have stored had it been running: see TestPagingEndToEnd.
func backfill(target string, start, now time.Time) string {
	var b strings.Builder
	sample := func(series string, v float64, at time.Time) {
		fmt.Fprintf(&b, "%s %g %d\n", series, v, at.Unix())
	}
	scrape := fmt.Sprintf(`cluster="e2e",node="n1",instance=%q,job="aiwatt"`, target)
	for _, m := range e2eModels {
		energy := fmt.Sprintf("aiwatt_workload_energy_joules_total{%s,%s,component=\"gpu\"}", scrape, m.labels())
		for at := start; at.Before(now.Add(-10 * time.Second)); at = at.Add(15 * time.Second) {
			sample(energy, m.watts*at.Sub(start).Seconds(), at)
		}
		requests := fmt.Sprintf("aiwatt_inference_requests_total{%s,%s,server=\"vllm\",finished_reason=\"stop\"}", scrape, m.labels())
		for at := start; at.Before(now.Add(-10 * time.Second)); at = at.Add(15 * time.Second) {
			sample(requests, 10*at.Sub(start).Seconds(), at)
		}
		model := fmt.Sprintf(`{cluster="e2e",model_id=%q}`, m.id)
		for at := now.Add(-48 * time.Hour); at.Before(now.Add(-time.Hour)); at = at.Add(5 * time.Minute) {
			sample("model_id:aiwatt_inference_energy_joules:rate1h"+model, 220, at)
		}
		for at := now.Add(-48 * time.Hour); at.Before(now.Add(-time.Hour)); at = at.Add(5 * time.Minute) {
			sample("model_id:aiwatt_inference_requests:rate1h"+model, 10, at)
		}
		for at := now.Add(-48 * time.Hour); at.Before(now.Add(-time.Hour)); at = at.Add(5 * time.Minute) {
			sample("model_id:aiwatt_inference_joules_per_request:rate1h"+model, 22, at)
		}
		for at := now.Add(-10 * time.Minute); at.Before(now.Add(-10 * time.Second)); at = at.Add(15 * time.Second) {
			sample("model_id:aiwatt_inference_joules_per_request:rate1h_avg7d"+model, 22, at)
		}
		for at := now.Add(-10 * time.Minute); at.Before(now.Add(-10 * time.Second)); at = at.Add(15 * time.Second) {
			sample("model_id:aiwatt_inference_requests:rate1h_avg7d"+model, 10, at)
		}
	}
	activeAt := now.Add(-45 * time.Minute)
	state := `ALERTS_FOR_STATE{alertname="AiwattInferenceEnergyPerRequestRegression",cluster="e2e",model_id="llama-e2e",severity="critical"}`
	for at := activeAt; at.Before(now.Add(-10 * time.Second)); at = at.Add(15 * time.Second) {
		sample(state, float64(activeAt.Unix()), at)
	}
	b.WriteString("# EOF\n")
	return b.String()
}

// exampleAMConfigForTest writes the example Alertmanager configuration with the PagerDuty URL, the
// secret files and the timing changed for the test, and returns its path.
func exampleAMConfigForTest(t *testing.T, dir, pagerdutyURL, routingKey string) string {
	t.Helper()
	raw, err := os.ReadFile(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "pagerduty-routing-key")
	writeFile(t, keyFile, routingKey+"\n")
	// Nothing but PagerDuty should be notified; should anything else be, it stays on 127.0.0.1.
	slackFile := filepath.Join(dir, "slack-webhook-url")
	writeFile(t, slackFile, "http://127.0.0.1:1/slack\n")
	passwordFile := filepath.Join(dir, "smtp-password")
	writeFile(t, passwordFile, "unused\n")

	global := cfg["global"].(map[string]any)
	global["pagerduty_url"] = pagerdutyURL
	global["slack_api_url_file"] = slackFile
	global["smtp_auth_password_file"] = passwordFile
	global["smtp_smarthost"] = "127.0.0.1:1"
	route := cfg["route"].(map[string]any)
	route["group_wait"] = "1s"
	route["group_interval"] = "2s"
	for _, r := range cfg["receivers"].([]any) {
		for _, pd := range asSlice(r.(map[string]any)["pagerduty_configs"]) {
			pd.(map[string]any)["routing_key_file"] = keyFile
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, p, string(out))
	return p
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// pdEvent is the part of a PagerDuty Events API v2 event the test reads.
type pdEvent struct {
	RoutingKey  string `json:"routing_key"`
	EventAction string `json:"event_action"`
	DedupKey    string `json:"dedup_key"`
	Payload     struct {
		Summary       string         `json:"summary"`
		Severity      string         `json:"severity"`
		CustomDetails map[string]any `json:"custom_details"`
	} `json:"payload"`
	Links []struct {
		Href string `json:"href"`
		Text string `json:"text"`
	} `json:"links"`
}

// fakePagerDuty answers like the Events API v2 enqueue endpoint.
type fakePagerDuty struct {
	mu     sync.Mutex
	events chan pdEvent
}

func (f *fakePagerDuty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ev pdEvent
	if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, `{"status":"invalid event","message":"`+err.Error()+`"}`, http.StatusBadRequest)
		return
	}
	select {
	case f.events <- ev:
	default:
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startProcess starts a server, logging to logPath; it is stopped (SIGTERM, then SIGKILL) when the
// test ends or ctx is done.
func startProcess(ctx context.Context, t *testing.T, logPath, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	return cmd
}

// waitReady polls a readiness URL until it answers 200, the process exits or ctx is done.
func waitReady(ctx context.Context, t *testing.T, url string, cmd *exec.Cmd) {
	t.Helper()
	for {
		if _, err := httpGet(ctx, url); err == nil {
			return
		}
		if cmd.ProcessState != nil {
			t.Fatalf("%s exited before it was ready", cmd.Path)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready: %v", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return buf.Bytes(), nil
}
