package workload

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
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

// PodFromAPI converts a Pod object.
func PodFromAPI(pod *corev1.Pod) *PodMeta {
	m := &PodMeta{
		UID:         string(pod.UID),
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		Labels:      pod.Labels,
		Annotations: pod.Annotations,
		Phase:       string(pod.Status.Phase),
		IP:          pod.Status.PodIP,
	}
	if _, ok := m.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		m.Annotations = maps.Clone(m.Annotations)
		delete(m.Annotations, corev1.LastAppliedConfigAnnotation)
	}
	ids := make(map[string]string, len(pod.Status.ContainerStatuses)+len(pod.Status.InitContainerStatuses))
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for _, st := range list {
			ids[st.Name] = st.ContainerID
		}
	}
	add := func(name string, res corev1.ResourceRequirements, init, ephemeral bool) {
		c := ContainerMeta{Name: name, Init: init, Ephemeral: ephemeral}
		if rt, id, ok := strings.Cut(ids[name], "://"); ok {
			c.Runtime, c.ID = rt, id
		}
		for name, q := range requests(res) {
			switch {
			case name == corev1.ResourceCPU:
				c.CPURequestCores = q.AsApproximateFloat64()
			case name == ResourceNvidiaGPU:
				c.GPURequest = q.Value()
			case strings.HasPrefix(string(name), "nvidia.com/"):
				if c.Extended == nil {
					c.Extended = map[string]int64{}
				}
				c.Extended[string(name)] = q.Value()
			}
		}
		m.Containers = append(m.Containers, c)
	}
	for _, c := range pod.Spec.InitContainers {
		add(c.Name, c.Resources, true, false)
	}
	for _, c := range pod.Spec.Containers {
		add(c.Name, c.Resources, false, false)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		add(c.Name, corev1.ResourceRequirements{}, false, true)
	}
	return m
}

// requests returns a container's requests, with limits standing in for
// requests that are not set (the API server defaults them so, but objects
// from elsewhere may lack it).
func requests(r corev1.ResourceRequirements) corev1.ResourceList {
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

// PodWatcherOptions configure a PodWatcher.
type PodWatcherOptions struct {
	// NodeName is the node whose pods are watched (NODE_NAME from the
	// downward API); required.
	NodeName string
	// DeletedRetention keeps a deleted pod resolvable for this long
	// (0 means DefaultDeletedRetention).
	DeletedRetention time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// PodWatcher keeps the metadata of the pods on one node, from an API
// server informer limited by the field selector spec.nodeName=<node>. See
// the package documentation for why this and not the kubelet's /pods.
type PodWatcher struct {
	informer  cache.SharedIndexInformer
	retention time.Duration
	clock     func() time.Time

	mu     sync.RWMutex
	byUID  map[string]*PodMeta
	byName map[string]*PodMeta // "namespace/name"
}

// RESTConfig returns the API server configuration: from the kubeconfig
// file when one is given, else in-cluster (the pod's service account).
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("read kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
	}
	return cfg, nil
}

// NewPodWatcher returns a watcher of the pods on opts.NodeName through the
// API server at cfg. It needs list and watch on pods. Nothing is
// requested until Run.
func NewPodWatcher(cfg *rest.Config, opts PodWatcherOptions) (*PodWatcher, error) {
	if opts.NodeName == "" {
		return nil, errors.New("pod watcher: node name is empty (set NODE_NAME from spec.nodeName)")
	}
	if opts.DeletedRetention < 0 {
		return nil, fmt.Errorf("pod watcher: deleted retention must not be negative, got %s", opts.DeletedRetention)
	}
	if opts.DeletedRetention == 0 {
		opts.DeletedRetention = DefaultDeletedRetention
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "aiwatt"
	}
	if cfg.ContentType == "" && cfg.AcceptContentTypes == "" {
		// Protobuf is cheaper for the API server to encode than JSON; a
		// server that cannot (or a test) answers JSON.
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
	}
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("pod watcher: client for %s: %w", cfg.Host, err)
	}
	selector := fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
	lw := cache.NewFilteredListWatchFromClient(client.RESTClient(), "pods", metav1.NamespaceAll,
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
	inf := cache.NewSharedIndexInformerWithOptions(lw, &corev1.Pod{}, cache.SharedIndexInformerOptions{})
	if err := inf.SetTransform(slimPod); err != nil {
		return nil, fmt.Errorf("pod watcher: %w", err)
	}
	w := &PodWatcher{
		informer:  inf,
		retention: opts.DeletedRetention,
		clock:     opts.Clock,
		byUID:     map[string]*PodMeta{},
		byName:    map[string]*PodMeta{},
	}
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.upsert(obj) },
		UpdateFunc: func(_, obj any) { w.upsert(obj) },
		DeleteFunc: w.deleted,
	})
	if err != nil {
		return nil, fmt.Errorf("pod watcher: %w", err)
	}
	return w, nil
}

// Run lists and watches the node's pods until ctx is cancelled, then
// returns nil. Lost connections are retried with back-off by client-go.
func (w *PodWatcher) Run(ctx context.Context) error {
	w.informer.RunWithContext(ctx)
	return nil
}

// Synced reports whether the first list has been received.
func (w *PodWatcher) Synced() bool { return w.informer.HasSynced() }

// WaitForSync waits until the first list has been received, or ctx ends.
func (w *PodWatcher) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return fmt.Errorf("pod watcher: pods not listed before the deadline: %w", context.Cause(ctx))
	}
	return nil
}

