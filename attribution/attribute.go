package attribution

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// IdlePolicy says where the idle part of a shared device's energy goes.
type IdlePolicy string

// Idle policies, the values of the attribution policy setting.
const (
	// IdleNode keeps idle energy visible as node idle. It is the default.
	IdleNode IdlePolicy = "node"
	// IdleAllocation spreads idle energy over the workloads by their
	// allocation weights; a device without any weight keeps it as idle.
	IdleAllocation IdlePolicy = "allocation"
)

// DefaultMIGSlices is the number of compute slices of a MIG-capable GPU
// when Device.MIGSlices is 0: 7 on A100, H100 and H200 (an A30 has 4).
const DefaultMIGSlices = 7

// Policy is the attribution policy.
type Policy struct {
	// Idle is IdleNode (or empty, the same) or IdleAllocation.
	Idle IdlePolicy
}

// Validate reports an unknown idle policy.
func (p Policy) Validate() error {
	switch p.Idle {
	case "", IdleNode, IdleAllocation:
		return nil
	}
	return fmt.Errorf("unknown idle policy %q: want %q or %q", p.Idle, IdleNode, IdleAllocation)
}

// Share is a workload's weight in a split: CPU seconds or GPU SM
// utilisation for activity, CPU requests or allocated GPUs for allocation.
// Any unit works as long as one list uses one unit. Entries with the same
// key add up; negative, NaN and infinite weights count as 0. A Share with
// the zero Key stands for processes that belong to no workload.
type Share struct {
	// Key is the workload; the zero Key means no workload.
	Key Key
	// Weight is the workload's activity or allocation, in the list's unit.
	Weight float64
}

// Claims say which workloads hold or use a device (or a MIG instance).
type Claims struct {
	// Holder, when set, holds the device exclusively and gets all its
	// energy, idle included. Activity and Allocation are then ignored.
	Holder *Key
	// Activity is each workload's use of the device this tick; the active
	// energy is split by it.
	Activity []Share
	// Allocation weights spread the idle energy under IdleAllocation.
	Allocation []Share
}

// MIGInstance is one GPU instance of a GPU in MIG mode. Compute instances of
// one GPU instance must be merged by the caller into one MIGInstance.
type MIGInstance struct {
	// Profile is the GPU instance profile, such as "1g.10gb" or "3g.40gb";
	// its "<n>g" field gives the slice count when Slices is 0.
	Profile string
	// Slices overrides the slice count read from Profile when positive.
	Slices int
	// Busy, when set, is the instance's own busy share (DCGM reports SM
	// activity per GPU instance); nil uses the device's Busy.
	Busy *float64
	// Claims say who holds or uses the instance. An instance without a
	// holder and without activity is unallocated: its slices are free.
	Claims
}

// Device is the input of one device for one tick.
type Device struct {
	// ID names the device in the result, e.g. "0/package" or a GPU UUID.
	ID string
	// Component is what the energy is exported as.
	Component Component
	// Joules is the energy the device used this tick (ΔE). It must be
	// finite and not negative; otherwise the device is skipped and its
	// Result has Invalid set.
	Joules float64
	// Busy is the device's busy share this tick, clamped to [0, 1]; NaN
	// counts as 0.
	Busy float64
	// Claims say who holds or uses the device. A Holder wins over MIG.
	Claims
	// MIG lists the GPU instances of a GPU in MIG mode. When non-empty (and
	// no Holder is set) the energy is split by slices, see the package
	// documentation.
	MIG []MIGInstance
	// MIGSlices is the GPU's number of compute slices (0 means
	// DefaultMIGSlices). When the instances add up to more, their sum is used.
	MIGSlices int
}

// Part is the energy a workload got from one device.
type Part struct {
	// Key is the workload; never the zero Key.
	Key Key
	// Joules is the workload's share of the device's energy.
	Joules float64
}

// Result is the attribution of one device's energy for one tick.
// Σ Workloads[i].Joules + Idle + Unattributed == Joules (floating-point
// rounding only).
type Result struct {
	// ID and Component are copied from the Device.
	ID string
	// Component is what the energy is exported as.
	Component Component
	// Joules is the device's energy this tick (0 when Invalid).
	Joules float64
	// Workloads lists every workload named by the device's claims, in order
	// of first appearance (Holder, then Activity, then Allocation, per MIG
	// instance after the device), each once, including those that got 0 J.
	Workloads []Part
	// Idle is the energy that stays node idle.
	Idle float64
	// Unattributed is active energy of processes in no workload, or of
	// activity that was not seen.
	Unattributed float64
	// Invalid is set when the device's Joules was negative, NaN or
	// infinite; nothing was attributed.
	Invalid bool
}

