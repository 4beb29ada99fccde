package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentBinaryDependencies keeps out of the agent's binary what it must
// not carry: the cloud SDKs, the SQLite driver and the Parquet library (they
// live in aiwatt-cloud); client-go, the Kubernetes API types, apimachinery
// and klog, whose init-time scheme registration and code cost the agent
// megabytes of resident memory even with Kubernetes off (internal/kubeapi
// makes the requests the agent needs); and grpc-go, genproto and the
// kubelet's generated types (the pod-resources client speaks gRPC over
// net/http; they are test-only imports). docs/performance.md § Memory.
func TestAgentBinaryDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "github.com/inferensys/aiwatt/cmd/aiwatt").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list returned only %d packages", len(deps))
	}
	banned := []string{
		"github.com/aws/aws-sdk-go-v2", "github.com/Azure/azure-sdk-for-go", "cloud.google.com/",
		"modernc.org/sqlite", "github.com/inferensys/aiwatt/cloud", "github.com/parquet-go/",
		"k8s.io/client-go/", "k8s.io/api/", "k8s.io/apimachinery/", "k8s.io/klog", "k8s.io/kube-openapi/",
		"k8s.io/utils/", "sigs.k8s.io/", "github.com/google/gnostic-models/", "github.com/emicklei/go-restful",
		"google.golang.org/grpc", "google.golang.org/genproto", "k8s.io/kubelet",
	}
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
