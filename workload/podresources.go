package workload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
)

// DefaultPodResourcesSocket is the kubelet's pod-resources socket.
const DefaultPodResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// podResourcesMaxMsg is the largest List response accepted; the kubelet's
// own clients use 16 MiB.
const podResourcesMaxMsg = 16 << 20

// ErrNoPodResources means the kubelet's pod-resources socket does not
// exist: not a Kubernetes node, or the socket is not mounted. That source
// is absent, not failed. Test it with errors.Is.
var ErrNoPodResources = errors.New("workload: kubelet pod-resources socket not found")

// ErrMessageTooLarge is a gRPC response over the size limit; ErrMalformed
// is a response that does not decode. A List error wraps one of them when
// that is what went wrong, so that a source can say body_too_large or
// parse_error.
var (
	ErrMessageTooLarge = errors.New("response message over the size limit")
	ErrMalformed       = errors.New("malformed response")
)

// GPUDevice is a device ID of the NVIDIA device plugin, normalised.
type GPUDevice struct {
	// UUID is the physical GPU's UUID ("GPU-…"); empty when the ID names
	// the GPU by index, or names a MIG device without its parent.
	UUID string
	// Index is the GPU's index from "nvidiaN" IDs; -1 otherwise.
	Index int
	// MIGUUID is the MIG device's UUID ("MIG-…") when the ID names a MIG
	// device; its parent GPU comes from NVML (dcgm), not from the ID.
	MIGUUID string
	// MIGGPUInstance and MIGComputeInstance are set from the legacy form
	// "MIG-GPU-<uuid>/<gi>/<ci>", which names the parent too; -1 otherwise.
	MIGGPUInstance, MIGComputeInstance int
	// Shared is true for a time-slicing (or MPS) replica, "<id>::<n>": the
	// same physical device is handed to several containers.
	Shared bool
	// Replica is n of "<id>::<n>"; -1 when not shared.
	Replica int
}

// ParseDeviceID normalises a device ID of the NVIDIA device plugin:
// "GPU-<uuid>", "MIG-<uuid>", "MIG-GPU-<uuid>/<gi>/<ci>", any of these with a
// "::<n>" replica suffix (time-slicing), and "nvidia<N>" (by index). Other
// IDs are kept as UUID unchanged.
func ParseDeviceID(id string) GPUDevice {
	d := GPUDevice{Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1}
	if base, rep, ok := strings.Cut(id, "::"); ok {
		d.Shared = true
		if n, err := strconv.Atoi(rep); err == nil {
			d.Replica = n
		}
		id = base
	}
	switch {
	case strings.HasPrefix(id, "MIG-GPU-"):
		// Legacy MIG naming (driver < 470): MIG-GPU-<uuid>/<gi>/<ci>.
		parts := strings.Split(strings.TrimPrefix(id, "MIG-"), "/")
		d.UUID, d.MIGUUID = parts[0], id
		if len(parts) == 3 {
			gi, err1 := strconv.Atoi(parts[1])
			ci, err2 := strconv.Atoi(parts[2])
			if err1 == nil && err2 == nil {
				d.MIGGPUInstance, d.MIGComputeInstance = gi, ci
			}
		}
	case strings.HasPrefix(id, "MIG-"):
		d.MIGUUID = id
	case strings.HasPrefix(id, "nvidia") && isDigits(id[len("nvidia"):]):
		d.Index, _ = strconv.Atoi(id[len("nvidia"):])
	default:
		d.UUID = id
	}
	return d
}

// DeviceAllocation is one device allocated to one container.
type DeviceAllocation struct {
	// Namespace, Pod and Container name the holder.
	Namespace string
	// Pod is the pod's name.
	Pod string
	// Container is the container's name.
	Container string
	// Resource is the extended resource, e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb.
	Resource string
	// DeviceID is the device plugin's ID as the kubelet reports it.
	DeviceID string
	// Claim is the ResourceClaim ("namespace/name") of a device allocated
	// through dynamic resource allocation; empty for device plugins.
	Claim string
	// Device is DeviceID normalised.
	Device GPUDevice
}

