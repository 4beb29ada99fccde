package workload

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inferensys/aiwatt/attribution"
)

const cgContainer = "3f0e1d2c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"

// cgroupLayout is one fixture tree: its cgroup paths as /proc/PID/cgroup
// names them, and where their counters are.
type cgroupLayout struct {
	name                   string
	procLine               func(path string) string
	containerPath, svcPath string
	write                  func(t *testing.T, root, path string, seconds float64)
}

var cgroupLayoutsUnderTest = []cgroupLayout{
	{
		name:          "v2",
		procLine:      func(p string) string { return "0::" + p },
		containerPath: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f1c2a7e_8d3b_4c1a_9f0e_2b6d7c8e9a01.slice/cri-containerd-" + cgContainer + ".scope",
		svcPath:       "/system.slice/batch.service",
		write: func(t *testing.T, root, path string, s float64) {
			writeFile(t, filepath.Join(root, path, "cpu.stat"), fmt.Sprintf("usage_usec %d\nuser_usec 0\nsystem_usec 0\n", int64(math.Round(s*1e6))))
		},
	},
	{
		name:          "v1",
		procLine:      func(p string) string { return "12:memory:" + p + "\n4:cpu,cpuacct:" + p + "\n0::/" },
		containerPath: "/kubepods/burstable/pod5f1c2a7e-8d3b-4c1a-9f0e-2b6d7c8e9a01/" + cgContainer,
		svcPath:       "/system.slice/batch.service",
		write: func(t *testing.T, root, path string, s float64) {
			writeFile(t, filepath.Join(root, "cpu,cpuacct", path, "cpuacct.usage"), fmt.Sprintf("%d\n", int64(math.Round(s*1e9))))
		},
	},
}

// nodeStat writes <proc>/stat with the aggregate cpu line (ticks).
func nodeStat(t *testing.T, proc string, user, system, idle, steal uint64) {
	t.Helper()
	writeFile(t, filepath.Join(proc, "stat"), fmt.Sprintf("cpu  %d 0 %d %d 0 0 0 %d 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n", user, system, idle, steal))
}

func shareOf(tk CPUTick, k attribution.Key) (float64, bool) {
	for _, s := range tk.Shares {
		if s.Key == k {
			return s.Weight, true
		}
	}
	return 0, false
}

