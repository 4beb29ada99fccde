package workload

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/internal/kubeapi"
)

// ResourceNvidiaGPU is the extended resource of a whole (or time-sliced) NVIDIA GPU.
const ResourceNvidiaGPU = "nvidia.com/gpu"

// DefaultDeletedRetention is how long a deleted pod's metadata stays
// resolvable, so that the last tick of its processes is still attributed.
const DefaultDeletedRetention = time.Minute

// PodMeta is what aiwatt knows of one pod. It is immutable: an update of
// the pod replaces it.
type PodMeta struct {
	// UID is the pod's UID, as in its cgroup path.
	UID string
	// Namespace and Name identify the pod.
	Namespace string
	// Name is the pod's name.
	Name string
	// Labels are the pod's labels.
	Labels map[string]string
	// Annotations are the pod's annotations, less
	// kubectl.kubernetes.io/last-applied-configuration.
	Annotations map[string]string
	// Phase is the pod phase (Pending, Running, Succeeded, Failed).
	Phase string
	// IP is the pod's IP (status.podIP); empty until it has one.
	IP string
	// Containers are the init, regular and ephemeral containers, in that order.
	Containers []ContainerMeta
	// Deleted is when the watcher saw the pod deleted; zero while it exists.
	Deleted time.Time
}

// ContainerMeta is one container of a pod.
type ContainerMeta struct {
	// Name is the container's name.
	Name string
	// ID is the container ID without its runtime prefix (64 hex digits),
	// from status.containerStatuses[].containerID; empty until it started.
	ID string
	// Runtime is the prefix of that containerID: containerd, cri-o, docker.
	Runtime string
	// Init is true for init containers (sidecars included).
	Init bool
	// Ephemeral is true for ephemeral (debug) containers.
	Ephemeral bool
	// CPURequestCores is the container's CPU request in cores.
	CPURequestCores float64
	// GPURequest is the container's nvidia.com/gpu request.
	GPURequest int64
	// Extended holds the container's requests of other nvidia.com/
	// resources (MIG profiles such as nvidia.com/mig-1g.10gb,
	// nvidia.com/gpu.shared), by resource name; nil when none.
	Extended map[string]int64
}

// Container returns the container with the given runtime container ID.
func (p *PodMeta) Container(id string) (*ContainerMeta, bool) {
	for i := range p.Containers {
		if p.Containers[i].ID == id && id != "" {
			return &p.Containers[i], true
		}
	}
	return nil, false
}

// ContainerNamed returns the container with the given name.
func (p *PodMeta) ContainerNamed(name string) (*ContainerMeta, bool) {
	for i := range p.Containers {
		if p.Containers[i].Name == name {
			return &p.Containers[i], true
		}
	}
	return nil, false
}

// CPURequestCores returns the CPU requests of the pod's regular containers
// (init containers run before them and ephemeral ones request nothing).
func (p *PodMeta) CPURequestCores() float64 {
	var s float64
	for _, c := range p.Containers {
		if !c.Init && !c.Ephemeral {
			s += c.CPURequestCores
		}
	}
	return s
}

// GPURequest returns the nvidia.com/gpu requests of the pod's regular containers.
func (p *PodMeta) GPURequest() int64 {
	var s int64
	for _, c := range p.Containers {
		if !c.Init && !c.Ephemeral {
			s += c.GPURequest
		}
	}
	return s
}

