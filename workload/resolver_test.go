package workload

import (
	"fmt"
	"testing"

	"github.com/inferensys/aiwatt/attribution"
)

func TestResolver(t *testing.T) {
	pods := podsFromFixture(t)
	idx := NewPodIndex(pods[0], pods[1]) // the TGI pod (PID 1024) is not known
	r := NewResolver(compileExample(t), idx)
	procs := fixtureProcs(t)
	keys := r.Resolve(procs)
	if len(keys) != len(procs) {
		t.Fatalf("%d keys for %d processes", len(keys), len(procs))
	}
	want := map[int]attribution.Key{
		812: {Namespace: "ml", Pod: "vllm-llama-0", Container: "server", Project: "search",
			ModelID: "meta-llama/Llama-3.1-8B-Instruct", WorkloadType: "inference"},
		913: {Namespace: "train", Pod: "llama-70b-worker-0", Container: "trainer", Project: "foundation-models",
			ModelID: "llama-70b-sft", WorkloadType: "finetune"},
		1024: {Project: "mistralai", ModelID: "Mistral-7B-Instruct-v0.3", WorkloadType: "inference-$"}, // unknown pod: rules
		3000: {Project: "platform", ModelID: "qwen72b", WorkloadType: "inference"},
		2001: {Project: "hpc", ModelID: "job-4211-0", WorkloadType: "training"},
		1:    {},
		2:    {},
	}
	for i, p := range procs {
		if w, ok := want[p.PID]; ok && keys[i] != w {
			t.Errorf("PID %d: %v, want %v", p.PID, keys[i], w)
		}
	}
	if len(r.cache) != len(procs) {
		t.Errorf("cache holds %d entries for %d processes", len(r.cache), len(procs))
	}

	// The pod's labels change: a new PodMeta replaces the old one, and the
	// key follows without a new scan.
	changed := *pods[0]
	changed.Labels = map[string]string{"aiwatt.io/project": "search-v2"}
	idx[changed.UID] = &changed
	keys = r.Resolve(procs)
	for i, p := range procs {
		if p.PID == 812 && keys[i].Project != "search-v2" {
			t.Errorf("after relabel: %v", keys[i])
		}
	}
	// Processes that are gone leave the cache.
	r.Resolve(procs[:2])
	if len(r.cache) != 2 {
		t.Errorf("cache holds %d entries after a scan of 2", len(r.cache))
	}
	// A container ID not in the pod (the sandbox, or a status not yet
	// updated) gives the pod with an empty container.
	info := &ProcessInfo{Cgroup: Cgroup{PodUID: pods[1].UID, ContainerID: c812}}
	if k := r.Resolve([]Process{{Info: info}})[0]; k.Pod != "llama-70b-worker-0" || k.Container != "" {
		t.Errorf("unknown container: %v", k)
	}
}

func TestResolverOutsideKubernetes(t *testing.T) {
	r := NewResolver(nil, nil)
	procs := fixtureProcs(t)
	for i, k := range r.Resolve(procs) {
		if !k.IsZero() {
			t.Errorf("PID %d named %v without rules or pods", procs[i].PID, k)
		}
	}
}

