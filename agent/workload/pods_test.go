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

	"k8s.io/client-go/rest"
)

// apiServer speaks the Kubernetes API's list and watch of pods, with real
// Pod JSON, the way kube-apiserver does: a PodList for a list, a stream of
// watch events for a watch, and (when watchList is set) the watch-list
// protocol (sendInitialEvents=true: ADDED events, then a BOOKMARK annotated
// k8s.io/initial-events-end). Without watchList it refuses
// sendInitialEvents with 422, as a server without the WatchList feature
// does, and the client falls back to list+watch.
type apiServer struct {
	t         *testing.T
	node      string
	watchList bool

	mu       sync.Mutex
	rv       int
	pods     []map[string]any // current pods, in list order
	events   []watchEvent
	changed  chan struct{} // closed and replaced on every change
	requests []string      // "list", "watch", "watchlist", "refused"
	accepts  []string
	stop     chan struct{}
}

type watchEvent struct {
	rv  int
	typ string
	obj map[string]any
}

func newAPIServer(t *testing.T, node string, watchList bool) (*apiServer, *rest.Config) {
	t.Helper()
	s := &apiServer{t: t, node: node, watchList: watchList, changed: make(chan struct{}), stop: make(chan struct{})}
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
	s.rv, _ = strconv.Atoi(list.Metadata.ResourceVersion)
	s.pods = list.Items
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.stop) }) // runs first: ends open watches
	return s, &rest.Config{Host: srv.URL}
}

func meta(obj map[string]any) map[string]any { return obj["metadata"].(map[string]any) }

// event applies a change and queues its watch event.
func (s *apiServer) event(typ string, obj map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	meta(obj)["resourceVersion"] = strconv.Itoa(s.rv)
	uid := meta(obj)["uid"]
	i := 0
	for ; i < len(s.pods) && meta(s.pods[i])["uid"] != uid; i++ {
	}
	switch {
	case typ == "DELETED" && i < len(s.pods):
		s.pods = append(s.pods[:i], s.pods[i+1:]...)
	case i < len(s.pods):
		s.pods[i] = obj
	default:
		s.pods = append(s.pods, obj)
	}
	s.events = append(s.events, watchEvent{rv: s.rv, typ: typ, obj: obj})
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *apiServer) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r == kind {
			n++
		}
	}
	return n
}

func (s *apiServer) fail(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}

func (s *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.URL.Path != "/api/v1/pods" || r.Method != http.MethodGet {
		s.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		s.fail(w, http.StatusNotFound, "NotFound", "not found")
		return
	}
	if got := q.Get("fieldSelector"); got != "spec.nodeName="+s.node {
		s.t.Errorf("request without the node's field selector: %s", r.URL)
		s.fail(w, http.StatusForbidden, "Forbidden", "whole-cluster pod lists are not allowed here")
		return
	}
	s.mu.Lock()
	s.accepts = append(s.accepts, r.Header.Get("Accept"))
	s.mu.Unlock()
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		s.list(w)
		return
	}
	if q.Get("sendInitialEvents") == "true" {
		if !s.watchList {
			s.record("refused")
			s.fail(w, http.StatusUnprocessableEntity, "Invalid",
				"ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")
			return
		}
		s.record("watchlist")
	} else {
		s.record("watch")
	}
	s.watch(w, r, q.Get("sendInitialEvents") == "true", q.Get("resourceVersion"))
}

func (s *apiServer) record(kind string) {
	s.mu.Lock()
	s.requests = append(s.requests, kind)
	s.mu.Unlock()
}

func (s *apiServer) list(w http.ResponseWriter) {
	s.record("list")
	s.mu.Lock()
	body, err := json.Marshal(map[string]any{
		"kind": "PodList", "apiVersion": "v1",
		"metadata": map[string]any{"resourceVersion": strconv.Itoa(s.rv)},
		"items":    s.pods,
	})
	s.mu.Unlock()
	if err != nil {
		s.t.Error(err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (s *apiServer) watch(w http.ResponseWriter, r *http.Request, initial bool, rv string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(typ string, obj map[string]any) bool {
		o := map[string]any{"kind": "Pod", "apiVersion": "v1"}
		for k, v := range obj {
			o[k] = v
		}
		if err := enc.Encode(map[string]any{"type": typ, "object": o}); err != nil {
			return false
		}
		w.(http.Flusher).Flush()
		return true
	}
	s.mu.Lock()
	cursor, _ := strconv.Atoi(rv)
	if initial {
		pods, cur := append([]map[string]any(nil), s.pods...), s.rv
		s.mu.Unlock()
		for _, p := range pods {
			if !send("ADDED", p) {
				return
			}
		}
		if !send("BOOKMARK", map[string]any{"metadata": map[string]any{
			"resourceVersion": strconv.Itoa(cur),
			"annotations":     map[string]any{"k8s.io/initial-events-end": "true"},
		}}) {
			return
		}
		s.mu.Lock()
		cursor = cur
	}
	for {
		var pending []watchEvent
		for _, e := range s.events {
			if e.rv > cursor {
				pending = append(pending, e)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		for _, e := range pending {
			if !send(e.typ, e.obj) {
				return
			}
			cursor = e.rv
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
		s.mu.Lock()
	}
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
			if watchList && (api.count("watchlist") != 1 || api.count("list") != 0) {
				t.Errorf("requests %v: want one watch-list and no list", api.requests)
			}
			if !watchList && (api.count("refused") != 1 || api.count("list") != 1) {
				t.Errorf("requests %v: want a refused watch-list, then a list", api.requests)
			}
			if !strings.Contains(api.accepts[0], "application/vnd.kubernetes.protobuf") {
				t.Errorf("Accept %q: protobuf not preferred", api.accepts[0])
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
			api.event("MODIFIED", loadPod(t, "tgi-running.json"))
			eventually(t, "the TGI container ID", func() bool {
				p, ok := w.Pod("7d6c5b4a-3f2e-4d1c-8b9a-0f1e2d3c4b5a")
				return ok && p.Phase == "Running" && p.Containers[0].ID == c1024
			})
			tgi, _ = w.Pod("7d6c5b4a-3f2e-4d1c-8b9a-0f1e2d3c4b5a")
			if c, ok := tgi.Container(c1024); !ok || c.Runtime != "cri-o" || tgi.Labels["aiwatt.io/project"] != "chat" {
				t.Errorf("running tgi %+v", tgi)
			}
			api.mu.Lock()
			trainObj := api.pods[1]
			api.mu.Unlock()
			api.event("DELETED", trainObj)
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
