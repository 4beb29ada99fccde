package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// warnings records the API server's warnings to every client of the test
// (Helm's included): an unknown field, a deprecated API or a Pod Security
// violation of a workload object comes back as one.
var warnings = &warningRecorder{}

func init() { rest.SetDefaultWarningHandler(warnings) }

type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings recorded since the last call and forgets them.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// podSecurityLevels are the Pod Security Standards, least strict first.
var podSecurityLevels = []string{"privileged", "baseline", "restricted"}

// docsPodSecurityLevel is the level docs/deploy.md tells users to label the
// release's namespace with (every `pod-security.kubernetes.io/enforce=LEVEL`
// in it must agree).
func docsPodSecurityLevel(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, m := range regexp.MustCompile(`pod-security\.kubernetes\.io/enforce=([a-z]+)`).FindAllStringSubmatch(string(doc), -1) {
		found[m[1]] = true
	}
	if len(found) != 1 {
		t.Fatalf("docs/deploy.md names %d enforce levels (%v), want exactly one", len(found), found)
	}
	for l := range found {
		return l
	}
	return ""
}

// createNamespace creates ns labelled with the Pod Security level to enforce
// (none when level is empty), with a default ServiceAccount (no controller
// manager runs to make one, and the ServiceAccount admission plugin wants it
// for pods).
func createNamespace(t *testing.T, c *cluster, ns, level string) {
	t.Helper()
	ctx := context.Background()
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if level != "" {
		obj.Labels = map[string]string{"pod-security.kubernetes.io/enforce": level}
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the default service account of %s: %v", ns, err)
	}
}

// helmConfig is Helm's action configuration for ns, with a discovery of its
// own (so that the chart sees the API groups the server has now).
func helmConfig(t *testing.T, c *cluster, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	flags.Namespace = &ns
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, ns, "secret", func(format string, v ...any) {}); err != nil {
		t.Fatalf("helm: %v", err)
	}
	return cfg
}

// chartValues reads values YAML, or a values file of the repository when
// it names one.
func chartValues(t *testing.T, values string) map[string]any {
	t.Helper()
	if strings.HasSuffix(values, ".yaml") && !strings.Contains(values, "\n") {
		b, err := os.ReadFile(filepath.Join(repoRoot, values))
		if err != nil {
			t.Fatal(err)
		}
		values = string(b)
	}
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	return vals
}

// loadChart loads helm/aiwatt.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	chrt, err := loader.Load(filepath.Join(repoRoot, "helm", "aiwatt"))
	if err != nil {
		t.Fatal(err)
	}
	return chrt
}

// helmInstall installs helm/aiwatt as release in ns with Helm's Go SDK.
func helmInstall(t *testing.T, c *cluster, ns, name, values string) *release.Release {
	t.Helper()
	chrt := loadChart(t)
	in := action.NewInstall(helmConfig(t, c, ns))
	in.ReleaseName = name
	in.Namespace = ns
	in.Timeout = 2 * time.Minute
	rel, err := in.Run(chrt, chartValues(t, values))
	if err != nil {
		t.Fatalf("helm install %s in %s: %v", name, ns, err)
	}
	return rel
}

// helmUpgrade upgrades release name in ns with values.
func helmUpgrade(t *testing.T, c *cluster, ns, name, values string) *release.Release {
	t.Helper()
	chrt := loadChart(t)
	up := action.NewUpgrade(helmConfig(t, c, ns))
	up.Namespace = ns
	up.Timeout = 2 * time.Minute
	rel, err := up.Run(name, chrt, chartValues(t, values))
	if err != nil {
		t.Fatalf("helm upgrade %s in %s: %v", name, ns, err)
	}
	return rel
}

// manifestObjects decodes a release's manifest.
func manifestObjects(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(manifest, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("manifest: %v\n%s", err, doc)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	return out
}

// kinds counts the objects of a manifest by kind.
func kinds(objs []*unstructured.Unstructured) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetKind()]++
	}
	return out
}

