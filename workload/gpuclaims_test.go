package workload

import (
	"fmt"
	"testing"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/gpu"
)

// A shared GPU's activity sums its processes by workload, in order of first
// appearance, whether they are few (a linear search) or many (the
// claimer's index, reused by the next GPU): here n processes of n/3 + 1
// workloads, one process of no workload.
func TestClaimSumsProcessesByWorkload(t *testing.T) {
	cl := GPUClaimer{KeyOf: func(pid int) attribution.Key {
		if pid == 0 {
			return attribution.Key{}
		}
		return attribution.Key{ModelID: fmt.Sprint(pid % 100 / 3)}
	}}
	for _, n := range []int{1, 4, smallShares, smallShares + 1, 64, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := gpu.GPUSample{GPU: gpu.GPU{Index: 0, UUID: "GPU-0"}, SMUtil: 50}
			var want []attribution.Share
			at := map[attribution.Key]int{}
			for i := range n {
				pid := 1000 + i
				if i == n-1 && n > 1 {
					pid = 0
				}
				g.Processes = append(g.Processes, gpu.Process{PID: uint32(pid), SMUtil: float64(1 + i%5), MIGGPUInstanceID: -1})
				k := cl.KeyOf(pid)
				j, ok := at[k]
				if !ok {
					j = len(want)
					at[k] = j
					want = append(want, attribution.Share{Key: k})
				}
				want[j].Weight += float64(1 + i%5)
			}
			d, how := cl.Claim(&g, nil)
			if n == 1 {
				if how.Rule != ClaimSoleUser || d.Holder == nil || *d.Holder != want[0].Key {
					t.Fatalf("one process: rule %s, holder %v", how.Rule, d.Holder)
				}
				return
			}
			if how.Rule != ClaimSharedSM || fmt.Sprint(d.Activity) != fmt.Sprint(want) {
				t.Fatalf("rule %s, activity %v, want %v", how.Rule, d.Activity, want)
			}
		})
	}
}

// The claims made between two Recycle calls keep their own activity; after
// Recycle the next claims reuse the memory.
func TestClaimRecycle(t *testing.T) {
	cl := GPUClaimer{KeyOf: func(pid int) attribution.Key { return attribution.Key{ModelID: fmt.Sprint(pid)} }}
	sample := func(pids ...uint32) *gpu.GPUSample {
		g := &gpu.GPUSample{GPU: gpu.GPU{UUID: "GPU-x"}, SMUtil: 10}
		for _, p := range pids {
			g.Processes = append(g.Processes, gpu.Process{PID: p, SMUtil: float64(p), MIGGPUInstanceID: -1})
		}
		return g
	}
	a, _ := cl.Claim(sample(1, 2), nil)
	b, _ := cl.Claim(sample(3, 4, 5), nil)
	if fmt.Sprint(a.Activity) != fmt.Sprint([]attribution.Share{{Key: attribution.Key{ModelID: "1"}, Weight: 1}, {Key: attribution.Key{ModelID: "2"}, Weight: 2}}) ||
		len(b.Activity) != 3 || b.Activity[0].Weight != 3 {
		t.Fatalf("claims of one tick overlap: %v / %v", a.Activity, b.Activity)
	}
	first := &a.Activity[0]
	cl.Recycle()
	c, _ := cl.Claim(sample(6, 7), nil)
	if &c.Activity[0] != first || c.Activity[1].Weight != 7 {
		t.Fatalf("after Recycle: %v, reused %v", c.Activity, &c.Activity[0] == first)
	}
}
