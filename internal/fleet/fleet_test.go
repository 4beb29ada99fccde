package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
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
	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// Fixtures shared with the agent's own end-to-end tests.
const (
	intelFixture = "../../rapl/testdata/intel-2socket.sysfs"
	// fixtureProc has no process: RAPL energy is all node idle, exactly.
	fixtureProc  = "../../rapl/testdata/proc-4cpu"
	dcgmCapture  = "../../dcgm/testdata/captures/dcgm_exporter_l4_gpu_operator.prom"
	recordingYML = "../../alerts/rules/aiwatt-recording.yml"
	configYML    = "../../alerts/rules/aiwatt-config.yml"
	pue          = 1.2
	steps        = 20
	stepEvery    = time.Second
	scrapeEvery  = "500ms"
	resolution   = "3s"
	// Cluster b's Prometheus is down from before step stopAt to after step
	// restartAt: a gap in its samples, not in its energy.
	stopAt, restartAt = 7, 13
)

// cluster is one cluster of the fleet: its agent, its fake GPU and the
// energy the test injects into it.
type cluster struct {
	name, region, zone    string
	project, model, wtype string
	ns, pod               string
	gpuStepJ, cpuStepJ    float64
	root                  string
	dcgm                  *fakeDCGM
	agentAddr             string
	intensity             float64 // g/kWh of zone, from the static table
	gpuJ, cpuJ            float64 // injected so far
	proms                 []*promtest.Server
	sidecars              []*proc
	sidecarGRPC           []string
}

// fakeDCGM serves the L4 dcgm-exporter capture, its rows naming the pod
// that holds the GPU, with an energy counter the test advances.
type fakeDCGM struct {
	srv     *httptest.Server
	mu      sync.Mutex
	capture string
	mJ      uint64
}

var energyLine = regexp.MustCompile(`(?m)^(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION\{[^}]*\}) \d+$`)

func startFakeDCGM(t *testing.T, ns, pod string) *fakeDCGM {
	t.Helper()
	b, err := os.ReadFile(dcgmCapture)
	if err != nil {
		t.Fatal(err)
	}
	capture := regexp.MustCompile(`(?m)^(DCGM_FI_[A-Z_]+\{[^}]*)\}`).ReplaceAllString(string(b),
		fmt.Sprintf(`$1,namespace=%q,pod=%q,container="main"}`, ns, pod))
	f := &fakeDCGM{capture: capture, mJ: 4742776}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		body := energyLine.ReplaceAllString(f.capture, "${1} "+strconv.FormatUint(f.mJ, 10))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeDCGM) add(mJ uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mJ += mJ
}

// pod is the cluster's one workload as the API server lists it.
func (c *cluster) podObject() map[string]any {
	return map[string]any{
		"metadata": map[string]any{
			"name": c.pod, "namespace": c.ns, "uid": "0b9c2f1e-4a55-4c1e-9d3e-6f1f2b7c8d9" + c.name[:1], "resourceVersion": "100",
			"labels":      map[string]any{"aiwatt.io/project": c.project},
			"annotations": map[string]any{"aiwatt.io/model-id": c.model, "aiwatt.io/workload-type": c.wtype},
		},
		"spec": map[string]any{
			"nodeName":   "node-" + c.name,
			"containers": []any{map[string]any{"name": "main", "image": "example/main:1", "resources": map[string]any{"limits": map[string]any{"nvidia.com/gpu": "1"}}}},
		},
		"status": map[string]any{
			"phase": "Running", "podIP": "127.0.0.1",
			"containerStatuses": []any{map[string]any{"name": "main", "ready": true, "containerID": "containerd://4f0c1d2e3b4a59687766554433221100ffeeddccbbaa9988776655443322110" + c.name[:1]}},
		},
	}
}

