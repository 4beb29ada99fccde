// Package agent owns the sampling loop of the aiwatt node agent: its strict
// YAML configuration, the sources it samples on a clock (RAPL, the CPU power
// model, and later GPUs and workloads), the monotonic totals it keeps, and the
// immutable Snapshot it publishes behind an atomic pointer after every tick.
//
// The agent knows nothing of HTTP or the Prometheus exposition format: the
// exporter package reads snapshots and serves them. Hardware packages (rapl,
// dcgm) know nothing of the agent.
package agent