// checkOnServer fetches every object of a release from the API server: each
// was validated and stored there.
func checkOnServer(t *testing.T, c *cluster, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: %v", gvk, o.GetName(), err)
			continue
		}
		ri := dyn.Resource(m.Resource)
		var got *unstructured.Unstructured
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			got, err = ri.Namespace(ns).Get(context.Background(), o.GetName(), metav1.GetOptions{})
		} else {
			got, err = ri.Get(context.Background(), o.GetName(), metav1.GetOptions{})
		}
		if err != nil {
			t.Errorf("%s %s is not on the server: %v", o.GetKind(), o.GetName(), err)
			continue
		}
		if got.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s %s: labels %v", o.GetKind(), o.GetName(), got.GetLabels())
		}
	}
}

var (
	defaultReleaseOnce sync.Once
	defaultReleaseOK   bool
)

// Namespaces and releases of the chart tests.
const (
	releaseNS   = "aiwatt"     // the default values, labelled with the docs' level
	releaseName = "aiwatt"     // fullname aiwatt, ServiceAccount aiwatt
	gpuNS       = "aiwatt-gpu" // helm/aiwatt/ci/gpu-values.yaml
	gpuRelease  = "gpu"
	agentNode   = "node-a" // the node the agent runs on
	otherNode   = "node-b"
)

// defaultRelease installs the chart with default values in releaseNS, once
// for the package, and checks what the server made of it.
func defaultRelease(t *testing.T) *cluster {
	t.Helper()
	c := startCluster(t)
	defaultReleaseOnce.Do(func() {
		createNamespace(t, c, releaseNS, docsPodSecurityLevel(t))
		warnings.take()
		start := time.Now()
		rel := helmInstall(t, c, releaseNS, releaseName, "")
		t.Logf("helm install (default values): %v", time.Since(start).Round(time.Millisecond))
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("the API server warned about the default install: %q", w)
		}
		objs := manifestObjects(t, rel.Manifest)
		got := kinds(objs)
		for _, k := range []string{"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Service"} {
			if got[k] == 0 {
				t.Errorf("the default install has no %s (kinds %v)", k, got)
			}
		}
		checkOnServer(t, c, releaseNS, objs)
		defaultReleaseOK = !t.Failed()
	})
	if !defaultReleaseOK {
		t.Fatal("the default install failed (see the first test that ran it)")
	}
	return c
}