// A container whose processes all exit between two scans is charged its
// cgroup counter's increase exactly, on cgroup v2 and v1; processes that
// lived between scans in a charged cgroup are counted through the counter;
// a cgroup shared by two workloads falls back to process times; and the
// split still conserves energy.
func TestCPUAccountCgroupCounters(t *testing.T) {
	for _, l := range cgroupLayoutsUnderTest {
		t.Run(l.name, func(t *testing.T) {
			proc := t.TempDir()
			cg := copyTree(t, filepath.Join("cgroup", l.name))
			setUptime(t, proc, 1000)
			nodeStat(t, proc, 1000, 0, 1000, 0)
			ctr := statFields{pid: 812, ppid: 790, comm: "python3", utime: 100, start: 5000, startStack: fixtureStack}
			churnProc(t, proc, ctr, l.procLine(l.containerPath), "python3", "serve.py")
			svc := statFields{pid: 900, ppid: 1, comm: "batch", utime: 100, start: 5000, startStack: fixtureStack}
			churnProc(t, proc, svc, l.procLine(l.svcPath), "batch")
			mk := statFields{pid: 950, ppid: 1, comm: "make", utime: 100, start: 5000, startStack: fixtureStack}
			churnProc(t, proc, mk, l.procLine("/user.slice/user-1000.slice/session-3.scope"), "make")
			a, b, c, d := attribution.Key{Pod: "a"}, attribution.Key{Project: "b"}, attribution.Key{Project: "c"}, attribution.Key{Project: "d"}
			keyOf := map[int]attribution.Key{812: a, 900: b, 950: c, 902: d}

			s := NewScanner(proc, ScannerOptions{ClockTicks: 100})
			acct := NewCPUAccount(proc, cg, 100)
			tick := func() CPUTick {
				t.Helper()
				res, err := s.Scan()
				if err != nil {
					t.Fatal(err)
				}
				keys := make([]attribution.Key, len(res.Processes))
				for i, p := range res.Processes {
					keys[i] = keyOf[p.PID]
				}
				return acct.Tick(res.Processes, keys, nil)
			}
			want := func(tk CPUTick, k attribution.Key, secs float64) {
				t.Helper()
				if got, _ := shareOf(tk, k); math.Abs(got-secs) > 1e-9 {
					t.Errorf("%v: %v CPU s, want %v (shares %+v)", k, got, secs, tk.Shares)
				}
			}
			if tk := tick(); tk.Seconds != 0 || tk.Busy != -1 {
				t.Fatalf("baseline: %+v", tk)
			}

			// Interval 2: the container's process used 1 s, processes that came
			// and went in it 2.5 s more (counter +3.5 s); the service 2 s
			// (counter +2.5 s); make 1 s itself and 0.5 s through a reaped
			// child. The node was busy 8 s (5 s of steal left out).
			setUptime(t, proc, 1005)
			ctr.utime += 100
			writeStatFull(t, proc, ctr)
			l.write(t, cg, l.containerPath, 4+3.5)
			svc.utime += 200
			writeStatFull(t, proc, svc)
			l.write(t, cg, l.svcPath, 9+2.5)
			mk.utime, mk.cutime = mk.utime+100, 50
			writeStatFull(t, proc, mk)
			nodeStat(t, proc, 1000+700, 100, 1000+200, 500)
			tk := tick()
			want(tk, a, 3.5)
			want(tk, b, 2.5)
			want(tk, c, 1.5)
			if math.Abs(tk.CgroupSeconds-6) > 1e-9 || math.Abs(tk.ReapedSeconds-0.5) > 1e-9 {
				t.Errorf("cgroup %v s, reaped %v s", tk.CgroupSeconds, tk.ReapedSeconds)
			}
			if math.Abs(tk.Busy-0.8) > 1e-9 || math.Abs(tk.NodeBusySeconds-8) > 1e-9 || math.Abs(tk.UnaccountedSeconds-0.5) > 1e-9 {
				t.Errorf("busy %v, node busy %v s, unaccounted %v s", tk.Busy, tk.NodeBusySeconds, tk.UnaccountedSeconds)
			}
			conserve(t, tk)

			// Interval 3: every process of the container exited between the
			// scans, after 2 s more; a second workload joins the service's
			// cgroup, which then counts by process.
			setUptime(t, proc, 1010)
			removeProc(t, proc, 812)
			l.write(t, cg, l.containerPath, 7.5+2)
			churnProc(t, proc, statFields{pid: 902, ppid: 1, comm: "other", utime: 30, start: 100600, startStack: fixtureStack}, l.procLine(l.svcPath), "other")
			svc.utime += 100
			writeStatFull(t, proc, svc)
			l.write(t, cg, l.svcPath, 11.5+5)
			tk = tick()
			want(tk, a, 2)
			want(tk, b, 1)
			want(tk, d, 0.3)
			conserve(t, tk)
			if acct.Cgroups() != 1 {
				t.Errorf("remembers %d cgroups, want the container's only", acct.Cgroups())
			}

			// Interval 4: the container's cgroup is removed: forgotten.
			if err := os.RemoveAll(filepath.Dir(filepath.Join(cg, counterPath(l, l.containerPath)))); err != nil {
				t.Fatal(err)
			}
			setUptime(t, proc, 1015)
			tk = tick()
			if _, ok := shareOf(tk, a); ok || acct.Cgroups() != 0 {
				t.Errorf("removed cgroup still counted: %+v, %d remembered", tk.Shares, acct.Cgroups())
			}
		})
	}
}

func counterPath(l cgroupLayout, path string) string {
	if l.name == "v1" {
		return filepath.Join("cpu,cpuacct", path, "cpuacct.usage")
	}
	return filepath.Join(path, "cpu.stat")
}

