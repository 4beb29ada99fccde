package workload

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// referenceAllocations is List's result computed from the kubelet's
// generated types: what the agent did with grpc-go, the reference the
// protowire decoder is checked against.
func referenceAllocations(resp *podresourcesv1.ListPodResourcesResponse, prefixes []string) []DeviceAllocation {
	var out []DeviceAllocation
	for _, pod := range resp.GetPodResources() {
		for _, ctr := range pod.GetContainers() {
			for _, dev := range ctr.GetDevices() {
				if !hasPrefix(dev.GetResourceName(), prefixes) {
					continue
				}
				for _, id := range dev.GetDeviceIds() {
					out = append(out, DeviceAllocation{
						Namespace: pod.GetNamespace(), Pod: pod.GetName(), Container: ctr.GetName(),
						Resource: dev.GetResourceName(), DeviceID: id, Device: ParseDeviceID(id),
					})
				}
			}
			for _, dr := range ctr.GetDynamicResources() {
				for _, cr := range dr.GetClaimResources() {
					if !draDriverMatches(cr.GetDriverName(), prefixes) {
						continue
					}
					var cdi []string
					for _, c := range cr.GetCdiDevices() {
						cdi = append(cdi, c.GetName())
					}
					d := ParseDRADevice(cr.GetDeviceName(), cdi)
					d.Shared = d.Shared || cr.ShareId != nil
					out = append(out, DeviceAllocation{
						Namespace: pod.GetNamespace(), Pod: pod.GetName(), Container: ctr.GetName(),
						Resource: DRAResourcePrefix + cr.GetDriverName(), DeviceID: cr.GetPoolName() + "/" + cr.GetDeviceName(),
						Claim: dr.GetClaimNamespace() + "/" + dr.GetClaimName(), Device: d,
					})
				}
			}
		}
	}
	return out
}

// draNode has DRA allocations next to device-plugin ones, with every
// field List reads and some it skips (CPU IDs, memory, topology).
var draNode = &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{
	{Name: "train-0", Namespace: "ml", CpuIds: []int64{1, 2}, Containers: []*podresourcesv1.ContainerResources{{
		Name:    "trainer",
		Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{"GPU-1", "nvidia2"}, Topology: &podresourcesv1.TopologyInfo{Nodes: []*podresourcesv1.NUMANode{{ID: 1}}}}},
		Memory:  []*podresourcesv1.ContainerMemory{{MemoryType: "hugepages-2Mi", Size: 1 << 30}},
		DynamicResources: []*podresourcesv1.DynamicResource{{ClaimName: "gpus", ClaimNamespace: "ml", ClaimResources: []*podresourcesv1.ClaimResource{
			{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-0", CdiDevices: []*podresourcesv1.CDIDevice{{Name: "k8s.gpu.nvidia.com/claim=x"}, {Name: "nvidia.com/gpu=GPU-7b1e"}}},
			{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-3-mig-1g10gb-0"},
			{DriverName: "gpu.nvidia.com", PoolName: "node-a", DeviceName: "gpu-4", ShareId: strPtr("")},
			{DriverName: "net.example.com", PoolName: "node-a", DeviceName: "nic-0"},
		}}},
	}}},
}}

// The protowire decoder gives what the generated types give, for every
// prefix selection, on the test responses.
func TestDecodeListResponseMatchesGeneratedTypes(t *testing.T) {
	for name, resp := range map[string]*podresourcesv1.ListPodResourcesResponse{
		"devices": nodeResources, "dra": draNode, "110 pods": benchNode(), "empty": {},
	} {
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		for _, prefixes := range [][]string{nil, {"nvidia.com/"}, {"example.com/", "net.example.com/"}, {"none/"}} {
			got, err := decodeListResponse(b, prefixes, nil)
			if err != nil {
				t.Fatalf("%s %q: %v", name, prefixes, err)
			}
			if want := referenceAllocations(resp, prefixes); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %q:\n got %+v\nwant %+v", name, prefixes, got, want)
			}
		}
	}
}

