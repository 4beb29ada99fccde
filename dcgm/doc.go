// Package dcgm reads the energy of NVIDIA GPUs and turns it into monotonic
// joule totals, one per physical GPU.
//
// Two backends implement [Backend]:
//
//   - NVML in process (go-nvml, libnvidia-ml.so.1 loaded at Init). Energy
//     comes from the hardware energy counter (GetTotalEnergyConsumption,
//     Volta and later); where the counter is unsupported, power
//     (GetPowerUsage) is integrated over the caller's clock and the source
//     says so ([SourceNVMLPower]). This backend is built only on Linux with
//     cgo; elsewhere [Open] reports [ErrNoData].
//   - A dcgm-exporter endpoint scraped over HTTP, for nodes where the GPU
//     Operator already runs one. Rows repeated per MIG instance are
//     de-duplicated by GPU UUID so energy is counted once per physical GPU.
//
// Counter resets (driver reload, GPU reset) and implausible jumps are
// handled here and reported as per-sample error reasons; a GPU that
// disappears keeps its total. Totals are kept in integer millijoules.
//
// What the package owns: GPU hardware only — identity, MIG layout, energy,
// power, utilisation and the processes NVML reports on each GPU. It knows
// nothing of workloads beyond passing through the raw pod/namespace/container
// labels of dcgm-exporter rows ([PodRef]); attribution is the agent's job.
// It knows nothing of Prometheus exposition or HTTP serving and must not
// import the agent or exporter packages. Time always comes from the caller
// (the now argument of [Backend.Sample]), so tests step a fake clock.
//
// The subpackage dcgmtest holds a pure-Go fake [Backend] for the rest of the
// agent's tests.
package dcgm
