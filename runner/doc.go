// Package runner measures the energy of one command's process tree: the
// engine of `aiwatt run`, which runs any program, in any language, and
// reports the CPU, DRAM and GPU energy it used, its CO2e with provenance,
// and whether it kept to an energy budget.
//
// # What it owns
//
//   - [Meter]: the sampling loop's body. [Meter.Start] takes baselines for
//     the command's PID; every [Meter.Tick] (on the caller's interval and
//     clock) reads the node's CPU and DRAM energy (RAPL package and dram
//     zones, or the CPU power model where no RAPL zone can be read), the
//     node's busy share (/proc/stat), the process table, and the GPUs;
//     attributes the interval's energy to the run with package attribution;
//     and adds the run's CO2e with package carbon. [Meter.Report] gives the
//     account ([Report]) written as JSON and CSV.
//   - [Child]: the command, started in its own process group, signalled as
//     a group, and stopped gracefully ([Child.Stop]: SIGTERM, then SIGKILL
//     after a grace period).
//
// It imports rapl, dcgm, workload, attribution and carbon.
// Its tests also drive package agent, to show that both commands attribute
// the same node alike. It
// must not import the agent's core, exporter, or any Prometheus client:
// pushing to a Pushgateway and logging to MLflow are the command's job.
//
// # The process tree
//
// The run is the command's process and its descendants, found at every scan
// by following PPID links down from the command. A process stays in the run
// once seen, even after its parent dies and it is reparented to init
// (sticky membership), and a PID reused by an unrelated process is told
// apart by its start time.
//
// CPU time is read per process by the agent's process scan
// (workload.Scanner): its own time (utime+stime) and the time of the
// descendants it has waited for (cutime+cstime). A descendant that starts and exits between two scans is
// never seen by procfs, but when its parent reaps it its CPU time appears in
// the parent's cutime+cstime, and the run is credited with it. A process
// that was seen and then vanished has its last reading subtracted from its
// reaper's growth (so it is not counted twice); the command's own final
// time comes from wait4's rusage ([Meter.RootExited]). What is lost is only
// what procfs sampling cannot see: the CPU time, after the last scan, of a
// process that was orphaned and reaped outside the run, or whose parent
// does not wait for it (SIGCHLD ignored). A process that leaves the tree by
// daemonising before any scan sees it is not measured. PIDs are those of
// the procfs given (--path.procfs): run aiwatt in the host PID namespace for
// NVML's GPU process PIDs to match.
//
// # Attribution
//
// CPU and DRAM are shared devices: per tick, their energy ΔE times the
// node's busy share u (workload.ReadNodeCPU: steal is neither busy nor
// idle, as in the agent) is active energy, split between the run and every
// other process by CPU time (the run's tree time against the other
// processes' own and reaped-children time, less the root's reaper's, which
// is the run's through wait4); ΔE·(1−u) stays node idle and is reported as such,
// not charged to the run. All RAPL package zones form the cpu component and
// all dram zones the dram component. The method is chosen at Start: RAPL
// when a package zone can be read, else the CPU model (and no DRAM).
//
// GPUs, per tick and per physical GPU, are claimed by workload.GPUClaimer,
// the agent's own rules, with the run's live processes as the run's
// workload and every other process as none:
//
//   - A GPU listed in [Options.GPUDevices] (by index or UUID) is the run's,
//     wholly, idle included. `aiwatt run` fills it from --gpu.devices, or,
//     for a backend without process information (dcgm-exporter), from the
//     command's CUDA_VISIBLE_DEVICES.
//   - A GPU in MIG mode gives each GPU instance its slices' share, split
//     by the instance's processes.
//   - A GPU whose compute processes (NVML) all belong to the run is the
//     run's, wholly, idle included (sole user).
//   - A GPU shared with processes outside the run gives the run its share of
//     the active energy ΔE·busy, where busy is the GPU's SM utilisation (or,
//     when unknown, the sum of its processes' when all are known; or 1, with
//     a note). The share is the run's processes' SM utilisation over all
//     processes'; when any process's SM utilisation is unknown (-1), the
//     share is the run's number of processes over all, and the report says
//     so.
//   - A GPU on which no process of the run is seen gives the run nothing.
//
// Conservation holds per device and tick: run + idle + unattributed = ΔE.
package runner
