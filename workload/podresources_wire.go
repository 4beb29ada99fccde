package workload

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the kubelet's pod-resources API v1 (api.proto of
// k8s.io/kubelet, package v1), for the fields List reads. Every other
// field is skipped.
const (
	fieldListPodResources = 1 // ListPodResourcesResponse.pod_resources

	fieldPodName       = 1 // PodResources.name
	fieldPodNamespace  = 2 // PodResources.namespace
	fieldPodContainers = 3 // PodResources.containers

	fieldContainerName    = 1 // ContainerResources.name
	fieldContainerDevices = 2 // ContainerResources.devices
	fieldContainerDynamic = 5 // ContainerResources.dynamic_resources

	fieldDevicesResource = 1 // ContainerDevices.resource_name
	fieldDevicesIDs      = 2 // ContainerDevices.device_ids

	fieldDynamicClaimName      = 2 // DynamicResource.claim_name
	fieldDynamicClaimNamespace = 3 // DynamicResource.claim_namespace
	fieldDynamicClaimResources = 4 // DynamicResource.claim_resources

	fieldClaimCDIDevices = 1 // ClaimResource.cdi_devices
	fieldClaimDriver     = 2 // ClaimResource.driver_name
	fieldClaimPool       = 3 // ClaimResource.pool_name
	fieldClaimDevice     = 4 // ClaimResource.device_name
	fieldClaimShareID    = 5 // ClaimResource.share_id (optional: presence counts)

	fieldCDIName = 1 // CDIDevice.name
)

// wireFields walks the fields of one protobuf message. next stops at each
// length-delimited field (strings, bytes and sub-messages: every field List
// reads); fields of other wire types are checked and skipped, as a field
// whose number is known but whose wire type is not is an unknown field.
type wireFields struct {
	b   []byte
	err error
	num protowire.Number
	val []byte
}

func (w *wireFields) next() bool {
	for len(w.b) > 0 {
		num, typ, n := protowire.ConsumeTag(w.b)
		if n < 0 {
			w.err = protowire.ParseError(n)
			return false
		}
		w.b = w.b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(w.b)
			if m < 0 {
				w.err = fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
				return false
			}
			w.b, w.num, w.val = w.b[m:], num, v
			return true
		}
		m := protowire.ConsumeFieldValue(num, typ, w.b)
		if m < 0 {
			w.err = fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			return false
		}
		w.b = w.b[m:]
	}
	return false
}

// errInvalidUTF8 is a proto3 string field that is not UTF-8.
var errInvalidUTF8 = errors.New("string field is not valid UTF-8")

// wireString checks that v is a valid proto3 string.
func wireString(v []byte) ([]byte, error) {
	if !utf8.Valid(v) {
		return nil, errInvalidUTF8
	}
	return v, nil
}

// lazyString converts a decoded string field to a string the first time
// an allocation needs it, so pods and containers without devices cost no
// allocation.
type lazyString struct {
	b    []byte
	s    string
	done bool
}

func (l *lazyString) String() string {
	if !l.done {
		l.s, l.done = string(l.b), true
	}
	return l.s
}

// decodeListResponse appends to out the allocations of a serialized
// ListPodResourcesResponse whose resource (or DRA driver) matches
// prefixes: device-plugin devices of a container before its DRA devices,
// in the order of the message. Malformed input is an error.
func decodeListResponse(b []byte, prefixes []string, out []DeviceAllocation) ([]DeviceAllocation, error) {
	w := wireFields{b: b}
	for w.next() {
		if w.num != fieldListPodResources {
			continue
		}
		var err error
		if out, err = decodePod(w.val, prefixes, out); err != nil {
			return out, fmt.Errorf("pod_resources: %w", err)
		}
	}
	return out, w.err
}

// holder is the pod and container that the allocations being decoded
// belong to.
type holder struct {
	pod, namespace, container *lazyString
}

func decodePod(b []byte, prefixes []string, out []DeviceAllocation) ([]DeviceAllocation, error) {
	var name, ns lazyString
	w := wireFields{b: b}
	for w.next() {
		var err error
		switch w.num {
		case fieldPodName:
			name.b, err = wireString(w.val)
		case fieldPodNamespace:
			ns.b, err = wireString(w.val)
		}
		if err != nil {
			return out, fmt.Errorf("field %d: %w", w.num, err)
		}
	}
	if w.err != nil {
		return out, w.err
	}
	w = wireFields{b: b}
	for w.next() {
		if w.num != fieldPodContainers {
			continue
		}
		var err error
		if out, err = decodeContainer(w.val, holder{pod: &name, namespace: &ns}, prefixes, out); err != nil {
			return out, fmt.Errorf("containers: %w", err)
		}
	}
	return out, nil
}