// TestChartInstallDefaults installs the chart with default values in a
// namespace labelled with the Pod Security level docs/deploy.md states: the
// API server validates and stores every object, with no warning.
func TestChartInstallDefaults(t *testing.T) {
	c := defaultRelease(t)
	ds, err := c.Client.AppsV1().DaemonSets(releaseNS).Get(context.Background(), releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Spec.Template.Spec.ServiceAccountName; got != releaseName {
		t.Errorf("the DaemonSet runs as ServiceAccount %q", got)
	}
}

// TestChartInstallGPUNode installs the chart with the GPU-node values file
// (helm/aiwatt/ci/gpu-values.yaml) next to the default release.
func TestChartInstallGPUNode(t *testing.T) {
	c := defaultRelease(t)
	createNamespace(t, c, gpuNS, docsPodSecurityLevel(t))
	ensureRuntimeClass(t, c)
	warnings.take()
	rel := helmInstall(t, c, gpuNS, gpuRelease, "helm/aiwatt/ci/gpu-values.yaml")
	if w := warnings.take(); len(w) > 0 {
		t.Errorf("the API server warned about the GPU install: %q", w)
	}
	objs := manifestObjects(t, rel.Manifest)
	checkOnServer(t, c, gpuNS, objs)
	ds, err := c.Client.AppsV1().DaemonSets(gpuNS).Get(context.Background(), gpuRelease+"-aiwatt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName != "nvidia" {
		t.Errorf("runtimeClassName = %v, want nvidia", spec.RuntimeClassName)
	}
	if spec.NodeSelector["nvidia.com/gpu.present"] != "true" {
		t.Errorf("nodeSelector = %v", spec.NodeSelector)
	}
}

// ensureRuntimeClass creates the RuntimeClass nvidia that the NVIDIA GPU
// Operator makes on a real cluster (pods naming a missing RuntimeClass are
// refused at admission).
func ensureRuntimeClass(t *testing.T, c *cluster) {
	t.Helper()
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nvidia"}, Handler: "nvidia"}
	_, err := c.Client.NodeV1().RuntimeClasses().Create(context.Background(), rc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// agentPod is the Pod the DaemonSet controller would create on node from
// the DaemonSet's template.
func agentPod(ds *appsv1.DaemonSet, node string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: *ds.Spec.Template.ObjectMeta.DeepCopy(), Spec: *ds.Spec.Template.Spec.DeepCopy()}
	p.Name = ds.Name + "-probe"
	p.Spec.NodeName = node
	return p
}

// TestPodSecurityLevel shows that the level docs/deploy.md states is the
// least that admits the agent's pods: a Pod made from each DaemonSet's
// template (default and GPU values), as the DaemonSet controller makes it, is
// admitted in a namespace enforcing that level and refused by PodSecurity in
// one enforcing the next stricter level.
func TestPodSecurityLevel(t *testing.T) {
	c := defaultRelease(t)
	ensureRuntimeClass(t, c)
	level := docsPodSecurityLevel(t)
	i := 0
	for i < len(podSecurityLevels) && podSecurityLevels[i] != level {
		i++
	}
	if i >= len(podSecurityLevels)-1 {
		t.Fatalf("docs/deploy.md states level %q: not a level with a stricter one", level)
	}
	stricter := podSecurityLevels[i+1]
	ctx := context.Background()
	ds, err := c.Client.AppsV1().DaemonSets(releaseNS).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gpuValues := chartValues(t, "helm/aiwatt/ci/gpu-values.yaml")
	gpu, err := renderChart(t, "psa-gpu", gpuValues)
	if err != nil {
		t.Fatal(err)
	}
	gpuDS := gpu.daemonSet
	for _, tc := range []struct {
		name string
		ds   *appsv1.DaemonSet
	}{{"default values", ds}, {"gpu values", gpuDS}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, lv := range []string{level, stricter} {
				ns := "psa-" + lv + "-" + strings.ReplaceAll(tc.name, " ", "-")
				createNamespace(t, c, ns, lv)
				sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: tc.ds.Spec.Template.Spec.ServiceAccountName}}
				if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
				p := agentPod(tc.ds, agentNode)
				p.Namespace = ns
				_, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				switch {
				case lv == level && err != nil:
					t.Errorf("level %s refuses the agent's pod: %v", lv, err)
				case lv == stricter && err == nil:
					t.Errorf("level %s admits the agent's pod: %s is not the least level", lv, level)
				case lv == stricter && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), fmt.Sprintf(`violates PodSecurity "%s:`, lv))):
					t.Errorf("level %s refuses the pod, but not by PodSecurity: %v", lv, err)
				case lv == stricter:
					t.Logf("%s refuses it: %v", lv, err)
				}
			}
		})
	}
}

// rendered are the objects of a client-side render of the chart.
type rendered struct {
	daemonSet  *appsv1.DaemonSet
	configMaps map[string]map[string]string // data by ConfigMap name
}

// renderChart renders the chart for values without a server, as `helm
// template` does, and decodes its DaemonSet and ConfigMaps strictly.
func renderChart(t *testing.T, name string, values map[string]any) (*rendered, error) {
	t.Helper()
	chrt := loadChart(t)
	in := action.NewInstall(&action.Configuration{})
	in.ReleaseName = name
	in.Namespace = name
	in.DryRun = true
	in.ClientOnly = true
	in.Replace = true
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	in.KubeVersion = kv // the API server's, which a client-only render does not ask
	rel, err := in.Run(chrt, values)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	out := &rendered{configMaps: map[string]map[string]string{}}
	for _, o := range manifestObjects(t, rel.Manifest) {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		switch o.GetKind() {
		case "DaemonSet":
			out.daemonSet = &appsv1.DaemonSet{}
			if err := yaml.UnmarshalStrict(b, out.daemonSet); err != nil {
				return nil, fmt.Errorf("DaemonSet: %w", err)
			}
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			if err := yaml.UnmarshalStrict(b, cm); err != nil {
				return nil, fmt.Errorf("ConfigMap: %w", err)
			}
			out.configMaps[cm.Name] = cm.Data
		}
	}
	if out.daemonSet == nil {
		return nil, errors.New("the chart renders no DaemonSet")
	}
	return out, nil
}
