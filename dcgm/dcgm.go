package dcgm

import "github.com/inferensys/aiwatt/gpu"

// The contract types and constants live in package gpu; these aliases keep
// the names this package was first written with.
type (
	// Config is gpu.Config.
	Config = gpu.Config
	// GPU is gpu.GPU.
	GPU = gpu.GPU
	// MIGInstance is gpu.MIGInstance.
	MIGInstance = gpu.MIGInstance
	// Process is gpu.Process.
	Process = gpu.Process
	// PodRef is gpu.PodRef.
	PodRef = gpu.PodRef
	// GPUSample is gpu.GPUSample.
	GPUSample = gpu.GPUSample
	// Result is gpu.Result.
	Result = gpu.Result
	// Backend is gpu.Backend.
	Backend = gpu.Backend
)

// Sentinels of package gpu.
var (
	// ErrNoData is gpu.ErrNoData.
	ErrNoData = gpu.ErrNoData
	// ErrClosed is gpu.ErrClosed.
	ErrClosed = gpu.ErrClosed
)

// Constants of package gpu, under their first names.
const (
	SourceNVML             = gpu.SourceNVML
	SourceNVMLPower        = gpu.SourceNVMLPower
	SourceDCGMExporter     = gpu.SourceDCGMExporter
	MethodEnergyCounter    = gpu.MethodEnergyCounter
	MethodPowerIntegration = gpu.MethodPowerIntegration
	BackendAuto            = gpu.BackendAuto
	BackendNVML            = gpu.BackendNVML
	BackendDCGMExporter    = gpu.BackendDCGMExporter
	BackendNone            = gpu.BackendNone
	NameNVML               = gpu.NameNVML
	NameDCGMExporter       = gpu.NameDCGMExporter
	MIGModeEnabled         = gpu.MIGModeEnabled
	MIGModeDisabled        = gpu.MIGModeDisabled
	MIGModeUnsupported     = gpu.MIGModeUnsupported
	MIGModeUnknown         = gpu.MIGModeUnknown
	ReasonReadError        = gpu.ReasonReadError
	ReasonCounterReset     = gpu.ReasonCounterReset
	ReasonImplausibleDelta = gpu.ReasonImplausibleDelta
	ReasonTimeout          = gpu.ReasonTimeout
	ReasonRequestError     = gpu.ReasonRequestError
	ReasonHTTPStatus       = gpu.ReasonHTTPStatus
	ReasonParseError       = gpu.ReasonParseError
	ReasonBodyTooLarge     = gpu.ReasonBodyTooLarge
	ReasonGPULost          = gpu.ReasonGPULost
	ReasonMissingEnergy    = gpu.ReasonMissingEnergy
	ReasonInvalidValue     = gpu.ReasonInvalidValue
	DefaultExporterTimeout = gpu.DefaultExporterTimeout
	DefaultMaxBodyBytes    = gpu.DefaultMaxBodyBytes
)

func newResult(n int) Result { return gpu.NewResult(n) }
