package dcgm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/inferensys/aiwatt/gpu"
)

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

// Open builds the backend selected by cfg. It returns an error wrapping
// ErrNoData, with the reason, when there is no GPU, no NVML library, NVML
// Init failed, or the backend is "none"; any other error is a configuration
// error. It never panics. A nil logger discards logs.
func Open(cfg Config, logger *slog.Logger) (Backend, error) {
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch cfg.Backend {
	case BackendNone:
		return nil, fmt.Errorf("%w: GPU backend is %q", ErrNoData, BackendNone)
	case BackendNVML:
		return openNVML(logger)
	case BackendDCGMExporter:
		if cfg.ExporterURL == "" {
			return nil, fmt.Errorf("dcgm: backend %q needs an exporter URL", BackendDCGMExporter)
		}
		return NewExporterBackend(cfg, nil, logger)
	case BackendAuto:
		b, err := openNVML(logger)
		if err == nil {
			return b, nil
		}
		if cfg.ExporterURL == "" {
			return nil, err
		}
		logger.Info("NVML unavailable, using dcgm-exporter", "reason", err, "url", cfg.ExporterURL)
		return NewExporterBackend(cfg, nil, logger)
	default:
		return nil, fmt.Errorf("dcgm: unknown backend %q (want %s, %s, %s or %s)",
			cfg.Backend, BackendAuto, BackendNVML, BackendDCGMExporter, BackendNone)
	}
}

// lock is a mutex whose acquisition gives up when a context ends.
type lock chan struct{}

func newLock() lock { return make(lock, 1) }

func (l lock) acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l lock) release() { <-l }

// ctxResult is the result of a sample cut short by its context.
func ctxResult(err error) Result {
	r := newResult(0)
	if errors.Is(err, context.DeadlineExceeded) {
		r.Errors[ReasonTimeout]++
	}
	return r
}

// clampUtil bounds a utilisation to 0..100.
func clampUtil(u float64) float64 {
	switch {
	case u < 0:
		return 0
	case u > 100:
		return 100
	}
	return u
}
