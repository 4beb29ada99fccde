package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
	"github.com/inferensys/aiwatt/runner"
)

// runTreeScript forks two busy workers that spin until the file stop
// appears in the directory $0, writes their PIDs to $0/pids, waits for
// them and exits 7. With IGNORE_TERM set the workers ignore SIGTERM; with
// TRAP_INT set the shell traps SIGINT, writes $0/sigint and exits 3.
const runTreeScript = `D=$0
[ -n "$TRAP_INT" ] && trap 'echo int > "$D/sigint"; exit 3' INT
for i in 1 2; do
  ( [ -n "$IGNORE_TERM" ] && trap '' TERM; while [ ! -e "$D/stop" ]; do :; done ) &
  echo $! >> "$D/pids"
done
wait
exit 7`

// aiwattRun is a running `aiwatt run`. Its output goes to a file, not a
// pipe: workers that outlive the command would hold a pipe open and keep
// exec.Cmd.Wait from returning.
type aiwattRun struct {
	cmd  *exec.Cmd
	dir  string
	out  string
	done chan struct{}
	code int
}

func (p *aiwattRun) logs() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// startAiwattRun runs `aiwatt run ARGS -- sh -c runTreeScript DIR` with the
// extra environment env. When the test ends the workers are told to stop
// and anything left is killed.
func startAiwattRun(t *testing.T, env []string, args ...string) *aiwattRun {
	t.Helper()
	p := &aiwattRun{dir: t.TempDir(), done: make(chan struct{})}
	p.out = filepath.Join(t.TempDir(), "output")
	outFile, err := os.Create(p.out)
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	argv := append([]string{"run"}, args...)
	argv = append(argv, "--", "sh", "-c", runTreeScript, p.dir)
	p.cmd = exec.Command(binPath, argv...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = outFile, outFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(p.dir, "stop"), nil, 0o644)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		for _, pid := range p.workers() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("aiwatt run output:\n%s", p.logs())
		}
	})
	return p
}

// workers returns the PIDs the script wrote.
func (p *aiwattRun) workers() []int {
	b, _ := os.ReadFile(filepath.Join(p.dir, "pids"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if v, err := strconv.Atoi(f); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// exit waits for aiwatt run to exit and returns its exit code.
func (p *aiwattRun) exit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("aiwatt run did not exit within %s", timeout)
		return 0
	}
}

// report reads the JSON report.
func (p *aiwattRun) report(t *testing.T, path string) runner.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r runner.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %s: %v\n%s", path, err, b)
	}
	return r
}

// processGone reports whether pid has exited (gone, or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// recorder is an HTTP server that records every request.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, contentType, auth string
	body                            []byte
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get("Authorization"), b})
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// injectEnergy waits until aiwatt has taken its baselines (the first GPU
// scrape follows RAPL's), adds cpu joules to both packages (60/40), a fifth
// of it to the dram zones, and gpuMJ to the GPU, then waits for two more
// scrapes so that a tick has read RAPL after the step.
func injectEnergy(t *testing.T, root string, dcgmSrv *fakeDCGM, p *aiwattRun, gpuMJ uint64) {
	t.Helper()
	waitFor(t, "workers and the first GPU scrape", 15*time.Second, func() (bool, error) {
		return len(p.workers()) == 2 && dcgmSrv.scraped() >= 1, nil
	})
	for zone, j := range map[string]float64{"intel-rapl:0": 60, "intel-rapl:1": 40, "intel-rapl:0:2": 12, "intel-rapl:1:2": 8} {
		maxUJ := readUJ(t, root, zone, "max_energy_range_uj")
		writeUJ(t, root, zone, (readUJ(t, root, zone, "energy_uj")+uint64(j*1e6))%(maxUJ+1))
	}
	s0 := dcgmSrv.scraped()
	dcgmSrv.add(gpuMJ)
	waitFor(t, "two ticks after the step", 15*time.Second, func() (bool, error) {
		select {
		case <-p.done:
			return true, nil // stopped already (over budget)
		default:
		}
		return dcgmSrv.scraped() >= s0+2, nil
	})
}

