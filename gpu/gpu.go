package gpu

import (
	"context"
	"errors"
	"time"

	"github.com/inferensys/aiwatt/source"
)

// ErrNoData reports that there is no GPU to read: no NVIDIA driver or
// library, NVML Init failed, no device, or the backend is "none". The source
// is absent, not failed; test for it with errors.Is.
var ErrNoData = errors.New("gpu: no GPU found")

// Energy sources, used as the source label of GPU energy.
const (
	// SourceNVML is the NVML hardware energy counter.
	SourceNVML = "nvml"
	// SourceNVMLPower is NVML power integrated over time, used where the
	// energy counter is not supported.
	SourceNVMLPower = "nvml_power"
	// SourceDCGMExporter is a dcgm-exporter endpoint; GPUSample.Method says
	// whether its energy counter or its power gauge was used.
	SourceDCGMExporter = "dcgm_exporter"
)

// Measurement methods, reported in GPUSample.Method.
const (
	// MethodEnergyCounter means Joules come from a hardware energy counter.
	MethodEnergyCounter = "energy_counter"
	// MethodPowerIntegration means Joules are power integrated over the
	// caller's clock (trapezoid rule between samples).
	MethodPowerIntegration = "power_integration"
)

// Backend names accepted in Config.Backend.
const (
	// BackendAuto prefers NVML, then dcgm-exporter when ExporterURL is set.
	BackendAuto = "auto"
	// BackendNVML reads NVML in process.
	BackendNVML = "nvml"
	// BackendDCGMExporter scrapes Config.ExporterURL.
	BackendDCGMExporter = "dcgm-exporter"
	// BackendNone disables GPU energy; Open returns ErrNoData.
	BackendNone = "none"
)

// Names returned by Backend.Name (the source label of aiwatt_source_up).
const (
	// NameNVML is the name of the NVML backend.
	NameNVML = "nvml"
	// NameDCGMExporter is the name of the dcgm-exporter backend.
	NameDCGMExporter = "dcgm_exporter"
)

// MIG modes reported in GPU.MIGMode.
const (
	// MIGModeEnabled means the GPU runs MIG instances.
	MIGModeEnabled = "enabled"
	// MIGModeDisabled means the GPU supports MIG but it is off.
	MIGModeDisabled = "disabled"
	// MIGModeUnsupported means the GPU (or driver) has no MIG.
	MIGModeUnsupported = "unsupported"
	// MIGModeUnknown is used by the dcgm-exporter backend when no MIG row
	// was seen: the exporter cannot tell "disabled" from "unsupported".
	MIGModeUnknown = "unknown"
)

// Error reasons counted in Result.Errors.
const (
	// ReasonReadError is a failed NVML read other than the cases below.
	ReasonReadError = source.ReasonReadError
	// ReasonCounterReset is an energy counter that went backwards (driver
	// reload, GPU reset); the energy since the reset is still counted.
	ReasonCounterReset = source.ReasonCounterReset
	// ReasonImplausibleDelta is an energy step (or power reading) above the
	// plausibility ceiling; it is rejected.
	ReasonImplausibleDelta = source.ReasonImplausibleDelta
	// ReasonTimeout is a dcgm-exporter scrape that ran past its timeout.
	ReasonTimeout = source.ReasonTimeout
	// ReasonRequestError is a dcgm-exporter request that failed for another
	// reason (connection refused, reset).
	ReasonRequestError = source.ReasonRequestError
	// ReasonHTTPStatus is a dcgm-exporter answer with a status other than 200.
	ReasonHTTPStatus = source.ReasonHTTPStatus
	// ReasonParseError is a dcgm-exporter body that is not valid text
	// exposition.
	ReasonParseError = source.ReasonParseError
	// ReasonBodyTooLarge is a dcgm-exporter body over Config.MaxBodyBytes.
	ReasonBodyTooLarge = source.ReasonBodyTooLarge
	// ReasonGPULost is a GPU that fell off the bus or vanished from the
	// exporter output; its total is kept.
	ReasonGPULost = source.ReasonGPULost
	// ReasonMissingEnergy is a dcgm-exporter GPU with neither an energy
	// counter nor a power gauge.
	ReasonMissingEnergy = source.ReasonMissingEnergy
	// ReasonInvalidValue is an energy or power value that cannot be one
	// (NaN, negative, infinite, beyond any counter); it is dropped.
	ReasonInvalidValue = source.ReasonInvalidValue
)

// Defaults applied by Open and NewExporterBackend to zero Config fields.
const (
	// DefaultExporterTimeout bounds one dcgm-exporter scrape.
	DefaultExporterTimeout = 5 * time.Second
	// DefaultMaxBodyBytes bounds one dcgm-exporter body (16 MiB).
	DefaultMaxBodyBytes = 16 << 20
)