// LastAppliedConfigAnnotation is kubectl's copy of the applied object:
// large, and of no use to attribution, so PodMeta drops it.
const LastAppliedConfigAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// APIPod is the part of a Kubernetes Pod object (its JSON, as the API
// server writes it) that aiwatt reads. Everything else in the object is
// skipped while decoding.
type APIPod struct {
	// Metadata is the object's metadata.
	Metadata APIObjectMeta `json:"metadata"`
	// Spec is the pod's spec.
	Spec struct {
		// NodeName is the node the pod is bound to.
		NodeName string `json:"nodeName"`
		// InitContainers, Containers and EphemeralContainers are the
		// pod's containers.
		InitContainers []APIContainer `json:"initContainers"`
		// Containers are the regular containers.
		Containers []APIContainer `json:"containers"`
		// EphemeralContainers are debug containers (no resources).
		EphemeralContainers []APIContainer `json:"ephemeralContainers"`
	} `json:"spec"`
	// Status is the pod's status.
	Status struct {
		// Phase is Pending, Running, Succeeded, Failed or Unknown.
		Phase string `json:"phase"`
		// PodIP is the pod's IP.
		PodIP string `json:"podIP"`
		// InitContainerStatuses name the init containers' IDs.
		InitContainerStatuses []APIContainerStatus `json:"initContainerStatuses"`
		// ContainerStatuses name the regular containers' IDs.
		ContainerStatuses []APIContainerStatus `json:"containerStatuses"`
		// EphemeralContainerStatuses name the ephemeral containers' IDs.
		EphemeralContainerStatuses []APIContainerStatus `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

// APIObjectMeta is the part of an object's metadata aiwatt reads.
type APIObjectMeta struct {
	// Name is the object's name.
	Name string `json:"name"`
	// Namespace is the object's namespace.
	Namespace string `json:"namespace"`
	// UID is the object's UID.
	UID string `json:"uid"`
	// ResourceVersion is the object's resource version (for watches).
	ResourceVersion string `json:"resourceVersion"`
	// Labels are the object's labels.
	Labels map[string]string `json:"labels"`
	// Annotations are the object's annotations.
	Annotations map[string]string `json:"annotations"`
	// DeletionTimestamp is set once the object is being deleted.
	DeletionTimestamp string `json:"deletionTimestamp"`
}

// APIContainer is a container of a pod spec: its name and resources.
type APIContainer struct {
	// Name is the container's name.
	Name string `json:"name"`
	// Resources are its requests and limits.
	Resources struct {
		// Requests are the container's resource requests.
		Requests apiResources `json:"requests"`
		// Limits are the container's resource limits.
		Limits apiResources `json:"limits"`
	} `json:"resources"`
}

// APIContainerStatus is a container status: its name and container ID
// ("containerd://<64 hex>").
type APIContainerStatus struct {
	// Name is the container's name.
	Name string `json:"name"`
	// ContainerID is the runtime-prefixed container ID.
	ContainerID string `json:"containerID"`
}

// apiResources is a resource list (requests or limits) reduced to the
// resources aiwatt reads: cpu and nvidia.com/*.
type apiResources map[string]kubeapi.Quantity

// UnmarshalJSON decodes a resource list, keeping cpu and nvidia.com/*
// (memory, storage and other vendors' resources are skipped unparsed).
func (r *apiResources) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*r = nil
	for name, v := range raw {
		if name != "cpu" && !strings.HasPrefix(name, "nvidia.com/") {
			continue
		}
		var q kubeapi.Quantity
		if err := q.UnmarshalJSON(v); err != nil {
			return fmt.Errorf("resource %s: %w", name, err)
		}
		if *r == nil {
			*r = apiResources{}
		}
		(*r)[name] = q
	}
	return nil
}

// PodFromAPI converts a Pod object.
func PodFromAPI(pod *APIPod) *PodMeta {
	m := &PodMeta{
		UID:         pod.Metadata.UID,
		Namespace:   pod.Metadata.Namespace,
		Name:        pod.Metadata.Name,
		Labels:      pod.Metadata.Labels,
		Annotations: pod.Metadata.Annotations,
		Phase:       pod.Status.Phase,
		IP:          pod.Status.PodIP,
	}
	if _, ok := m.Annotations[LastAppliedConfigAnnotation]; ok {
		m.Annotations = maps.Clone(m.Annotations)
		delete(m.Annotations, LastAppliedConfigAnnotation)
	}
	ids := make(map[string]string, len(pod.Status.ContainerStatuses)+len(pod.Status.InitContainerStatuses))
	for _, list := range [][]APIContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, st := range list {
			ids[st.Name] = st.ContainerID
		}
	}
	m.Containers = make([]ContainerMeta, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers)+len(pod.Spec.EphemeralContainers))
	add := func(ac *APIContainer, init, ephemeral bool) {
		c := ContainerMeta{Name: ac.Name, Init: init, Ephemeral: ephemeral}
		if rt, id, ok := strings.Cut(ids[ac.Name], "://"); ok {
			c.Runtime, c.ID = rt, id
		}
		if !ephemeral {
			for name, q := range requests(ac) {
				switch {
				case name == "cpu":
					c.CPURequestCores = q.Float64()
				case name == ResourceNvidiaGPU:
					c.GPURequest = q.Value()
				default: // nvidia.com/…: apiResources keeps nothing else
					if c.Extended == nil {
						c.Extended = map[string]int64{}
					}
					c.Extended[name] = q.Value()
				}
			}
		}
		m.Containers = append(m.Containers, c)
	}
	for i := range pod.Spec.InitContainers {
		add(&pod.Spec.InitContainers[i], true, false)
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i], false, false)
	}
	for i := range pod.Spec.EphemeralContainers {
		add(&pod.Spec.EphemeralContainers[i], false, true)
	}
	return m
}

// requests returns a container's requests, with limits standing in for
// requests that are not set (the API server defaults them so, but objects
// from elsewhere may lack it).
func requests(c *APIContainer) apiResources {
	r := c.Resources
	if len(r.Limits) == 0 {
		return r.Requests
	}
	out := maps.Clone(r.Limits)
	maps.Copy(out, r.Requests)
	return out
}

// PodLookup finds pod metadata by UID. PodWatcher and PodIndex implement it.
type PodLookup interface {
	// Pod returns the pod with the given UID.
	Pod(uid string) (*PodMeta, bool)
}

// PodIndex is a fixed set of pods: outside Kubernetes, in tests, or built
// from another source.
type PodIndex map[string]*PodMeta

// NewPodIndex indexes pods by UID.
func NewPodIndex(pods ...*PodMeta) PodIndex {
	idx := make(PodIndex, len(pods))
	for _, p := range pods {
		idx[p.UID] = p
	}
	return idx
}

// Pod implements PodLookup.
func (idx PodIndex) Pod(uid string) (*PodMeta, bool) {
	p, ok := idx[uid]
	return p, ok
}

var (
	_ PodLookup = PodIndex(nil)
	_ PodLookup = (*PodWatcher)(nil)
)
