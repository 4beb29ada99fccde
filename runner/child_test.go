package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/dcgm/dcgmtest"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // Polling interval; the condition decides.
	}
}

// waitDone waits for a child to exit.
func waitDone(t *testing.T, c *Child) *os.ProcessState {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(15 * time.Second):
		_ = c.Signal(syscall.SIGKILL)
		t.Fatal("command did not exit")
	}
	ps, err := c.State()
	must(t, err)
	return ps
}

// readPIDs returns the PIDs written one per line to path.
func readPIDs(path string) []int {
	b, _ := os.ReadFile(path)
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if v, err := strconv.Atoi(f); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// gone reports whether pid has exited (no longer listed, or a zombie nobody
// has reaped yet).
func gone(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && len(b) > i+2 && b[i+2] == 'Z'
}

// cpuTicks returns utime+stime of pid.
func cpuTicks(pid int) uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}

func TestChildExitCodes(t *testing.T) {
	for _, tc := range []struct {
		script string
		code   int
		sig    string
	}{
		{"exit 7", 7, ""},
		{"exit 0", 0, ""},
		{"kill -TERM $$", 128 + 15, "SIGTERM"},
		{"kill -KILL $$", 128 + 9, "SIGKILL"},
	} {
		c, err := StartChild([]string{"sh", "-c", tc.script}, ChildOptions{})
		must(t, err)
		code, sig := ExitStatus(waitDone(t, c))
		if code != tc.code || sig != tc.sig {
			t.Errorf("%q: exit %d %q, want %d %q", tc.script, code, sig, tc.code, tc.sig)
		}
	}
	_, err := StartChild([]string{"/nonexistent/aiwatt-no-such-command"}, ChildOptions{})
	if err == nil || StartExitCode(err) != ExitNotFound {
		t.Fatalf("missing command: %v (code %d)", err, StartExitCode(err))
	}
	_, err = StartChild([]string{"aiwatt-no-such-command-in-path"}, ChildOptions{})
	if err == nil || StartExitCode(err) != ExitNotFound {
		t.Fatalf("missing command in PATH: %v", err)
	}
	noexec := filepath.Join(t.TempDir(), "script")
	writeFile(t, noexec, "#!/bin/sh\nexit 0\n")
	_, err = StartChild([]string{noexec}, ChildOptions{})
	if err == nil || StartExitCode(err) != ExitCannotInvoke {
		t.Fatalf("not executable: %v (code %d)", err, StartExitCode(err))
	}
	if _, err := StartChild(nil, ChildOptions{}); err == nil {
		t.Fatal("empty command started")
	}
}

// TestChildStopEscalates: workers that ignore SIGTERM are killed with
// SIGKILL after the grace period, and none survives.
func TestChildStopEscalates(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	c, err := StartChild([]string{"sh", "-c", `trap '' TERM; for i in 1 2; do (while :; do :; done) & echo $! >> "$0"; done; wait`, pids}, ChildOptions{})
	must(t, err)
	waitFor(t, "two workers", 10*time.Second, func() bool { return len(readPIDs(pids)) == 2 })
	start := time.Now()
	c.Stop(300 * time.Millisecond)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("Stop returned after %v, before the grace period, although everything ignores SIGTERM", el)
	}
	code, sig := ExitStatus(waitDone(t, c))
	if code != 137 || sig != "SIGKILL" {
		t.Fatalf("exit %d %s, want 137 SIGKILL", code, sig)
	}
	for _, pid := range readPIDs(pids) {
		waitFor(t, "worker "+strconv.Itoa(pid)+" killed", 5*time.Second, func() bool { return gone(pid) })
	}
	if !c.Stopping() {
		t.Fatal("Stopping() false after Stop")
	}
}

// TestChildStopGraceful: a command that exits on SIGTERM is not killed.
func TestChildStopGraceful(t *testing.T) {
	c, err := StartChild([]string{"sh", "-c", `trap 'exit 5' TERM; while :; do sleep 0.05; done`}, ChildOptions{})
	must(t, err)
	// The trap must be installed before the signal: wait until sh has run sleep.
	waitFor(t, "the loop", 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.PID()), "task", strconv.Itoa(c.PID()), "children"))
		return len(strings.TrimSpace(string(b))) > 0
	})
	c.Stop(10 * time.Second)
	if code, _ := ExitStatus(waitDone(t, c)); code != 5 {
		t.Fatalf("exit %d, want the trap's 5", code)
	}
}

