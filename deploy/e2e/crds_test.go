package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// promOperatorVersion is the release of the Prometheus Operator's root Go
// module whose CRD manifests (example/prometheus-operator-crd) the test
// installs: the newest the Go module proxy serves. deploy/e2e/setup.sh
// downloads it; the test reads it from the module cache offline.
const promOperatorVersion = "v0.85.0"

// monitoringCRDs are the CRDs the chart can use.
var monitoringCRDs = []string{"servicemonitors", "podmonitors", "prometheusrules"}

// crdDir is the directory of the Prometheus Operator's CRD manifests in the
// Go module cache.
func crdDir(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, t.TempDir(), []string{"GOPROXY=off", "GOFLAGS=-mod=mod"}, "go", "mod", "download", "-json",
		"github.com/prometheus-operator/prometheus-operator@"+promOperatorVersion)
	if err != nil {
		t.Fatalf("the Prometheus Operator module is not in the module cache (run deploy/e2e/setup.sh): %v", err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal([]byte(out), &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %v %s\n%s", err, mod.Error, out)
	}
	return filepath.Join(mod.Dir, "example", "prometheus-operator-crd")
}

// TestMonitoringCRDs installs the chart with the ServiceMonitor, PodMonitor
// and PrometheusRule turned on: without the Prometheus Operator's CRDs none
// of them is created and the install succeeds; after the CRDs (the
// operator's published manifests) are installed, an upgrade creates all
// three and the server accepts them without a warning.
func TestMonitoringCRDs(t *testing.T) {
	c := startCluster(t)
	const ns, name = "aiwatt-monitoring", "mon"
	values := "agent:\n  serviceMonitor: {enabled: true}\n  podMonitor: {enabled: true}\nprometheusRule: {enabled: true}\n"
	createNamespace(t, c, ns, docsPodSecurityLevel(t))
	ctx := context.Background()
	ext, err := apiextensionsclient.NewForConfig(c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range monitoringCRDs {
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd+".monitoring.coreos.com", metav1.GetOptions{}); err == nil {
			t.Fatalf("the CRD %s is installed before the test", crd)
		}
	}
	warnings.take()
	rel := helmInstall(t, c, ns, name, values)
	got := kinds(manifestObjects(t, rel.Manifest))
	for _, k := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		if got[k] != 0 {
			t.Errorf("without the CRDs the install has %d %s", got[k], k)
		}
	}
	if got["DaemonSet"] != 1 {
		t.Errorf("the install has kinds %v", got)
	}

	dir := crdDir(t)
	for _, crd := range monitoringCRDs {
		b, err := os.ReadFile(filepath.Join(dir, "monitoring.coreos.com_"+crd+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		obj := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Fatalf("%s: %v", crd, err)
		}
		if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create the CRD %s: %v", obj.Name, err)
		}
		waitFor(t, "CRD "+obj.Name+" established", 30*time.Second, func() (bool, error) {
			got, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, obj.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
	}
	warnings.take()
	rel = helmUpgrade(t, c, ns, name, values)
	if w := warnings.take(); len(w) > 0 {
		t.Errorf("the API server warned about the monitoring objects: %q", w)
	}
	objs := manifestObjects(t, rel.Manifest)
	got = kinds(objs)
	for _, k := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		if got[k] != 1 {
			t.Errorf("with the CRDs the upgrade has %d %s (kinds %v)", got[k], k, got)
		}
	}
	checkOnServer(t, c, ns, objs)
}
