package attribution

import (
	"cmp"
	"fmt"
)

// Key is a workload: the label set that every workload series carries.
// Outside Kubernetes Namespace, Pod and Container are empty and config rules
// name the workload. The zero Key is not a workload: activity under it is
// unattributed.
type Key struct {
	// Namespace is the pod's namespace.
	Namespace string
	// Pod is the pod's name.
	Pod string
	// Container is the container's name within the pod.
	Container string
	// Project is the project label (aiwatt.io/project by default).
	Project string
	// ModelID is the model_id label (aiwatt.io/model-id by default).
	ModelID string
	// WorkloadType is the workload_type label (aiwatt.io/workload-type by default).
	WorkloadType string
}

// OtherKey is the workload into which the [Ledger] folds keys beyond its
// cap: every label empty except workload_type="other". A real workload whose
// key equals OtherKey is accounted as OtherKey too (it is never a separate
// series), but is not counted as folded.
var OtherKey = Key{WorkloadType: "other"}

// IsZero reports whether k is the zero Key, which stands for "no workload".
func (k Key) IsZero() bool { return k == Key{} }

// Compare orders keys by namespace, pod, container, project, model_id and
// workload_type; it returns -1, 0 or +1 like [cmp.Compare].
func (k Key) Compare(o Key) int {
	return cmp.Or(
		cmp.Compare(k.Namespace, o.Namespace),
		cmp.Compare(k.Pod, o.Pod),
		cmp.Compare(k.Container, o.Container),
		cmp.Compare(k.Project, o.Project),
		cmp.Compare(k.ModelID, o.ModelID),
		cmp.Compare(k.WorkloadType, o.WorkloadType),
	)
}

// String formats the key for logs and test failures.
func (k Key) String() string {
	return fmt.Sprintf("{namespace=%q pod=%q container=%q project=%q model_id=%q workload_type=%q}",
		k.Namespace, k.Pod, k.Container, k.Project, k.ModelID, k.WorkloadType)
}

// Component is what a device's energy is exported as: the component label of
// aiwatt_workload_energy_joules_total and aiwatt_node_idle_energy_joules_total.
type Component uint8

// Components.
const (
	// CPU is a CPU package (RAPL package zone) or the CPU model's estimate.
	CPU Component = iota
	// DRAM is the memory of a CPU package (RAPL dram zone).
	DRAM
	// GPU is a GPU, MIG or not.
	GPU
	// NumComponents is the number of components; Totals has one entry each.
	NumComponents
)

// String returns the component label value: cpu, dram or gpu.
func (c Component) String() string {
	switch c {
	case CPU:
		return "cpu"
	case DRAM:
		return "dram"
	case GPU:
		return "gpu"
	}
	return fmt.Sprintf("component(%d)", uint8(c))
}

// Valid reports whether c is one of the defined components.
func (c Component) Valid() bool { return c < NumComponents }

// Totals holds joules per component, indexed by Component.
type Totals [NumComponents]float64

// Sum returns the joules of all components.
func (t Totals) Sum() float64 {
	var s float64
	for _, v := range t {
		s += v
	}
	return s
}
