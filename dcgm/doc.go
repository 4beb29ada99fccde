// Package dcgm is the dcgm-exporter GPU backend: it scrapes a dcgm-exporter
// endpoint over HTTP, for nodes where the GPU Operator already runs one, and
// turns its rows into the contract of package gpu. Rows repeated per MIG
// instance are de-duplicated by GPU UUID so energy is counted once per
// physical GPU; the MIG slice count comes from the model (gpu.SlicesOf).
//
// Each sample hands out the energy accepted since the previous one as an
// integer millijoule delta (gpu.GPUSample.Delta); the agent keeps the
// totals. Counter resets, implausible jumps and values that cannot be
// energy are reported as per-sample error reasons; a GPU that disappears
// keeps its place with OK false. Reconfigure takes a new URL, timeout or
// refresh window in place and keeps the baselines.
//
// The package keeps its first name, dcgm, the one aiwatt was specified
// with. The contract types are aliased here under their first names
// (Backend, GPUSample, …); the NVML backend is gpu/nvml and backend
// selection is gpu/backends.
//
// What the package owns: the dcgm-exporter side of GPU hardware only —
// identity, MIG layout, energy, power, utilisation and the raw
// pod/namespace/container labels of its rows ([PodRef]); attribution is the
// agent's job. It knows nothing of Prometheus exposition or HTTP serving and
// must not import the agent or exporter packages. Time always comes from
// the caller (the now argument of [Backend.Sample]), so tests step a fake
// clock.
//
// The subpackage dcgmtest holds a pure-Go fake [Backend] for the rest of the
// agent's tests.
package dcgm
