// Package nvml is the NVML GPU backend: it reads NVIDIA GPUs in process
// through go-nvml (libnvidia-ml.so.1, loaded at Init). Energy comes from the
// hardware energy counter (GetTotalEnergyConsumption, Volta and later);
// where the counter is unsupported, power (GetPowerUsage) is integrated over
// the caller's clock and the source says so (nvml_power). Each sample hands
// out the energy accepted since the previous one as an integer millijoule
// delta (gpu.GPUSample.Delta). MIG slice counts come from the driver's GPU
// instance profiles.
//
// It is built only on Linux with cgo; elsewhere [Open] reports
// gpu.ErrNoData. It implements the contract of package gpu and knows
// nothing of workloads, Prometheus or HTTP.
package nvml