// Field order on the wire does not matter: a pod whose containers come
// before its name, a container whose DRA devices come before its device
// plugin devices and before its name, fields repeated (the last wins),
// and unknown fields of every wire type.
func TestDecodeListResponseFieldOrder(t *testing.T) {
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
	}
	msg := func(b []byte, num protowire.Number, m []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
	}
	unknown := func(b []byte) []byte {
		b = protowire.AppendVarint(protowire.AppendTag(b, 99, protowire.VarintType), 7)
		b = protowire.AppendFixed32(protowire.AppendTag(b, 98, protowire.Fixed32Type), 7)
		b = protowire.AppendFixed64(protowire.AppendTag(b, 97, protowire.Fixed64Type), 7)
		b = protowire.AppendVarint(protowire.AppendTag(protowire.AppendTag(b, 96, protowire.StartGroupType), 1, protowire.VarintType), 1)
		b = protowire.AppendTag(b, 96, protowire.EndGroupType)
		return protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), 5) // a known number, wrong type: unknown
	}
	dev := str(str(unknown(nil), 2, "GPU-9"), 1, "nvidia.com/gpu")
	claim := str(str(str(str(nil, 4, "gpu-1"), 3, "pool"), 2, "gpu.nvidia.com"), 5, "s")
	dyn := str(str(msg(nil, 4, claim), 3, "ns"), 2, "claim")
	ctr := str(msg(msg(str(nil, 1, "old"), 5, dyn), 2, dev), 1, "c")
	pod := str(str(str(msg(unknown(nil), 3, ctr), 1, "old"), 1, "p"), 2, "ns")
	resp := msg(unknown(nil), 1, pod)

	got, err := decodeListResponse(resp, []string{"nvidia.com/"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeviceAllocation{
		{Namespace: "ns", Pod: "p", Container: "c", Resource: "nvidia.com/gpu", DeviceID: "GPU-9", Device: ParseDeviceID("GPU-9")},
		{Namespace: "ns", Pod: "p", Container: "c", Resource: "dra:gpu.nvidia.com", DeviceID: "pool/gpu-1", Claim: "ns/claim",
			Device: GPUDevice{Index: 1, MIGGPUInstance: -1, MIGComputeInstance: -1, Replica: -1, Shared: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	var ref podresourcesv1.ListPodResourcesResponse
	if err := proto.Unmarshal(resp, &ref); err != nil {
		t.Fatal(err)
	}
	if r := referenceAllocations(&ref, []string{"nvidia.com/"}); !reflect.DeepEqual(got, r) {
		t.Errorf("generated types disagree:\n got %+v\n ref %+v", got, r)
	}
}

// Malformed protobuf is an error, never a panic or a partial result.
func TestDecodeListResponseMalformed(t *testing.T) {
	valid, err := proto.Marshal(nodeResources)
	if err != nil {
		t.Fatal(err)
	}
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	for name, b := range map[string][]byte{
		"truncated":             valid[:len(valid)-3],
		"truncated tag":         {0x80},
		"field number 0":        {0x02, 0x00},
		"length past the end":   append(tag(1, protowire.BytesType), 0x7f, 0x01),
		"huge length":           append(tag(1, protowire.BytesType), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"varint overflow":       append(tag(9, protowire.VarintType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"end group alone":       tag(9, protowire.EndGroupType),
		"group not closed":      tag(9, protowire.StartGroupType),
		"group closed wrongly":  append(tag(9, protowire.StartGroupType), tag(8, protowire.EndGroupType)...),
		"wire type 6":           {0x0e},
		"truncated fixed64":     append(tag(9, protowire.Fixed64Type), 1, 2, 3),
		"pod name not UTF-8":    protowire.AppendBytes(tag(1, protowire.BytesType), protowire.AppendBytes(tag(1, protowire.BytesType), []byte{0xff, 0xfe})),
		"malformed pod":         protowire.AppendBytes(tag(1, protowire.BytesType), []byte{0x1a, 0x05, 0x0a}),
		"device ID not UTF-8":   nest([]protowire.Number{1, 3, 2}, protowire.AppendBytes(tag(2, protowire.BytesType), []byte{0xc3})),
		"CDI name not UTF-8":    nest([]protowire.Number{1, 3, 5, 4, 1}, protowire.AppendBytes(tag(1, protowire.BytesType), []byte{0xe2, 0x82})),
		"share ID not UTF-8":    nest([]protowire.Number{1, 3, 5, 4}, protowire.AppendBytes(tag(5, protowire.BytesType), []byte{0x80})),
		"claim name not UTF-8":  nest([]protowire.Number{1, 3, 5}, protowire.AppendBytes(tag(2, protowire.BytesType), []byte{0xc0, 0x80})),
		"malformed claim":       nest([]protowire.Number{1, 3, 5, 4}, []byte{0x12}),
		"malformed CDI device":  nest([]protowire.Number{1, 3, 5, 4, 1}, []byte{0x0a, 0x03}),
		"malformed device list": nest([]protowire.Number{1, 3, 2}, []byte{0x08}),
	} {
		for _, prefixes := range [][]string{nil, {"none/"}} {
			got, err := decodeListResponse(b, prefixes, nil)
			if err == nil {
				t.Errorf("%s (prefixes %q): no error, %d allocations", name, prefixes, len(got))
			}
		}
		var ref podresourcesv1.ListPodResourcesResponse
		if proto.Unmarshal(b, &ref) == nil {
			t.Errorf("%s: the generated types accept it: not malformed", name)
		}
	}
}

// nest wraps inner in the length-delimited fields path, outermost first.
func nest(path []protowire.Number, inner []byte) []byte {
	for i := len(path) - 1; i >= 0; i-- {
		inner = protowire.AppendBytes(protowire.AppendTag(nil, path[i], protowire.BytesType), inner)
	}
	return inner
}

// FuzzDecodeListResponse feeds arbitrary bytes to the decoder: it never
// panics, and whatever the kubelet's generated types accept it decodes to
// the same allocations.
func FuzzDecodeListResponse(f *testing.F) {
	for _, resp := range []*podresourcesv1.ListPodResourcesResponse{nodeResources, draNode} {
		b, err := proto.Marshal(resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x1a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, prefixes := range [][]string{nil, {"nvidia.com/"}} {
			got, err := decodeListResponse(b, prefixes, nil)
			var ref podresourcesv1.ListPodResourcesResponse
			if proto.Unmarshal(b, &ref) != nil {
				continue // malformed: an error or not, but no panic
			}
			if err != nil {
				t.Fatalf("prefixes %q: the generated types accept it, the decoder says %v", prefixes, err)
			}
			if want := referenceAllocations(&ref, prefixes); !reflect.DeepEqual(got, want) {
				t.Fatalf("prefixes %q:\n got %+v\nwant %+v", prefixes, got, want)
			}
		}
	})
}

// Device IDs of any length and content the generated types accept decode
// the same (a long UTF-8 ID included).
func TestDecodeListResponseLongStrings(t *testing.T) {
	id := "GPU-" + strings.Repeat("é", 5000)
	resp := &podresourcesv1.ListPodResourcesResponse{PodResources: []*podresourcesv1.PodResources{{
		Name: strings.Repeat("p", 300), Containers: []*podresourcesv1.ContainerResources{{Devices: []*podresourcesv1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{id, ""}}}}},
	}}}
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeListResponse(b, nil, nil)
	if err != nil || !reflect.DeepEqual(got, referenceAllocations(resp, nil)) || len(got) != 2 || got[0].Device.UUID != id {
		t.Fatalf("%+v, %v", got, err)
	}
}