// conserve splits 100 J by the tick's shares and checks that every joule is
// placed.
func conserve(t *testing.T, tk CPUTick) {
	t.Helper()
	r := attribution.Attribute(attribution.Policy{}, []attribution.Device{{ID: "cpu", Component: attribution.CPU, Joules: 100, Busy: max(tk.Busy, 0.5),
		Claims: attribution.Claims{Activity: tk.Shares}}})
	if got := r[0].Total(); math.Abs(got-100) > 1e-9 {
		t.Errorf("conservation: %v J of 100 placed", got)
	}
}

func TestNodeCPUWithoutSteal(t *testing.T) {
	c, err := parseNodeCPU([]byte("cpu  100 20 30 400 50 5 5 90 10 0"), 100)
	if err != nil {
		t.Fatal(err)
	}
	// busy = user+nice+system+irq+softirq = 160 ticks; total = busy+idle+iowait = 610.
	if !near(c.Busy, 1.6) || !near(c.Total, 6.1) {
		t.Fatalf("%+v", c)
	}
	next, _ := parseNodeCPU([]byte("cpu  200 20 30 400 50 5 5 990 10 0"), 100)
	// 900 ticks of steal and 100 of user: the share is 100/100, not 1000/1000 counted busy.
	if b := BusyShare(c, next); !near(b, 1) {
		t.Fatalf("busy %v", b)
	}
	if BusyShare(next, next) != -1 {
		t.Fatal("no time passed: want unknown")
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4", "cpu 1 x 3 4"} {
		if _, err := parseNodeCPU([]byte(bad), 100); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

// Only a cgroup that stands for a workload backs it by its counter: not a
// session scope whose Slurm job came from the environment, not the root,
// and from inside a private cgroup namespace only a container or pod.
func TestWorkloadCgroup(t *testing.T) {
	for _, tc := range []struct {
		info ProcessInfo
		want bool
	}{
		{ProcessInfo{Cgroup: ParseCgroupPath("/kubepods.slice/kubepods-pod7d6c5b4a_3f2e_4d1c_8b9a_0f1e2d3c4b5a.slice/crio-" + cgContainer + ".scope")}, true},
		{ProcessInfo{Cgroup: ParseCgroupPath("/../../kubepods-pod7d6c5b4a_3f2e_4d1c_8b9a_0f1e2d3c4b5a.slice/crio-" + cgContainer + ".scope")}, true},
		{ProcessInfo{Cgroup: ParseCgroupPath("/../../system.slice/vllm.service")}, false},
		{ProcessInfo{Cgroup: ParseCgroupPath("/slurm/uid_1000/job_42/step_0/task_0")}, true},
		{ProcessInfo{Cgroup: Cgroup{Path: "/user.slice/session-4.scope", SlurmJob: "42"}, SlurmFromEnviron: true}, false},
		{ProcessInfo{Cgroup: ParseCgroupPath("/system.slice/vllm.service")}, true},
		{ProcessInfo{Cgroup: ParseCgroupPath("/user.slice/user-1000.slice/session-3.scope")}, false},
		{ProcessInfo{Cgroup: ParseCgroupPath("/")}, false},
	} {
		if got := workloadCgroup(&tc.info); got != tc.want {
			t.Errorf("%s (environ %v): %v, want %v", tc.info.Cgroup.Path, tc.info.SlurmFromEnviron, got, tc.want)
		}
	}
}

// Inference targets tie to a rule's or a unit's processes, lowest PID first.
func TestOwnersByRuleAndUnit(t *testing.T) {
	rules := Rules{Rules: []Rule{{Name: "chat", Match: RuleMatch{Cmdline: "serve"}, Labels: RuleLabels{Project: "chat"}}}}
	m, err := rules.Compile(CompileOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	svc := &ProcessInfo{Cmdline: "vllm serve", Cgroup: ParseCgroupPath("/system.slice/vllm.service")}
	worker := &ProcessInfo{Cmdline: "worker", Cgroup: svc.Cgroup}
	other := &ProcessInfo{Cmdline: "sshd", Cgroup: ParseCgroupPath("/system.slice/ssh.service")}
	procs := []Process{{PID: 10, Info: svc}, {PID: 11, PPID: 10, Info: worker}, {PID: 20, Info: other}}
	r := NewResolver(m, nil)
	keys := r.Resolve(procs)
	keys[1] = keys[0] // inherited from its parent
	o := r.Owners(procs, keys)
	chat := attribution.Key{Project: "chat"}
	if k, ok := o.Rule("chat"); !ok || k != chat {
		t.Errorf("rule: %v %v", k, ok)
	}
	if k, ok := o.Unit("vllm.service"); !ok || k != chat {
		t.Errorf("unit: %v %v", k, ok)
	}
	if _, ok := o.Unit("ssh.service"); ok {
		t.Error("a unit of no workload resolved")
	}
	if _, ok := o.Rule("nope"); ok || !o.Alive(20) || o.Alive(30) {
		t.Error("unknown rule resolved, or liveness wrong")
	}
}

// Seen from inside a private cgroup namespace (the agent's own container),
// a container's path climbs out with "/.."; the account finds it again
// under the cgroup root from the kubelet's layout, on v2 and v1.
func TestCPUAccountPrivateCgroupNamespace(t *testing.T) {
	for _, tc := range []struct {
		layout   cgroupLayout
		relative string
	}{
		{cgroupLayoutsUnderTest[0], "/../../kubepods-burstable-pod5f1c2a7e_8d3b_4c1a_9f0e_2b6d7c8e9a01.slice/cri-containerd-" + cgContainer + ".scope"},
		{cgroupLayoutsUnderTest[1], "/../../pod5f1c2a7e-8d3b-4c1a-9f0e-2b6d7c8e9a01/" + cgContainer},
	} {
		t.Run(tc.layout.name, func(t *testing.T) {
			l := tc.layout
			proc := t.TempDir()
			cg := copyTree(t, filepath.Join("cgroup", l.name))
			setUptime(t, proc, 1000)
			nodeStat(t, proc, 1000, 0, 1000, 0)
			ctr := statFields{pid: 812, ppid: 790, comm: "python3", utime: 100, start: 5000, startStack: fixtureStack}
			churnProc(t, proc, ctr, l.procLine(tc.relative), "python3", "serve.py")
			s := NewScanner(proc, ScannerOptions{ClockTicks: 100})
			acct := NewCPUAccount(proc, cg, 100)
			a := attribution.Key{Pod: "a"}
			tick := func() CPUTick {
				res, err := s.Scan()
				if err != nil {
					t.Fatal(err)
				}
				return acct.Tick(res.Processes, []attribution.Key{a}, nil)
			}
			tick()
			setUptime(t, proc, 1005)
			ctr.utime += 100 // 1 s seen; the counter says 3.5 s
			writeStatFull(t, proc, ctr)
			l.write(t, cg, l.containerPath, 4+3.5)
			if got, _ := shareOf(tick(), a); math.Abs(got-3.5) > 1e-9 {
				t.Fatalf("%v CPU s, want the counter's 3.5", got)
			}
		})
	}
}

func TestHostPaths(t *testing.T) {
	for path, want := range map[string][]string{
		"/kubepods.slice/x.scope":                                                  {"/kubepods.slice/x.scope"},
		"/../../kubepods-besteffort-podU.slice/c.scope":                            {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podU.slice/c.scope"},
		"/../kubepods-podU.slice/c.scope":                                          {"/kubepods.slice/kubepods-podU.slice/c.scope"},
		"/../../../kubepods-burstable.slice/kubepods-burstable-podU.slice/c.scope": {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podU.slice/c.scope"},
		"/../../podU/c":                    {"/kubepods/burstable/podU/c", "/kubepods/besteffort/podU/c", "/kubepods/podU/c"},
		"/../../system.slice/vllm.service": nil,
	} {
		if got := hostPaths(path); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

// A node reading from the caller (the agent's CPU model reads procfs stat
// every tick) is used as it is: the account reads no procfs stat of its own
// (there is none under this root), and one from ticks agrees with
// parseNodeCPU's reading of the same line. Without one it reads procfs
// itself, and with nothing to read the busy share is unknown.
func TestCPUAccountNodeFromCaller(t *testing.T) {
	a := attribution.Key{Pod: "a"}
	info := &ProcessInfo{}
	procs := []Process{{DeltaCPUSeconds: 1.5, Info: info}}
	acct := NewCPUAccount(t.TempDir(), "", 100)
	if tk := acct.Tick(procs, []attribution.Key{a}, nil); tk.Busy != -1 {
		t.Fatalf("no stat anywhere: busy %v, want -1", tk.Busy)
	}
	first := NodeCPUFromTicks(160, 610, 100)
	if want, _ := parseNodeCPU([]byte("cpu  100 20 30 400 50 5 5 90 10 0"), 100); !near(first.Busy, want.Busy) || !near(first.Total, want.Total) {
		t.Fatalf("from ticks %+v, parsed %+v", first, want)
	}
	if tk := acct.Tick(procs, []attribution.Key{a}, &first); tk.Busy != -1 {
		t.Fatalf("first reading is a baseline: busy %v", tk.Busy)
	}
	next := NodeCPUFromTicks(160+400, 610+500, 100) // 4 s busy of 5 s
	tk := acct.Tick(procs, []attribution.Key{a}, &next)
	if !near(tk.Busy, 0.8) || !near(tk.NodeBusySeconds, 4) || !near(tk.UnaccountedSeconds, 2.5) {
		t.Errorf("busy %v, node busy %v s, unaccounted %v s; want 0.8, 4, 2.5", tk.Busy, tk.NodeBusySeconds, tk.UnaccountedSeconds)
	}
}

// Processes of one cgroup are one aggregate whether their path strings are
// one (as the scanner shares them) or equal copies: the cgroup's counter is
// read and charged once, and a scan that changes which string a process
// holds changes nothing.
func TestCPUAccountPathCopies(t *testing.T) {
	l := cgroupLayoutsUnderTest[0]
	proc := t.TempDir()
	cg := t.TempDir()
	nodeStat(t, proc, 1000, 0, 1000, 0)
	k := attribution.Key{Project: "p"}
	path := l.containerPath
	procs := func(copies bool) []Process {
		var ps []Process
		for i := range 4 {
			p := path
			if copies {
				p = strings.Clone(path)
			}
			ps = append(ps, Process{PID: 100 + i, DeltaCPUSeconds: 1, Info: &ProcessInfo{Cgroup: Cgroup{Path: p, ContainerID: cgContainer}}})
		}
		return ps
	}
	keys := []attribution.Key{k, k, k, k}
	acct := NewCPUAccount(proc, cg, 100)
	if err := os.MkdirAll(filepath.Join(cg, path), 0o755); err != nil {
		t.Fatal(err)
	}
	l.write(t, cg, path, 10)
	acct.Tick(procs(false), keys, nil) // first sight: the processes' 4 s
	for i, copies := range []bool{true, false, true} {
		l.write(t, cg, path, 10+float64(i+1)*2) // 2 s more each interval
		tk := acct.Tick(procs(copies), keys, nil)
		if got, _ := shareOf(tk, k); math.Abs(got-2) > 1e-9 || math.Abs(tk.CgroupSeconds-2) > 1e-9 {
			t.Fatalf("interval %d (copies %v): %v s, cgroup %v s, want 2", i, copies, got, tk.CgroupSeconds)
		}
	}
	// One process of the cgroup belongs to another workload: the cgroup is
	// mixed, whatever string each process holds, and each process counts
	// its own time.
	k2 := attribution.Key{Project: "q"}
	tk := acct.Tick(procs(true), []attribution.Key{k, k, k, k2}, nil)
	if a, _ := shareOf(tk, k); a != 3 || tk.CgroupSeconds != 0 {
		t.Fatalf("mixed cgroup: %v s to %v, cgroup %v s; want 3 s by the processes", a, k, tk.CgroupSeconds)
	}
	if b, _ := shareOf(tk, k2); b != 1 {
		t.Fatalf("mixed cgroup: %v s to %v, want 1", b, k2)
	}
}
