package workload

import (
	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/gpu"
)

// GPUClaim says which rule gave a GPU its claims in one tick.
type GPUClaim string

// The rules of ClaimGPU, in the order they are tried.
const (
	// ClaimAssigned: the caller assigned the GPU to a workload (aiwatt run's
	// --gpu.devices): all of its energy, idle included, is the workload's.
	ClaimAssigned GPUClaim = "assigned"
	// ClaimMIG: the GPU is in MIG mode; each instance is held by its
	// allocation or shared by the activity of its processes.
	ClaimMIG GPUClaim = "mig"
	// ClaimAllocated: the kubelet allocated the whole GPU to one container.
	ClaimAllocated GPUClaim = "allocated"
	// ClaimSinglePod: dcgm-exporter names one pod and no process on the
	// GPU, with no allocation known: the pod holds it.
	ClaimSinglePod GPUClaim = "single_pod"
	// ClaimSoleUser: every compute process on the GPU belongs to one
	// workload: it holds the GPU, idle included.
	ClaimSoleUser GPUClaim = "sole_user"
	// ClaimSharedSM: shared; the active energy is split by the processes'
	// SM utilisation.
	ClaimSharedSM GPUClaim = "shared_sm"
	// ClaimSharedCount: shared, and a process's SM utilisation is unknown;
	// the active energy is split by the number of processes (or pods).
	ClaimSharedCount GPUClaim = "shared_count"
	// ClaimIdle: no process and no pod on the GPU: its energy is idle.
	ClaimIdle GPUClaim = "idle"
)

// GPUAllocations indexes one tick's device allocations from the kubelet's
// pod-resources API by MIG device UUID, GPU UUID and GPU index.
type GPUAllocations struct {
	byUUID  map[string][]DeviceAllocation
	byMIG   map[string]DeviceAllocation
	byIndex map[int][]DeviceAllocation
}

// IndexGPUAllocations indexes allocs (nil for none).
func IndexGPUAllocations(allocs []DeviceAllocation) GPUAllocations {
	ix := GPUAllocations{byUUID: map[string][]DeviceAllocation{}, byMIG: map[string]DeviceAllocation{}, byIndex: map[int][]DeviceAllocation{}}
	for _, a := range allocs {
		switch {
		case a.Device.MIGUUID != "":
			ix.byMIG[a.Device.MIGUUID] = a
		case a.Device.UUID != "":
			ix.byUUID[a.Device.UUID] = append(ix.byUUID[a.Device.UUID], a)
		case a.Device.Index >= 0:
			ix.byIndex[a.Device.Index] = append(ix.byIndex[a.Device.Index], a)
		}
	}
	return ix
}

// GPUClaimer turns one GPU's sample into its attribution claims. The agent
// and aiwatt run both use it, so one GPU is attributed the same way by both;
// they differ only in how they name workloads. It keeps a scratch index,
// reused by every Claim: a claimer is not safe for concurrent use, and one
// kept across ticks allocates it once.
type GPUClaimer struct {
	// KeyOf names the workload of a process (the zero Key: none).
	KeyOf func(pid int) attribution.Key
	// Assigned, when set, returns the workload the caller assigned the GPU
	// to, if any.
	Assigned func(g *gpu.GPUSample) (attribution.Key, bool)
	// AllocKey names the workload of an allocation; nil means the
	// allocation's namespace, pod and container only.
	AllocKey func(a DeviceAllocation) attribution.Key
	// PodKey names the workload of a dcgm-exporter pod; nil ignores pods.
	PodKey func(p gpu.PodRef) attribution.Key

	index map[attribution.Key]int // processShares' scratch
	// arena backs the Activity of the claims made since Recycle.
	arena []attribution.Share
}

// Recycle lets the next claims reuse the memory of the claims made so far,
// whose devices the caller has finished with (a sampling loop calls it at
// the start of each tick's claims).
func (c *GPUClaimer) Recycle() { c.arena = c.arena[:0] }