// Pod returns the pod with the given UID, including a pod deleted less than
// the retention ago.
func (w *PodWatcher) Pod(uid string) (*PodMeta, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	p, ok := w.byUID[uid]
	return p, ok
}

// PodByName returns the pod namespace/name (the pod-resources API names
// pods so).
func (w *PodWatcher) PodByName(namespace, name string) (*PodMeta, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	p, ok := w.byName[namespace+"/"+name]
	return p, ok
}

// Pods returns every known pod, sorted by namespace and name.
func (w *PodWatcher) Pods() []*PodMeta {
	w.mu.RLock()
	out := slices.Collect(maps.Values(w.byUID))
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b *PodMeta) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func (w *PodWatcher) upsert(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	m := PodFromAPI(pod)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
	if old, ok := w.byUID[m.UID]; ok && w.byName[old.Namespace+"/"+old.Name] == old {
		delete(w.byName, old.Namespace+"/"+old.Name)
	}
	w.byUID[m.UID] = m
	w.byName[m.Namespace+"/"+m.Name] = m
}

func (w *PodWatcher) deleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
	if old, ok := w.byUID[string(pod.UID)]; ok {
		gone := *old
		gone.Deleted = w.clock()
		w.byUID[gone.UID] = &gone
		if w.byName[gone.Namespace+"/"+gone.Name] == old {
			w.byName[gone.Namespace+"/"+gone.Name] = &gone
		}
	}
}

// sweep forgets pods deleted longer than the retention ago. w.mu is held.
func (w *PodWatcher) sweep() {
	cutoff := w.clock().Add(-w.retention)
	for uid, p := range w.byUID {
		if !p.Deleted.IsZero() && p.Deleted.Before(cutoff) {
			delete(w.byUID, uid)
			if w.byName[p.Namespace+"/"+p.Name] == p {
				delete(w.byName, p.Namespace+"/"+p.Name)
			}
		}
	}
}

// Sweep forgets pods deleted longer than the retention ago. Updates sweep
// too; call it on a quiet node to free memory.
func (w *PodWatcher) Sweep() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
}

// slimPod is the informer's transform: it keeps only the fields PodFromAPI
// reads, so the informer's cache holds a fraction of each pod.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone: passed through
	}
	slim := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
			Labels: pod.Labels, Annotations: pod.Annotations, DeletionTimestamp: pod.DeletionTimestamp,
		},
		Status: corev1.PodStatus{
			Phase:                      pod.Status.Phase,
			PodIP:                      pod.Status.PodIP,
			ContainerStatuses:          slimStatuses(pod.Status.ContainerStatuses),
			InitContainerStatuses:      slimStatuses(pod.Status.InitContainerStatuses),
			EphemeralContainerStatuses: slimStatuses(pod.Status.EphemeralContainerStatuses),
		},
	}
	if _, ok := slim.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		slim.Annotations = maps.Clone(slim.Annotations)
		delete(slim.Annotations, corev1.LastAppliedConfigAnnotation)
	}
	slim.Spec.NodeName = pod.Spec.NodeName
	for _, c := range pod.Spec.InitContainers {
		slim.Spec.InitContainers = append(slim.Spec.InitContainers, corev1.Container{Name: c.Name, Resources: slimResources(c.Resources)})
	}
	for _, c := range pod.Spec.Containers {
		slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Name: c.Name, Resources: slimResources(c.Resources)})
	}
	for _, c := range pod.Spec.EphemeralContainers {
		slim.Spec.EphemeralContainers = append(slim.Spec.EphemeralContainers,
			corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name}})
	}
	return slim, nil
}

func slimStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, st := range in {
		out[i] = corev1.ContainerStatus{Name: st.Name, ContainerID: st.ContainerID}
	}
	return out
}

// slimResources keeps the requests and limits aiwatt reads.
func slimResources(r corev1.ResourceRequirements) corev1.ResourceRequirements {
	keep := func(l corev1.ResourceList) corev1.ResourceList {
		var out corev1.ResourceList
		for name, q := range l {
			if name == corev1.ResourceCPU || strings.HasPrefix(string(name), "nvidia.com/") {
				if out == nil {
					out = corev1.ResourceList{}
				}
				out[name] = q
			}
		}
		return out
	}
	return corev1.ResourceRequirements{Requests: keep(r.Requests), Limits: keep(r.Limits)}
}

// NodeRegion returns the cloud provider and region of a node from its
// providerID (aws://, gce://, azure://) and its topology.kubernetes.io/region
// label, e.g. ("aws", "eu-west-1"). It needs get on nodes.
func NodeRegion(ctx context.Context, cfg *rest.Config, node string) (provider, region string, err error) {
	client, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return "", "", fmt.Errorf("node %s: %w", node, err)
	}
	n, err := client.Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("get node %s: %w", node, err)
	}
	region = n.Labels["topology.kubernetes.io/region"]
	if region == "" {
		region = n.Labels["failure-domain.beta.kubernetes.io/region"]
	}
	scheme, _, _ := strings.Cut(n.Spec.ProviderID, ":")
	switch scheme {
	case "aws":
		provider = "aws"
	case "gce":
		provider = "gcp"
	case "azure":
		provider = "azure"
	}
	if provider == "" || region == "" {
		return provider, region, fmt.Errorf("node %s: no cloud region (providerID %q, label topology.kubernetes.io/region %q)", node, n.Spec.ProviderID, region)
	}
	return provider, region, nil
}
