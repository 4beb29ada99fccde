package runner

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/internal/helperproc"
)

// helperEnv makes the test binary a helper process instead of running the
// tests: "burn:<duration>" burns CPU for that long and exits (a short-lived
// child); "duty:<stop file>" burns half of every 20 ms until the file exists
// (a long-lived busy workload).
const helperEnv = "AIWATT_RUNNER_TEST_HELPER"

func TestMain(m *testing.M) { helperproc.Main(m, helperEnv, helper) }

func helper(h string) {
	spin := func(d time.Duration) {
		end := time.Now().Add(d)
		for x := 0; time.Now().Before(end); x++ {
			_ = x * x
		}
	}
	switch kind, arg, _ := strings.Cut(h, ":"); kind {
	case "burn":
		d, _ := time.ParseDuration(arg)
		spin(d)
	case "duty":
		for {
			if _, err := os.Stat(arg); err == nil {
				return
			}
			spin(10 * time.Millisecond)
			time.Sleep(10 * time.Millisecond) // the workload's idle half, not synchronisation
		}
	}
}

// treeTicks returns the CPU seconds of pid's tree as the kernel keeps them:
// utime+stime+cutime+cstime of pid (its own time and that of every child
// it has reaped) plus the same of its children alive now.
func treeTicks(t *testing.T, pid int) float64 {
	t.Helper()
	own, _, err := statTimes(pid)
	must(t, err)
	entries, err := os.ReadDir("/proc")
	must(t, err)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if secs, ppid, err := statTimes(child); err == nil && ppid == pid {
			own += secs
		}
	}
	return own
}

// statTimes returns utime+stime+cutime+cstime of pid in seconds, and its parent.
func statTimes(pid int) (float64, int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])) // f[0] is field 3
	ppid, _ := strconv.Atoi(f[1])
	var sum float64
	for _, i := range []int{11, 12, 13, 14} { // fields 14..17
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		sum += float64(v)
	}
	return sum / 100, ppid, nil
}

// TestShortLivedChildrenRealProcesses runs, for real, a rule-named parent
// that forks a stream of children each living under 0.2 s (80 ms of CPU
// each, one after the other), beside a long-lived busy workload, and
// samples both with `aiwatt agent` and `aiwatt run` at the default 5 s
// interval. The parent's workload must receive its children's CPU time
// within 5 % (the kernel's own count, the parent's utime+stime+cutime+
// cstime, is the reference) in both, and the energy per CPU-second must be
// the same for both workloads within 5 %.
func TestShortLivedChildrenRealProcesses(t *testing.T) {
	const interval = 5 * time.Second
	dir := t.TempDir()
	self, err := os.Executable()
	must(t, err)
	forkStop, burnStop := filepath.Join(dir, "aiwatt-forker-stop"), filepath.Join(dir, "aiwatt-burner-stop")
	env := helperproc.Env(helperEnv, "burn:80ms")
	forker, err := StartChild([]string{"sh", "-c", `while [ ! -e "$0" ]; do "$1"; done`, forkStop, self}, ChildOptions{Env: env})
	must(t, err)
	t.Cleanup(func() { writeFile(t, forkStop, ""); _ = forker.Signal(syscall.SIGKILL) })
	burner, err := StartChild([]string{self, "aiwatt-burner"}, ChildOptions{Env: helperproc.Env(helperEnv, "duty:"+burnStop)})
	must(t, err)
	t.Cleanup(func() { writeFile(t, burnStop, ""); _ = burner.Signal(syscall.SIGKILL) })
	waitFor(t, "the workloads to run", 10*time.Second, func() bool {
		return treeTicks(t, forker.PID()) > 0.2 && treeTicks(t, burner.PID()) > 0.1
	})

	cfg, err := agent.ParseConfig("aiwatt.yml", []byte(`
workloads:
  rules:
    - name: forker
      match: {cmdline: 'aiwatt-forker'}
      labels: {project: churn, workload_type: forker}
    - name: burner
      match: {cmdline: 'aiwatt-burner'}
      labels: {project: churn, workload_type: burner}
`))
	must(t, err)
	clock, rf := newClock(), newRAPL(t)
	a, err := agent.New(agent.Options{Interval: interval, SysfsRoot: rf.root, ProcfsRoot: "/proc", Clock: clock.now}, cfg)
	must(t, err)
	m, err := New(Options{SysfsRoot: rf.root, ProcfsRoot: "/proc", Now: clock.now})
	must(t, err)
	a.Tick()
	must(t, m.Start(context.Background(), forker.PID()))
	f0, b0 := treeTicks(t, forker.PID()), treeTicks(t, burner.PID())

	var snap *agent.Snapshot
	for range 2 {
		<-time.After(interval) // the sampling interval itself
		rf.add("intel-rapl:0", 100)
		clock.step(interval)
		_, err := m.Tick(context.Background())
		must(t, err)
		snap = a.Tick()
	}
	fCPU, bCPU := treeTicks(t, forker.PID())-f0, treeTicks(t, burner.PID())-b0
	if fCPU < 0.3 || bCPU < 0.3 {
		t.Fatalf("the workloads barely ran: %v s and %v s of CPU", fCPU, bCPU)
	}

	// aiwatt run: the tree's CPU time.
	r := m.Report()
	if d := math.Abs(r.Tree.CPUSeconds-fCPU) / fCPU; d > 0.05 {
		t.Errorf("aiwatt run: the tree got %.3f CPU s, the kernel counts %.3f s (%.1f %% off)", r.Tree.CPUSeconds, fCPU, 100*d)
	}
	// The agent: energy per CPU-second of both workloads, and of the run.
	joules := map[string]float64{}
	for _, w := range snap.Attribution.Workloads {
		joules[w.Key.WorkloadType] = w.Joules[attribution.CPU]
	}
	// Conservation: workloads + idle + unattributed = the 200 J added.
	placed := snap.Attribution.Idle[attribution.CPU] + snap.Attribution.Unattributed[attribution.CPU]
	for _, w := range snap.Attribution.Workloads {
		placed += w.Joules[attribution.CPU]
	}
	if math.Abs(placed-200) > 1e-9 {
		t.Errorf("agent: %v J of CPU energy placed, 200 J measured", placed)
	}
	if n := r.Node; math.Abs(n.Total.CPU-(r.Energy.CPU+n.Idle.CPU+n.Unattributed.CPU)) > 1e-9 || math.Abs(n.Total.CPU-200) > 1e-9 {
		t.Errorf("aiwatt run: node %+v, run %v J", n, r.Energy.CPU)
	}
	perF, perB := joules["forker"]/fCPU, joules["burner"]/bCPU
	if perB <= 0 || math.Abs(perF-perB)/perB > 0.05 {
		t.Errorf("agent: %.3f J per CPU-second for the forker, %.3f for the long-lived workload (%v)", perF, perB, joules)
	}
	if perRun := r.Energy.CPU / fCPU; math.Abs(perRun-perB)/perB > 0.05 {
		t.Errorf("aiwatt run: %.3f J per CPU-second for the run, the agent %.3f for the long-lived workload", perRun, perB)
	}
	t.Logf("CPU s: forker %.3f (run %.3f), burner %.3f; J per CPU s: forker %.3f, burner %.3f, run %.3f",
		fCPU, r.Tree.CPUSeconds, bCPU, perF, perB, r.Energy.CPU/fCPU)
}
