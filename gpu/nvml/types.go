package nvml

import "github.com/inferensys/aiwatt/gpu"

// Names of package gpu this backend uses unqualified.
type (
	// Backend is gpu.Backend.
	Backend = gpu.Backend
	// GPU is gpu.GPU.
	GPU = gpu.GPU
	// GPUSample is gpu.GPUSample.
	GPUSample = gpu.GPUSample
	// Result is gpu.Result.
	Result = gpu.Result
	// MIGInstance is gpu.MIGInstance.
	MIGInstance = gpu.MIGInstance
	// Process is gpu.Process.
	Process = gpu.Process
)

func newResult(n int) Result { return gpu.NewResult(n) }
