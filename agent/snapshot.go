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
	// Joules is the total since the agent started.
	Joules float64
	// Watts is the average power over the last interval.
	Watts float64
}

// SourceStatus is the health of one source.
type SourceStatus struct {
	// Name is the source, e.g. rapl or cpu_model.
	Name string
	// Target is the source's target (an inference server); empty for most sources.
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