// shares returns an empty slice with room for n shares from the arena.
func (c *GPUClaimer) shares(n int) []attribution.Share {
	if cap(c.arena)-len(c.arena) < n {
		// A new array; the claims already made keep the old one.
		c.arena = make([]attribution.Share, 0, max(2*cap(c.arena), n, 64))
	}
	at := len(c.arena)
	c.arena = c.arena[:at+n]
	return c.arena[at : at : at+n]
}

// GPUClaimOutcome tells how a GPU's claims were made.
type GPUClaimOutcome struct {
	// Rule is the rule that applied.
	Rule GPUClaim
	// BusyGuessed is set when neither the GPU's nor every process's SM
	// utilisation was known and processes ran: all energy counted active.
	BusyGuessed bool
}

// Claim returns the attribution input of one GPU for one tick (Joules is
// left to the caller) and the rule that made it. The rules, first match
// wins:
//
//  1. assigned by the caller: held (ClaimAssigned);
//  2. in MIG mode with instances: per instance, held by its MIG allocation
//     or shared by its processes (ClaimMIG);
//  3. one allocation of the whole GPU: held (ClaimAllocated);
//  4. no allocation, one dcgm-exporter pod and no process: held
//     (ClaimSinglePod);
//  5. no allocation and every process in one workload: held (ClaimSoleUser);
//  6. otherwise shared: the busy share is the GPU's SM utilisation, or,
//     when unknown, the sum of its processes' (when all are known), or 1
//     while anything runs on it; the active energy is split by the
//     processes' SM utilisation when all are known (ClaimSharedSM), else by
//     their number, or evenly over dcgm-exporter pods (ClaimSharedCount).
//     Allocations of shared replicas weigh 1 each for idle spreading.
func (c *GPUClaimer) Claim(g *gpu.GPUSample, allocs *GPUAllocations) (attribution.Device, GPUClaimOutcome) {
	d := attribution.Device{ID: g.UUID, Component: attribution.GPU}
	if c.Assigned != nil {
		if k, ok := c.Assigned(g); ok {
			d.Holder = &k
			return d, GPUClaimOutcome{Rule: ClaimAssigned}
		}
	}
	var all []DeviceAllocation
	if allocs != nil {
		all = append(append(all, allocs.byUUID[g.UUID]...), allocs.byIndex[g.Index]...)
	}
	if len(g.MIG) > 0 && g.MIGMode == gpu.MIGModeEnabled {
		busy, guessed := busyOf(g, g.Processes)
		d.Busy = busy
		d.MIGSlices = g.MIGSlices // From the backend's GPU-instance profiles (0: the attribution's default).
		for _, inst := range g.MIG {
			mi := attribution.MIGInstance{Profile: inst.Profile}
			if a, ok := allocs.mig(inst.UUID); ok {
				k := c.allocKey(a)
				mi.Holder = &k
			} else {
				mi.Activity, _ = c.processShares(g.Processes, inst.GPUInstanceID)
			}
			d.MIG = append(d.MIG, mi)
		}
		return d, GPUClaimOutcome{Rule: ClaimMIG, BusyGuessed: guessed}
	}
	switch {
	case len(all) == 1 && !all[0].Device.Shared:
		k := c.allocKey(all[0])
		d.Holder = &k
		return d, GPUClaimOutcome{Rule: ClaimAllocated}
	case len(all) == 0 && len(g.Pods) == 1 && len(g.Processes) == 0 && c.PodKey != nil:
		k := c.PodKey(g.Pods[0])
		d.Holder = &k
		return d, GPUClaimOutcome{Rule: ClaimSinglePod}
	}
	shares, smKnown := c.processShares(g.Processes, -1)
	if len(all) == 0 && len(shares) == 1 && !shares[0].Key.IsZero() {
		k := shares[0].Key
		d.Holder = &k
		return d, GPUClaimOutcome{Rule: ClaimSoleUser}
	}
	busy, guessed := busyOf(g, g.Processes)
	d.Busy = busy
	d.Activity = shares
	for _, a := range all {
		d.Allocation = append(d.Allocation, attribution.Share{Key: c.allocKey(a), Weight: 1})
	}
	rule := ClaimSharedSM
	if !smKnown {
		rule = ClaimSharedCount
	}
	switch {
	case len(g.Processes) == 0 && len(g.Pods) > 1 && c.PodKey != nil:
		// dcgm-exporter names the pods but not their processes: split evenly.
		for _, p := range g.Pods {
			d.Activity = append(d.Activity, attribution.Share{Key: c.PodKey(p), Weight: 1})
		}
		rule = ClaimSharedCount
	case len(g.Processes) == 0:
		rule = ClaimIdle
	}
	return d, GPUClaimOutcome{Rule: rule, BusyGuessed: guessed}
}

