package test

import (
	"os/exec"
	"strings"
	"testing"
)

// Helm, the Prometheus Operator types and controller-runtime are test
// dependencies of this module only: the aiwatt binary must not link them,
// and the root module must not require them.
func TestAgentBinaryHasNoChartDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/aiwatt")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"helm.sh/", "github.com/prometheus-operator/", "sigs.k8s.io/controller-runtime", "k8s.io/apiextensions-apiserver"}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "plugin" {
			// Linking Go's plugin package makes the linker bind every
			// symbol at start (-z now); NVML's symbols are resolved
			// lazily, so the binary would not start without the driver.
			t.Error("the aiwatt binary links Go's plugin package")
		}
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("the aiwatt binary imports %s", pkg)
			}
		}
	}
	gomod := readRepoFile(t, "go.mod")
	for _, f := range forbidden {
		if strings.Contains(string(gomod), f) {
			t.Errorf("the root go.mod mentions %s", f)
		}
	}
}
