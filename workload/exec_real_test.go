package workload

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/internal/helperproc"
)

// execHelperEnv makes the test binary a helper: "<phase>:<dir>". In phase
// "prepare" it writes <dir>/ready, waits for <dir>/go, then execs itself
// (same binary, so the same comm) into phase "serve"; in "serve" it writes
// <dir>/served and waits for <dir>/stop. "kubelet:<socket>" serves the
// pod-resources API (serveKubeletProcess).
const execHelperEnv = "AIWATT_WORKLOAD_TEST_EXEC"

func TestMain(m *testing.M) { helperproc.Main(m, execHelperEnv, execHelper) }

func execHelper(v string) {
	phase, dir, _ := strings.Cut(v, ":")
	wait := func(name string) {
		for {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return
			}
			time.Sleep(5 * time.Millisecond) // the helper waits for the test's signal file
		}
	}
	switch phase {
	case "prepare":
		_ = os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644)
		wait("go")
		self, _ := os.Executable()
		_ = syscall.Exec(self, []string{self, "aiwatt-phase-serve"}, helperproc.Env(execHelperEnv, "serve:"+dir))
	case "serve":
		_ = os.WriteFile(filepath.Join(dir, "served"), nil, 0o644)
		wait("stop")
	case "kubelet": // dir is the socket path
		serveKubeletProcess(dir)
	}
}

// A real process that execs into a new command line under the same PID and
// comm changes workload at the next scan (the stack address in stat moves),
// well within the documented bound of CmdlineRecheckScans scans.
func TestScanRealExecSameComm(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "aiwatt-phase-prepare")
	cmd.Env = helperproc.Env(execHelperEnv, "prepare:"+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFile := func(name string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("helper never wrote %s", name)
			}
			time.Sleep(5 * time.Millisecond) // polling; the file decides
		}
	}
	waitFile("ready")

	rules := Rules{Rules: []Rule{
		{Match: RuleMatch{Cmdline: "aiwatt-phase-prepare"}, Labels: RuleLabels{WorkloadType: "prepare"}},
		{Match: RuleMatch{Cmdline: "aiwatt-phase-serve"}, Labels: RuleLabels{WorkloadType: "serve"}},
	}}
	m, err := rules.Compile(CompileOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := NewScanner("/proc", ScannerOptions{})
	r := NewResolver(m, nil)
	pid := cmd.Process.Pid
	keyOf := func() (attribution.Key, string) {
		t.Helper()
		res, err := s.Scan()
		if err != nil {
			t.Fatal(err)
		}
		keys := r.Resolve(res.Processes)
		for i, p := range res.Processes {
			if p.PID == pid {
				return keys[i], p.Info.Comm
			}
		}
		t.Fatalf("PID %d not in the scan", pid)
		return attribution.Key{}, ""
	}
	k, comm := keyOf()
	if k.WorkloadType != "prepare" {
		t.Fatalf("before the exec: %v", k)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile("served")
	k2, comm2 := keyOf()
	if comm2 != comm {
		t.Fatalf("comm changed (%q → %q): not the case under test", comm, comm2)
	}
	if k2.WorkloadType != "serve" {
		t.Fatalf("after the exec under the same PID %d and comm %q: %v", pid, comm, k2)
	}
}