// Total returns Σ Workloads + Idle + Unattributed, which equals Joules.
func (r *Result) Total() float64 {
	s := r.Idle + r.Unattributed
	for _, p := range r.Workloads {
		s += p.Joules
	}
	return s
}

// Attribute splits each device's energy by policy p. It is a shorthand for
// an Attributor used once.
func Attribute(p Policy, devices []Device) []Result {
	a := Attributor{Policy: p}
	return a.Attribute(devices)
}

// Attributor attributes ticks by one policy, reusing its scratch space
// between calls. The zero value uses IdleNode. It is not safe for
// concurrent use.
type Attributor struct {
	// Policy is the attribution policy.
	Policy Policy

	index map[Key]int // position of each key in the current result's Workloads
	parts []float64   // scratch: one part per share
}

// Attribute splits each device's energy and returns one Result per device,
// in the order of devices. The results own their memory.
func (a *Attributor) Attribute(devices []Device) []Result {
	return a.AttributeTo(nil, devices)
}

// AttributeTo is Attribute writing into buf's results, and their Workloads
// arrays, where large enough: a sampling loop that has consumed the
// previous tick's results passes them back, and a tick whose devices name
// the same workloads allocates nothing for them.
func (a *Attributor) AttributeTo(buf []Result, devices []Device) []Result {
	if a.index == nil {
		a.index = make(map[Key]int, 64)
	}
	out := slices.Grow(buf[:0], len(devices))[:len(devices)]
	for i := range out {
		out[i] = Result{Workloads: out[i].Workloads[:0]}
		a.device(&devices[i], &out[i])
	}
	return out
}

// device attributes one device into r.
func (a *Attributor) device(d *Device, r *Result) {
	r.ID, r.Component = d.ID, d.Component
	e := d.Joules
	if math.IsNaN(e) || math.IsInf(e, 0) || e < 0 {
		r.Invalid = true
		return
	}
	r.Joules = e
	clear(a.index)
	busy := clampBusy(d.Busy)
	switch {
	case d.Holder != nil:
		a.claims(r, e, busy, &d.Claims)
	case len(d.MIG) > 0:
		a.mig(r, e, busy, d)
	default:
		a.claims(r, e, busy, &d.Claims)
	}
}

// mig splits a MIG GPU's energy e by slices and attributes each instance's
// share by its claims; unallocated slices are idle (or spread by allocation).
func (a *Attributor) mig(r *Result, e, busy float64, d *Device) {
	total := d.MIGSlices
	if total <= 0 {
		total = DefaultMIGSlices
	}
	slices := 0
	for i := range d.MIG {
		slices += d.MIG[i].slices()
	}
	total = max(total, slices)
	given := 0.0
	held := false
	for i := range d.MIG {
		inst := &d.MIG[i]
		s := inst.slices()
		if s == 0 || !inst.claimed() {
			a.list(r, inst.Allocation)
			continue // unallocated: its slices are free
		}
		ei := e * float64(s) / float64(total)
		given += ei
		b := busy
		if inst.Busy != nil {
			b = clampBusy(*inst.Busy)
		}
		a.claims(r, ei, b, &inst.Claims)
		held = true
	}
	// The instances never exceed total, so free is negative by rounding only.
	free := max(e-given, 0)
	if free == 0 {
		return
	}
	if a.Policy.Idle == IdleAllocation {
		alloc := d.Allocation
		if len(alloc) == 0 && held {
			alloc = migAllocation(d.MIG)
		}
		if a.split(r, free, alloc, false) {
			return
		}
	}
	r.Idle += free
}

// migAllocation returns each holder's (or user's) slices as allocation weights.
func migAllocation(insts []MIGInstance) []Share {
	var out []Share
	for i := range insts {
		s := float64(insts[i].slices())
		switch {
		case insts[i].Holder != nil:
			out = append(out, Share{Key: *insts[i].Holder, Weight: s})
		case len(insts[i].Allocation) > 0:
			// Spread the instance's slices over its own allocation weights.
			var sum float64
			for _, sh := range insts[i].Allocation {
				sum += weight(sh.Weight)
			}
			for _, sh := range insts[i].Allocation {
				if w := weight(sh.Weight); w > 0 {
					out = append(out, Share{Key: sh.Key, Weight: s * w / sum})
				}
			}
		}
	}
	return out
}