// listMethod is the gRPC method of the kubelet's List.
const listMethod = "/v1.PodResourcesLister/List"

// PodResources is a client of the kubelet's pod-resources API (v1). It
// reuses one connection, dials again when the kubelet has restarted and
// recreated the socket, and Close releases it. It speaks gRPC over
// net/http's HTTP/2 and decodes the response with protowire, so neither
// grpc-go nor the kubelet's generated types are linked.
type PodResources struct {
	socket string

	mu   sync.Mutex
	conn *grpcUnary
}

// NewPodResources returns a client of the pod-resources socket at path
// (DefaultPodResourcesSocket in production). Nothing is dialled until List.
func NewPodResources(socket string) *PodResources {
	return &PodResources{socket: socket}
}

// List returns the devices of the resources whose name starts with one of
// prefixes (all resources when none is given; "nvidia.com/" for GPUs),
// sorted as the kubelet returns them. ctx bounds the call. A missing socket
// gives an error wrapping ErrNoPodResources.
func (c *PodResources) List(ctx context.Context, prefixes ...string) ([]DeviceAllocation, error) {
	if _, err := os.Stat(c.socket); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoPodResources, c.socket)
		}
		return nil, fmt.Errorf("pod-resources socket: %w", err)
	}
	// The request, ListPodResourcesRequest, has no fields: an empty message.
	msg, err := c.client().invoke(ctx, listMethod, nil, podResourcesMaxMsg)
	if err != nil {
		return nil, fmt.Errorf("pod-resources List on %s: %w", c.socket, err)
	}
	out, err := decodeListResponse(msg, prefixes, nil)
	if err != nil {
		return nil, fmt.Errorf("pod-resources List on %s: %w: decode ListPodResourcesResponse: %w", c.socket, ErrMalformed, err)
	}
	return out, nil
}

// DRAResourcePrefix starts the Resource of a device allocated through
// dynamic resource allocation: "dra:" and the DRA driver's name, such as
// "dra:gpu.nvidia.com".
const DRAResourcePrefix = "dra:"

// draDriverMatches reports whether a DRA driver belongs to a resource
// prefix: "nvidia.com/" covers the drivers "nvidia.com" and
// "gpu.nvidia.com". No prefix covers every driver.
func draDriverMatches(driver string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		domain := strings.TrimSuffix(p, "/")
		if domain != "" && (driver == domain || strings.HasSuffix(driver, "."+domain)) {
			return true
		}
	}
	return false
}

// ParseDRADevice normalises a device allocated through dynamic resource
// allocation (the kubelet's DynamicResources): a GPU UUID named by the
// device or one of its CDI devices ("…=GPU-<uuid>") wins; else the NVIDIA
// DRA driver's device names, "gpu-<N>" for a whole GPU by index and
// "gpu-<N>-mig-…" for a MIG device on GPU N, which is then Shared (the
// driver does not say which instance, so the GPU is shared by its holders).
// cdi holds the fully qualified CDI device names ("vendor/class=device").
// A device it cannot place has neither UUID nor Index.
func ParseDRADevice(name string, cdi []string) GPUDevice {
	d := GPUDevice{Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1}
	for _, c := range cdi {
		_, dev, _ := strings.Cut(c, "=")
		if strings.HasPrefix(dev, "GPU-") {
			d.UUID = dev
			return d
		}
	}
	if strings.HasPrefix(name, "GPU-") {
		d.UUID = name
		return d
	}
	rest, ok := strings.CutPrefix(name, "gpu-")
	if !ok {
		return d
	}
	idx, mig, _ := strings.Cut(rest, "-")
	if !isDigits(idx) {
		return d
	}
	d.Index, _ = strconv.Atoi(idx)
	if strings.HasPrefix(mig, "mig-") {
		d.Shared = true
	}
	return d
}

func hasPrefix(s string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// client returns the gRPC client, creating it once.
func (c *PodResources) client() *grpcUnary {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		c.conn = newGRPCUnary(c.socket)
	}
	return c.conn
}

// Close closes the connection, if one was made; a later List dials again.
func (c *PodResources) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.close()
		c.conn = nil
	}
	return nil
}