// startAgent runs `aiwatt agent` for the cluster: RAPL from a fixture tree,
// the GPU from the fake dcgm-exporter, pods from a fake API server.
func (c *cluster) startAgent(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	c.root = sysfsfixture.Materialize(t, intelFixture)
	c.dcgm = startFakeDCGM(t, c.ns, c.pod)
	api := kubetest.NewAPIServer(t, "node-"+c.name, false, []map[string]any{c.podObject()}, 100)
	kubeconfig := api.WriteKubeconfig(t, filepath.Join(dir, "kubeconfig"))
	cfg := filepath.Join(dir, "aiwatt.yml")
	// The ceiling is lifted because the test steps counters instantly.
	body := fmt.Sprintf("rapl:\n  max_power_watts: 1000000\ngpu:\n  backend: dcgm-exporter\ncarbon:\n  zone: %s\nkubernetes:\n  pod_resources_socket: %s\n",
		c.zone, filepath.Join(dir, "none.sock"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c.agentAddr = freeAddr(t)
	p := start(t, "agent "+c.name, dir, aiwattBin, "agent", "--web.listen-address="+c.agentAddr, "--path.sysfs="+c.root,
		"--path.procfs="+mustAbs(t, fixtureProc), "--agent.interval=200ms", "--config.file="+cfg,
		"--dcgm.exporter-url="+c.dcgm.srv.URL+"/metrics", "--kubernetes.node-name=node-"+c.name, "--kubernetes.kubeconfig="+kubeconfig)
	waitFor(t, "agent "+c.name+" to export its pod's GPU energy", 60*time.Second, func() (bool, error) {
		select {
		case <-p.done:
			t.Fatalf("agent %s exited:\n%s", c.name, p.log())
		default:
		}
		_, ok, err := c.workloadJ()
		return ok, err
	})
}

// workloadJ is the agent's own GPU energy of the pod, from its /metrics.
func (c *cluster) workloadJ() (float64, bool, error) {
	resp, err := http.Get("http://" + c.agentAddr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, `aiwatt_workload_energy_joules_total{component="gpu"`) && strings.Contains(line, fmt.Sprintf("pod=%q", c.pod)) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v, err == nil, err
		}
	}
	return 0, false, fmt.Errorf("no GPU energy series of pod %s yet", c.pod)
}

