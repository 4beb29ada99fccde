package workload

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// churnProc creates a process directory with a full stat line.
func churnProc(t *testing.T, root string, f statFields, cgroup string, args ...string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(f.pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeStatFull(t, root, f)
	writeFile(t, filepath.Join(dir, "cgroup"), cgroup+"\n")
	writeFile(t, filepath.Join(dir, "cmdline"), joinArgs(args))
	writeFile(t, filepath.Join(dir, "status"), "Name:\t"+f.comm+"\nUid:\t0\t0\t0\t0\n")
}

func joinArgs(args []string) string {
	s := ""
	for _, a := range args {
		s += a + "\x00"
	}
	return s
}

func removeProc(t *testing.T, root string, pid int) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, strconv.Itoa(pid))); err != nil {
		t.Fatal(err)
	}
}

func scanPIDs(t *testing.T, s *Scanner) map[int]Process {
	t.Helper()
	res, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	return byPID(t, res)
}

// A parent's cutime+cstime growth counts the children no scan saw, and not
// again the time of children that scans saw while they lived.
func TestScanReapedChildren(t *testing.T) {
	root := t.TempDir()
	setUptime(t, root, 1000)
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	parent := statFields{pid: 100, ppid: 1, comm: "make", utime: 100, start: 5000, startStack: fixtureStack}
	churnProc(t, root, parent, "0::/user.slice", "make", "-j8")
	child := statFields{pid: 101, ppid: 100, comm: "cc1", utime: 50, start: 90000, startStack: fixtureStack}
	churnProc(t, root, child, "0::/user.slice", "cc1")
	grand := statFields{pid: 102, ppid: 101, comm: "as", utime: 5, start: 95000, startStack: fixtureStack}
	churnProc(t, root, grand, "0::/user.slice", "as")
	scanPIDs(t, s) // baseline

	// Interval 2: the parent used 10 ticks itself; the child (seen with 50
	// ticks) ran 20 more and exited, after reaping its own child (seen with
	// 5, ran 3 more: 8) and an unseen one (12); an unseen child of the
	// parent ran 30. The parent's cutime: child 70 + its reaped 20 + 30.
	setUptime(t, root, 1005)
	removeProc(t, root, 101)
	removeProc(t, root, 102)
	parent.utime, parent.cutime = 110, 120
	writeStatFull(t, root, parent)
	got := scanPIDs(t, s)
	// Counted before: child 50 + grandchild 5 = 55; unseen: 20 + 3 + 12 + 30 = 65.
	if p := got[100]; !near(p.DeltaCPUSeconds, 0.1) || !near(p.ReapedCPUSeconds, 0.65) || !near(p.ChildCPUSeconds, 1.2) {
		t.Fatalf("parent: Δ %v reaped %v children %v, want 0.1, 0.65, 1.2", p.DeltaCPUSeconds, p.ReapedCPUSeconds, p.ChildCPUSeconds)
	}

	// Interval 3: a short child of 40 ticks, never seen.
	setUptime(t, root, 1010)
	parent.cutime = 160
	writeStatFull(t, root, parent)
	if p := scanPIDs(t, s)[100]; !near(p.ReapedCPUSeconds, 0.4) {
		t.Fatalf("interval 3: reaped %v, want 0.4", p.ReapedCPUSeconds)
	}

	// Interval 4: a child seen with 30 ticks is reaped elsewhere (the
	// parent's cutime never grows for it): what it owed is forgiven after
	// owedScans scans, so later unseen children count whole again.
	setUptime(t, root, 1015)
	other := statFields{pid: 103, ppid: 100, comm: "cc1", utime: 30, start: 101200, startStack: fixtureStack}
	churnProc(t, root, other, "0::/user.slice", "cc1")
	if p := scanPIDs(t, s)[103]; !near(p.DeltaCPUSeconds, 0.3) {
		t.Fatalf("new child Δ %v, want all of its 0.3 s", p.DeltaCPUSeconds)
	}
	removeProc(t, root, 103)
	for i := range owedScans + 1 {
		setUptime(t, root, 1020+float64(i))
		if p := scanPIDs(t, s)[100]; p.ReapedCPUSeconds != 0 {
			t.Fatalf("scan %d: reaped %v with no cutime growth", i, p.ReapedCPUSeconds)
		}
	}
	parent.cutime = 170
	writeStatFull(t, root, parent)
	setUptime(t, root, 1030)
	if p := scanPIDs(t, s)[100]; !near(p.ReapedCPUSeconds, 0.1) {
		t.Fatalf("after forgiving: reaped %v, want 0.1", p.ReapedCPUSeconds)
	}
}

