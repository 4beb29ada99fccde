package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/inferensys/aiwatt/agent"
)

// allMonitoring turns on every monitoring resource.
const allMonitoring = `
agent:
  serviceMonitor: {enabled: true}
  podMonitor: {enabled: true}
prometheusRule: {enabled: true}
carbon:
  enabled: true
  serviceMonitor: {enabled: true}
`

func TestDefaultsRenderWithoutMonitoringCRDs(t *testing.T) {
	r := render(t, renderOpts{})
	want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Service", "ServiceAccount"}
	if got := r.kinds(); !slices.Equal(got, want) {
		t.Errorf("kinds = %v, want %v", got, want)
	}
	for _, o := range r.objects {
		if o.kind == "ClusterRole" || o.kind == "ClusterRoleBinding" {
			continue
		}
		if ns := o.obj.(interface{ GetNamespace() string }).GetNamespace(); ns != namespace {
			t.Errorf("%s/%s namespace = %q, want %q", o.kind, o.name, ns, namespace)
		}
	}
	if !strings.Contains(r.notes, "rollout status daemonset/aiwatt") {
		t.Errorf("NOTES do not say how to check the DaemonSet:\n%s", r.notes)
	}
}

func TestDefaultsRenderWithMonitoringCRDs(t *testing.T) {
	// The CRDs alone create nothing: every monitoring resource is off by default.
	r := render(t, renderOpts{crds: true})
	for _, k := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		if n := len(r.all(k)); n != 0 {
			t.Errorf("%d %s rendered by default; want none", n, k)
		}
	}
}

// Each monitoring resource is rendered if and only if it is enabled and its
// CRD is in the capabilities.
func TestMonitoringResourcesNeedEnabledAndCRDs(t *testing.T) {
	type want struct{ kind, name string }
	all := []want{
		{"ServiceMonitor", "aiwatt"},
		{"PodMonitor", "aiwatt"},
		{"PrometheusRule", "aiwatt"},
		{"ServiceMonitor", "aiwatt-carbon"},
	}
	for _, tc := range []struct {
		name    string
		values  string
		crds    bool
		present []want
	}{
		{"enabled, no CRDs", allMonitoring, false, nil},
		{"enabled, CRDs", allMonitoring, true, all},
		{"disabled, CRDs", "carbon: {enabled: true}", true, nil},
		{"only the rule, CRDs", "prometheusRule: {enabled: true}", true, []want{{"PrometheusRule", "aiwatt"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, renderOpts{values: tc.values, crds: tc.crds})
			for _, w := range all {
				got := r.has(w.kind, w.name)
				if exp := slices.Contains(tc.present, w); got != exp {
					t.Errorf("%s/%s rendered = %v, want %v (objects: %v)", w.kind, w.name, got, exp, r.names())
				}
			}
			warned := strings.Contains(r.notes, "CRDs (monitoring.coreos.com/v1) are not installed")
			if wantWarn := !tc.crds && tc.values == allMonitoring; warned != wantWarn {
				t.Errorf("NOTES warning about missing CRDs = %v, want %v:\n%s", warned, wantWarn, r.notes)
			}
		})
	}
}

func TestAdditionalLabels(t *testing.T) {
	r := render(t, renderOpts{crds: true, values: `
commonLabels: {team: platform}
agent:
  serviceMonitor: {enabled: true, additionalLabels: {release: kube-prometheus-stack}}
  podMonitor: {enabled: true, additionalLabels: {release: kube-prometheus-stack, scrape: pods}}
prometheusRule: {enabled: true, additionalLabels: {release: kube-prometheus-stack, role: alert-rules}}
carbon:
  enabled: true
  serviceMonitor: {enabled: true, additionalLabels: {release: other}}
`})
	check := func(kind, name string, labels map[string]string, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if labels[k] != v {
				t.Errorf("%s/%s label %s = %q, want %q (labels %v)", kind, name, k, labels[k], v, labels)
			}
		}
	}
	check("ServiceMonitor", "aiwatt", one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "aiwatt").Labels,
		map[string]string{"release": "kube-prometheus-stack", "team": "platform", "app.kubernetes.io/name": "aiwatt"})
	check("PodMonitor", "aiwatt", one[*monitoringv1.PodMonitor](t, r, "PodMonitor", "aiwatt").Labels,
		map[string]string{"release": "kube-prometheus-stack", "scrape": "pods"})
	check("PrometheusRule", "aiwatt", one[*monitoringv1.PrometheusRule](t, r, "PrometheusRule", "aiwatt").Labels,
		map[string]string{"release": "kube-prometheus-stack", "role": "alert-rules"})
	check("ServiceMonitor", "aiwatt-carbon", one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "aiwatt-carbon").Labels,
		map[string]string{"release": "other"})
	// commonLabels reach every object.
	for _, o := range r.objects {
		if l := o.obj.(interface{ GetLabels() map[string]string }).GetLabels(); l["team"] != "platform" {
			t.Errorf("%s/%s lacks commonLabels: %v", o.kind, o.name, l)
		}
	}
}