// inject adds one step of GPU and CPU package energy.
func (c *cluster) inject(t *testing.T) {
	t.Helper()
	c.dcgm.add(uint64(c.gpuStepJ * 1000))
	zone := filepath.Join(c.root, "class", "powercap", "intel-rapl:0", "energy_uj")
	b, err := os.ReadFile(zone)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zone, []byte(strconv.FormatUint(cur+uint64(c.cpuStepJ*1e6), 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.gpuJ += c.gpuStepJ
	c.cpuJ += c.cpuStepJ
}

func mustAbs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startPrometheus starts one replica of the cluster's Prometheus, with the
// cluster's external labels and aiwatt's rules, remote-writing to vm when
// vm is not empty, and a Thanos sidecar beside it.
func (c *cluster) startPrometheus(t *testing.T, thanos, replica, vm string) {
	t.Helper()
	cfg := externalLabels(c.name, c.region, replica) + fmt.Sprintf("  scrape_interval: %s\n  evaluation_interval: 1s\n"+
		"scrape_configs:\n  - job_name: aiwatt\n    static_configs:\n      - targets: [%q]\n", scrapeEvery, c.agentAddr)
	if vm != "" {
		cfg += fmt.Sprintf("remote_write:\n  - url: %s/api/v1/write\n    queue_config: {batch_send_deadline: 100ms, min_backoff: 50ms, max_backoff: 500ms}\n", vm)
	}
	s, sc, grpc := startStore(t, thanos, c.name+"-"+replica, promtest.Options{Config: cfg, RuleFiles: []string{recordingYML, configYML}})
	c.proms = append(c.proms, s)
	c.sidecars = append(c.sidecars, sc)
	c.sidecarGRPC = append(c.sidecarGRPC, grpc)
}

// externalLabels starts a prometheus.yml whose global section labels
// everything the server holds with its cluster, region and replica.
func externalLabels(cluster, region, replica string) string {
	return fmt.Sprintf("global:\n  external_labels: {cluster: %s, region: %s, replica: %q}\n", cluster, region, replica)
}

// startStore starts a Prometheus and a Thanos sidecar beside it, and
// returns the sidecar's gRPC (StoreAPI) address.
func startStore(tb testing.TB, thanos, name string, opts promtest.Options) (*promtest.Server, *proc, string) {
	tb.Helper()
	s := promtest.Start(tb, opts)
	grpc, httpAddr := freeAddr(tb), freeAddr(tb)
	sc := start(tb, "thanos sidecar "+name, s.Dir, thanos, "sidecar",
		"--tsdb.path="+filepath.Join(s.Dir, "data"), "--prometheus.url="+s.URL,
		"--grpc-address="+grpc, "--http-address="+httpAddr, "--log.level=warn")
	waitReady(tb, sc, "http://"+httpAddr+"/-/ready")
	return s, sc, grpc
}

// startQuerier starts a Thanos Querier over the sidecars, deduplicating by
// the replica label and answering partially (with warnings) when a store
// is down.
func startQuerier(tb testing.TB, thanos string, sidecars []string) string {
	tb.Helper()
	qHTTP, qGRPC := freeAddr(tb), freeAddr(tb)
	args := []string{"query", "--http-address=" + qHTTP, "--grpc-address=" + qGRPC, "--query.replica-label=replica",
		"--query.partial-response", "--log.level=warn"}
	for _, g := range sidecars {
		// Strict: a store that goes down stays in the set, so queries warn
		// (a partial response) instead of silently leaving it out.
		args = append(args, "--endpoint-strict="+g)
	}
	querier := start(tb, "thanos query", tb.TempDir(), thanos, args...)
	waitReady(tb, querier, "http://"+qHTTP+"/-/ready")
	return "http://" + qHTTP
}

// startVM starts VictoriaMetrics with no latency offset and no result
// cache, so that what was just written is what a query reads.
func startVM(tb testing.TB) string {
	tb.Helper()
	vmBin, err := exec.LookPath("victoria-metrics")
	if err != nil {
		tb.Fatal("victoria-metrics is needed (Debian: apt-get install -y victoria-metrics; `make fleet-deps` installs it)")
	}
	addr := freeAddr(tb)
	vm := start(tb, "victoria-metrics", tb.TempDir(), vmBin, "-storageDataPath="+tb.TempDir(), "-httpListenAddr="+addr,
		"-retentionPeriod=100y", "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR")
	waitReady(tb, vm, "http://"+addr+"/health")
	return "http://" + addr
}

// engine is one query endpoint the report and the gate run against.
type engine struct {
	name string
	url  string
	// clusters are the clusters whose data it holds.
	clusters []*cluster
}

// reportJSON is the part of report.json the test reads.
type reportJSON struct {
	Totals struct {
		ITEnergyKWh   float64 `json:"it_energy_kwh"`
		CO2eLocationT float64 `json:"co2e_location_t"`
	} `json:"totals"`
	ByLocation []struct {
		Location      string  `json:"location"`
		Region        string  `json:"region"`
		ITEnergyKWh   float64 `json:"it_energy_kwh"`
		CO2eLocationT float64 `json:"co2e_location_t"`
	} `json:"by_location"`
	Methodology struct {
		Intensity []struct {
			Location, Region, Zone, Basis string
		} `json:"intensity"`
	} `json:"methodology"`
	DataQuality struct {
		Gaps []struct {
			Series     string
			Start, End time.Time
		} `json:"gaps"`
		PartialResponse []string `json:"partial_response"`
		Notes           []string `json:"notes"`
	} `json:"data_quality"`
}

func runReport(t testing.TB, e engine, cfg string, from, to time.Time, res string) (reportJSON, time.Duration) {
	t.Helper()
	out := t.TempDir()
	begin := time.Now()
	b, err := exec.Command(aiwattBin, "report", "--prometheus="+e.url, "--from="+from.Format(time.RFC3339), "--to="+to.Format(time.RFC3339),
		"--config="+cfg, "--format=json", "--resolution="+res, "--out="+out).CombinedOutput()
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("aiwatt report against %s: %v\n%s", e.name, err, b)
	}
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r reportJSON
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: report.json: %v", e.name, err)
	}
	return r, took
}

