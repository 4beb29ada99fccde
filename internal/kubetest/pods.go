package kubetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// RealisticPods returns n Pod objects bound to node, shaped like the pods
// of a busy GPU node as kube-apiserver serves them: an init container and
// two or three containers (one of them a GPU inference server or trainer),
// eight labels, annotations with a kubectl last-applied-configuration,
// managedFields of three managers, probes, environment, volumes, and a
// kubelet-written status with conditions and container IDs. Each is about
// 8 to 15 KB of JSON. Pod i has UID RealisticPodUID(i); the same arguments
// give the same pods.
func RealisticPods(node string, n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range n {
		out[i] = realisticPod(node, i)
	}
	return out
}

// RealisticPodUID is the UID of RealisticPods' pod i.
func RealisticPodUID(i int) string {
	return fmt.Sprintf("%08x-7a1e-4c2b-9d3f-%012x", 0x5eed0000+i, 0xa1b2c3000000+i)
}

// RealisticContainerID is the container ID (64 hex digits) of RealisticPods'
// pod i, container c.
func RealisticContainerID(i, c int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "pod-%d-container-%d", i, c))
	return hex.EncodeToString(h[:])
}

var benchNamespaces = []string{"inference", "training", "search", "observability", "batch"}

func realisticPod(node string, i int) map[string]any {
	ns := benchNamespaces[i%len(benchNamespaces)]
	app := fmt.Sprintf("model-server-%d", i/3)
	name := fmt.Sprintf("%s-7d9f8c6b5-%05d", app, i)
	labels := map[string]any{
		"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app + "-prod", "app.kubernetes.io/version": "1.4.2",
		"app.kubernetes.io/component": "inference", "app.kubernetes.io/part-of": "ml-platform", "pod-template-hash": "7d9f8c6b5",
		"aiwatt.io/project": fmt.Sprintf("project-%d", i%7), "aiwatt.io/workload-type": "inference",
	}
	ncont := 2 + i%2
	var containers, statuses []any
	for c := range ncont {
		containers = append(containers, realisticContainer(i, c))
		statuses = append(statuses, realisticStatus(i, c, containers[c].(map[string]any)))
	}
	initC := map[string]any{
		"name": "model-download", "image": "registry.example.com/tools/model-fetch:2.3.1",
		"command": []any{"/bin/fetch", "--dest=/models", fmt.Sprintf("--model=org/model-%d", i%11)},
		"resources": map[string]any{"requests": map[string]any{"cpu": "500m", "memory": "512Mi"},
			"limits": map[string]any{"cpu": "1", "memory": "1Gi"}},
		"volumeMounts":           []any{map[string]any{"name": "models", "mountPath": "/models"}},
		"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
	}
	spec := map[string]any{
		"initContainers": []any{initC},
		"containers":     containers,
		"volumes": []any{
			map[string]any{"name": "models", "emptyDir": map[string]any{"sizeLimit": "200Gi"}},
			map[string]any{"name": "shm", "emptyDir": map[string]any{"medium": "Memory", "sizeLimit": "16Gi"}},
			map[string]any{"name": "config", "configMap": map[string]any{"name": app + "-config", "defaultMode": 420}},
			map[string]any{"name": "kube-api-access-" + fmt.Sprintf("%05x", i), "projected": map[string]any{"defaultMode": 420, "sources": []any{
				map[string]any{"serviceAccountToken": map[string]any{"expirationSeconds": 3607, "path": "token"}},
				map[string]any{"configMap": map[string]any{"name": "kube-root-ca.crt", "items": []any{map[string]any{"key": "ca.crt", "path": "ca.crt"}}}},
				map[string]any{"downwardAPI": map[string]any{"items": []any{map[string]any{"path": "namespace",
					"fieldRef": map[string]any{"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}}},
			}}},
		},
		"restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
		"serviceAccountName": app, "serviceAccount": app, "nodeName": node,
		"securityContext": map[string]any{"runAsNonRoot": true, "fsGroup": 1000},
		"schedulerName":   "default-scheduler", "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
		"tolerations": []any{
			map[string]any{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
			map[string]any{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
			map[string]any{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
		},
		"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
			"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{
				"key": "nvidia.com/gpu.product", "operator": "In", "values": []any{"NVIDIA-H100-80GB-HBM3", "NVIDIA-H200"}}}}}}}},
	}
	var appliedContainers []any
	for _, c := range containers {
		c := c.(map[string]any)
		appliedContainers = append(appliedContainers, map[string]any{"name": c["name"], "image": c["image"], "args": c["args"],
			"ports": c["ports"], "resources": c["resources"], "env": c["env"]})
	}
	applied, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels,
			"annotations": map[string]any{"aiwatt.io/model-id": fmt.Sprintf("org/model-%d", i%11)}},
		"spec": map[string]any{"containers": appliedContainers},
	})
	annotations := map[string]any{
		"aiwatt.io/model-id":   fmt.Sprintf("org/model-%d", i%11),
		"prometheus.io/scrape": "true", "prometheus.io/port": "8000", "prometheus.io/path": "/metrics",
		"kubectl.kubernetes.io/default-container":          "server",
		"kubectl.kubernetes.io/last-applied-configuration": string(applied) + "\n",
	}
	fields := func(keys ...string) map[string]any {
		m := map[string]any{}
		for _, k := range keys {
			m[k] = map[string]any{}
		}
		return m
	}
	var cfields []string
	for c := range ncont {
		cfields = append(cfields, fmt.Sprintf(`k:{"name":"%s"}`, containers[c].(map[string]any)["name"]))
	}
	managed := []any{
		map[string]any{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2026-11-28T11:59:51Z",
			"fieldsType": "FieldsV1", "fieldsV1": map[string]any{
				"f:metadata": map[string]any{"f:generateName": map[string]any{}, "f:labels": fields("f:app.kubernetes.io/name", "f:app.kubernetes.io/instance",
					"f:app.kubernetes.io/version", "f:app.kubernetes.io/component", "f:pod-template-hash", "f:aiwatt.io/project"),
					"f:ownerReferences": fields(`k:{"uid":"` + RealisticPodUID(i/3+100000) + `"}`)},
				"f:spec": map[string]any{"f:containers": fields(cfields...), "f:initContainers": fields(`k:{"name":"model-download"}`),
					"f:volumes":   fields(`k:{"name":"models"}`, `k:{"name":"shm"}`, `k:{"name":"config"}`),
					"f:dnsPolicy": map[string]any{}, "f:restartPolicy": map[string]any{}, "f:schedulerName": map[string]any{},
					"f:securityContext": fields("f:fsGroup", "f:runAsNonRoot"), "f:tolerations": map[string]any{}, "f:affinity": map[string]any{}},
			}},
		map[string]any{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "time": "2026-11-28T11:59:50Z",
			"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:metadata": map[string]any{
				"f:annotations": fields("f:kubectl.kubernetes.io/last-applied-configuration", "f:aiwatt.io/model-id")}}},
		map[string]any{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-11-28T12:00:20Z", "subresource": "status",
			"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:status": map[string]any{
				"f:conditions": fields(`k:{"type":"ContainersReady"}`, `k:{"type":"Initialized"}`, `k:{"type":"PodReadyToStartContainers"}`,
					`k:{"type":"PodScheduled"}`, `k:{"type":"Ready"}`),
				"f:containerStatuses": map[string]any{}, "f:initContainerStatuses": map[string]any{}, "f:hostIP": map[string]any{},
				"f:hostIPs": map[string]any{}, "f:phase": map[string]any{}, "f:podIP": map[string]any{}, "f:podIPs": map[string]any{},
				"f:startTime": map[string]any{}}}},
	}
	podIP := fmt.Sprintf("10.244.%d.%d", 3+i/250, 2+i%250)
	cond := func(typ string) any {
		return map[string]any{"type": typ, "status": "True", "lastProbeTime": nil, "lastTransitionTime": "2026-11-28T12:00:20Z"}
	}
	initStatus := map[string]any{"name": "model-download", "ready": true, "restartCount": 0, "started": false,
		"image": "registry.example.com/tools/model-fetch:2.3.1", "imageID": "registry.example.com/tools/model-fetch@sha256:" + strings.Repeat("3c", 32),
		"containerID": "containerd://" + RealisticContainerID(i, 99),
		"state":       map[string]any{"terminated": map[string]any{"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-28T11:59:55Z", "finishedAt": "2026-11-28T12:00:18Z", "containerID": "containerd://" + RealisticContainerID(i, 99)}},
		"lastState":   map[string]any{}}
	return map[string]any{
		"metadata": map[string]any{
			"name": name, "generateName": app + "-7d9f8c6b5-", "namespace": ns, "uid": RealisticPodUID(i),
			"resourceVersion": fmt.Sprint(40000 + i), "creationTimestamp": "2026-11-28T11:59:51Z",
			"labels": labels, "annotations": annotations, "managedFields": managed,
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": app + "-7d9f8c6b5",
				"uid": RealisticPodUID(i/3 + 100000), "controller": true, "blockOwnerDeletion": true}},
		},
		"spec": spec,
		"status": map[string]any{
			"phase": "Running", "qosClass": "Burstable", "hostIP": "192.168.10.21", "hostIPs": []any{map[string]any{"ip": "192.168.10.21"}},
			"podIP": podIP, "podIPs": []any{map[string]any{"ip": podIP}}, "startTime": "2026-11-28T11:59:51Z",
			"conditions":            []any{cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")},
			"initContainerStatuses": []any{initStatus},
			"containerStatuses":     statuses,
		},
	}
}

