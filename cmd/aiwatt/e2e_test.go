package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

const intelFixture = "../../rapl/testdata/intel-2socket.sysfs"

// fixtureProc is a procfs root with a fixed /proc/stat and no process: the
// node is idle, so attribution keeps all energy as node idle, exactly.
const fixtureProc = "../../rapl/testdata/proc-4cpu"

// zoneStep is one zone of the Intel fixture: its directory, the series it
// becomes, and the energy the test injects.
type zoneStep struct {
	dir    string
	series string
	joules float64
}

var intelSteps = []zoneStep{
	{"intel-rapl:0", `aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="package"}`, 150.25},
	{"intel-rapl:0:0", `aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="core"}`, 90.5},
	{"intel-rapl:0:1", `aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="uncore"}`, 10.125},
	{"intel-rapl:0:2", `aiwatt_cpu_energy_joules_total{socket="0",source="rapl",zone="dram"}`, 20.000001},
	{"intel-rapl:1", `aiwatt_cpu_energy_joules_total{socket="1",source="rapl",zone="package"}`, 140},
	{"intel-rapl:1:0", `aiwatt_cpu_energy_joules_total{socket="1",source="rapl",zone="core"}`, 80.75},
	{"intel-rapl:1:1", `aiwatt_cpu_energy_joules_total{socket="1",source="rapl",zone="uncore"}`, 9},
	{"intel-rapl:1:2", `aiwatt_cpu_energy_joules_total{socket="1",source="rapl",zone="dram"}`, 18.5},
	{"intel-rapl:2", `aiwatt_cpu_energy_joules_total{socket="",source="rapl",zone="psys"}`, 350},
}

// The GPU of the dcgm-exporter capture, and the energy the test injects.
const (
	gpuSeries = `aiwatt_gpu_energy_joules_total{gpu="0",source="dcgm_exporter",uuid="GPU-c2f76b33-7953-256e-8f33-1343419b1a1c"}`
	gpuMJ     = 5500
)

// e2eConfig lifts the RAPL plausibility ceiling and reads GPUs from a
// dcgm-exporter. The test steps counters instantly, so the power they imply
// depends on how far apart two ticks happen to be; the ceiling is tested on
// its own in rapl/.
const e2eConfig = "rapl:\n  max_power_watts: 1000000\ngpu:\n  backend: dcgm-exporter\n"

// advance adds each step's energy to its zone counter, wrapping at
// max_energy_range_uj the way the hardware does (modulo max+1).
func advance(t *testing.T, root string, steps []zoneStep) {
	t.Helper()
	for _, s := range steps {
		cur := readUJ(t, root, s.dir, "energy_uj")
		maxUJ := readUJ(t, root, s.dir, "max_energy_range_uj")
		writeUJ(t, root, s.dir, (cur+uint64(math.Round(s.joules*1e6)))%(maxUJ+1))
	}
}