// runGate runs `aiwatt gate --format=json` and returns its exit code and
// the joules it found.
func runGate(t *testing.T, e engine, selector string, window time.Duration, at time.Time, budgetJ float64) (int, float64, string) {
	t.Helper()
	b, err := exec.Command(aiwattBin, "gate", "--prometheus="+e.url, "--selector="+selector, fmt.Sprintf("--window=%ds", int(window.Seconds())),
		"--at="+at.Format(time.RFC3339), fmt.Sprintf("--budget=%gJ", budgetJ), "--format=json").Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("aiwatt gate against %s: %v", e.name, err)
	}
	var v struct {
		Joules float64 `json:"joules"`
		Error  string  `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("gate against %s: %v\n%s", e.name, err, b)
	}
	return code, v.Joules, v.Error
}

func within(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// TestFleet builds the fleet, runs both clusters' agents for a known
// period and checks `aiwatt report` and `aiwatt gate` on every engine.
func TestFleet(t *testing.T) {
	thanos := thanosBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	table, err := carbon.DefaultTable()
	if err != nil {
		t.Fatal(err)
	}
	static, err := carbon.NewStatic(table)
	if err != nil {
		t.Fatal(err)
	}
	a := &cluster{name: "a", region: "eu-central", zone: "DE", project: "chat", model: "qwen3-0.6b", wtype: "inference",
		ns: "llm", pod: "serve-0", gpuStepJ: 1500, cpuStepJ: 250}
	b := &cluster{name: "b", region: "eu-west", zone: "FR", project: "research", model: "llama-ft-8b", wtype: "training",
		ns: "ml", pod: "train-0", gpuStepJ: 4000, cpuStepJ: 120}
	clusters := []*cluster{a, b}
	for _, c := range clusters {
		in, err := static.Intensity(ctx, c.zone, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c.intensity = float64(in.Value)
		c.startAgent(t)
	}

	// VictoriaMetrics, fed by one replica of each cluster.
	vmURL := startVM(t)

	// Cluster a is a replicated pair; cluster b has one Prometheus.
	a.startPrometheus(t, thanos, "0", vmURL)
	a.startPrometheus(t, thanos, "1", "")
	b.startPrometheus(t, thanos, "0", vmURL)
	thanosURL := startQuerier(t, thanos, append(append([]string{}, a.sidecarGRPC...), b.sidecarGRPC...))

	engines := []engine{
		{"prometheus a-0", a.proms[0].URL, []*cluster{a}},
		{"prometheus a-1", a.proms[1].URL, []*cluster{a}},
		{"prometheus b-0", b.proms[0].URL, []*cluster{b}},
		{"thanos", thanosURL, clusters},
		{"victoriametrics", vmURL, clusters},
	}
	// Every engine sees every one of its clusters' pods before the period.
	for _, e := range engines {
		waitFor(t, e.name+" to hold the workloads", 90*time.Second, func() (bool, error) {
			s, _, err := query(ctx, e.url, `count(count_over_time(aiwatt_workload_energy_joules_total{component="gpu"}[10s]))`, time.Time{})
			return err == nil && len(s) == 1 && int(s[0].value) == len(e.clusters), fmt.Errorf("%v %v", s, err)
		})
	}

	// The period starts after a baseline every engine holds.
	from := time.Now().Truncate(time.Second).Add(time.Second)
	waitFor(t, "two seconds of baseline inside the period", 10*time.Second, func() (bool, error) {
		return time.Now().After(from.Add(2 * time.Second)), nil
	})
	base := map[*cluster]float64{}
	for _, c := range clusters {
		base[c], _, _ = c.workloadJ()
	}
	// Energy at a known rate: one step per stepEvery.
	var down struct{ Start, End time.Time }
	for i := 0; i < steps; i++ {
		at := from.Add(2*time.Second + time.Duration(i+1)*stepEvery)
		waitFor(t, fmt.Sprintf("step %d's time", i), 2*stepEvery, func() (bool, error) { return time.Now().After(at), nil })
		switch i {
		case stopAt:
			down.Start = time.Now()
			b.proms[0].Stop()
		case restartAt:
			b.proms[0].Restart(t)
			down.End = time.Now()
		}
		for _, c := range clusters {
			c.inject(t)
			waitFor(t, "agent "+c.name+" to attribute the step", 30*time.Second, func() (bool, error) {
				v, ok, err := c.workloadJ()
				return ok && within(v-base[c], c.gpuJ, 1e-9), err
			})
		}
	}
	// Every engine holds the final values, then the period ends.
	for _, e := range engines {
		for _, c := range e.clusters {
			final := base[c] + c.gpuJ
			waitFor(t, e.name+" to hold cluster "+c.name+"'s final energy", 60*time.Second, func() (bool, error) {
				s, _, err := query(ctx, e.url, fmt.Sprintf(`max(last_over_time(aiwatt_workload_energy_joules_total{component="gpu",pod=%q}[5s]))`, c.pod), time.Time{})
				return err == nil && len(s) == 1 && within(s[0].value, final, 1e-9), fmt.Errorf("%v %v, want %v", s, err, final)
			})
		}
	}
	to := time.Now().Truncate(time.Second).Add(2 * time.Second)
	waitFor(t, "the end of the period", 10*time.Second, func() (bool, error) {
		return time.Now().After(to.Add(time.Second)), nil
	})
	period := to.Sub(from)
	t.Logf("period %s – %s (%s)", from.Format(time.RFC3339), to.Format(time.RFC3339), period)

	// The truth: what the test injected.
	var truthITJ, truthWorkJ, truthCO2g float64
	for _, c := range clusters {
		truthITJ += c.gpuJ + c.cpuJ
		truthWorkJ += c.gpuJ
		truthCO2g += c.gpuJ / 3.6e6 * c.intensity
	}
	cfg := filepath.Join(t.TempDir(), "report.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("organisation: Fleet test\npue: %g\n", pue)), 0o644); err != nil {
		t.Fatal(err)
	}

	reports := map[string]reportJSON{}
	for _, e := range engines {
		r, took := runReport(t, e, cfg, from, to, resolution)
		reports[e.name] = r
		t.Logf("%s: report in %s: IT %.6g kWh, %.6g t CO2e, %d gaps", e.name, took.Round(time.Millisecond), r.Totals.ITEnergyKWh, r.Totals.CO2eLocationT, len(r.DataQuality.Gaps))
		var itJ, workJ, co2g float64
		for _, c := range e.clusters {
			itJ += c.gpuJ + c.cpuJ
			workJ += c.gpuJ
			co2g += c.gpuJ / 3.6e6 * c.intensity
		}
		if !within(r.Totals.ITEnergyKWh, itJ/3.6e6, 0.001) {
			t.Errorf("%s: IT energy %v kWh, want %v (injected, 0.1 %%)", e.name, r.Totals.ITEnergyKWh, itJ/3.6e6)
		}
		if want := pue * co2g * itJ / workJ / 1e6; !within(r.Totals.CO2eLocationT, want, 0.001) {
			t.Errorf("%s: location-based CO2e %v t, want %v (0.1 %%)", e.name, r.Totals.CO2eLocationT, want)
		}
		if len(r.ByLocation) != len(e.clusters) {
			t.Fatalf("%s: by location %+v, want one row per cluster", e.name, r.ByLocation)
		}
		for i, c := range e.clusters {
			l := r.ByLocation[i]
			// One Prometheus does not add its external labels to what it
			// answers; a global view does.
			wantLoc, wantRegion := c.name, c.region
			if len(e.clusters) == 1 {
				wantLoc, wantRegion = "", ""
			}
			if l.Location != wantLoc || l.Region != wantRegion {
				t.Errorf("%s: location row %d is %q/%q, want %q/%q", e.name, i, l.Location, l.Region, wantLoc, wantRegion)
			}
			if !within(l.ITEnergyKWh, c.gpuJ/3.6e6, 0.001) || !within(l.CO2eLocationT, pue*c.gpuJ/3.6e6*c.intensity/1e6, 0.001) {
				t.Errorf("%s: cluster %s: %v kWh, %v t; want %v kWh, %v t", e.name, c.name, l.ITEnergyKWh, l.CO2eLocationT,
					c.gpuJ/3.6e6, pue*c.gpuJ/3.6e6*c.intensity/1e6)
			}
		}
		zones := map[string]string{}
		for _, in := range r.Methodology.Intensity {
			zones[in.Location+"/"+in.Region] = in.Zone
		}
		for _, c := range e.clusters {
			where := c.name + "/" + c.region
			if len(e.clusters) == 1 {
				where = "/"
			}
			if zones[where] != c.zone {
				t.Errorf("%s: cluster %s intensity zone %q, want %q (%+v)", e.name, c.name, zones[where], c.zone, r.Methodology.Intensity)
			}
		}
		if len(r.DataQuality.PartialResponse) != 0 {
			t.Errorf("%s: partial response %v with every store up", e.name, r.DataQuality.PartialResponse)
		}
		// Cluster b's outage is a gap wherever cluster b is; its energy was
		// still counted above (counters carry it across the gap).
		holdsB := e.clusters[len(e.clusters)-1] == b
		if holdsB == (len(r.DataQuality.Gaps) == 0) {
			t.Errorf("%s: gaps %+v; want them exactly where cluster b is (its Prometheus was down %s – %s)", e.name, r.DataQuality.Gaps,
				down.Start.Format(time.RFC3339Nano), down.End.Format(time.RFC3339Nano))
		}
		for _, g := range r.DataQuality.Gaps {
			if (len(e.clusters) > 1 && !strings.Contains(g.Series, `cluster="b"`)) || !g.Start.Before(down.End) || !g.End.After(down.Start) {
				t.Errorf("%s: gap %+v is not cluster b's outage %s – %s", e.name, g, down.Start.Format(time.RFC3339Nano), down.End.Format(time.RFC3339Nano))
			}
		}
	}
	// The global engines agree with the sum of each cluster's own Prometheus.
	sumIT := reports["prometheus a-0"].Totals.ITEnergyKWh + reports["prometheus b-0"].Totals.ITEnergyKWh
	for _, g := range []string{"thanos", "victoriametrics"} {
		if !within(reports[g].Totals.ITEnergyKWh, sumIT, 0.001) {
			t.Errorf("%s: IT energy %v kWh, the clusters' own Prometheus servers sum to %v", g, reports[g].Totals.ITEnergyKWh, sumIT)
		}
		if !within(reports[g].Totals.ITEnergyKWh, truthITJ/3.6e6, 0.001) || !within(reports[g].Totals.CO2eLocationT, pue*truthCO2g*truthITJ/truthWorkJ/1e6, 0.001) {
			t.Errorf("%s: totals %+v, want %v kWh (truth)", g, reports[g].Totals, truthITJ/3.6e6)
		}
	}
	if reports["prometheus a-0"].Totals != reports["prometheus a-1"].Totals {
		t.Errorf("the replicas of cluster a disagree: %+v vs %+v", reports["prometheus a-0"].Totals, reports["prometheus a-1"].Totals)
	}

	// The gate: the same energy on every engine, pass under budget, fail over.
	for _, e := range engines[3:] {
		for _, c := range clusters {
			sel := fmt.Sprintf(`{project=%q}`, c.project)
			code, j, msg := runGate(t, e, sel, period, to, 2*c.gpuJ)
			if code != 0 || !within(j, c.gpuJ, 0.001) {
				t.Errorf("%s: gate %s = %v J exit %d (%s), want %v J exit 0", e.name, sel, j, code, msg, c.gpuJ)
			}
			if code, _, _ := runGate(t, e, sel, period, to, c.gpuJ/2); code != 1 {
				t.Errorf("%s: gate %s over budget exit %d, want 1", e.name, sel, code)
			}
		}
	}

	// Why not increase(): over a short period it depends on the engine.
	for _, e := range engines[3:] {
		s, _, err := query(ctx, e.url, fmt.Sprintf("sum(increase(aiwatt_workload_energy_joules_total[%ds]))", int(period.Seconds())), to)
		if err != nil || len(s) != 1 {
			t.Fatalf("%s: increase: %v %v", e.name, s, err)
		}
		t.Logf("%s: increase() gives %.6g J for %.6g J injected (%+.3f %%)", e.name, s[0].value, truthWorkJ, (s[0].value/truthWorkJ-1)*100)
	}

	// Aiwatt's rules run in each Prometheus; the global view adds the
	// cluster to what they record.
	waitFor(t, "the recorded power of both clusters' projects in Thanos", 30*time.Second, func() (bool, error) {
		s, _, err := query(ctx, thanosURL, `count(count by (cluster, region) (project:aiwatt_workload_power_watts:rate5m))`, time.Time{})
		return err == nil && len(s) == 1 && s[0].value == 2, fmt.Errorf("%v %v", s, err)
	})

	checkDashboards(ctx, t, thanosURL, a.proms[0].URL)

	// A store goes down behind Thanos: the report marks the gap, the gate exits 2.
	b.sidecars[0].stop()
	r, _ := runReport(t, engines[3], cfg, from, to, resolution)
	if len(r.DataQuality.PartialResponse) == 0 {
		t.Errorf("with cluster b's store down, the report names no partial response: %+v", r.DataQuality)
	}
	partialGap := false
	for _, g := range r.DataQuality.Gaps {
		if strings.HasPrefix(g.Series, "partial response") && g.Start.Equal(from) && g.End.Equal(to) {
			partialGap = true
		}
	}
	if !partialGap {
		t.Errorf("with cluster b's store down, no gap over the period: %+v", r.DataQuality.Gaps)
	}
	code, _, msg := runGate(t, engines[3], `{project="chat"}`, period, to, 2*a.gpuJ)
	if code != 2 || !strings.Contains(msg, "partial response") {
		t.Errorf("gate with a store down: exit %d (%s), want 2 naming the partial response", code, msg)
	}
}

// dashboardVariables stand in for Grafana's when a panel query runs
// against an engine directly; $cluster is set per check.
var dashboardVariables = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval_ms", "60000", "$__interval", "1m",
	"$__range_s", "300", "$__range", "5m",
	"$node", ".*", "$namespace", ".*", "$model_id", ".*", "$basis", "location",
)

// checkDashboards runs every panel query on the global view once per
// cluster: the cluster variable lists both clusters there and selects only
// the chosen one's series; on one Prometheus it lists none, and "All"
// still finds the cluster's data.
func checkDashboards(ctx context.Context, t *testing.T, global, single string) {
	t.Helper()
	values := func(base string) []string {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/label/cluster/values?match[]=aiwatt_build_info", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct{ Data []string }
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r.Data
	}
	if got := strings.Join(values(global), ","); got != "a,b" {
		t.Errorf("cluster variable on the global view lists %q, want a,b", got)
	}
	if got := values(single); len(got) != 0 {
		t.Errorf("cluster variable on one Prometheus lists %q, want nothing (All matches the empty label)", got)
	}
	queries, err := dashboards.Queries()
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []string{"a", "b"} {
		withData := 0
		for _, dq := range queries {
			q := strings.ReplaceAll(dashboardVariables.Replace(dq.Expr), "$cluster", cl)
			series, _, err := query(ctx, global, q, time.Time{})
			if err != nil {
				t.Errorf("%s: panel %q on the global view: %v", dq.File, dq.Panel, err)
				continue
			}
			if len(series) > 0 {
				withData++
			}
			for _, s := range series {
				if c, ok := s.labels["cluster"]; ok && c != cl {
					t.Errorf("%s: panel %q with cluster=%s returns a series of cluster %s: %v", dq.File, dq.Panel, cl, c, s.labels)
				}
			}
		}
		if withData == 0 {
			t.Errorf("no dashboard panel has data for cluster %s on the global view", cl)
		}
		t.Logf("dashboards, cluster=%s on the global view: %d of %d panel queries with data", cl, withData, len(queries))
	}
	withData := 0
	for _, dq := range queries {
		series, _, err := query(ctx, single, strings.ReplaceAll(dashboardVariables.Replace(dq.Expr), "$cluster", ".*"), time.Time{})
		if err == nil && len(series) > 0 {
			withData++
		}
	}
	if withData == 0 {
		t.Errorf("no dashboard panel has data on one Prometheus with cluster=All")
	}
	t.Logf("dashboards, cluster=All on one Prometheus: %d of %d panel queries with data", withData, len(queries))
}
