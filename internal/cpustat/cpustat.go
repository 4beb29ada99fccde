// Package cpustat holds aiwatt's one definition of busy and total CPU time
// from the times of a procfs stat cpu line, shared by the attribution's
// busy share (package workload) and the CPU power model (package rapl), so
// that the two can never disagree about what busy means.
//
// Busy is user + nice + system + irq + softirq; total is busy + idle +
// iowait. Steal, the time the hypervisor gave to another guest, is in
// neither: this guest's CPUs were not running anything of this node then,
// so it is neither its work nor its idleness. Guest and guest_nice are
// already counted in user and nice by the kernel and are not added again.
//
// It must not import anything of aiwatt.
package cpustat

// BusyTotal returns busy and total CPU time from the fields of a procfs
// stat cpu line (any one unit: USER_HZ ticks or seconds). Steal is not a
// parameter: it is excluded by definition.
func BusyTotal(user, nice, system, idle, iowait, irq, softirq float64) (busy, total float64) {
	busy = user + nice + system + irq + softirq
	return busy, busy + idle + iowait
}
