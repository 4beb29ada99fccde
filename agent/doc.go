// Package agent owns the sampling loop of the aiwatt node agent: its strict
// YAML configuration, the one tick loop over every source, the only energy
// totals, and the immutable, self-contained Snapshot it publishes behind an
// atomic pointer after every tick.
//
// Every source the tick uses implements source.Source: RAPL and the CPU
// power model (cpu.go), the GPU backend (gpu.go), the process scan, the pod
// watcher, the kubelet's pod-resources and the carbon intensity (sources.go,
// adapters over workload and carbon), and the inference scrapes
// (inference.go, over scrape). tick.go runs them concurrently under one
// deadline (4/5 of the interval) and records their health in one place;
// agent.go folds their deltas into integer totals, attributes them
// (attribution) and publishes the snapshot. A reload goes through one
// path, Agent.apply, which reconfigures sources in place and keeps their
// baselines.
//
// The agent knows nothing of HTTP serving or the Prometheus exposition
// format: the exporter package reads snapshots and serves them, without
// importing any hardware or attribution type. Hardware packages (rapl, gpu,
// dcgm) know nothing of the agent.
package agent
