// Package kubetest is a fake Kubernetes API server for tests: it speaks list
// and watch of pods (and the watch-list protocol) with real Pod JSON, as
// kube-apiserver does, on an httptest server, and refuses any request that
// does not select one node's pods. The agent's pod watcher and the
// end-to-end tests of the binary talk to it through client-go, unmodified.
package kubetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// apiServer speaks the Kubernetes API's list and watch of pods, with real
// Pod JSON, the way kube-apiserver does: a PodList for a list, a stream of
// watch events for a watch, and (when watchList is set) the watch-list
// protocol (sendInitialEvents=true: ADDED events, then a BOOKMARK annotated
// k8s.io/initial-events-end). Without watchList it refuses
// sendInitialEvents with 422, as a server without the WatchList feature
// does, and the client falls back to list+watch.
type APIServer struct {
	t testing.TB
	// URL is the server's base URL (a rest.Config Host).
	URL       string
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
	nodes    map[string]map[string]any
}

type watchEvent struct {
	rv  int
	typ string
	obj map[string]any
}

// NewAPIServer serves pods (Pod objects as JSON maps) at resourceVersion
// to clients that select node, until the test ends.
func NewAPIServer(t testing.TB, node string, watchList bool, pods []map[string]any, resourceVersion int) *APIServer {
	t.Helper()
	s := &APIServer{t: t, node: node, watchList: watchList, changed: make(chan struct{}), stop: make(chan struct{})}
	s.rv = resourceVersion
	s.pods = pods
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = srv.URL
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(s.stop) }) // runs first: ends open watches
	return s
}

// Pods returns a copy of the current pods.
func (s *APIServer) Pods() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.pods...)
}

// Requests returns the kinds of request served so far: list, watch,
// watchlist or refused.
func (s *APIServer) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Accepts returns the Accept header of every request.
func (s *APIServer) Accepts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accepts...)
}

// meta is an object's metadata.
func meta(obj map[string]any) map[string]any { return obj["metadata"].(map[string]any) }

// Event applies a change (ADDED, MODIFIED, DELETED) and streams it to watchers.
func (s *APIServer) Event(typ string, obj map[string]any) {
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

// Count returns how many requests of a kind were served.
func (s *APIServer) Count(kind string) int {
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

func (s *APIServer) fail(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`, msg, reason, code)
}

// SetNode makes GET /api/v1/nodes/NAME answer obj (a Node as a JSON map).
func (s *APIServer) SetNode(name string, obj map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes == nil {
		s.nodes = map[string]map[string]any{}
	}
	s.nodes[name] = obj
}

func (s *APIServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if name, ok := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/"); ok && r.Method == http.MethodGet {
		s.mu.Lock()
		node, found := s.nodes[name]
		s.mu.Unlock()
		s.record("node")
		if !found {
			s.fail(w, http.StatusNotFound, "NotFound", fmt.Sprintf("nodes %q not found", name))
			return
		}
		o := map[string]any{"kind": "Node", "apiVersion": "v1"}
		for k, v := range node {
			o[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(o)
		return
	}
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

func (s *APIServer) record(kind string) {
	s.mu.Lock()
	s.requests = append(s.requests, kind)
	s.mu.Unlock()
}

func (s *APIServer) list(w http.ResponseWriter) {
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

func (s *APIServer) watch(w http.ResponseWriter, r *http.Request, initial bool, rv string) {
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

// WriteKubeconfig writes a kubeconfig that points client-go at the server
// and returns its path.
func (s *APIServer) WriteKubeconfig(t testing.TB, path string) string {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q}
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
users:
- name: test
  user: {}
`, s.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