func decodeContainer(b []byte, h holder, prefixes []string, out []DeviceAllocation) ([]DeviceAllocation, error) {
	var name lazyString
	w := wireFields{b: b}
	for w.next() {
		if w.num == fieldContainerName {
			var err error
			if name.b, err = wireString(w.val); err != nil {
				return out, fmt.Errorf("name: %w", err)
			}
		}
	}
	if w.err != nil {
		return out, w.err
	}
	h.container = &name
	// Device-plugin devices first, then DRA devices, whatever the order
	// of the fields on the wire.
	for _, field := range [...]protowire.Number{fieldContainerDevices, fieldContainerDynamic} {
		w = wireFields{b: b}
		for w.next() {
			if w.num != field {
				continue
			}
			var err error
			if field == fieldContainerDevices {
				out, err = decodeDevices(w.val, h, prefixes, out)
			} else {
				out, err = decodeDynamicResource(w.val, h, prefixes, out)
			}
			if err != nil {
				return out, fmt.Errorf("field %d: %w", field, err)
			}
		}
	}
	return out, nil
}

func decodeDevices(b []byte, h holder, prefixes []string, out []DeviceAllocation) ([]DeviceAllocation, error) {
	var resource []byte
	w := wireFields{b: b}
	for w.next() {
		var err error
		switch w.num {
		case fieldDevicesResource:
			resource, err = wireString(w.val)
		case fieldDevicesIDs:
			_, err = wireString(w.val)
		}
		if err != nil {
			return out, fmt.Errorf("field %d: %w", w.num, err)
		}
	}
	if w.err != nil || !hasPrefix(string(resource), prefixes) {
		return out, w.err
	}
	res := string(resource)
	w = wireFields{b: b}
	for w.next() {
		if w.num != fieldDevicesIDs {
			continue
		}
		id := string(w.val)
		out = append(out, DeviceAllocation{
			Namespace: h.namespace.String(), Pod: h.pod.String(), Container: h.container.String(),
			Resource: res, DeviceID: id, Device: ParseDeviceID(id),
		})
	}
	return out, nil
}

func decodeDynamicResource(b []byte, h holder, prefixes []string, out []DeviceAllocation) ([]DeviceAllocation, error) {
	var name, ns []byte
	w := wireFields{b: b}
	for w.next() {
		var err error
		switch w.num {
		case fieldDynamicClaimName:
			name, err = wireString(w.val)
		case fieldDynamicClaimNamespace:
			ns, err = wireString(w.val)
		}
		if err != nil {
			return out, fmt.Errorf("field %d: %w", w.num, err)
		}
	}
	if w.err != nil {
		return out, w.err
	}
	claim := lazyString{b: append(append(append(make([]byte, 0, len(ns)+1+len(name)), ns...), '/'), name...)}
	w = wireFields{b: b}
	for w.next() {
		if w.num != fieldDynamicClaimResources {
			continue
		}
		var err error
		if out, err = decodeClaimResource(w.val, h, &claim, prefixes, out); err != nil {
			return out, fmt.Errorf("claim_resources: %w", err)
		}
	}
	return out, nil
}

func decodeClaimResource(b []byte, h holder, claim *lazyString, prefixes []string, out []DeviceAllocation) ([]DeviceAllocation, error) {
	var driver, pool, device []byte
	var cdiBuf [4]string
	cdi := cdiBuf[:0]
	shared := false
	w := wireFields{b: b}
	for w.next() {
		var err error
		switch w.num {
		case fieldClaimCDIDevices:
			var name string
			if name, err = decodeCDIDevice(w.val); err == nil {
				cdi = append(cdi, name)
			}
		case fieldClaimDriver:
			driver, err = wireString(w.val)
		case fieldClaimPool:
			pool, err = wireString(w.val)
		case fieldClaimDevice:
			device, err = wireString(w.val)
		case fieldClaimShareID:
			_, err = wireString(w.val)
			shared = true
		}
		if err != nil {
			return out, fmt.Errorf("field %d: %w", w.num, err)
		}
	}
	if w.err != nil || !draDriverMatches(string(driver), prefixes) {
		return out, w.err
	}
	d := ParseDRADevice(string(device), cdi)
	d.Shared = d.Shared || shared
	return append(out, DeviceAllocation{
		Namespace: h.namespace.String(), Pod: h.pod.String(), Container: h.container.String(),
		Resource: DRAResourcePrefix + string(driver), DeviceID: string(pool) + "/" + string(device),
		Claim: claim.String(), Device: d,
	}), nil
}

// decodeCDIDevice returns a CDIDevice's name (the last, should it repeat).
func decodeCDIDevice(b []byte) (string, error) {
	var name []byte
	w := wireFields{b: b}
	for w.next() {
		if w.num == fieldCDIName {
			var err error
			if name, err = wireString(w.val); err != nil {
				return "", err
			}
		}
	}
	return string(name), w.err
}