// Without cgroup counters, a workload's CPU time is its processes' own time
// plus the children they reaped that no scan saw.
func TestCPUAccountByProcess(t *testing.T) {
	a, b := attribution.Key{Pod: "a"}, attribution.Key{Pod: "b"}
	info := &ProcessInfo{Cgroup: Cgroup{Path: "/system.slice/x.service", SystemdUnit: "x.service"}}
	procs := []Process{{DeltaCPUSeconds: 1, Info: info}, {DeltaCPUSeconds: 2, Info: info}, {DeltaCPUSeconds: 0.5, ReapedCPUSeconds: 0.25, Info: info},
		{DeltaCPUSeconds: 4, Info: info}}
	got := NewCPUAccount(t.TempDir(), "", 100).Tick(procs, []attribution.Key{a, {}, a, b}, nil).Shares
	want := []attribution.Share{{Key: a, Weight: 1.75}, {Weight: 2}, {Key: b, Weight: 4}}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("share %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestAllocations(t *testing.T) {
	pods := podsFromFixture(t)
	m := DefaultMatcher()
	got := m.CPUAllocation(pods)
	// vllm: server 4 + metrics-proxy 0.1 (the init container is excluded);
	// train: 32; tgi: 2.5.
	want := map[string]float64{"server": 4, "metrics-proxy": 0.1, "trainer": 32, "tgi": 2.5}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for _, s := range got {
		if want[s.Key.Container] != s.Weight {
			t.Errorf("%v: %v", s.Key, s.Weight)
		}
	}
	gone := *pods[1]
	gone.Phase = "Succeeded"
	if len(m.CPUAllocation([]*PodMeta{&gone})) != 0 {
		t.Error("finished pod allocated")
	}
	a := DeviceAllocation{Namespace: "ml", Pod: "vllm-llama-0", Container: "server"}
	if k := m.AllocationKey(a, pods[0]); k.Project != "search" || k.Container != "server" {
		t.Errorf("%v", k)
	}
	if k := m.AllocationKey(a, nil); k != (attribution.Key{Namespace: "ml", Pod: "vllm-llama-0", Container: "server"}) {
		t.Errorf("%v", k)
	}
}

// The resolver's cache follows the scanner's processes: a PID reused by
// another process (another start time) is resolved afresh, not given the
// old process's workload; so is a process that exec'd, and one whose
// cgroup changed when the scanner read its files again. Keys written into
// the previous call's slice (ResolveTo) are this scan's, and outcomes of
// processes that are gone leave the cache.
func TestResolverCacheFollowsProcesses(t *testing.T) {
	root := t.TempDir()
	setUptime(t, root, 1000)
	rules := Rules{Rules: []Rule{
		{Match: RuleMatch{Cgroup: "^/system.slice/batch"}, Labels: RuleLabels{WorkloadType: "batch"}},
		{Match: RuleMatch{Cmdline: `serve\.py --model (\S+)`}, Labels: RuleLabels{ModelID: "$1", WorkloadType: "inference"}},
	}}
	m, err := rules.Compile(CompileOptions{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := NewScanner(root, ScannerOptions{ClockTicks: 100, CmdlineRecheckScans: -1})
	r := NewResolver(m, nil)
	var keys []attribution.Key
	resolve := func() map[int]attribution.Key {
		t.Helper()
		res, err := s.Scan()
		if err != nil {
			t.Fatal(err)
		}
		keys = r.ResolveTo(keys, res.Processes)
		out := map[int]attribution.Key{}
		for i, p := range res.Processes {
			out[p.PID] = keys[i]
		}
		return out
	}
	model := func(id string) attribution.Key { return attribution.Key{ModelID: id, WorkloadType: "inference"} }
	p300 := statFields{pid: 300, ppid: 1, comm: "python3", start: 100, startStack: fixtureStack}
	churnProc(t, root, p300, "0::/user.slice", "python3", "serve.py", "--model", "a")
	churnProc(t, root, statFields{pid: 301, ppid: 1, comm: "python3", start: 100, startStack: fixtureStack}, "0::/user.slice", "python3", "serve.py", "--model", "z")
	if got := resolve(); got[300] != model("a") || got[301] != model("z") {
		t.Fatalf("first scan: %v", got)
	}
	if got := resolve(); got[300] != model("a") { // cached
		t.Fatalf("second scan: %v", got)
	}

	// PID 300 exits and is reused by another process with the same comm.
	removeProc(t, root, 300)
	p300.start = 200
	churnProc(t, root, p300, "0::/user.slice", "python3", "serve.py", "--model", "b")
	if got := resolve(); got[300] != model("b") || got[301] != model("z") {
		t.Fatalf("after PID reuse: %v, want model b for PID 300", got)
	}
	if len(r.cache) != 2 {
		t.Errorf("cache holds %d outcomes for 2 processes", len(r.cache))
	}

	// It execs under the same comm and moves to another cgroup: the scanner
	// reads its files again, the resolver resolves it again.
	p300.startStack = fixtureStack + 4096
	churnProc(t, root, p300, "0::/system.slice/batch-7.service", "python3", "serve.py", "--model", "c")
	if got := resolve(); got[300] != (attribution.Key{WorkloadType: "batch"}) {
		t.Fatalf("after exec and cgroup move: %v", got[300])
	}

	// A new ProcessInfo for the same process (what the scanner makes when it
	// reads it again) with another cgroup is resolved again by itself.
	procs := []Process{{PID: 301, Info: &ProcessInfo{Comm: "python3", Cmdline: "python3 serve.py --model z", Cgroup: Cgroup{Path: "/user.slice"}}}}
	if k := r.ResolveTo(keys, procs); k[0] != model("z") {
		t.Fatalf("301 before its move: %v", k[0])
	}
	procs[0].Info = &ProcessInfo{Comm: "python3", Cmdline: "python3 serve.py --model z", Cgroup: Cgroup{Path: "/system.slice/batch-9.service"}}
	if k := r.ResolveTo(keys, procs); k[0] != (attribution.Key{WorkloadType: "batch"}) {
		t.Fatalf("301 after its move: %v", k[0])
	}
	if len(r.cache) != 1 {
		t.Errorf("cache holds %d outcomes for 1 process", len(r.cache))
	}
}

// Owners finds every process of the scan by PID, and no other, whether the
// processes come sorted by PID (as a Scanner returns them: a binary search)
// or not (an index by PID).
func TestOwnersPID(t *testing.T) {
	r := NewResolver(nil, nil)
	for _, sorted := range []bool{true, false} {
		var procs []Process
		var keys []attribution.Key
		for i := range 300 {
			procs = append(procs, Process{PID: 2 + 3*i, Info: &ProcessInfo{}})
			keys = append(keys, attribution.Key{ModelID: fmt.Sprint(i)})
		}
		if !sorted {
			procs[0], procs[299] = procs[299], procs[0]
			keys[0], keys[299] = keys[299], keys[0]
		}
		o := r.Owners(procs, keys)
		for pid := range 905 {
			k, ok := o.PID(pid)
			i := (pid - 2) / 3
			if want := pid >= 2 && (pid-2)%3 == 0 && i < 300; ok != want || (ok && k.ModelID != fmt.Sprint(i)) {
				t.Fatalf("sorted=%v: PID %d: %v %v", sorted, pid, k, ok)
			}
		}
	}
}

// The rule and unit index is built when first asked, from the processes of
// the latest Owners call, not those of a call before it.
func TestOwnersNamesFollowTheScan(t *testing.T) {
	r := NewResolver(nil, nil)
	a := attribution.Key{Project: "a"}
	b := attribution.Key{Project: "b"}
	first := []Process{{PID: 10, Info: &ProcessInfo{Cgroup: ParseCgroupPath("/system.slice/vllm.service")}}}
	o := r.Owners(first, []attribution.Key{a})
	if k, ok := o.Unit("vllm.service"); !ok || k != a {
		t.Fatalf("first scan: %v %v", k, ok)
	}
	second := []Process{{PID: 11, Info: &ProcessInfo{Cgroup: ParseCgroupPath("/system.slice/tgi.service")}}}
	o = r.Owners(second, []attribution.Key{b})
	if _, ok := o.Unit("vllm.service"); ok {
		t.Fatal("a unit of the previous scan is still indexed")
	}
	if k, ok := o.Unit("tgi.service"); !ok || k != b {
		t.Fatalf("second scan: %v %v", k, ok)
	}
}