// TestMeterRealProcessTree measures a real shell script that forks two busy
// workers, with a fake clock, the RAPL fixture and fake GPUs whose process
// lists name the workers and a foreign process (this test). The GPU energy
// attributed must equal the injected share exactly; the CPU share is real,
// so only its bounds are known.
func TestMeterRealProcessTree(t *testing.T) {
	dir := t.TempDir()
	stop, pidFile := filepath.Join(dir, "stop"), filepath.Join(dir, "pids")
	clock, rf := newClock(), newRAPL(t)
	gpus := dcgmtest.NewWithGPUs(2)
	m, err := New(Options{SysfsRoot: rf.root, ProcfsRoot: "/proc", GPU: gpus, Now: clock.now})
	must(t, err)
	c, err := StartChild([]string{"sh", "-c", `for i in 1 2; do (while [ ! -e "$0" ]; do :; done) & echo $! >> "$1"; done; wait; exit 3`, stop, pidFile}, ChildOptions{})
	must(t, err)
	t.Cleanup(func() { _ = c.Signal(syscall.SIGKILL) })
	// As in aiwatt run, the baseline follows the fork at once.
	must(t, m.Start(context.Background(), c.PID()))
	waitFor(t, "two workers", 10*time.Second, func() bool { return len(readPIDs(pidFile)) == 2 })
	workers := readPIDs(pidFile)

	// Let the workers run for real until the scan can see CPU time.
	base := cpuTicks(workers[0]) + cpuTicks(workers[1])
	waitFor(t, "worker CPU time", 10*time.Second, func() bool { return cpuTicks(workers[0])+cpuTicks(workers[1]) > base+2 })
	must(t, gpus.SetProcesses(0, []dcgm.Process{{PID: uint32(workers[0]), SMUtil: 50}, {PID: uint32(workers[1]), SMUtil: 50}}))
	must(t, gpus.SetSMUtil(0, 100))
	must(t, gpus.SetProcesses(1, []dcgm.Process{{PID: uint32(workers[0]), SMUtil: 60}, {PID: uint32(os.Getpid()), SMUtil: 40}}))
	must(t, gpus.SetSMUtil(1, 100))
	must(t, gpus.AddEnergy(0, 250))
	must(t, gpus.AddEnergy(1, 100))
	rf.add("intel-rapl:0", 100)
	clock.step(time.Second)
	pr, err := m.Tick(context.Background())
	must(t, err)
	// GPU 0 is exclusive (both of its processes are the run's): 250 J. GPU 1
	// is shared 60/40 at 100 % busy: 60 J.
	if pr.Energy.GPU != 250+60 {
		t.Fatalf("GPU energy %v J, want 310", pr.Energy.GPU)
	}
	if !(pr.Energy.CPU > 0 && pr.Energy.CPU <= 100) || pr.Processes < 3 {
		t.Fatalf("CPU %v J of 100 J, %d processes", pr.Energy.CPU, pr.Processes)
	}

	writeFile(t, stop, "")
	ps := waitDone(t, c)
	if code, _ := ExitStatus(ps); code != 3 {
		t.Fatalf("exit %d", code)
	}
	m.RootExited(ps.UserTime() + ps.SystemTime())
	clock.step(time.Second)
	if _, err := m.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := m.Report()
	if r.Tree.ProcessesSeen < 3 || r.Tree.RootPID != c.PID() || r.Tree.CPUSeconds <= 0 {
		t.Fatalf("tree %+v", r.Tree)
	}
	// All of the tree's CPU time is accounted for by the end: the workers'
	// time is in sh's cutime, which wait4 reported. (What sh used before the
	// baseline scan, a tick or two at most, is not.)
	if total := (ps.UserTime() + ps.SystemTime()).Seconds(); r.Tree.CPUSeconds < total-0.02 || r.Tree.CPUSeconds > total+0.02 {
		t.Fatalf("tree CPU %v s, rusage says %v s", r.Tree.CPUSeconds, total)
	}
	if !near(r.Energy.GPU, 310) || r.Measurement.GPUs[0].Attribution != GPUExclusive || r.Measurement.GPUs[1].Attribution != GPUSharedSM {
		t.Fatalf("%+v", r.Measurement.GPUs)
	}
}
