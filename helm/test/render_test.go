package test

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Paths relative to this package's directory (go test runs in it).
const (
	repoRoot    = "../.."
	chartDir    = "../aiwatt"
	releaseName = "aiwatt"
	namespace   = "aiwatt"
)

// The Prometheus Operator CRDs the chart looks for in .Capabilities.APIVersions.
var monitoringCRDs = []string{
	"monitoring.coreos.com/v1",
	"monitoring.coreos.com/v1/ServiceMonitor",
	"monitoring.coreos.com/v1/PodMonitor",
	"monitoring.coreos.com/v1/PrometheusRule",
}

// kubeVersion is the cluster version the chart is rendered for, unless a
// test says otherwise.
var kubeVersion = chartutil.KubeVersion{Version: "v1.33.4", Major: "1", Minor: "33"}

// renderOpts say how to install the chart.
type renderOpts struct {
	// values is a values file (YAML), as given to helm install -f.
	values string
	// crds adds the Prometheus Operator CRDs to the capabilities.
	crds bool
	// release overrides the release name.
	release string
	// kube overrides the Kubernetes version.
	kube *chartutil.KubeVersion
}

// output is what an install renders.
type output struct {
	notes     string
	hooks     int
	manifests []releaseutil.Manifest
}

// install renders the chart the way `helm install --dry-run` and `helm
// template` do (helm.sh/helm/v3/pkg/action's Install.Run in client-only
// mode): capabilities with the given Kubernetes version and API versions,
// values merged and validated against values.schema.json, the chart's
// kubeVersion constraint, templates rendered, NOTES.txt taken apart, and
// manifests split and sorted in install order. The action package itself is
// not used: it links Go's plugin package (through kustomize), which makes
// the linker bind every symbol at start, and the NVML bindings of the agent
// package (imported for agent.ParseConfig) rely on lazy binding.
func install(t *testing.T, o renderOpts) (*output, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	vals, err := chartutil.ReadValues([]byte(o.values))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	if o.kube != nil {
		caps.KubeVersion = *o.kube
	}
	if o.crds {
		caps.APIVersions = append(caps.APIVersions, monitoringCRDs...)
	}
	name := releaseName
	if o.release != "" {
		name = o.release
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, err
	}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals,
		chartutil.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}, caps, false)
	if err != nil {
		return nil, err
	}
	if kv := chrt.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", kv, caps.KubeVersion.String())
	}
	files, err := engine.Engine{}.Render(chrt, top)
	if err != nil {
		return nil, err
	}
	out := &output{}
	for k, v := range files {
		if strings.HasSuffix(k, "/NOTES.txt") {
			if k == path.Join(chrt.Name(), "templates", "NOTES.txt") {
				out.notes = v
			}
			delete(files, k)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	out.hooks, out.manifests = len(hooks), manifests
	return out, nil
}

// object is one rendered manifest, decoded strictly into its Go type.
type object struct {
	source string // template that rendered it
	kind   string
	name   string
	raw    []byte // the manifest as JSON
	obj    any    // *corev1.ConfigMap, *appsv1.DaemonSet, ...
}

// rendered is the outcome of one install.
type rendered struct {
	notes   string
	objects []object
}

// render installs the chart and decodes every manifest strictly; any
// failure fails the test.
func render(t *testing.T, o renderOpts) *rendered {
	t.Helper()
	out, err := install(t, o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if out.hooks != 0 {
		t.Errorf("the chart has %d hooks; none expected", out.hooks)
	}
	r := &rendered{notes: out.notes}
	for _, m := range out.manifests {
		// Helm writes each manifest as "---\n# Source: NAME\nCONTENT\n" into
		// the release (SortManifests trimmed the final line break).
		obj, err := decodeStrict([]byte(m.Content + "\n"))
		if err != nil {
			t.Fatalf("%s: %v\n%s", m.Name, err, m.Content)
		}
		obj.source = m.Name
		r.objects = append(r.objects, obj)
	}
	if len(r.objects) == 0 {
		t.Fatal("nothing rendered")
	}
	return r
}

// newObject returns a pointer to the Go type of apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}, true
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return &rbacv1.ClusterRole{}, true
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1/PodMonitor":
		return &monitoringv1.PodMonitor{}, true
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	}
	return nil, false
}

// decodeStrict converts one YAML manifest to JSON (refusing duplicate keys)
// and decodes it with sigs.k8s.io/json's UnmarshalStrict into the
// k8s.io/api (or Prometheus Operator) type of its kind: an unknown, mis-cased
// or duplicate field is an error, as it is for the API server's strict field
// validation.
func decodeStrict(doc []byte) (object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("YAML: %w", err)
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return object{}, fmt.Errorf("type: %w", err)
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return object{}, fmt.Errorf("no Go type for apiVersion %q kind %q: add it to newObject", tm.APIVersion, tm.Kind)
	}
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return object{}, fmt.Errorf("decode %s: %w", tm.Kind, err)
	}
	if len(strict) > 0 {
		return object{}, fmt.Errorf("strict decode of %s: %v", tm.Kind, errorsString(strict))
	}
	meta, ok := obj.(metav1.Object)
	if !ok {
		return object{}, fmt.Errorf("%s has no object metadata", tm.Kind)
	}
	if errs := validation.IsDNS1123Subdomain(meta.GetName()); len(errs) > 0 {
		return object{}, fmt.Errorf("%s name %q: %s", tm.Kind, meta.GetName(), strings.Join(errs, "; "))
	}
	for k, v := range meta.GetLabels() {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return object{}, fmt.Errorf("%s label key %q: %s", tm.Kind, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return object{}, fmt.Errorf("%s label %s=%q: %s", tm.Kind, k, v, strings.Join(errs, "; "))
		}
	}
	return object{kind: tm.Kind, name: meta.GetName(), raw: js, obj: obj}, nil
}

func errorsString(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// kinds lists the rendered kinds, sorted, with repeats.
func (r *rendered) kinds() []string {
	var k []string
	for _, o := range r.objects {
		k = append(k, o.kind)
	}
	slices.Sort(k)
	return k
}

// all returns the objects of kind.
func (r *rendered) all(kind string) []object {
	var out []object
	for _, o := range r.objects {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// has reports whether an object of kind and name was rendered.
func (r *rendered) has(kind, name string) bool {
	for _, o := range r.objects {
		if o.kind == kind && o.name == name {
			return true
		}
	}
	return false
}

// one returns the object of kind and name, failing the test when absent.
func one[T any](t *testing.T, r *rendered, kind, name string) T {
	t.Helper()
	for _, o := range r.objects {
		if o.kind == kind && o.name == name {
			v, ok := o.obj.(T)
			if !ok {
				t.Fatalf("%s/%s is %T", kind, name, o.obj)
			}
			return v
		}
	}
	t.Fatalf("no %s named %q among %v", kind, name, r.names())
	var zero T
	return zero
}

func (r *rendered) names() []string {
	var n []string
	for _, o := range r.objects {
		n = append(n, o.kind+"/"+o.name)
	}
	return n
}

// readRepoFile reads a file of the repository.
func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// globRepo lists repository files matching pattern, sorted.
func globRepo(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(repoRoot, filepath.FromSlash(pattern)))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// containsAll reports whether haystack holds every needle.
func containsAll(haystack []byte, needles ...string) error {
	for _, n := range needles {
		if !bytes.Contains(haystack, []byte(n)) {
			return fmt.Errorf("missing %q", n)
		}
	}
	return nil
}
