// Package gpu is the contract between the agent and the GPU energy backends.
//
// # What it owns
//
//   - [Backend]: Name, Sample(ctx, now), Close; [Result] and [GPUSample],
//     the label-ready view of one physical GPU after a sample, with its
//     energy as an integer delta ([GPUSample.Delta], millijoules) since the
//     previous sample. The backend keeps the baselines; the agent keeps the
//     only totals.
//   - [Config]: the backend selection and its tuning; [Reconfigurer], the
//     optional interface of a backend that takes a new Config in place and
//     keeps its baselines (a reload loses no energy).
//   - MIG profile knowledge: how many compute slices a GPU has ([SlicesOf]
//     for a model name; the NVML backend asks the driver's GPU instance
//     profiles), carried in [GPU.MIGSlices] to the attribution math.
//   - The error reasons of GPU sampling, from the shared vocabulary of
//     package source.
//
// The backends live beside it, named for what they are: gpu/nvml (NVML in
// process) and dcgm (a dcgm-exporter endpoint, the package name aiwatt was
// specified with). gpu/backends selects one, including the probe of a
// dcgm-exporter on this node. This package imports no backend and knows
// nothing of workloads, Prometheus or HTTP serving.
package gpu