// TestEndToEndRAPLGolden runs the agent against a fixture sysfs whose
// counters the test advances (one of them across its wrap), scrapes /metrics
// over HTTP and compares the aiwatt families with a golden file.
func TestEndToEndRAPLGolden(t *testing.T) {
	dir := t.TempDir()
	root := sysfsfixture.Materialize(t, intelFixture)
	cfg := filepath.Join(dir, "aiwatt.yml")
	triton := startGoldenTriton(t)
	if err := os.WriteFile(cfg, []byte(e2eConfig+triton.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	dcgmSrv := startFakeDCGM(t)
	// Park socket 1's dram counter just below its maximum so that the step wraps it.
	wrap := intelSteps[7]
	maxUJ := readUJ(t, root, wrap.dir, "max_energy_range_uj")
	writeUJ(t, root, wrap.dir, maxUJ-uint64(wrap.joules*1e6)/3)
	// The sources of a tick share one deadline, 4/5 of the interval: at 300 ms
	// a loaded test machine still reads the fake dcgm-exporter in time, so the
	// golden exposition shows no timeout.
	p := startAgent(t, nil, "--path.sysfs="+root, "--path.procfs="+fixtureProc, "--agent.interval=300ms", "--config.file="+cfg, "--dcgm.exporter-url="+dcgmSrv.url())
	url := "http://" + p.addr + "/metrics"

	// The first tick only takes baselines: every counter is exported at 0.
	waitFor(t, "first sample", 15*time.Second, func() (bool, error) {
		body, err := scrape(nil, url)
		v, ok := sampleValue(body, "aiwatt_samples_total")
		return ok && v >= 1 && dcgmSrv.scraped() >= 1 && triton.scraped() >= 1, err
	})
	advance(t, root, intelSteps)
	dcgmSrv.add(gpuMJ)
	triton.serve()

	var last string
	waitFor(t, "the injected energy on every zone", 15*time.Second, func() (bool, error) {
		body, err := scrape(nil, url)
		if err != nil {
			return false, err
		}
		last = body
		return stepsDone(body)
	})
	// Exactness: the wrapped counter lost nothing, to the microjoule.
	if got, _ := sampleValue(last, intelSteps[7].series); math.Round(got*1e6) != math.Round(intelSteps[7].joules*1e6) {
		t.Fatalf("wrapped zone: %v J, want %v J", got, intelSteps[7].joules)
	}
	if v, _ := sampleValue(last, `aiwatt_source_up{source="rapl",target=""}`); v != 1 {
		t.Fatalf("rapl source not up:\n%s", last)
	}
	if strings.Contains(last, `source="estimate"`) {
		t.Fatalf("the CPU model must stay off while RAPL works:\n%s", last)
	}
	compareGolden(t, "metrics.prom", normalise(last))
}

// stepsDone reports whether every zone shows exactly its injected energy.
func stepsDone(body string) (bool, error) {
	if got, ok := sampleValue(body, tritonInferences); !ok || got != 40 {
		return false, fmt.Errorf("%s = %v, want 40", tritonInferences, got)
	}
	if got, ok := sampleValue(body, gpuSeries); !ok || got != gpuMJ/1000.0 {
		return false, fmt.Errorf("%s = %v, want %v", gpuSeries, got, gpuMJ/1000.0)
	}
	for _, s := range intelSteps {
		got, ok := sampleValue(body, s.series)
		if !ok || math.Abs(got-s.joules) > 1e-9 {
			return false, fmt.Errorf("%s = %v, want %v", s.series, got, s.joules)
		}
	}
	return true, nil
}

// TestEndToEndGracefulStop checks that SIGTERM stops the agent with exit 0.
func TestEndToEndGracefulStop(t *testing.T) {
	root := sysfsfixture.Materialize(t, intelFixture)
	p := startAgent(t, nil, "--path.sysfs="+root, "--agent.interval=50ms")
	waitFor(t, "agent up", 15*time.Second, func() (bool, error) {
		_, err := scrape(nil, "http://"+p.addr+"/-/healthy")
		return err == nil, err
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM", err)
		}
		p.done <- nil // Let the cleanup's wait return.
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop within 10s of SIGTERM")
	}
	if !strings.Contains(p.logs(), "stopped") {
		t.Fatalf("no stop line in the log:\n%s", p.logs())
	}
}

// TestEndToEndReload covers POST /-/reload and SIGHUP: a bad file is refused
// (the metric says so and the running configuration stays), a good one loads.
func TestEndToEndReload(t *testing.T) {
	dir := t.TempDir()
	root := sysfsfixture.Materialize(t, intelFixture)
	cfgPath := filepath.Join(dir, "aiwatt.yml")
	if err := os.WriteFile(cfgPath, []byte("rapl:\n  enabled: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, nil, "--path.sysfs="+root, "--agent.interval=50ms", "--config.file="+cfgPath)
	base := "http://" + p.addr
	reloadOK := func(want float64) func() (bool, error) {
		return func() (bool, error) {
			body, err := scrape(nil, base+"/metrics")
			v, ok := sampleValue(body, "aiwatt_config_last_reload_successful")
			return ok && v == want, err
		}
	}
	waitFor(t, "agent up", 15*time.Second, reloadOK(1))

	if resp, err := http.Get(base + "/-/reload"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /-/reload: %v %v", resp, err)
	}
	if err := os.WriteFile(cfgPath, []byte("rapl:\n  enabeld: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := new(strings.Builder)
	_, _ = fmt.Fprint(msg, resp.Status)
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body[:n]), cfgPath+":2:") {
		t.Fatalf("bad reload answered %s %q", msg, body[:n])
	}
	waitFor(t, "reload failure exported", 5*time.Second, reloadOK(0))
	// RAPL stays on: the refused file would have disabled nothing anyway, but
	// the agent must keep sampling.
	waitFor(t, "rapl still up", 5*time.Second, func() (bool, error) {
		body, err := scrape(nil, base+"/metrics")
		v, ok := sampleValue(body, `aiwatt_source_up{source="rapl",target=""}`)
		return ok && v == 1, err
	})

	// A good file through SIGHUP: disabling RAPL removes it, and the CPU model takes over.
	if err := os.WriteFile(cfgPath, []byte("rapl:\n  enabled: false\ncpu_model:\n  estimate: auto\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGHUP reload", 5*time.Second, reloadOK(1))
	waitFor(t, "estimate after disabling RAPL", 5*time.Second, func() (bool, error) {
		body, err := scrape(nil, base+"/metrics")
		_, hasRAPLUp := sampleValue(body, `aiwatt_source_up{source="rapl",target=""}`)
		v, ok := sampleValue(body, `aiwatt_source_up{source="cpu_model",target=""}`)
		return ok && v == 1 && !hasRAPLUp && strings.Contains(body, `source="estimate"`), err
	})
}

// TestEndToEndUnreadableEnergy runs the agent unprivileged against a zone
// whose energy_uj only root may read (as the kernel has done since
// CVE-2020-8694): RAPL is reported down with advice, the errors are counted,
// the CPU model takes over and the agent keeps serving.
func TestEndToEndUnreadableEnergy(t *testing.T) {
	root := sysfsfixture.Materialize(t, "../../rapl/testdata/unreadable.sysfs")
	var configure func(*exec.Cmd)
	if os.Geteuid() == 0 {
		// Root reads anything: run the agent as nobody against a root-only file.
		for _, d := range []string{filepath.Dir(filepath.Dir(root)), filepath.Dir(root)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Join(root, "class/powercap/intel-rapl:0/energy_uj"), 0o400); err != nil {
			t.Fatal(err)
		}
		configure = func(c *exec.Cmd) {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
	} else if err := os.Chmod(filepath.Join(root, "class/powercap/intel-rapl:0/energy_uj"), 0o000); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, configure, "--path.sysfs="+root, "--agent.interval=50ms")
	var body string
	waitFor(t, "rapl down and the estimate serving", 15*time.Second, func() (bool, error) {
		var err error
		body, err = scrape(nil, "http://"+p.addr+"/metrics")
		up, okUp := sampleValue(body, `aiwatt_source_up{source="rapl",target=""}`)
		denied, okDenied := sampleValue(body, `aiwatt_source_errors_total{reason="permission_denied",source="rapl",target=""}`)
		model, okModel := sampleValue(body, `aiwatt_source_up{source="cpu_model",target=""}`)
		return okUp && up == 0 && okDenied && denied >= 2 && okModel && model == 1, err
	})
	if !strings.Contains(body, `aiwatt_cpu_energy_joules_total{socket="",source="estimate",zone="package"}`) &&
		!strings.Contains(body, `aiwatt_cpu_energy_joules_total{source="estimate",zone="package"}`) {
		t.Fatalf("no estimate series:\n%s", body)
	}
	logs := p.logs()
	if !strings.Contains(logs, "CVE-2020-8694") || !strings.Contains(logs, "root") {
		t.Fatalf("the log does not say what to do:\n%s", logs)
	}
	if n := strings.Count(logs, `msg="source down" source_name=rapl`); n != 1 {
		t.Fatalf("want exactly one 'source down' line for rapl, got %d:\n%s", n, logs)
	}
}
