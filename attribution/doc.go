// Package attribution splits the energy that each device used in one tick
// among the workloads that held or used it, and accumulates the result into
// bounded, monotonic per-workload totals.
//
// # What it owns
//
//   - [Key], the workload label set (namespace, pod, container, project,
//     model_id, workload_type) that every workload series carries.
//   - [Attribute]: pure arithmetic over one tick. It does no I/O, reads no
//     clock and keeps no state.
//   - [Ledger]: monotonic totals per workload and component across ticks,
//     with a retention for finished workloads and a cap on live series.
//
// It must not import agent, exporter or any Prometheus package; discovery of
// workloads lives in package workload.
//
// # Attribution policy
//
// Every device (a CPU package or its DRAM, or the node's CPU as one device;
// a GPU by UUID) brings its energy for the tick, ΔE joules, a busy share
// (the CPU's from /proc/stat, a GPU's SM utilisation / 100), and claims:
//
//   - Exclusive. A device held by exactly one workload (a GPU allocated to
//     one pod, a whole MIG parent) belongs wholly to its holder: the holder
//     gets ΔE, idle included.
//   - Shared. The active part, ΔE × busy, is split by activity share among
//     the workloads that used the device (CPU seconds; summed per-process SM
//     utilisation). Activity of processes that belong to no workload (the
//     zero Key) is unattributed. When no activity at all was seen while the
//     device was busy, the whole active part is unattributed. The idle part,
//     ΔE × (1 − busy), stays node idle, unless [Policy.Idle] is
//     [IdleAllocation]: then it is spread by the allocation weights (CPU
//     requests, allocated GPU replicas); without any weight it stays idle.
//   - MIG. A GPU in MIG mode is cut into compute slices (7 on A100/H100/
//     H200, 4 on A30). Each GPU instance gets ΔE × slices / total, read from
//     its profile ("1g.10gb" is 1 slice, "3g.40gb" 3, "7g.80gb" 7), and that
//     share is attributed by the same rules as a device: wholly to the
//     instance's holder, or shared by activity. The energy of slices that no
//     instance holds is idle; under [IdleAllocation] it is spread by the
//     device's allocation weights, which default to the slices each holder
//     owns.
//
// Busy shares are clamped to [0, 1]; an unknown busy share (NaN or
// negative, such as a GPU that reports -1 %) counts as 0, which makes a
// shared device's energy idle. Negative, NaN and infinite weights count as 0.
//
// Conservation holds by construction: for every device, Σ workload joules +
// idle + unattributed = ΔE up to floating-point rounding, because the last
// part of every split is computed as the remainder. Tests assert it for
// thousands of random ticks.
//
// # Ledger
//
// The [Ledger] turns each tick's results into counters: per live workload
// and component (cpu, dram, gpu), plus node idle, unattributed and the
// overflow series [OtherKey]. A workload that is not seen (it appears in no
// result of a tick) for [LedgerOptions.Retention] (default 5 minutes) is
// dropped, so Prometheus can still scrape its last increase. At most
// [LedgerOptions.MaxKeys] (default 2000) workloads are live: a key seen for
// the first time when the ledger is full is folded into [OtherKey] for as long
// as it keeps being seen, and counted (folded keys, folded joules). Keys
// admitted earlier are never displaced, so existing series never reshuffle;
// among keys first seen in the same tick, the smaller by [Key.Compare] is
// admitted first. The ledger takes time from its caller.
package attribution