// claims attributes energy e of a device (or MIG instance) with busy share
// busy by its claims.
func (a *Attributor) claims(r *Result, e, busy float64, c *Claims) {
	if c.Holder != nil {
		if c.Holder.IsZero() {
			r.Unattributed += e
			return
		}
		a.add(r, *c.Holder, e)
		return
	}
	active := e * busy
	idle := e - active
	if !a.split(r, active, c.Activity, true) {
		r.Unattributed += active
	}
	if a.Policy.Idle == IdleAllocation && a.split(r, idle, c.Allocation, false) {
		return
	}
	r.Idle += idle
	a.list(r, c.Allocation)
}

// claimed reports whether a MIG instance has a holder or activity.
func (m *MIGInstance) claimed() bool { return m.Holder != nil || len(m.Activity) > 0 }

// split distributes e over shares by weight and reports whether it did (the
// weights sum to more than 0). The share with the largest weight gets the
// remainder, so the parts add up to e. Zero-key shares go to Unattributed
// when zeroUnattributed, else to Idle. Every named workload is listed in r,
// even with 0 J. When split returns false nothing was added, but the
// workloads are still listed.
func (a *Attributor) split(r *Result, e float64, shares []Share, zeroUnattributed bool) bool {
	var sum, maxW float64
	maxI := -1
	for i := range shares {
		w := weight(shares[i].Weight)
		sum += w
		if w > maxW {
			maxW, maxI = w, i
		}
	}
	if maxI < 0 || sum <= 0 || math.IsInf(sum, 0) {
		a.list(r, shares)
		return false
	}
	if cap(a.parts) < len(shares) {
		a.parts = make([]float64, len(shares))
	}
	parts := a.parts[:len(shares)]
	given := 0.0
	for i := range shares {
		if i == maxI {
			continue
		}
		p := e * (weight(shares[i].Weight) / sum)
		parts[i] = p
		given += p
	}
	parts[maxI] = max(e-given, 0)
	for i := range shares {
		if shares[i].Key.IsZero() {
			if zeroUnattributed {
				r.Unattributed += parts[i]
			} else {
				r.Idle += parts[i]
			}
			continue
		}
		a.add(r, shares[i].Key, parts[i])
	}
	return true
}

// list names the workloads of shares in r with 0 J where not yet present.
func (a *Attributor) list(r *Result, shares []Share) {
	for i := range shares {
		if !shares[i].Key.IsZero() {
			a.add(r, shares[i].Key, 0)
		}
	}
}

// add gives j joules to k in r.
func (a *Attributor) add(r *Result, k Key, j float64) {
	if i, ok := a.index[k]; ok {
		r.Workloads[i].Joules += j
		return
	}
	a.index[k] = len(r.Workloads)
	r.Workloads = append(r.Workloads, Part{Key: k, Joules: j})
}

// slices returns the instance's compute slice count.
func (m *MIGInstance) slices() int {
	if m.Slices > 0 {
		return m.Slices
	}
	return ProfileSlices(m.Profile)
}

// ProfileSlices returns the compute slices of a MIG GPU instance profile:
// the number before "g" in its "<n>g" field, so "1g.10gb" is 1, "3g.40gb" 3,
// "7g.80gb" 7, "1g.10gb+me" 1 and the compute-instance form "1c.3g.40gb" 3
// (the GPU instance's slices). It returns 0 for a profile it cannot read.
func ProfileSlices(profile string) int {
	for len(profile) > 0 {
		field := profile
		if i := strings.IndexByte(profile, '.'); i >= 0 {
			field, profile = profile[:i], profile[i+1:]
		} else {
			profile = ""
		}
		if len(field) >= 2 && field[len(field)-1] == 'g' {
			n := 0
			for _, c := range []byte(field[:len(field)-1]) {
				if c < '0' || c > '9' || n > 1000 {
					n = -1
					break
				}
				n = n*10 + int(c-'0')
			}
			if n > 0 {
				return n
			}
		}
	}
	return 0
}

// weight returns w, or 0 when w is negative, NaN or infinite.
func weight(w float64) float64 {
	if w > 0 && !math.IsInf(w, 1) {
		return w
	}
	return 0
}

// clampBusy clamps b to [0, 1]; NaN becomes 0.
func clampBusy(b float64) float64 {
	switch {
	case b > 1:
		return 1
	case b > 0:
		return b
	}
	return 0
}