// TestRunEndToEndWithinBudget runs a real process tree under the real
// binary with a fixture sysfs and a dcgm-exporter GPU assigned by
// --gpu.devices: the GPU energy is the run's exactly, the CPU energy is a
// real share of the injected energy, the command's exit code passes
// through, and the JSON, CSV, W&B summary, Pushgateway and MLflow outputs
// agree.
func TestRunEndToEndWithinBudget(t *testing.T) {
	root := sysfsfixture.Materialize(t, intelFixture)
	dcgmSrv := startFakeDCGM(t)
	pg, ml := startRecorder(t), startRecorder(t)
	out := filepath.Join(t.TempDir(), "run.json")
	wandb := filepath.Join(filepath.Dir(out), "wandb-summary.json")
	if err := os.WriteFile(wandb, []byte(`{"loss": 0.25}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const token = "s3cr3t-mlflow-token"
	p := startAiwattRun(t, []string{"MLFLOW_TRACKING_TOKEN=" + token},
		"--interval=100ms", "--path.sysfs="+root, "--rapl.max-power-watts=1000000",
		"--gpu.backend=dcgm-exporter", "--dcgm.exporter-url="+dcgmSrv.url(), "--gpu.devices=0",
		"--budget=1MJ", "--zone=DE", "--market-factor=100", "--covered-share=0.5", "--market-source=test PPA",
		"--out="+out, "--wandb.summary="+wandb,
		"--pushgateway="+pg.srv.URL, "--label=project=vision", "--label=run=42",
		"--mlflow.tracking-uri="+ml.srv.URL, "--mlflow.run-id=abc123", "--log.level=debug")
	injectEnergy(t, root, dcgmSrv, p, 5500)
	if err := os.WriteFile(filepath.Join(p.dir, "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := p.exit(t, 20*time.Second); code != 7 {
		t.Fatalf("exit %d, want the command's 7\n%s", code, p.logs())
	}

	r := p.report(t, out)
	if r.ExitCode != 7 || r.ChildExitCode == nil || *r.ChildExitCode != 7 || r.BudgetExceeded || r.BudgetJoules != 1e6 {
		t.Fatalf("outcome: exit %d child %v exceeded %v budget %v", r.ExitCode, r.ChildExitCode, r.BudgetExceeded, r.BudgetJoules)
	}
	// GPU: assigned, so exactly the injected 5.5 J.
	if r.Energy.GPU != 5.5 || r.Node.Total.GPU != 5.5 || len(r.Measurement.GPUs) != 1 ||
		r.Measurement.GPUs[0].Attribution != runner.GPUAssigned || r.Measurement.GPU.Method != "dcgm_exporter" {
		t.Fatalf("GPU: %v J of %v J, %+v", r.Energy.GPU, r.Node.Total.GPU, r.Measurement.GPUs)
	}
	// CPU and DRAM: the node's energy is exactly what was injected; the run
	// gets a real, non-zero share of it; nothing is lost.
	if r.Node.Total.CPU != 100 || r.Node.Total.DRAM != 20 || r.Measurement.CPU.Method != runner.MethodRAPL {
		t.Fatalf("node energy %+v, method %s", r.Node.Total, r.Measurement.CPU.Method)
	}
	if !(r.Energy.CPU > 0 && r.Energy.CPU <= 100) || !(r.Energy.DRAM > 0 && r.Energy.DRAM <= 20) ||
		math.Abs(r.Energy.CPU/100-r.Energy.DRAM/20) > 1e-9 {
		t.Fatalf("run CPU %v J of 100, DRAM %v J of 20 (same share expected)", r.Energy.CPU, r.Energy.DRAM)
	}
	for _, c := range [][4]float64{
		{r.Energy.CPU, r.Node.Idle.CPU, r.Node.Unattributed.CPU, r.Node.Total.CPU},
		{r.Energy.GPU, r.Node.Idle.GPU, r.Node.Unattributed.GPU, r.Node.Total.GPU},
	} {
		if math.Abs(c[0]+c[1]+c[2]-c[3]) > 1e-9 {
			t.Fatalf("conservation: %v + %v + %v != %v", c[0], c[1], c[2], c[3])
		}
	}
	if r.Tree.ProcessesSeen < 3 || r.Tree.CPUSeconds <= 0 || r.Samples < 3 {
		t.Fatalf("tree %+v, %d samples", r.Tree, r.Samples)
	}
	kwh := r.Energy.Total / 3.6e6
	in := r.Carbon.Intensity
	if in.Zone != "DE" || in.Provenance.Source == "" || in.Provenance.Licence == "" ||
		math.Abs(r.CO2e.LocationGrams-kwh*float64(in.Value)) > 1e-12 ||
		r.CO2e.MarketGrams == nil || math.Abs(*r.CO2e.MarketGrams-kwh*0.5*100) > 1e-12 {
		t.Fatalf("co2e %+v, intensity %+v", r.CO2e, in)
	}

	// CSV: the header and one row that agrees with the JSON.
	f, err := os.Open(strings.TrimSuffix(out, ".json") + ".csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 2 || strings.Join(rows[0], ",") != strings.Join(runner.CSVHeader, ",") {
		t.Fatalf("csv: %v %q", err, rows)
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	if col["energy_gpu_joules"] != "5.5" || col["exit_code"] != "7" || col["zone"] != "DE" || col["budget_exceeded"] != "false" ||
		col["energy_total_joules"] != strconv.FormatFloat(r.Energy.Total, 'g', -1, 64) || col["intensity_licence"] != in.Provenance.Licence ||
		col["cpu_method"] != "rapl" || col["gpu_method"] != "dcgm_exporter" {
		t.Fatalf("csv row %v", col)
	}

	// W&B: merged into the existing summary.
	var ws map[string]any
	b, err := os.ReadFile(wandb)
	if err != nil || json.Unmarshal(b, &ws) != nil {
		t.Fatalf("wandb summary: %v %s", err, b)
	}
	if ws["loss"] != 0.25 || ws["aiwatt/energy_gpu_joules"] != 5.5 || ws["aiwatt/energy_kwh"] != kwh ||
		ws["aiwatt/co2e_g"] != r.CO2e.LocationGrams || ws["aiwatt/zone"] != "DE" || ws["aiwatt/exit_code"] != 7.0 {
		t.Fatalf("wandb summary %s", b)
	}

	// Pushgateway: one PUT of the text format to the grouping key.
	reqs := pg.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPut || !strings.HasPrefix(reqs[0].contentType, "text/plain") ||
		groupingKey(reqs[0].path) != "job=aiwatt_run,project=vision,run=42" {
		t.Fatalf("pushgateway requests: %d, first %s %s %s", len(reqs), reqs[0].method, reqs[0].path, reqs[0].contentType)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(reqs[0].body))
	if err != nil {
		t.Fatalf("pushed body: %v\n%s", err, reqs[0].body)
	}
	gauge := func(name, label, value string) float64 {
		for _, m := range fams[name].GetMetric() {
			if label == "" || labelIs(m, label, value) {
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s{%s=%q} in\n%s", name, label, value, reqs[0].body)
		return 0
	}
	if gauge("aiwatt_run_energy_joules", "component", "gpu") != 5.5 || gauge("aiwatt_run_energy_joules", "component", "total") != r.Energy.Total ||
		gauge("aiwatt_run_co2e_grams", "basis", "location") != r.CO2e.LocationGrams || gauge("aiwatt_run_co2e_grams", "basis", "market") != *r.CO2e.MarketGrams ||
		gauge("aiwatt_run_exit_code", "", "") != 7 || gauge("aiwatt_run_budget_joules", "", "") != 1e6 ||
		gauge("aiwatt_run_budget_exceeded", "", "") != 0 || gauge("aiwatt_run_duration_seconds", "", "") != r.DurationSeconds {
		t.Fatalf("pushed body\n%s", reqs[0].body)
	}

	// MLflow: one log-batch with the token, metrics and tags.
	reqs = ml.requests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/api/2.0/mlflow/runs/log-batch" || reqs[0].auth != "Bearer "+token {
		t.Fatalf("mlflow requests %+v", reqs)
	}
	var batch struct {
		RunID   string `json:"run_id"`
		Metrics []struct {
			Key       string  `json:"key"`
			Value     float64 `json:"value"`
			Timestamp int64   `json:"timestamp"`
		} `json:"metrics"`
		Tags []struct{ Key, Value string } `json:"tags"`
	}
	if err := json.Unmarshal(reqs[0].body, &batch); err != nil || batch.RunID != "abc123" {
		t.Fatalf("mlflow body %v %s", err, reqs[0].body)
	}
	metrics, tags := map[string]float64{}, map[string]string{}
	for _, m := range batch.Metrics {
		metrics[m.Key] = m.Value
		if m.Timestamp != r.End.UnixMilli() {
			t.Fatalf("metric %s timestamp %d, want %d", m.Key, m.Timestamp, r.End.UnixMilli())
		}
	}
	for _, tg := range batch.Tags {
		tags[tg.Key] = tg.Value
	}
	if metrics["aiwatt/energy_gpu_joules"] != 5.5 || metrics["aiwatt/energy_kwh"] != kwh || metrics["aiwatt/exit_code"] != 7 ||
		tags["aiwatt/zone"] != "DE" || tags["aiwatt/cpu_method"] != "rapl" || tags["aiwatt/intensity_source"] != in.Provenance.Source {
		t.Fatalf("mlflow metrics %v tags %v", metrics, tags)
	}
	logs := p.logs()
	if strings.Contains(logs, token) {
		t.Fatal("the MLflow token appears in the output")
	}
	if !strings.Contains(logs, "aiwatt run: command exited with code 7") || !strings.Contains(logs, "gpu 0   5.5 J of 5.5 J: exclusive (assigned)") {
		t.Fatalf("no summary in the output:\n%s", logs)
	}
}

// groupingKey turns a Pushgateway path /metrics/job/J/k1/v1/k2/v2 into
// "job=J,k1=v1,k2=v2" with the labels after job sorted (client_golang writes
// them in map order).
func groupingKey(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/metrics/"), "/")
	if len(parts)%2 != 0 {
		return "odd path " + path
	}
	var pairs []string
	for i := 0; i < len(parts); i += 2 {
		pairs = append(pairs, parts[i]+"="+parts[i+1])
	}
	if len(pairs) > 1 {
		sort.Strings(pairs[1:])
	}
	return strings.Join(pairs, ",")
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue() == value
		}
	}
	return false
}

// TestRunEndToEndBudgetExceeded: over budget, the command's whole process
// group is stopped (its workers ignore SIGTERM, so they are killed after the
// grace period), aiwatt exits 124 and the report says why. The GPU is the
// run's through the command's CUDA_VISIBLE_DEVICES.
func TestRunEndToEndBudgetExceeded(t *testing.T) {
	root := sysfsfixture.Materialize(t, intelFixture)
	dcgmSrv := startFakeDCGM(t)
	out := filepath.Join(t.TempDir(), "run.json")
	p := startAiwattRun(t, []string{"IGNORE_TERM=1", "CUDA_VISIBLE_DEVICES=0"},
		"--interval=100ms", "--grace=300ms", "--path.sysfs="+root, "--rapl.max-power-watts=1000000",
		"--gpu.backend=dcgm-exporter", "--dcgm.exporter-url="+dcgmSrv.url(), "--budget=1J", "--out="+out)
	injectEnergy(t, root, dcgmSrv, p, 5500)
	if code := p.exit(t, 20*time.Second); code != runner.ExitBudgetExceeded {
		t.Fatalf("exit %d, want 124\n%s", code, p.logs())
	}
	workers := p.workers()
	if len(workers) != 2 {
		t.Fatalf("workers %v", workers)
	}
	for _, pid := range workers {
		waitFor(t, "worker "+strconv.Itoa(pid)+" gone", 5*time.Second, func() (bool, error) { return processGone(pid), nil })
	}
	if _, err := os.Stat(filepath.Join(p.dir, "stop")); err == nil {
		t.Fatal("the workers were told to stop by the test, not killed")
	}
	r := p.report(t, out)
	if !r.BudgetExceeded || r.ExitCode != 124 || r.ChildSignal != "SIGTERM" || r.ChildExitCode != nil || r.Energy.GPU != 5.5 || r.BudgetUsed <= 1 {
		t.Fatalf("report: exceeded %v exit %d signal %q gpu %v used %v", r.BudgetExceeded, r.ExitCode, r.ChildSignal, r.Energy.GPU, r.BudgetUsed)
	}
	if logs := p.logs(); !strings.Contains(logs, "energy budget exceeded") || !strings.Contains(logs, "GPUs of the run from CUDA_VISIBLE_DEVICES") {
		t.Fatalf("output:\n%s", logs)
	}
}

// TestRunEndToEndSignals: SIGINT to aiwatt run reaches the command, whose
// trap runs and sets the exit code; SIGTERM kills a command without a trap,
// and aiwatt exits 128+15.
func TestRunEndToEndSignals(t *testing.T) {
	t.Run("SIGINT trapped", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "run.json")
		p := startAiwattRun(t, []string{"TRAP_INT=1"}, "--interval=100ms", "--path.sysfs="+t.TempDir(), "--gpu.backend=none", "--out="+out)
		waitFor(t, "workers", 15*time.Second, func() (bool, error) { return len(p.workers()) == 2, nil })
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := p.exit(t, 15*time.Second); code != 3 {
			t.Fatalf("exit %d, want the trap's 3\n%s", code, p.logs())
		}
		if b, err := os.ReadFile(filepath.Join(p.dir, "sigint")); err != nil || string(b) != "int\n" {
			t.Fatalf("trap marker: %q %v", b, err)
		}
		r := p.report(t, out)
		if r.ExitCode != 3 || r.ChildExitCode == nil || *r.ChildExitCode != 3 || r.Measurement.CPU.Method != runner.MethodEstimate {
			t.Fatalf("report: %+v", r)
		}
	})
	t.Run("SIGTERM untrapped", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "run.json")
		p := startAiwattRun(t, nil, "--interval=100ms", "--path.sysfs="+t.TempDir(), "--gpu.backend=none", "--out="+out)
		waitFor(t, "workers", 15*time.Second, func() (bool, error) { return len(p.workers()) == 2, nil })
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.exit(t, 15*time.Second); code != 128+15 {
			t.Fatalf("exit %d, want 143\n%s", code, p.logs())
		}
		for _, pid := range p.workers() {
			waitFor(t, "worker gone", 5*time.Second, func() (bool, error) { return processGone(pid), nil })
		}
		if r := p.report(t, out); r.ChildSignal != "SIGTERM" || r.ExitCode != 143 || r.BudgetExceeded {
			t.Fatalf("report: %+v", r)
		}
	})
}

// TestRunEndToEndUsageErrors: bad flags exit 2 before anything runs; a
// command that does not exist exits 127.
func TestRunEndToEndUsageErrors(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--budget=lots"}, 2, "--budget"},
		{[]string{"--zone=Atlantis"}, 2, "--zone"},
		{[]string{"--interval=0s"}, 2, "--interval"},
		{[]string{"--label=job=x"}, 2, "--label"},
		{[]string{"--covered-share=1.5"}, 2, "covered share"},
		{[]string{"--mlflow.run-id=abc"}, 2, "--mlflow"},
		{[]string{"--gpu.backend=dcgm-exporter"}, 2, "--dcgm.exporter-url"},
		{[]string{"--out=/nonexistent/dir/run.json"}, 2, "output"},
	} {
		argv := append(append([]string{"run"}, tc.args...), "--", "sh", "-c", "touch "+marker)
		out, err := exec.Command(binPath, argv...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.msg) {
			t.Errorf("%v: %v\n%s", tc.args, err, out)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command ran despite a usage error")
	}
	out, err := exec.Command(binPath, "run", "--gpu.backend=none", "--", "/nonexistent/command").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != runner.ExitNotFound {
		t.Fatalf("missing command: %v\n%s", err, out)
	}
}

// openPTY returns the master and slave ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal (/dev/ptmx) on this Linux machine: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestRunEndToEndTerminal runs aiwatt run on a terminal, as a person would:
// the command gets the terminal (it reads a line typed on it), Ctrl-C typed
// on the terminal reaches its trap, the live line is drawn on the terminal,
// and aiwatt takes the terminal back and exits with the command's code.
func TestRunEndToEndTerminal(t *testing.T) {
	master, slave := openPTY(t)
	script := `echo ready; read line; echo "got:$line"; trap 'echo trapped-int; exit 9' INT; echo armed; while :; do sleep 0.05; done`
	cmd := exec.Command(binPath, "run", "--interval=50ms", "--path.sysfs="+t.TempDir(), "--gpu.backend=none", "--", "sh", "-c", script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return // EIO once every slave is closed
			}
		}
	}()
	shown := func(s string) func() (bool, error) {
		return func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(screen.String(), s), nil
		}
	}
	waitFor(t, "the command's prompt", 15*time.Second, shown("ready"))
	if _, err := master.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the line read from the terminal", 15*time.Second, shown("got:hello"))
	waitFor(t, "the trap", 15*time.Second, shown("armed"))
	waitFor(t, "the live line", 15*time.Second, shown("\r\x1b[Kaiwatt run 0:00:0"))
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 9 {
			mu.Lock()
			t.Fatalf("exit %v, want the trap's 9; terminal:\n%q", err, screen.String())
		}
		done <- err // for the cleanup
	case <-time.After(15 * time.Second):
		mu.Lock()
		t.Fatalf("aiwatt run did not exit after Ctrl-C; terminal:\n%q", screen.String())
	}
	waitFor(t, "the summary", 5*time.Second, shown("aiwatt run: command exited with code 9"))
	if ok, _ := shown("trapped-int")(); !ok {
		t.Fatal("the command's trap did not run")
	}
}