func TestServiceMonitorScrapesTheAgents(t *testing.T) {
	r := render(t, renderOpts{crds: true, values: `
agent:
  serviceMonitor: {enabled: true, interval: 15s, metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: go_.*}]}
`})
	sm := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "aiwatt")
	svc := one[*corev1.Service](t, r, "Service", "aiwatt")
	ds := one[*appsv1.DaemonSet](t, r, "DaemonSet", "aiwatt")
	if !reflect.DeepEqual(sm.Spec.Selector.MatchLabels, svc.Spec.Selector) {
		t.Errorf("ServiceMonitor selects %v, the Service's selector is %v", sm.Spec.Selector.MatchLabels, svc.Spec.Selector)
	}
	for k, v := range svc.Spec.Selector {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the agent pods (%v)", k, v, ds.Spec.Template.Labels)
		}
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("agent Service clusterIP = %q, want headless", svc.Spec.ClusterIP)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != 28290 {
		t.Errorf("Service ports = %+v", svc.Spec.Ports)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("endpoints = %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != "metrics" || ep.Path != "/metrics" || ep.Interval != "15s" {
		t.Errorf("endpoint = %+v", ep)
	}
	// The node label that the rules and dashboards group by.
	if len(ep.RelabelConfigs) == 0 || ep.RelabelConfigs[0].TargetLabel != "node" ||
		len(ep.RelabelConfigs[0].SourceLabels) != 1 || ep.RelabelConfigs[0].SourceLabels[0] != "__meta_kubernetes_pod_node_name" {
		t.Errorf("relabelings = %+v, want node from __meta_kubernetes_pod_node_name first", ep.RelabelConfigs)
	}
	if len(ep.MetricRelabelConfigs) != 1 {
		t.Errorf("metricRelabelings = %+v", ep.MetricRelabelConfigs)
	}
}

// The alerts find the scrape job by job=~".*aiwatt.*"; the job is the
// Service's name, so it keeps "aiwatt" whatever the release is called.
func TestJobNameKeepsAiwatt(t *testing.T) {
	for _, rel := range []string{"aiwatt", "energy", "my-aiwatt-prod"} {
		r := render(t, renderOpts{release: rel, crds: true, values: "agent: {serviceMonitor: {enabled: true}}"})
		for _, o := range r.all("Service") {
			if !strings.Contains(o.name, "aiwatt") {
				t.Errorf("release %s: Service %q lacks \"aiwatt\"", rel, o.name)
			}
		}
	}
}

