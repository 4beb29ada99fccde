package agent

import "time"

// Source names, the `source` label of aiwatt_source_up and friends.
const (
	SourceRAPL     = "rapl"
	SourceCPUModel = "cpu_model"
)

// Measurement methods, the `source` label of energy counters.
const (
	MethodRAPL     = "rapl"
	MethodEstimate = "estimate"
)

// Snapshot is the agent's state after one tick. It is immutable once
// published: readers (the exporter) may hold it for as long as they like.
// It is self-contained: every value is label-ready, so a reader needs no
// hardware or attribution type.
type Snapshot struct {
	// Time is the tick's time from the agent's clock.
	Time time.Time
	// Samples counts ticks since the agent started.
	Samples uint64
	// CPU holds one monotonic counter per CPU energy zone, sorted.
	CPU []EnergyCounter
	// GPU holds one entry per physical GPU, sorted by index.
	GPU []GPUCounter
	// Attribution holds the workload totals, node idle and CO2e.
	Attribution Attribution
	// Inference holds the inference-server counters per workload.
	Inference []InferenceCounter
	// Sources holds the state of every source the agent runs, sorted by name.
	Sources []SourceStatus
}

// EnergyCounter is one monotonic energy total.
type EnergyCounter struct {
	// Socket is the CPU package ("0", "1", …); empty for platform-wide zones and estimates.
	Socket string
	// Zone is package, core, uncore, dram or psys.
	Zone string
	// Source is the measurement method: rapl or estimate.
	Source string
	// Joules is the total since the agent started, from the agent's integer microjoules.
	Joules float64
	// Watts is the average power over the last interval.
	Watts float64
}

// GPUCounter is one physical GPU in a snapshot, label-ready.
type GPUCounter struct {
	// Index is the device index; -1 unknown (the gpu label is then empty).
	Index int
	// UUID is the GPU UUID.
	UUID string
	// Model is the product name.
	Model string
	// Driver is the NVIDIA driver version.
	Driver string
	// MIGMode is enabled, disabled, unsupported or unknown.
	MIGMode string
	// Source is the measurement method: nvml, nvml_power or dcgm_exporter.
	Source string
	// Joules is the agent's total since it first saw the GPU, from integer microjoules.
	Joules float64
	// PowerWatts is the power at the last sample; 0 unknown.
	PowerWatts float64
	// PowerLimitWatts is the enforced power limit; 0 unknown.
	PowerLimitWatts float64
	// OK reports that the GPU was read in the last sample.
	OK bool
}

// SourceStatus is the health of one source.
type SourceStatus struct {
	// Name is the source, e.g. rapl or cpu_model.
	Name string
	// Target is the source's target (an inference server, a carbon provider); empty for most sources.
	Target string
	// Up is true when the source's last sample succeeded.
	Up bool
	// Errors counts errors by reason since the agent started.
	Errors map[string]uint64
	// Duration is how long the source's last sample took.
	Duration time.Duration
}

// ReloadStatus is the outcome of the last configuration reload.
type ReloadStatus struct {
	// Success is false when the last reload was refused.
	Success bool
	// LastSuccess is when the configuration was last loaded successfully.
	LastSuccess time.Time
}

// Components names the energy components, in the order of a [Joules] array.
var Components = [NumComponents]string{"cpu", "dram", "gpu"}

// NumComponents is the number of energy components.
const NumComponents = 3

// Joules holds one energy per component, indexed like [Components].
type Joules [NumComponents]float64

// Workload is the label set that joins workload energy, CO2e and inference
// counters.
type Workload struct {
	// Namespace is the pod's namespace (empty outside Kubernetes).
	Namespace string
	// Pod is the pod's name.
	Pod string
	// Container is the container's name.
	Container string
	// Project is the project label.
	Project string
	// ModelID is the model_id label.
	ModelID string
	// WorkloadType is the workload_type label.
	WorkloadType string
}

// Labels returns the label values in the order namespace, pod, container,
// project, model_id, workload_type, followed by extra.
func (w Workload) Labels(extra ...string) []string {
	return append([]string{w.Namespace, w.Pod, w.Container, w.Project, w.ModelID, w.WorkloadType}, extra...)
}

// WorkloadEnergy is one workload's totals in a snapshot.
type WorkloadEnergy struct {
	// Key is the workload label set.
	Key Workload
	// Joules holds the energy per component since the workload was first seen.
	Joules Joules
	// CO2eLocation is location-based grams CO2e since first seen.
	CO2eLocation float64
	// CO2eMarket is market-based grams CO2e; valid when HasMarket.
	CO2eMarket float64
	// HasMarket is true when market instruments are configured.
	HasMarket bool
}

// Intensity is the grid carbon intensity the agent used last.
type Intensity struct {
	// Zone, Provider and Basis identify the value.
	Zone, Provider, Basis string
	// GramsPerKWh is the intensity.
	GramsPerKWh float64
	// ValidFrom is the start of the value's validity window.
	ValidFrom time.Time
}

// Attribution is the workload part of a snapshot.
type Attribution struct {
	// Policy is the idle policy in force (node or allocation).
	Policy string
	// Workloads are the live workloads, sorted, the folded "other" last.
	Workloads []WorkloadEnergy
	// Idle is node idle energy per component.
	Idle Joules
	// Unattributed is active energy of processes in no workload, per component.
	Unattributed Joules
	// UnaccountedCPUSeconds is the node's busy CPU time (steal excluded)
	// that no process or cgroup seen by the scans accounts for, since the
	// agent started.
	UnaccountedCPUSeconds float64
	// FoldedKeys counts workloads folded into "other" by the cardinality cap.
	FoldedKeys uint64
	// FoldedJoules is the energy folded into "other", per component.
	FoldedJoules Joules
	// Intensity holds the grid intensities used for the last CO2e (location, and market when configured).
	Intensity []Intensity
}

// InferenceCounter is one inference counter of a workload, with exactly the
// workload labels of its energy so that energy per request is one division.
type InferenceCounter struct {
	// Key is the workload of the inference server.
	Key Workload
	// Server is the server type (vllm, tgi, …).
	Server string
	// Kind is requests, input_tokens, output_tokens or inferences.
	Kind string
	// FinishedReason is the reason of finished requests (requests only).
	FinishedReason string
	// Value is the monotonic total kept by the agent.
	Value float64
	// Unattributed marks counts dropped because their target's workload
	// could not be resolved (Key is zero; Reason says why).
	Unattributed bool
	// Reason is why an Unattributed count was dropped.
	Reason string
}