func realisticContainer(i, c int) map[string]any {
	names := []string{"server", "metrics-sidecar", "log-shipper", "proxy"}
	res := map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "256Mi"}, "limits": map[string]any{"cpu": "500m", "memory": "512Mi"}}
	image := fmt.Sprintf("registry.example.com/platform/%s:1.%d.0", names[c], c)
	if c == 0 {
		res = map[string]any{"requests": map[string]any{"cpu": fmt.Sprintf("%dm", 1500+100*(i%20)), "memory": "48Gi", "nvidia.com/gpu": "1"},
			"limits": map[string]any{"memory": "64Gi", "nvidia.com/gpu": "1"}}
		image = "registry.example.com/inference/vllm-openai:v0.9.2"
	}
	var env []any
	for e := range 5 {
		env = append(env, map[string]any{"name": fmt.Sprintf("SETTING_%d", e), "value": fmt.Sprintf("value-%d-%d", i, e)})
	}
	env = append(env, map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"apiVersion": "v1", "fieldPath": "metadata.name"}}})
	probe := map[string]any{"httpGet": map[string]any{"path": "/health", "port": 8000 + c, "scheme": "HTTP"}, "initialDelaySeconds": 30,
		"timeoutSeconds": 5, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
	return map[string]any{
		"name": names[c], "image": image,
		"args":      []any{"--model=/models/current", "--port=" + fmt.Sprint(8000+c), "--max-model-len=8192", "--gpu-memory-utilization=0.92"},
		"ports":     []any{map[string]any{"name": "http", "containerPort": 8000 + c, "protocol": "TCP"}},
		"env":       env,
		"resources": res,
		"volumeMounts": []any{map[string]any{"name": "models", "mountPath": "/models", "readOnly": true}, map[string]any{"name": "shm", "mountPath": "/dev/shm"},
			map[string]any{"name": "config", "mountPath": "/etc/app"},
			map[string]any{"name": fmt.Sprintf("kube-api-access-%05x", i), "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}},
		"readinessProbe":         probe,
		"securityContext":        map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}},
		"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
	}
}

func realisticStatus(i, c int, container map[string]any) map[string]any {
	id := "containerd://" + RealisticContainerID(i, c)
	return map[string]any{
		"name": container["name"], "ready": true, "restartCount": 0, "started": true,
		"image": container["image"], "imageID": fmt.Sprintf("%s@sha256:%s", strings.Split(container["image"].(string), ":")[0], strings.Repeat(fmt.Sprintf("%02x", c+10), 32)),
		"containerID": id,
		"state":       map[string]any{"running": map[string]any{"startedAt": "2026-11-28T12:00:20Z"}},
		"lastState":   map[string]any{},
	}
}