func TestDaemonSetSecurity(t *testing.T) {
	r := render(t, renderOpts{})
	ds := one[*appsv1.DaemonSet](t, r, "DaemonSet", "aiwatt")
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		t.Error("hostPID is off")
	}
	if pod.HostNetwork || pod.HostIPC {
		t.Errorf("hostNetwork=%v hostIPC=%v, want both off", pod.HostNetwork, pod.HostIPC)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName = %q", pod.PriorityClassName)
	}
	if pod.ServiceAccountName != "aiwatt" || pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Errorf("serviceAccountName = %q, automount = %v", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "nvidia.com/gpu" && tol.Operator == corev1.TolerationOpExists && tol.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("no toleration for nvidia.com/gpu: %+v", pod.Tolerations)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("containers = %d, init = %d", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]

	// The security context: user 0 (energy_uj is root:root 0400), every
	// capability dropped, none added, read-only root, no escalation.
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no securityContext")
	case sc.RunAsUser == nil || *sc.RunAsUser != 0:
		t.Errorf("runAsUser = %v, want 0", sc.RunAsUser)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.Privileged == nil || *sc.Privileged:
		t.Error("privileged is not false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("capabilities = %+v, want drop [ALL]", sc.Capabilities)
	case len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities added: %v, want none", sc.Capabilities.Add)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("seccompProfile = %+v, want RuntimeDefault", sc.SeccompProfile)
	}

	// Host paths: /sys, /proc and the pod-resources directory, all read-only; not the root.
	hostPaths := map[string]string{} // volume name -> host path
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
			if v.HostPath.Path == "/" {
				t.Error("the host's root filesystem is mounted")
			}
		}
	}
	wantHost := map[string]string{"sys": "/sys", "proc": "/proc", "pod-resources": "/var/lib/kubelet/pod-resources"}
	if !reflect.DeepEqual(hostPaths, wantHost) {
		t.Errorf("hostPath volumes = %v, want %v", hostPaths, wantHost)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
		if !m.ReadOnly {
			t.Errorf("volume %s mounted read-write at %s", m.Name, m.MountPath)
		}
	}
	for name, path := range map[string]string{"sys": "/host/sys", "proc": "/host/proc", "pod-resources": "/var/lib/kubelet/pod-resources", "config": "/etc/aiwatt"} {
		if mounts[name] != path {
			t.Errorf("volume %s mounted at %q, want %q", name, mounts[name], path)
		}
	}

	// Flags, environment, port and probes.
	if c.Args[0] != "agent" {
		t.Errorf("args[0] = %q, want agent", c.Args[0])
	}
	for _, a := range []string{"--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--config.file=/etc/aiwatt/aiwatt.yml", "--web.listen-address=:28290"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--path.rootfs") }) {
		t.Errorf("args %v set --path.rootfs without the host's /etc/passwd mounted", c.Args)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME = %+v, want the downward API spec.nodeName", e)
	}
	if env["NVIDIA_VISIBLE_DEVICES"].Value != "all" || env["NVIDIA_DRIVER_CAPABILITIES"].Value != "utility" {
		t.Errorf("NVIDIA env = %+v, %+v", env["NVIDIA_VISIBLE_DEVICES"], env["NVIDIA_DRIVER_CAPABILITIES"])
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 28290 {
		t.Errorf("ports = %+v", c.Ports)
	}
	for name, p := range map[string]*corev1.Probe{"/-/healthy": c.LivenessProbe, "/-/ready": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("probe %s = %+v", name, p)
		}
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("resources = %+v", c.Resources)
	}
	if ds.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a configuration change would not roll the pods")
	}
}

