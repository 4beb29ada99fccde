package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentDoesNotLinkKubernetesClient keeps client-go, the Kubernetes API
// types, apimachinery and klog out of the binary: their init-time scheme
// registration and types cost the agent megabytes of resident memory even
// with Kubernetes off, and internal/kubeapi makes the two requests the
// agent needs. (k8s.io/kubelet's pod-resources API is plain protobuf and
// allowed.)
func TestAgentDoesNotLinkKubernetesClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "github.com/inferensys/aiwatt/cmd/aiwatt").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list returned only %d packages", len(deps))
	}
	banned := []string{"k8s.io/client-go/", "k8s.io/api/", "k8s.io/apimachinery/", "k8s.io/klog", "k8s.io/kube-openapi/",
		"k8s.io/utils/", "sigs.k8s.io/", "github.com/google/gnostic-models/", "github.com/emicklei/go-restful"}
	var kube bool
	for _, d := range deps {
		for _, b := range banned {
			if strings.HasPrefix(d, b) {
				t.Errorf("cmd/aiwatt links %s", d)
			}
		}
		kube = kube || d == "github.com/inferensys/aiwatt/internal/kubeapi"
	}
	if !kube {
		t.Error("cmd/aiwatt does not link internal/kubeapi: is the pod watcher still built in?")
	}
}
