package workload

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// kubeletServer is a pod-resources server like the kubelet's, serving a
// fixed List response.
type kubeletServer struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	resp  *podresourcesv1.ListPodResourcesResponse
	block chan struct{} // when set, List waits on it (or the call's deadline)
	calls atomic.Int32
}

func (s *kubeletServer) List(ctx context.Context, _ *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	s.calls.Add(1)
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return s.resp, nil
}

// startKubelet serves srv on a unix socket in a temporary directory.
func startKubelet(t *testing.T, srv *kubeletServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	podresourcesv1.RegisterPodResourcesListerServer(gs, srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() {
		if srv.block != nil {
			select {
			case <-srv.block:
			default:
				close(srv.block)
			}
		}
		gs.Stop()
		<-done
	})
	return sock
}

// An 8-GPU node as the NVIDIA device plugin reports it: whole GPUs, a
// time-sliced GPU shared by two pods, MIG devices in both naming schemes,
// index-named devices, and a non-GPU resource.
var nodeResources = &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
	{Name: "vllm-0", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{{
		Name: "server",
		Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-3f2c1b8e-9d4a-4c7e-8b1f-0a2d3e4f5a6b", "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}},
			{ResourceName: "example.com/nic", DeviceIds: []string{"0000:3b:00.1"}},
		},
		CpuIds: []int64{2, 3, 4, 5},
	}}},
	{Name: "notebook-a", Namespace: "research", Containers: []*podresourcesv1.ContainerResources{
		{Name: "init", Devices: nil},
		{Name: "jupyter", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-aa11bb22-cc33-dd44-ee55-ff6677889900::0"}},
		}},
	}},
	{Name: "notebook-b", Namespace: "research", Containers: []*podresourcesv1.ContainerResources{
		{Name: "jupyter", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-aa11bb22-cc33-dd44-ee55-ff6677889900::3"}},
		}},
	}},
	{Name: "embed-0", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{
		{Name: "tei", Devices: []*podresourcesv1.ContainerDevices{
			{ResourceName: "nvidia.com/mig-1g.10gb", DeviceIds: []string{"MIG-5c6d7e8f-1a2b-5c3d-9e4f-0a1b2c3d4e5f"}},
			{ResourceName: "nvidia.com/mig-3g.40gb", DeviceIds: []string{"MIG-GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a/2/0"}},
		}},
	}},
	{Name: "legacy", Namespace: "default", Containers: []*podresourcesv1.ContainerResources{
		{Name: "c", Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"nvidia3"}}}},
	}},
}}

func TestPodResourcesList(t *testing.T) {
	srv := &kubeletServer{resp: nodeResources}
	c := NewPodResources(startKubelet(t, srv))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.List(ctx, "nvidia.com/")
	if err != nil {
		t.Fatal(err)
	}
	const tsGPU = "GPU-aa11bb22-cc33-dd44-ee55-ff6677889900"
	none := GPUDevice{Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1}
	with := func(f func(*GPUDevice)) GPUDevice { d := none; f(&d); return d }
	want := []DeviceAllocation{
		{"ml", "vllm-0", "server", "nvidia.com/gpu", "GPU-3f2c1b8e-9d4a-4c7e-8b1f-0a2d3e4f5a6b", "",
			with(func(d *GPUDevice) { d.UUID = "GPU-3f2c1b8e-9d4a-4c7e-8b1f-0a2d3e4f5a6b" })},
		{"ml", "vllm-0", "server", "nvidia.com/gpu", "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e", "",
			with(func(d *GPUDevice) { d.UUID = "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e" })},
		{"research", "notebook-a", "jupyter", "nvidia.com/gpu", tsGPU + "::0", "",
			with(func(d *GPUDevice) { d.UUID, d.Shared, d.Replica = tsGPU, true, 0 })},
		{"research", "notebook-b", "jupyter", "nvidia.com/gpu", tsGPU + "::3", "",
			with(func(d *GPUDevice) { d.UUID, d.Shared, d.Replica = tsGPU, true, 3 })},
		{"ml", "embed-0", "tei", "nvidia.com/mig-1g.10gb", "MIG-5c6d7e8f-1a2b-5c3d-9e4f-0a1b2c3d4e5f", "",
			with(func(d *GPUDevice) { d.MIGUUID = "MIG-5c6d7e8f-1a2b-5c3d-9e4f-0a1b2c3d4e5f" })},
		{"ml", "embed-0", "tei", "nvidia.com/mig-3g.40gb", "MIG-GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a/2/0", "",
			with(func(d *GPUDevice) {
				d.UUID, d.MIGUUID = "GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a", "MIG-GPU-0d1e2f3a-4b5c-6d7e-8f9a-0b1c2d3e4f5a/2/0"
				d.MIGGPUInstance, d.MIGComputeInstance = 2, 0
			})},
		{"default", "legacy", "c", "nvidia.com/gpu", "nvidia3", "", with(func(d *GPUDevice) { d.Index = 3 })},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d allocations, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("allocation %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	// No prefix: every resource, the NIC included. The connection is reused.
	all, err := c.List(ctx)
	if err != nil || len(all) != len(want)+1 || srv.calls.Load() != 2 {
		t.Fatalf("all resources: %d, %v (calls %d)", len(all), err, srv.calls.Load())
	}
}

func TestPodResourcesMissingSocket(t *testing.T) {
	c := NewPodResources(filepath.Join(t.TempDir(), "kubelet.sock"))
	_, err := c.List(context.Background())
	if !errors.Is(err, ErrNoPodResources) {
		t.Fatalf("err = %v, want ErrNoPodResources", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// A kubelet that does not answer: the call ends at the context's deadline.
func TestPodResourcesTimeout(t *testing.T) {
	srv := &kubeletServer{resp: nodeResources, block: make(chan struct{})}
	c := NewPodResources(startKubelet(t, srv))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.List(ctx, "nvidia.com/")
	if status.Code(errors.Unwrap(err)) != codes.DeadlineExceeded || errors.Is(err, ErrNoPodResources) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("List took %s despite a 200ms deadline", took)
	}
}

// A socket file that nobody serves: a clear error, not ErrNoPodResources.
func TestPodResourcesDeadSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "kubelet.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	lis.Close()
	c := NewPodResources(sock)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.List(ctx)
	if err == nil || errors.Is(err, ErrNoPodResources) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseDeviceID(t *testing.T) {
	for id, want := range map[string]GPUDevice{
		"GPU-1":         {UUID: "GPU-1", Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1},
		"GPU-1::12":     {UUID: "GPU-1", Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: 12, Shared: true},
		"MIG-2::1":      {MIGUUID: "MIG-2", Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: 1, Shared: true},
		"MIG-GPU-3/1/0": {UUID: "GPU-3", MIGUUID: "MIG-GPU-3/1/0", Index: -1, MIGGPUInstance: 1, MIGComputeInstance: 0, Replica: -1},
		"MIG-GPU-3/x":   {UUID: "GPU-3", MIGUUID: "MIG-GPU-3/x", Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1},
		"nvidia0":       {Index: 0, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1},
		"nvidia15":      {Index: 15, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1},
		"nvidiactl":     {UUID: "nvidiactl", Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1},
		"GPU-1::x":      {UUID: "GPU-1", Index: -1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1, Shared: true},
	} {
		if got := ParseDeviceID(id); got != want {
			t.Errorf("ParseDeviceID(%q) = %+v, want %+v", id, got, want)
		}
	}
}