func TestDaemonSetOptions(t *testing.T) {
	r := render(t, renderOpts{values: `
agent:
  hostPasswd: {enabled: true}
  podResources: {hostPath: /var/lib/k0s/kubelet/pod-resources}
  dcgmExporterURL: http://$(HOST_IP):9400/metrics
  nvidia: {runtimeClassName: nvidia, visibleDevices: "", driverCapabilities: ""}
  securityContext:
    runAsUser: 0
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL], add: [DAC_READ_SEARCH]}
  tolerateGPUNodes: false
  tolerations: [{operator: Exists}]
  priorityClassName: ""
  extraArgs: ["--web.max-requests=10"]
  rollOnConfigChange: false
`})
	ds := one[*appsv1.DaemonSet](t, r, "DaemonSet", "aiwatt")
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.RuntimeClassName == nil || *pod.RuntimeClassName != "nvidia" {
		t.Errorf("runtimeClassName = %v", pod.RuntimeClassName)
	}
	if pod.PriorityClassName != "" {
		t.Errorf("priorityClassName = %q, want none", pod.PriorityClassName)
	}
	if len(pod.Tolerations) != 1 || pod.Tolerations[0].Operator != corev1.TolerationOpExists || pod.Tolerations[0].Key != "" {
		t.Errorf("tolerations = %+v", pod.Tolerations)
	}
	if got := c.SecurityContext.Capabilities.Add; !slices.Equal(got, []corev1.Capability{"DAC_READ_SEARCH"}) {
		t.Errorf("capabilities.add = %v", got)
	}
	for _, a := range []string{"--path.rootfs=/host/root", "--dcgm.exporter-url=http://$(HOST_IP):9400/metrics", "--web.max-requests=10"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %s", c.Args, a)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "NVIDIA_") {
			t.Errorf("%s set although its value is empty", e.Name)
		}
		if e.Name == "HOST_IP" && (e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "status.hostIP") {
			t.Errorf("HOST_IP = %+v", e)
		}
	}
	var passwd, podRes bool
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			continue
		}
		switch v.HostPath.Path {
		case "/etc/passwd":
			passwd = v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathFile
		case "/var/lib/k0s/kubelet/pod-resources":
			podRes = true
		case "/sys", "/proc":
		default:
			t.Errorf("unexpected hostPath %s", v.HostPath.Path)
		}
	}
	if !passwd || !podRes {
		t.Errorf("host /etc/passwd (a file) mounted = %v, custom pod-resources path = %v", passwd, podRes)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == "/host/root/etc/passwd" && m.ReadOnly
	}) {
		t.Errorf("mounts = %+v, want /host/root/etc/passwd read-only", c.VolumeMounts)
	}
	if _, ok := ds.Spec.Template.Annotations["checksum/config"]; ok {
		t.Error("checksum/config set with rollOnConfigChange: false")
	}
}

func TestRBACIsReadOnlyPods(t *testing.T) {
	r := render(t, renderOpts{})
	cr := one[*rbacv1.ClusterRole](t, r, "ClusterRole", "aiwatt")
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
	}
	if !reflect.DeepEqual(cr.Rules, want) {
		t.Errorf("ClusterRole rules = %+v, want %+v", cr.Rules, want)
	}
	crb := one[*rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding", "aiwatt")
	if crb.RoleRef.Name != "aiwatt" || crb.RoleRef.Kind != "ClusterRole" || len(crb.Subjects) != 1 ||
		crb.Subjects[0].Kind != "ServiceAccount" || crb.Subjects[0].Name != "aiwatt" || crb.Subjects[0].Namespace != namespace {
		t.Errorf("ClusterRoleBinding = %+v", crb)
	}
	one[*corev1.ServiceAccount](t, r, "ServiceAccount", "aiwatt")

	// rbac.create false and an existing ServiceAccount.
	r = render(t, renderOpts{values: "rbac: {create: false}\nserviceAccount: {create: false, name: existing}"})
	for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "ServiceAccount"} {
		if n := len(r.all(k)); n != 0 {
			t.Errorf("%d %s rendered", n, k)
		}
	}
	if sa := one[*appsv1.DaemonSet](t, r, "DaemonSet", "aiwatt").Spec.Template.Spec.ServiceAccountName; sa != "existing" {
		t.Errorf("serviceAccountName = %q", sa)
	}
}

// agentConfigFile returns the aiwatt.yml of the agent's ConfigMap.
func agentConfigFile(t *testing.T, r *rendered) []byte {
	t.Helper()
	cm := one[*corev1.ConfigMap](t, r, "ConfigMap", "aiwatt")
	data, ok := cm.Data["aiwatt.yml"]
	if !ok {
		t.Fatalf("ConfigMap keys = %v, want aiwatt.yml", cm.Data)
	}
	return []byte(data)
}