// A PID reused within one interval: the old process's counted time is owed
// to its parent all the same.
func TestScanReapedChildPIDReused(t *testing.T) {
	root := t.TempDir()
	setUptime(t, root, 1000)
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	parent := statFields{pid: 200, ppid: 1, comm: "sh", utime: 10, start: 5000, startStack: fixtureStack}
	churnProc(t, root, parent, "0::/x", "sh")
	churnProc(t, root, statFields{pid: 201, ppid: 200, comm: "job", utime: 40, start: 90000, startStack: fixtureStack}, "0::/x", "job")
	scanPIDs(t, s)
	setUptime(t, root, 1005)
	// 201 exited at 45 ticks and was reaped; a new child took its PID.
	churnProc(t, root, statFields{pid: 201, ppid: 200, comm: "job", utime: 7, start: 100200, startStack: fixtureStack}, "0::/x", "job")
	parent.cutime = 45
	writeStatFull(t, root, parent)
	got := scanPIDs(t, s)
	if !near(got[200].ReapedCPUSeconds, 0.05) || !near(got[201].DeltaCPUSeconds, 0.07) {
		t.Fatalf("reaped %v (want 0.05), new child Δ %v (want 0.07)", got[200].ReapedCPUSeconds, got[201].DeltaCPUSeconds)
	}
}

// An exec under the same PID and comm is seen at the next scan from the
// stack address in stat, and, where the kernel hides it, within
// CmdlineRecheckScans scans by re-reading the command line.
func TestScanExecSameComm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stack   uint64 // 0: hidden
		recheck int
		within  int // scans after the exec
	}{
		{"stack address", fixtureStack, -1, 1},
		{"hidden stack, recheck every 4 scans", 0, 4, 4},
		{"hidden stack, default recheck", 0, 0, DefaultCmdlineRecheckScans},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			setUptime(t, root, 1000)
			s := NewScanner(root, ScannerOptions{ClockTicks: 100, CmdlineRecheckScans: tc.recheck})
			p := statFields{pid: 300, ppid: 1, comm: "python3", utime: 10, start: 5000, startStack: tc.stack}
			churnProc(t, root, p, "0::/x", "python3", "prepare.py")
			scanPIDs(t, s)
			scanPIDs(t, s)
			// exec: same comm, new command line, a new stack when shown.
			writeFile(t, filepath.Join(root, "300", "cmdline"), joinArgs([]string{"python3", "serve.py"}))
			if tc.stack != 0 {
				p.startStack = tc.stack + 4096
				writeStatFull(t, root, p)
			}
			for n := 1; ; n++ {
				got := scanPIDs(t, s)[300]
				if got.Info.Cmdline == "python3 serve.py" {
					if n > tc.within {
						t.Fatalf("exec seen after %d scans, bound %d", n, tc.within)
					}
					return
				}
				if n > tc.within {
					t.Fatalf("exec not seen within %d scans", tc.within)
				}
			}
		})
	}
}

