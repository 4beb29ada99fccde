package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/kubetest"

	"k8s.io/client-go/rest"
)

// newAPIServer serves testdata/k8s/pods-node-a.json for node.
func newAPIServer(t *testing.T, node string, watchList bool) (*kubetest.APIServer, *rest.Config) {
	t.Helper()
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []map[string]any `json:"items"`
	}
	b, err := os.ReadFile(filepath.Join("testdata", "k8s", "pods-node-a.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	rv, _ := strconv.Atoi(list.Metadata.ResourceVersion)
	s := kubetest.NewAPIServer(t, node, watchList, list.Items, rv)
	return s, &rest.Config{Host: s.URL}
}

// startWatcher runs a PodWatcher against cfg until the test ends.
func startWatcher(t *testing.T, cfg *rest.Config, clock func() time.Time) *PodWatcher {
	t.Helper()
	w, err := NewPodWatcher(cfg, PodWatcherOptions{NodeName: "node-a", Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	if err := w.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	return w
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func loadPod(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "k8s", name))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestPodWatcher(t *testing.T) {
	for _, watchList := range []bool{true, false} {
		t.Run(fmt.Sprintf("watchList=%v", watchList), func(t *testing.T) {
			api, cfg := newAPIServer(t, "node-a", watchList)
			now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
			var clockMu sync.Mutex
			clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
			w := startWatcher(t, cfg, clock)
			if watchList && (api.Count("watchlist") != 1 || api.Count("list") != 0) {
				t.Errorf("requests %v: want one watch-list and no list", api.Requests())
			}
			if !watchList && (api.Count("refused") != 1 || api.Count("list") != 1) {
				t.Errorf("requests %v: want a refused watch-list, then a list", api.Requests())
			}
			if !strings.Contains(api.Accepts()[0], "application/vnd.kubernetes.protobuf") {
				t.Errorf("Accept %q: protobuf not preferred", api.Accepts()[0])
			}

			vllm, ok := w.Pod("5f1c2a7e-8d3b-4c1a-9f0e-2b6d7c8e9a01")
			if !ok {
				t.Fatalf("vllm pod not found; pods %v", w.Pods())
			}
			if vllm.Namespace != "ml" || vllm.Name != "vllm-llama-0" || vllm.Phase != "Running" ||
				vllm.Labels["aiwatt.io/project"] != "search" || vllm.Annotations["aiwatt.io/model-id"] != "meta-llama/Llama-3.1-8B-Instruct" {
				t.Errorf("vllm pod %+v", vllm)
			}
			if _, ok := vllm.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
				t.Error("last-applied-configuration kept")
			}
			if len(vllm.Containers) != 3 {
				t.Fatalf("containers %+v", vllm.Containers)
			}
			server, ok := vllm.Container(c812)
			if !ok || server.Name != "server" || server.Runtime != "containerd" || server.CPURequestCores != 4 || server.GPURequest != 1 || server.Init {
				t.Errorf("server container %+v", server)
			}
			if init, ok := vllm.ContainerNamed("model-download"); !ok || !init.Init || init.CPURequestCores != 1 || init.ID == "" {
				t.Errorf("init container %+v", init)
			}
			if got := vllm.CPURequestCores(); got != 4.1 {
				t.Errorf("pod CPU requests %v, want 4.1 (init containers excluded)", got)
			}
			if got := vllm.GPURequest(); got != 1 {
				t.Errorf("pod GPU requests %v", got)
			}
			train, ok := w.Pod("0e7c4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b")
			if !ok || train.GPURequest() != 8 || train.CPURequestCores() != 32 {
				t.Errorf("train pod %+v", train)
			}
			tgi, ok := w.PodByName("ml", "tgi-mistral-7d9f8c6b5-q2x4z")
			if !ok || tgi.Phase != "Pending" || tgi.Containers[0].ID != "" || tgi.Containers[0].CPURequestCores != 2.5 ||
				tgi.Containers[0].Extended["nvidia.com/mig-3g.40gb"] != 1 {
				t.Fatalf("pending tgi pod %+v", tgi)
			}
			if got := w.Pods(); len(got) != 3 || got[0].Name != "tgi-mistral-7d9f8c6b5-q2x4z" || got[2].Namespace != "train" {
				t.Errorf("Pods() not sorted by namespace, name: %v", got)
			}

			// The TGI container starts; the training pod is deleted.
			api.Event("MODIFIED", loadPod(t, "tgi-running.json"))
			eventually(t, "the TGI container ID", func() bool {
				p, ok := w.Pod("7d6c5b4a-3f2e-4d1c-8b9a-0f1e2d3c4b5a")
				return ok && p.Phase == "Running" && p.Containers[0].ID == c1024
			})
			tgi, _ = w.Pod("7d6c5b4a-3f2e-4d1c-8b9a-0f1e2d3c4b5a")
			if c, ok := tgi.Container(c1024); !ok || c.Runtime != "cri-o" || tgi.Labels["aiwatt.io/project"] != "chat" {
				t.Errorf("running tgi %+v", tgi)
			}
			trainObj := api.Pods()[1]
			api.Event("DELETED", trainObj)
			eventually(t, "the deleted pod marked", func() bool {
				p, ok := w.Pod("0e7c4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b")
				return ok && !p.Deleted.IsZero()
			})
			// Still resolvable within the retention, then forgotten.
			clockMu.Lock()
			now = now.Add(DefaultDeletedRetention + time.Second)
			clockMu.Unlock()
			w.Sweep()
			if _, ok := w.Pod("0e7c4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b"); ok {
				t.Error("deleted pod kept past its retention")
			}
			if _, ok := w.PodByName("train", "llama-70b-worker-0"); ok {
				t.Error("deleted pod kept by name")
			}
			if len(w.Pods()) != 2 {
				t.Errorf("pods %v", w.Pods())
			}
		})
	}
}

func TestNewPodWatcherRefuses(t *testing.T) {
	if _, err := NewPodWatcher(&rest.Config{Host: "http://127.0.0.1:1"}, PodWatcherOptions{}); err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Errorf("empty node: %v", err)
	}
	if _, err := NewPodWatcher(&rest.Config{Host: "http://127.0.0.1:1"}, PodWatcherOptions{NodeName: "n", DeletedRetention: -1}); err == nil {
		t.Error("negative retention accepted")
	}
}

// An API server that never answers: WaitForSync ends at the deadline.
func TestPodWatcherSyncDeadline(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	w, err := NewPodWatcher(&rest.Config{Host: srv.URL}, PodWatcherOptions{NodeName: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if err := w.WaitForSync(sctx); err == nil || w.Synced() {
		t.Fatalf("synced against a silent server: %v", err)
	}
}

func TestRESTConfig(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, kc, `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`)
	cfg, err := RESTConfig(kc)
	if err != nil || cfg.Host != "https://127.0.0.1:6443" {
		t.Fatalf("kubeconfig: %v, %+v", err, cfg)
	}
	if _, err := RESTConfig(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing kubeconfig accepted")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := RESTConfig(""); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("in-cluster outside a cluster: %v", err)
	}
}
