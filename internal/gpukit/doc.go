// Package gpukit holds what the GPU backends (gpu/nvml, dcgm) share and the
// contract package must not carry: exact integer energy accumulators (a
// hardware counter with reset and plausibility handling, trapezoid power
// integration), the plausibility ceiling, a context-aware lock, and small
// helpers. It knows nothing of workloads, Prometheus or HTTP.
package gpukit