// Config selects and tunes the backend.
type Config struct {
	// Backend is "auto" (prefer NVML, then dcgm-exporter if ExporterURL is
	// set), "nvml", "dcgm-exporter" or "none". Empty means "auto".
	Backend string
	// ExporterURL is the dcgm-exporter metrics URL
	// (--dcgm.exporter-url, e.g. http://127.0.0.1:9400/metrics).
	ExporterURL string
	// ExporterTimeout bounds one scrape, body included (default 5s).
	ExporterTimeout time.Duration
	// MaxBodyBytes bounds the exporter body (default 16 MiB); a larger
	// body is an error, never silently truncated.
	MaxBodyBytes int64
	// MinRefresh is the shortest time between two scrapes of the exporter,
	// which itself refreshes every 30s by default. Samples inside the window
	// return the previous values without a request. Zero scrapes on every
	// sample; an unchanged counter then adds nothing and is not an error.
	MinRefresh time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Backend == "" {
		c.Backend = BackendAuto
	}
	if c.ExporterTimeout <= 0 {
		c.ExporterTimeout = DefaultExporterTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MinRefresh < 0 {
		c.MinRefresh = 0
	}
	return c
}

// GPU identifies one physical GPU.
type GPU struct {
	// Index is the NVML device index (the exporter's gpu label); -1 unknown.
	Index int
	// UUID is the GPU UUID, e.g. GPU-c2f76b33-7953-256e-8f33-1343419b1a1c.
	UUID string
	// Model is the product name, e.g. "NVIDIA H200".
	Model string
	// Driver is the NVIDIA driver version.
	Driver string
	// MIGMode is MIGModeEnabled, MIGModeDisabled, MIGModeUnsupported or
	// MIGModeUnknown.
	MIGMode string
	// MIG lists the MIG instances, for attribution. Energy is per physical
	// GPU, never per instance.
	MIG []MIGInstance
	// MIGSlices is the number of compute slices of the GPU in MIG mode, from
	// the backend (NVML's GPU instance profiles; the model for dcgm-exporter,
	// see SlicesOf); 0 unknown or not MIG-capable.
	MIGSlices int
}

// MIGInstance is one MIG compute instance of a GPU.
type MIGInstance struct {
	// GPUInstanceID is the GPU instance (GI) id.
	GPUInstanceID int
	// ComputeInstanceID is the compute instance (CI) id; -1 unknown (the
	// exporter does not report it).
	ComputeInstanceID int
	// UUID is the MIG device UUID (MIG-...); empty when unknown.
	UUID string
	// Profile is the instance profile, e.g. "1g.18gb"; empty when unknown.
	Profile string
}

// Process is one process holding a GPU context.
type Process struct {
	// PID is the process id as NVML sees it (host PID namespace).
	PID uint32
	// UsedMemoryBytes is the GPU memory used; 0 when not available.
	UsedMemoryBytes uint64
	// SMUtil is the process's SM utilisation 0..100 over the last interval,
	// from GetProcessUtilization; -1 unknown (no sample).
	SMUtil float64
	// MIGGPUInstanceID is the MIG GPU instance the process runs in; -1 when
	// the GPU is not in MIG mode.
	MIGGPUInstanceID int
}

// PodRef is the pod labels of a dcgm-exporter row, passed through raw. The
// exported_ form of a label (added by Prometheus relabelling) wins over the
// plain one, which wins over the 1.x pod_name/pod_namespace/container_name.
type PodRef struct {
	// Namespace is the pod's namespace.
	Namespace string
	// Pod is the pod name.
	Pod string
	// Container is the container name.
	Container string
}

// GPUSample is one physical GPU after a sample.
type GPUSample struct {
	GPU
	// Source is SourceNVML, SourceNVMLPower or SourceDCGMExporter.
	Source string
	// Method is MethodEnergyCounter or MethodPowerIntegration.
	Method string
	// Delta is the energy accepted in this sample, in integer millijoules:
	// the agent adds it to its own total. 0 for a baseline, a failed read or
	// a rejected step; a late sample carries everything since the last one.
	Delta source.Millijoules
	// Joules is the backend's own running total since it first saw this GPU
	// (starts at 0), for callers that keep none (aiwatt run); the agent uses
	// Delta.
	Joules float64
	// PowerWatts is the instantaneous power; 0 unknown.
	PowerWatts float64
	// PowerLimitWatts is the enforced power limit; 0 unknown.
	PowerLimitWatts float64
	// SMUtil is the device utilisation 0..100; -1 unknown.
	SMUtil float64
	// Processes are the compute processes on the GPU (NVML only).
	Processes []Process
	// Pods are the pods of the dcgm-exporter rows of this GPU
	// (deduplicated, sorted), for attribution when the GPU Operator labels
	// them; empty otherwise.
	Pods []PodRef
	// Hostname is the dcgm-exporter Hostname label; empty for NVML. A
	// changing value means the URL reaches more than one node.
	Hostname string
	// OK reports that the GPU was read successfully in this sample.
	OK bool
}

// Result is the outcome of one sample.
type Result struct {
	// GPUs is sorted by Index (then UUID). A GPU that disappeared mid-run
	// stays with OK=false and its total kept.
	GPUs []GPUSample
	// Errors counts error reasons (Reason* constants) in this sample. It is
	// never nil.
	Errors map[string]uint64
}

// NewResult returns an empty Result with room for n GPUs.
func NewResult(n int) Result {
	return Result{GPUs: make([]GPUSample, 0, n), Errors: make(map[string]uint64)}
}

// Backend is one GPU energy source.
//
// Sample must return when ctx is cancelled. It returns an error only when
// nothing could be read at all; partial failures are counted in
// Result.Errors. The error wraps ErrNoData when the source turned out to be
// absent. Calls are safe from several goroutines but are serialised.
type Backend interface {
	// Name is "nvml" or "dcgm_exporter" (label source of aiwatt_source_up).
	Name() string
	// Sample reads every GPU at the caller's time now.
	Sample(ctx context.Context, now time.Time) (Result, error)
	// Close releases the backend; Sample fails afterwards.
	Close() error
}

// ErrClosed is returned by Sample after Close.
var ErrClosed = errors.New("gpu: backend closed")

// Reconfigurer is implemented by a backend that can take a new Config in
// place, keeping its baselines, so that a configuration reload loses no
// energy. Reconfigure returns false when cfg needs another backend (another
// kind), which the caller then opens.
type Reconfigurer interface {
	Reconfigure(cfg Config) bool
}
