package workload

import (
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