func TestParseStatChildrenAndAddresses(t *testing.T) {
	st, ok := parseStat([]byte("42 (a) b) S 7 42 42 0 -1 4194560 0 0 0 0 11 4 30 2 20 0 1 0 999 0 0 0 123 456 789\n"))
	if !ok || st.ppid != 7 || st.ticks != 15 || st.children != 32 || st.start != 999 || st.startCode != 123 || st.startStack != 789 {
		t.Fatalf("%+v %v", st, ok)
	}
	// Fields after starttime are optional; a negative cutime counts as 0.
	st, ok = parseStat([]byte("42 (x) S 7 42 42 0 -1 0 0 0 0 0 1 1 -3 2 20 0 1 0 5\n"))
	if !ok || st.children != 2 || st.startStack != 0 {
		t.Fatalf("%+v %v", st, ok)
	}
	for _, bad := range []string{"", "42 (x) S 7 42", "42 (x) S x 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5\n"} {
		if _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

// Without Slurm's cgroup plugins the job comes from the process's
// environment; a job named by the cgroup path wins, and containers are
// never read.
func TestScanSlurmFromEnviron(t *testing.T) {
	root := t.TempDir()
	setUptime(t, root, 1000)
	env := joinArgs([]string{"PATH=/usr/bin", "SLURM_JOB_ID=7781", "SLURM_STEP_ID=0", "SLURM_JOB_USER=alice"})
	churnProc(t, root, statFields{pid: 10, ppid: 1, comm: "python", start: 100, startStack: fixtureStack}, "0::/user.slice/user-1000.slice/session-4.scope", "python", "train.py")
	writeFile(t, filepath.Join(root, "10", "environ"), env)
	churnProc(t, root, statFields{pid: 11, ppid: 1, comm: "python", start: 100, startStack: fixtureStack}, "0::/slurm/uid_1000/job_12/step_0/task_0", "python", "eval.py")
	writeFile(t, filepath.Join(root, "11", "environ"), env)
	churnProc(t, root, statFields{pid: 12, ppid: 1, comm: "python", start: 100, startStack: fixtureStack}, "0::/system.slice/docker-"+cgContainer+".scope", "python", "x.py")
	writeFile(t, filepath.Join(root, "12", "environ"), env)
	churnProc(t, root, statFields{pid: 13, ppid: 1, comm: "python", start: 100, startStack: fixtureStack}, "0::/user.slice", "python", "y.py")

	rules := Rules{Rules: []Rule{{Match: RuleMatch{SlurmJob: "*"}, Labels: RuleLabels{Project: "hpc", ModelID: "job-{{slurm_job}}-{{slurm_user}}"}}}}
	m, err := rules.Compile(CompileOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got := scanPIDs(t, NewScanner(root, ScannerOptions{ClockTicks: 100}))
	want := map[int]string{10: "job-7781-alice", 11: "job-12-", 12: "", 13: ""}
	for pid, model := range want {
		k, _ := m.Match(got[pid].Info)
		if k.ModelID != model {
			t.Errorf("PID %d: model_id %q, want %q (info %+v)", pid, k.ModelID, model, got[pid].Info)
		}
	}
	if i := got[10].Info; !i.SlurmFromEnviron || i.Cgroup.SlurmStep != "0" || got[11].Info.SlurmFromEnviron {
		t.Errorf("environ flags: %+v / %+v", i, got[11].Info)
	}
}

// A process reaped by a parent in another cgroup (a container's first
// process reaped by its runtime shim): what it used after the last scan is
// its own cgroup's, whose counter has it, so the reaper is not credited
// with it as well.
func TestScanReapedFromAnotherCgroup(t *testing.T) {
	root := t.TempDir()
	setUptime(t, root, 1000)
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	shim := statFields{pid: 500, ppid: 1, comm: "containerd-shim", utime: 10, start: 5000, startStack: fixtureStack}
	churnProc(t, root, shim, "0::/system.slice/containerd.service", "containerd-shim")
	churnProc(t, root, statFields{pid: 501, ppid: 500, comm: "python3", utime: 300, start: 6000, startStack: fixtureStack},
		"0::/kubepods.slice/kubepods-pod5f1c2a7e_8d3b_4c1a_9f0e_2b6d7c8e9a01.slice/cri-containerd-"+cgContainer+".scope", "python3")
	scanPIDs(t, s)
	// The container's process used 40 more ticks and exited; the shim reaped it.
	setUptime(t, root, 1005)
	removeProc(t, root, 501)
	shim.cutime = 340
	writeStatFull(t, root, shim)
	if p := scanPIDs(t, s)[500]; p.ReapedCPUSeconds != 0 {
		t.Fatalf("shim credited with %v s of the container's time", p.ReapedCPUSeconds)
	}
	// Later reaped children of its own cgroup count again.
	setUptime(t, root, 1010)
	shim.cutime = 360
	writeStatFull(t, root, shim)
	if p := scanPIDs(t, s)[500]; !near(p.ReapedCPUSeconds, 0.2) {
		t.Fatalf("reaped %v s, want 0.2", p.ReapedCPUSeconds)
	}
}
