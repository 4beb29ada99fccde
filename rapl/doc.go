// Package rapl turns CPU and DRAM hardware energy counters into monotonic energy totals, and
// estimates CPU power where no such counter exists.
//
// # What it owns
//
// The package owns the hardware side of CPU energy and nothing else:
//
//   - Discovery of RAPL zones under a sysfs root (class/powercap: intel-rapl and intel-rapl-mmio,
//     which the kernel also uses for AMD), see [NewMeter] and [Zone], and, with
//     [Options.Rediscover], re-discovery of zones and sockets that appear or vanish later. A zone
//     whose name or max_energy_range_uj cannot be read fails alone (read_error every sample).
//   - Wrap-safe accumulation of each zone's energy_uj counter: every sample returns the exact
//     microjoule delta since the previous good read ([ZoneEnergy.Delta]; the caller keeps the
//     totals), with implausible jumps rejected and counted, see [Meter.Sample]. Reconfiguring
//     ([Meter.SetMaxPowerWatts], [Estimator.SetOptions]) keeps every baseline.
//   - A CPU power model from /proc/stat utilisation for machines without RAPL (most cloud VMs),
//     see [Estimator].
//
// It knows nothing of workloads, Prometheus or HTTP: it must not import agent, exporter or any
// metrics library. Callers (the agent's sampling loop) pass the time of each sample, so tests
// drive it with a fake clock. Errors are returned as values and counted by reason
// ([ReasonPermissionDenied], [ReasonReadError], [ReasonParseError], [ReasonImplausibleDelta]);
// turning them into aiwatt_source_errors_total and aiwatt_source_up is the caller's job.
//
// # README
//
// RAPL. Every zone directory under <sysfs>/class/powercap named intel-rapl:<socket>[:<sub>] or
// intel-rapl-mmio:<socket>[:<sub>] is one zone. The zone kind (label zone) comes from the name
// file with a trailing "-N" removed (package-0 becomes package; package-0-die-1 becomes package);
// the socket (label socket) comes from the directory name, which the kernel writes in hex
// (intel-rapl:a is socket "10"). The psys zone is platform-wide and has socket "". An mmio zone is
// used only when no intel-rapl zone reports the same socket and kind. Other powercap control
// types (dtpm, for example) are ignored.
//
// energy_uj counts from 0 to max_energy_range_uj inclusive and then wraps to 0. Each sample adds
// the difference since the previous good read, modulo max_energy_range_uj+1. A difference that
// implies more than [Options.MaxPowerWatts] (default [DefaultMaxPowerWatts]) over the elapsed
// time is not added; it is counted as implausible_delta and the zone restarts from the new value.
// Since CVE-2020-8694 (Platypus) energy_uj is readable only by root: run the agent as root, or
// with CAP_DAC_READ_SEARCH, and mount the host /sys read-only into its container.
//
// CPU model. Without RAPL the package estimates CPU power as
//
//	W = CPUs * (MinWattsPerCPU + u * (MaxWattsPerCPU - MinWattsPerCPU))
//
// where u is the busy share of all CPUs over the last interval from /proc/stat. The default
// coefficients, 0.74 W and 3.5 W per vCPU ([DefaultMinWattsPerCPU], [DefaultMaxWattsPerCPU]), are
// the AWS averages over CPU micro-architectures published by Cloud Carbon Footprint
// (https://www.cloudcarbonfootprint.org/docs/methodology/, "Compute", derived from SPECpower).
// They are an estimate, not a measurement: the source label must say "estimate".
package rapl