func (ix *GPUAllocations) mig(uuid string) (DeviceAllocation, bool) {
	if ix == nil || uuid == "" {
		return DeviceAllocation{}, false
	}
	a, ok := ix.byMIG[uuid]
	return a, ok
}

func (c *GPUClaimer) allocKey(a DeviceAllocation) attribution.Key {
	if c.AllocKey != nil {
		return c.AllocKey(a)
	}
	return attribution.Key{Namespace: a.Namespace, Pod: a.Pod, Container: a.Container}
}

// busyOf is a GPU's busy share: its SM utilisation; when unknown, the sum
// of its processes' when every one is known; else 1 while processes or
// pods are on it (guessed), and 0 otherwise.
func busyOf(g *gpu.GPUSample, procs []gpu.Process) (busy float64, guessed bool) {
	if g.SMUtil >= 0 {
		return g.SMUtil / 100, false
	}
	sum, known := 0.0, len(procs) > 0
	for _, p := range procs {
		if p.SMUtil < 0 {
			known = false
			break
		}
		sum += p.SMUtil
	}
	switch {
	case known:
		return min(sum/100, 1), false
	case len(procs) > 0 || len(g.Pods) > 0:
		return 1, true
	}
	return 0, false
}

// processShares sums a GPU's processes by workload (only those in MIG GPU
// instance gi, unless gi is -1): by SM utilisation when every process's is
// known and one is above 0, else by count. smKnown says which.
func (c *GPUClaimer) processShares(procs []gpu.Process, gi int) (out []attribution.Share, smKnown bool) {
	smKnown = true
	sum := 0.0
	for _, p := range procs {
		if gi >= 0 && p.MIGGPUInstanceID != gi {
			continue
		}
		if p.SMUtil < 0 {
			smKnown = false
		}
		sum += max(p.SMUtil, 0)
	}
	smKnown = smKnown && sum > 0
	n := 0
	for _, p := range procs {
		if gi < 0 || p.MIGGPUInstanceID == gi {
			n++
		}
	}
	if n == 0 {
		return nil, smKnown
	}
	out = c.shares(n)
	// Few workloads are found by a linear search; many by an index, so a
	// GPU shared by many workloads costs one look-up per process.
	var index map[attribution.Key]int
	if n > smallShares {
		if c.index == nil {
			c.index = make(map[attribution.Key]int, n)
		}
		clear(c.index)
		index = c.index
	}
	for _, p := range procs {
		if gi >= 0 && p.MIGGPUInstanceID != gi {
			continue
		}
		var k attribution.Key
		if c.KeyOf != nil {
			k = c.KeyOf(int(p.PID))
		}
		w := 1.0
		if smKnown {
			w = p.SMUtil
		}
		j, ok := -1, false
		if index != nil {
			j, ok = index[k]
		} else {
			for i := range out {
				if out[i].Key == k {
					j, ok = i, true
					break
				}
			}
		}
		if !ok {
			j = len(out)
			out = append(out, attribution.Share{Key: k})
			if index != nil {
				index[k] = j
			}
		}
		out[j].Weight += w
	}
	return out, smKnown
}

// smallShares is how many processes processShares sums by a linear search.
const smallShares = 8
