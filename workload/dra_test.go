package workload

import (
	"context"
	"testing"
	"time"

	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/dcgm"
)

func strPtr(s string) *string { return &s }

// GPUs allocated through dynamic resource allocation, as the kubelet's
// pod-resources API reports them (DynamicResources), map to pods: by index
// from the NVIDIA DRA driver's device names, by UUID from a CDI device, a
// MIG device or a shared device sharing its GPU; other drivers are left out.
func TestPodResourcesDynamicResources(t *testing.T) {
	resp := &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
		{Name: "train-0", Namespace: "ml", Containers: []*podresourcesv1.ContainerResources{{
			Name: "trainer",
			DynamicResources: []*podresourcesv1.DynamicResource{{ClaimName: "train-0-gpus", ClaimNamespace: "ml", ClaimResources: []*podresourcesv1.ClaimResource{
				{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-0", CdiDevices: []*podresourcesv1.CDIDevice{{Name: "k8s.gpu.nvidia.com/claim=3c1e-gpu-0"}}},
				{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-1", CdiDevices: []*podresourcesv1.CDIDevice{{Name: "nvidia.com/gpu=GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}}},
				{DriverName: "net.example.com", PoolName: "node-a", DeviceName: "nic-0"},
			}}},
		}}},
		{Name: "nb", Namespace: "research", Containers: []*podresourcesv1.ContainerResources{{
			Name: "jupyter",
			DynamicResources: []*podresourcesv1.DynamicResource{{ClaimName: "nb-mig", ClaimNamespace: "research", ClaimResources: []*podresourcesv1.ClaimResource{
				{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-2-mig-1g10gb-0"},
				{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-3", ShareId: strPtr("a1")},
			}}},
		}}},
	}}
	c := NewPodResources(startKubelet(t, &kubeletServer{resp: resp}))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.List(ctx, "nvidia.com/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d allocations: %+v", len(got), got)
	}
	type want struct {
		pod, uuid, claim string
		index            int
		shared           bool
	}
	for i, w := range []want{
		{"train-0", "", "ml/train-0-gpus", 0, false},
		{"train-0", "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e", "ml/train-0-gpus", -1, false},
		{"nb", "", "research/nb-mig", 2, true},
		{"nb", "", "research/nb-mig", 3, true},
	} {
		g := got[i]
		if g.Pod != w.pod || g.Device.UUID != w.uuid || g.Device.Index != w.index || g.Device.Shared != w.shared || g.Claim != w.claim || g.Resource != "dra:gpu.nvidia.com" {
			t.Errorf("allocation %d: %+v, want %+v", i, g, w)
		}
	}

	// Claims: GPUs 0 and 1 belong to the trainer wholly; GPU 2 (a MIG
	// device of unknown instance) and GPU 3 (shared) are shared, their idle
	// energy spread over the claim holders under the allocation policy.
	trainer := attribution.Key{Namespace: "ml", Pod: "train-0", Container: "trainer"}
	ix := IndexGPUAllocations(got)
	cl := GPUClaimer{}
	for _, tc := range []struct {
		g      dcgm.GPUSample
		holder *attribution.Key
		rule   GPUClaim
	}{
		{dcgm.GPUSample{GPU: dcgm.GPU{Index: 0, UUID: "GPU-00000000-0000-0000-0000-000000000000"}, SMUtil: 10}, &trainer, ClaimAllocated},
		{dcgm.GPUSample{GPU: dcgm.GPU{Index: 1, UUID: "GPU-7b1e2d3c-4f5a-6b7c-8d9e-0f1a2b3c4d5e"}, SMUtil: 10}, &trainer, ClaimAllocated},
		{dcgm.GPUSample{GPU: dcgm.GPU{Index: 3, UUID: "GPU-33333333-0000-0000-0000-000000000000"}, SMUtil: 10}, nil, ClaimIdle},
	} {
		d, how := cl.Claim(&tc.g, &ix)
		if how.Rule != tc.rule || (tc.holder == nil) != (d.Holder == nil) || (tc.holder != nil && *d.Holder != *tc.holder) {
			t.Errorf("GPU %d: rule %s, holder %v", tc.g.Index, how.Rule, d.Holder)
		}
		if tc.holder == nil {
			r := attribution.Attribute(attribution.Policy{Idle: attribution.IdleAllocation}, []attribution.Device{func() attribution.Device { d.Joules = 100; return d }()})
			if len(r[0].Workloads) != 1 || r[0].Workloads[0].Joules != 90 || r[0].Total() != 100 {
				t.Errorf("GPU %d: shared DRA holder got %+v", tc.g.Index, r[0])
			}
		}
	}
}
