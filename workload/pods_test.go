package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/inferensys/aiwatt/internal/kubeapi"
	"github.com/inferensys/aiwatt/internal/kubetest"
)

// newAPIServer serves testdata/k8s/pods-node-a.json for node.
func newAPIServer(t *testing.T, node string) (*kubetest.APIServer, *kubeapi.Config) {
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
	s := kubetest.NewAPIServer(t, node, false, list.Items, rv)
	return s, &kubeapi.Config{Host: s.URL}
}

// runWatcher runs a PodWatcher of node-a against cfg, with back-offs of
// milliseconds and what tune changes, until the test ends.
func runWatcher(t *testing.T, cfg *kubeapi.Config, clock func() time.Time, tune ...func(*PodWatcher)) *PodWatcher {
	t.Helper()
	w, err := NewPodWatcher(cfg, PodWatcherOptions{NodeName: "node-a", Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	w.backoffMin, w.backoffMax = time.Millisecond, 20*time.Millisecond
	for _, f := range tune {
		f(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// startWatcher runs a PodWatcher (runWatcher) and waits for its first list.
func startWatcher(t *testing.T, cfg *kubeapi.Config, clock func() time.Time) *PodWatcher {
	t.Helper()
	w := runWatcher(t, cfg, clock)
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
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
	api, cfg := newAPIServer(t, "node-a")
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	w := startWatcher(t, cfg, clock)
	eventually(t, "the watch", func() bool { return api.Count("watch") == 1 })
	if got := api.Requests(); len(got) != 2 || got[0] != "list" || got[1] != "watch" {
		t.Errorf("requests %v: want a list, then a watch", got)
	}
	if got := api.WatchResourceVersions(); got[0] != "48213" {
		t.Errorf("watch from resourceVersion %v, want the list's 48213", got)
	}
	if got := api.Accepts()[0]; got != "application/json" {
		t.Errorf("Accept %q", got)
	}
	if got := api.UserAgents()[0]; !strings.HasPrefix(got, "aiwatt/") {
		t.Errorf("User-Agent %q", got)
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
}

func TestNewPodWatcherRefuses(t *testing.T) {
	if _, err := NewPodWatcher(&kubeapi.Config{Host: "http://127.0.0.1:1"}, PodWatcherOptions{}); err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Errorf("empty node: %v", err)
	}
	if _, err := NewPodWatcher(&kubeapi.Config{Host: "http://127.0.0.1:1"}, PodWatcherOptions{NodeName: "n", DeletedRetention: -1}); err == nil {
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
	w, err := NewPodWatcher(&kubeapi.Config{Host: srv.URL}, PodWatcherOptions{NodeName: "node-a"})
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

// podFromServer returns the server's pod with the given UID.
func podFromServer(t *testing.T, api *kubetest.APIServer, uid string) map[string]any {
	t.Helper()
	for _, p := range api.Pods() {
		if p["metadata"].(map[string]any)["uid"] == uid {
			return p
		}
	}
	t.Fatalf("no pod %s on the server", uid)
	return nil
}

const (
	vllmUID  = "5f1c2a7e-8d3b-4c1a-9f0e-2b6d7c8e9a01"
	trainUID = "0e7c4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b"
	tgiUID   = "7d6c5b4a-3f2e-4d1c-8b9a-0f1e2d3c4b5a"
)

// A watch from a resource version the server no longer has (410 Gone, as an
// ERROR event or as the response status) is followed by a new list, which
// replaces the set: a pod the watch missed the deletion of is marked
// deleted and kept for the retention, a change it missed is applied.
func TestPodWatcherRelistsAfterGone(t *testing.T) {
	for _, httpStatus := range []bool{false, true} {
		t.Run(fmt.Sprintf("httpStatus=%v", httpStatus), func(t *testing.T) {
			api, cfg := newAPIServer(t, "node-a")
			w := startWatcher(t, cfg, nil)
			eventually(t, "the first watch", func() bool { return api.Count("watch") == 1 })
			// Changes the open watch never sees: the training pod goes,
			// the TGI pod starts; then the history is compacted and the
			// watch connection breaks.
			api.Replace([]map[string]any{podFromServer(t, api, vllmUID), loadPod(t, "tgi-running.json")})
			api.Compact(httpStatus)
			api.DropWatches()
			eventually(t, "the relist", func() bool {
				p, ok := w.Pod(tgiUID)
				return api.Count("list") == 2 && ok && p.Phase == "Running"
			})
			if api.Count("gone") != 1 {
				t.Errorf("requests %v: want one watch answered 410", api.Requests())
			}
			train, ok := w.Pod(trainUID)
			if !ok || train.Deleted.IsZero() {
				t.Errorf("pod missing from the relist: %+v, want it kept, marked deleted", train)
			}
			if vllm, ok := w.Pod(vllmUID); !ok || !vllm.Deleted.IsZero() {
				t.Errorf("pod in the relist: %+v", vllm)
			}
			eventually(t, "the watch after the relist", func() bool { return api.Count("watch") == 3 })
			rvs := api.WatchResourceVersions()
			if want := fmt.Sprint(api.ResourceVersion()); rvs[2] != want {
				t.Errorf("watch after the relist from %v, want the new list's %s", rvs, want)
			}
		})
	}
}

// A watch connection that breaks is resumed from the last resource version
// seen, without a list, and the change made while no watch was open arrives.
func TestPodWatcherResumesAfterDroppedWatch(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	w := startWatcher(t, cfg, nil)
	eventually(t, "the first watch", func() bool { return api.Count("watch") == 1 })
	api.HoldWatches()
	api.DropWatches()
	api.Event("MODIFIED", loadPod(t, "tgi-running.json"))
	eventually(t, "the watch again", func() bool { return api.Count("watch") == 2 })
	api.ReleaseWatches()
	eventually(t, "the change made while disconnected", func() bool {
		p, ok := w.Pod(tgiUID)
		return ok && p.Containers[0].ID == c1024
	})
	if rvs := api.WatchResourceVersions(); rvs[1] != rvs[0] || api.Count("list") != 1 {
		t.Errorf("watches from %v after %v: want a resumed watch from the same resource version and no list", rvs, api.Requests())
	}
	// And the next resume starts after that event.
	api.DropWatches()
	eventually(t, "the third watch", func() bool { return api.Count("watch") == 3 })
	if rvs := api.WatchResourceVersions(); rvs[2] != fmt.Sprint(api.ResourceVersion()) {
		t.Errorf("watch from %v, want the event's %d", rvs, api.ResourceVersion())
	}
}

// Bookmarks move the resource version on while the node's pods do not
// change, so that a resumed watch is not too old after a compaction.
func TestPodWatcherBookmarks(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	startWatcher(t, cfg, nil)
	eventually(t, "the first watch", func() bool { return api.Count("watch") == 1 })
	api.Advance(100)
	api.Bookmark()
	eventually(t, "the bookmark sent", func() bool { return api.Sent("BOOKMARK") == 1 })
	api.Compact(false)
	api.DropWatches()
	eventually(t, "the watch again", func() bool { return api.Count("watch") == 2 })
	if rvs := api.WatchResourceVersions(); rvs[1] != fmt.Sprint(api.ResourceVersion()) {
		t.Errorf("watch from %v, want the bookmark's %d", rvs, api.ResourceVersion())
	}
	if api.Count("gone") != 0 || api.Count("list") != 1 {
		t.Errorf("requests %v: want no 410 and no second list", api.Requests())
	}
}

// The bearer token file is read again when it changes: after a rotation
// the watcher authenticates with the new token.
func TestPodWatcherTokenRotation(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	dir := t.TempDir()
	tokenPath := filepath.Join(dir, "token")
	rotate := func(tok string) {
		// The kubelet swaps a projected volume's files by renaming.
		tmp := filepath.Join(dir, ".token.tmp")
		writeFile(t, tmp, tok+"\n")
		if err := os.Rename(tmp, tokenPath); err != nil {
			t.Fatal(err)
		}
		api.SetToken(tok)
	}
	rotate("token-one")
	cfg.BearerTokenFile = tokenPath
	w := startWatcher(t, cfg, nil)
	eventually(t, "the first watch", func() bool { return api.Count("watch") == 1 })
	rotate("token-two")
	api.DropWatches()
	api.Event("MODIFIED", loadPod(t, "tgi-running.json"))
	eventually(t, "the change, with the new token", func() bool {
		p, ok := w.Pod(tgiUID)
		return ok && p.Phase == "Running"
	})
	if n := api.Count("unauthorized"); n != 0 {
		t.Errorf("%d requests refused: the old token was sent after the rotation", n)
	}
}

// A failing API server (401 here) is retried with back-off until it
// answers; then the watcher syncs.
func TestPodWatcherRetriesList(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	api.SetToken("not-ours")
	w := runWatcher(t, cfg, nil)
	eventually(t, "retries", func() bool { return api.Count("unauthorized") >= 3 })
	if w.Synced() {
		t.Fatal("synced without a list")
	}
	api.SetToken("")
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := w.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	if len(w.Pods()) != 3 {
		t.Errorf("pods %v", w.Pods())
	}
}

// A node of 110 realistic pods (managedFields, last-applied-configuration,
// several containers): every pod and container is known, with only the
// fields attribution reads.
func TestPodWatcherRealisticNode(t *testing.T) {
	pods := kubetest.RealisticPods("node-a", 110)
	api := kubetest.NewAPIServer(t, "node-a", false, pods, 90000)
	w := startWatcher(t, &kubeapi.Config{Host: api.URL}, nil)
	if got := len(w.Pods()); got != 110 {
		t.Fatalf("%d pods, want 110", got)
	}
	for i := range pods {
		p, ok := w.Pod(kubetest.RealisticPodUID(i))
		if !ok {
			t.Fatalf("pod %d missing", i)
		}
		if _, ok := p.Annotations[LastAppliedConfigAnnotation]; ok || p.Annotations["aiwatt.io/model-id"] == "" {
			t.Errorf("pod %d annotations %v", i, p.Annotations)
		}
		server, ok := p.Container(kubetest.RealisticContainerID(i, 0))
		if !ok || server.Name != "server" || server.GPURequest != 1 || server.CPURequestCores != float64(1500+100*(i%20))/1000 {
			t.Errorf("pod %d server container %+v", i, server)
		}
		if init, ok := p.Container(kubetest.RealisticContainerID(i, 99)); !ok || !init.Init || init.CPURequestCores != 0.5 {
			t.Errorf("pod %d init container %+v", i, init)
		}
		if len(p.Containers) != 3+i%2 || p.GPURequest() != 1 {
			t.Errorf("pod %d containers %+v", i, p.Containers)
		}
	}
}

// A pod larger than the cap fails the list instead of filling memory.
func TestDecodePodListCapsObjects(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "k8s", "pods-node-a.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	rv, err := decodePodList(strings.NewReader(string(b)), 1<<20, func(*APIPod) { n++ })
	if err != nil || rv != "48213" || n != 3 {
		t.Fatalf("decode: %v, rv %q, %d pods", err, rv, n)
	}
	if _, err := decodePodList(strings.NewReader(string(b)), 1000, func(*APIPod) {}); !errors.Is(err, kubeapi.ErrTooLarge) {
		t.Errorf("1000-byte cap: %v, want ErrTooLarge", err)
	}
	for _, bad := range []string{`[]`, `{"items": {}}`, `{"items": [{"metadata": 1}]}`, `{"items": [`} {
		if _, err := decodePodList(strings.NewReader(bad), 1<<20, func(*APIPod) {}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestNodeRegionStatusError(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	_, _, err := NodeRegion(context.Background(), cfg, "node-x")
	var se *kubeapi.StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.Reason != "NotFound" {
		t.Errorf("missing node: %v", err)
	}
	if api.Count("node") != 1 {
		t.Errorf("requests %v", api.Requests())
	}
}

// A watch ends at its timeoutSeconds (the server closes it) and is resumed
// at once from the same resource version, without a list.
func TestPodWatcherWatchTimeout(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	// timeoutSeconds=1: the server ends each watch after a second.
	runWatcher(t, cfg, nil, func(w *PodWatcher) { w.watchTimeout = 0 })
	eventually(t, "a second watch", func() bool { return api.Count("watch") >= 2 })
	rvs := api.WatchResourceVersions()
	if rvs[1] != rvs[0] || api.Count("list") != 1 {
		t.Errorf("watches from %v after %v: want the same resource version and one list", rvs, api.Requests())
	}
}

// A watch the server never ends (a connection that died silently) is given
// up at its timeout plus a grace, and watched again.
func TestPodWatcherSilentWatch(t *testing.T) {
	api, cfg := newAPIServer(t, "node-a")
	api.IgnoreWatchTimeouts()
	runWatcher(t, cfg, nil, func(w *PodWatcher) { w.watchTimeout, w.watchGrace = time.Millisecond, 20*time.Millisecond })
	eventually(t, "watches again", func() bool { return api.Count("watch") >= 3 })
	if api.Count("list") != 1 {
		t.Errorf("requests %v: want one list", api.Requests())
	}
}

// BenchmarkDecodePodList decodes a list of 110 realistic pods (11–14 KB of
// JSON each) into PodMeta, as a relist does.
func BenchmarkDecodePodList110(b *testing.B) {
	body, err := json.Marshal(map[string]any{"kind": "PodList", "apiVersion": "v1",
		"metadata": map[string]any{"resourceVersion": "90000"}, "items": kubetest.RealisticPods("node-a", 110)})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := decodePodList(bytes.NewReader(body), maxObjectBytes, func(p *APIPod) { _ = PodFromAPI(p); n++ }); err != nil || n != 110 {
			b.Fatalf("%d pods: %v", n, err)
		}
	}
}