func TestAgentConfigParsesWithTheAgentsParser(t *testing.T) {
	r := render(t, renderOpts{})
	cfg, err := agent.ParseConfig("aiwatt.yml", agentConfigFile(t, r))
	if err != nil {
		t.Fatalf("default configuration refused by agent.ParseConfig: %v", err)
	}
	if !reflect.DeepEqual(cfg, agent.DefaultConfig()) {
		t.Errorf("default configuration = %+v, want the agent's defaults", cfg)
	}

	r = render(t, renderOpts{values: `
agent:
  config:
    rapl: {max_power_watts: 1500}
    cpu_model: {estimate: always, min_watts_per_cpu: 1.5, max_watts_per_cpu: 4}
    gpu: {backend: dcgm-exporter, exporter_url: "http://127.0.0.1:9400/metrics", exporter_timeout: 3s}
    attribution: {idle: allocation, retention: 10m, max_workloads: 5000}
    workloads:
      pod_labels:
        project: [aiwatt.io/project, app.kubernetes.io/part-of]
      rules:
        - name: slurm
          match: {cgroup: "slurm/uid_[0-9]+/job_([0-9]+)"}
          labels: {project: hpc, workload_type: training}
    inference:
      timeout: 2s
      targets:
        - url: http://127.0.0.1:8000/metrics
          server: vllm
    carbon:
      zone: DE
      providers:
        - type: aiwatt
          base_url: http://aiwatt-carbon.aiwatt.svc:28291
          max_age: 2h
`})
	data := agentConfigFile(t, r)
	cfg, err = agent.ParseConfig("aiwatt.yml", data)
	if err != nil {
		t.Fatalf("agent.ParseConfig: %v\n%s", err, data)
	}
	if cfg.RAPL.MaxPowerWatts != 1500 || cfg.CPUModel.Estimate != "always" || *cfg.CPUModel.MaxWattsPerCPU != 4 ||
		cfg.GPU.Backend != "dcgm-exporter" || cfg.Attribution.MaxWorkloads != 5000 ||
		len(cfg.Workloads.Rules) != 1 || len(cfg.Inference.Targets) != 1 || cfg.Carbon == nil || cfg.Carbon.Zone != "DE" {
		t.Errorf("configuration not carried through:\n%s\n%+v", data, cfg)
	}

	// The checksum follows the configuration.
	d1 := one[*appsv1.DaemonSet](t, render(t, renderOpts{}), "DaemonSet", "aiwatt")
	d2 := one[*appsv1.DaemonSet](t, r, "DaemonSet", "aiwatt")
	if d1.Spec.Template.Annotations["checksum/config"] == d2.Spec.Template.Annotations["checksum/config"] {
		t.Error("checksum/config did not change with the configuration")
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ name, values, at string }{
		{"unknown top-level key", "agnet: {enabled: true}", "at '': additional properties 'agnet'"},
		{"unknown agent key", "agent: {hostPid: true}", "at '/agent': additional properties 'hostPid'"},
		{"mis-cased security context field", "agent: {securityContext: {readonlyRootFilesystem: true}}", "at '/agent/securityContext'"},
		{"wrong type", `agent: {hostPID: "yes"}`, "at '/agent/hostPID'"},
		{"wrong type of a port", `agent: {service: {port: "28290"}}`, "at '/agent/service/port'"},
		{"port out of range", "agent: {service: {port: 70000}}", "at '/agent/service/port'"},
		{"bad enum", "image: {pullPolicy: Sometimes}", "at '/image/pullPolicy'"},
		{"bad digest", "image: {digest: latest}", "at '/image/digest'"},
		{"bad duration", `agent: {interval: "5 seconds"}`, "at '/agent/interval'"},
		{"bad log level", "agent: {logLevel: verbose}", "at '/agent/logLevel'"},
		{"unknown agent config key", "agent: {config: {rpal: {enabled: false}}}", "at '/agent/config': additional properties 'rpal'"},
		{"toleration with unknown field", "agent: {tolerations: [{key: a, operater: Exists}]}", "at '/agent/tolerations/0'"},
		{"literal secret in the carbon config", "carbon: {config: {zones: [{zone: DE, providers: [{type: electricitymaps, token: sk_live_123}]}]}}", "at '/carbon/config/zones/0/providers/0/token'"},
		{"literal secret in the agent config", "agent: {config: {carbon: {zone: DE, providers: [{type: electricitymaps, token: sk_live_123}]}}}", "at '/agent/config/carbon/providers/0/token'"},
		{"secret env without key", "carbon: {secrets: {existingSecret: s, env: [{name: X}]}}", "at '/carbon/secrets/env/0'"},
		{"dashboards label not a string", "dashboards: {labelValue: 1}", "at '/dashboards/labelValue'"},
		{"probe handler overridden", "agent: {livenessProbe: {httpGet: {path: /}}}", "at '/agent/livenessProbe'"},
		{"monitor with unknown key", "agent: {serviceMonitor: {enabled: true, labels: {a: b}}}", "at '/agent/serviceMonitor'"},
		{"unknown report period", "reports: {period: lastMonth}", "at '/reports/period'"},
		{"unknown reports key", "reports: {enabled: true, prometheusUrl: http://p:9090}", "at '/reports': additional properties 'prometheusUrl'"},
		{"unknown report config key", "reports: {config: {organization: Example}}", "at '/reports/config': additional properties 'organization'"},
		{"unknown report output key", "reports: {output: {hostPath: {path: /srv}}}", "at '/reports/output': additional properties 'hostPath'"},
		{"unknown report format", "reports: {formats: [json, docx]}", "at '/reports/formats/1'"},
		{"report schedule with a time zone", `reports: {schedule: "TZ=UTC 0 6 1 * *"}`, "at '/reports/schedule'"},
		{"literal http config in the reports", "reports: {httpConfig: {existingSecret: s, bearer_token: sk_live_123}}", "at '/reports/httpConfig': additional properties 'bearer_token'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := install(t, renderOpts{values: tc.values})
			if err == nil {
				t.Fatalf("values accepted:\n%s", tc.values)
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), tc.at) {
				t.Errorf("error = %v\nwant a schema error %s", err, tc.at)
			}
			if strings.Contains(err.Error(), "sk_live_123") {
				t.Errorf("the error echoes a secret: %v", err)
			}
		})
	}
}

func TestTemplateChecks(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"carbon without zones", "carbon: {enabled: true, config: {zones: []}}", "at least one zone is required"},
		{"secret env without secret", "carbon: {enabled: true, secrets: {env: [{name: X, key: pw}]}}", "needs carbon.secrets.existingSecret"},
		{"existing service account without name", "serviceAccount: {create: false}", "serviceAccount.name is required"},
		{"reports without a Prometheus", "reports: {enabled: true}", "reports.prometheusURL is required when reports.enabled is true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := install(t, renderOpts{values: tc.values})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestKubeVersionConstraint(t *testing.T) {
	_, err := install(t, renderOpts{kube: &chartutil.KubeVersion{Version: "v1.24.17", Major: "1", Minor: "24"}})
	if err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("install on Kubernetes 1.24: %v, want a kubeVersion error", err)
	}
}

// sourceRuleGroups returns the rule groups of alerts/rules/*.yml (the
// repository's files, not the chart's copies), as generic JSON values.
func sourceRuleGroups(t *testing.T, skip ...string) []any {
	t.Helper()
	var groups []any
	for _, path := range globRepo(t, "alerts/rules/*.yml") {
		if slices.Contains(skip, filepath.Base(path)) {
			continue
		}
		var f struct {
			Groups []any `json:"groups"`
		}
		if err := yaml.UnmarshalStrict(readRepoFile(t, "alerts/rules/"+filepath.Base(path)), &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(f.Groups) == 0 {
			t.Fatalf("%s has no groups", path)
		}
		groups = append(groups, f.Groups...)
	}
	return groups
}

// renderedRuleGroups returns spec.groups of the PrometheusRule as rendered.
func renderedRuleGroups(t *testing.T, r *rendered) []any {
	t.Helper()
	for _, o := range r.all("PrometheusRule") {
		var pr struct {
			Spec struct {
				Groups []any `json:"groups"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(o.raw, &pr); err != nil {
			t.Fatal(err)
		}
		return pr.Spec.Groups
	}
	t.Fatalf("no PrometheusRule among %v", r.names())
	return nil
}

func TestPrometheusRuleEqualsAlertsRules(t *testing.T) {
	r := render(t, renderOpts{crds: true, values: "prometheusRule: {enabled: true}"})
	got, want := renderedRuleGroups(t, r), sourceRuleGroups(t)
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("PrometheusRule groups differ from alerts/rules/*.yml (run make chart-sync)\n got: %.2000s\nwant: %.2000s", g, w)
	}
	pr := one[*monitoringv1.PrometheusRule](t, r, "PrometheusRule", "aiwatt")
	var alerts, records int
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			switch {
			case rule.Alert != "":
				alerts++
				if rule.Labels["severity"] == "" || rule.Annotations["runbook_url"] == "" {
					t.Errorf("alert %s lacks severity or runbook_url", rule.Alert)
				}
			case rule.Record != "":
				records++
			}
		}
	}
	if alerts == 0 || records == 0 {
		t.Errorf("%d alerts and %d recording rules in the PrometheusRule", alerts, records)
	}

	// Without the site configuration, with a group of the site's own.
	r = render(t, renderOpts{crds: true, values: `
prometheusRule:
  enabled: true
  siteConfig: false
  extraGroups:
    - name: aiwatt.config
      rules:
        - record: aiwatt_pue
          expr: vector(1.2)
`})
	got = renderedRuleGroups(t, r)
	want = append(sourceRuleGroups(t, "aiwatt-config.yml"), map[string]any{
		"name": "aiwatt.config", "rules": []any{map[string]any{"record": "aiwatt_pue", "expr": "vector(1.2)"}},
	})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with siteConfig false and extraGroups:\n got %v\nwant %v", got, want)
	}
}

func TestDashboardConfigMaps(t *testing.T) {
	if r := render(t, renderOpts{}); len(r.all("ConfigMap")) != 1 {
		t.Errorf("dashboards rendered while disabled: %v", r.names())
	}
	sources := globRepo(t, "dashboards/json/*.json")
	if len(sources) == 0 {
		t.Fatal("no dashboards in dashboards/json")
	}
	for _, tc := range []struct{ values, key, value string }{
		{"dashboards: {enabled: true}", "grafana_dashboard", "1"},
		{"dashboards: {enabled: true, label: grafana.io/dashboard, labelValue: aiwatt, annotations: {grafana_folder: Energy}}", "grafana.io/dashboard", "aiwatt"},
	} {
		r := render(t, renderOpts{values: tc.values})
		found := map[string]bool{}
		for _, o := range r.all("ConfigMap") {
			cm := o.obj.(*corev1.ConfigMap)
			if o.name == "aiwatt" {
				continue // the agent's configuration
			}
			if cm.Labels[tc.key] != tc.value {
				t.Errorf("%s: label %s = %q, want %q", o.name, tc.key, cm.Labels[tc.key], tc.value)
			}
			if len(cm.Data) != 1 {
				t.Errorf("%s holds %d files, want 1", o.name, len(cm.Data))
			}
			for file, content := range cm.Data {
				src := readRepoFile(t, "dashboards/json/"+file)
				if !bytes.Equal([]byte(content), src) {
					t.Errorf("%s: %s differs from dashboards/json/%s", o.name, file, file)
				}
				if !json.Valid([]byte(content)) {
					t.Errorf("%s: %s is not JSON", o.name, file)
				}
				found[file] = true
			}
			if strings.Contains(tc.values, "grafana_folder") && cm.Annotations["grafana_folder"] != "Energy" {
				t.Errorf("%s annotations = %v", o.name, cm.Annotations)
			}
		}
		for _, s := range sources {
			if !found[filepath.Base(s)] {
				t.Errorf("%s: no ConfigMap for dashboard %s", tc.values, filepath.Base(s))
			}
		}
	}
}

func TestCarbonService(t *testing.T) {
	r := render(t, renderOpts{crds: true, values: `
carbon:
  enabled: true
  config:
    zones:
      - zone: DE
        providers:
          - type: electricitymaps
            token: {file: /etc/aiwatt/secrets/electricitymaps-token}
            max_age: 2h
      - zone: US-CAL-CISO
        marginal:
          type: watttime
          zone: CAISO_NORTH
          username: aiwatt
          password: {env: WATTTIME_PASSWORD}
  secrets:
    existingSecret: aiwatt-carbon-keys
    env: [{name: WATTTIME_PASSWORD, key: watttime-password}]
  serviceMonitor: {enabled: true}
`})
	dep := one[*appsv1.Deployment](t, r, "Deployment", "aiwatt-carbon")
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Args[0] != "carbon" || !slices.Contains(c.Args, "--web.listen-address=:28291") || !slices.Contains(c.Args, "--config.file=/etc/aiwatt/carbon/carbon.yml") {
		t.Errorf("args = %v", c.Args)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Add) != 0 {
		t.Errorf("carbon securityContext = %+v", sc)
	}
	if pod.HostPID || pod.HostNetwork || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("carbon pod: hostPID %v hostNetwork %v automount %v", pod.HostPID, pod.HostNetwork, pod.AutomountServiceAccountToken)
	}
	var secretVol bool
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretVol = v.Secret.SecretName == "aiwatt-carbon-keys"
		}
		if v.HostPath != nil {
			t.Errorf("carbon mounts host path %s", v.HostPath.Path)
		}
	}
	if !secretVol {
		t.Errorf("no volume of Secret aiwatt-carbon-keys: %+v", pod.Volumes)
	}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath %q: a rotated Secret or ConfigMap would not be seen", m.Name, m.SubPath)
		}
		if m.Name == "secrets" && (m.MountPath != "/etc/aiwatt/secrets" || !m.ReadOnly) {
			t.Errorf("secrets mount = %+v", m)
		}
	}
	if len(c.Env) != 1 || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.SecretKeyRef == nil ||
		c.Env[0].ValueFrom.SecretKeyRef.Name != "aiwatt-carbon-keys" || c.Env[0].ValueFrom.SecretKeyRef.Key != "watttime-password" {
		t.Errorf("env = %+v", c.Env)
	}
	svc := one[*corev1.Service](t, r, "Service", "aiwatt-carbon")
	if svc.Spec.Ports[0].Port != 28291 || svc.Spec.Selector["app.kubernetes.io/component"] != "carbon" {
		t.Errorf("carbon Service = %+v", svc.Spec)
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("carbon Service selector %s=%s does not match the pods", k, v)
		}
	}
	sm := one[*monitoringv1.ServiceMonitor](t, r, "ServiceMonitor", "aiwatt-carbon")
	if sm.Spec.Endpoints[0].Port != "http" || sm.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "carbon" {
		t.Errorf("carbon ServiceMonitor = %+v", sm.Spec)
	}

	// The configuration file is valid for `aiwatt carbon`.
	cm := one[*corev1.ConfigMap](t, r, "ConfigMap", "aiwatt-carbon")
	if err := checkCarbonFile("carbon.yml", []byte(cm.Data["carbon.yml"])); err != nil {
		t.Errorf("carbon.yml: %v\n%s", err, cm.Data["carbon.yml"])
	}
	// The chart's default (carbon.enabled alone) is valid too.
	r = render(t, renderOpts{values: "carbon: {enabled: true}"})
	cm = one[*corev1.ConfigMap](t, r, "ConfigMap", "aiwatt-carbon")
	if err := checkCarbonFile("carbon.yml", []byte(cm.Data["carbon.yml"])); err != nil {
		t.Errorf("default carbon.yml: %v\n%s", err, cm.Data["carbon.yml"])
	}
	if len(r.all("Secret")) != 0 {
		t.Error("the chart renders a Secret; secrets come from an existing one")
	}
}

// The decoder the tests rely on is strict: a mis-cased, unknown or
// duplicate field fails.
func TestStrictDecoderRefusesBadFields(t *testing.T) {
	base := func(sc string) string {
		return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
          securityContext: {%s}
`, sc)
	}
	if _, err := decodeStrict([]byte(base("readOnlyRootFilesystem: true"))); err != nil {
		t.Fatalf("a correct manifest was refused: %v", err)
	}
	for _, bad := range []string{
		"readonlyRootFilesystem: true",                                // mis-cased
		"readOnlyRootFileSystem: true",                                // mis-cased
		"readOnlyRoot: true",                                          // unknown
		"readOnlyRootFilesystem: true, readOnlyRootFilesystem: false", // duplicate
	} {
		if _, err := decodeStrict([]byte(base(bad))); err == nil {
			t.Errorf("securityContext {%s} accepted", bad)
		}
	}
	if _, err := decodeStrict([]byte("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n")); err == nil {
		t.Error("a kind without a Go type was accepted")
	}
	if _, err := decodeStrict([]byte("apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {}, endpoints: [{port: m, scrapeInterval: 5s}]}\n")); err == nil {
		t.Error("a ServiceMonitor with an unknown endpoint field was accepted")
	}
}
