// Package kubetest is a fake Kubernetes API server for tests: it speaks list
// and watch of pods (and the watch-list protocol) with real Pod JSON, as
// kube-apiserver does, on an httptest server, and refuses any request that
// does not select one node's pods. The agent's pod watcher and the
// end-to-end tests of the binary talk to it through aiwatt's own client,
// unmodified. Tests make it misbehave as a real one does: expire old resource
// versions (410 Gone), send bookmarks, drop watch connections, require a
// bearer token.
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
	"time"
)

// apiServer speaks the Kubernetes API's list and watch of pods, with real
// Pod JSON, the way kube-apiserver does: a PodList for a list, a stream of
// watch events for a watch, and (when watchList is set) the watch-list
// protocol (sendInitialEvents=true: ADDED events, then a BOOKMARK annotated
// k8s.io/initial-events-end). Without watchList it refuses
// sendInitialEvents with 422, as a server without the WatchList feature
// does, and the client falls back to list+watch.
type APIServer struct {
	errorf func(format string, args ...any)
	srv    *httptest.Server
	// URL is the server's base URL (a kubeconfig's server).
	URL       string
	node      string
	watchList bool

	mu        sync.Mutex
	rv        int
	pods      []map[string]any // current pods, in list order
	events    []watchEvent
	compacted int           // watches from an older resource version are 410 Gone
	goneHTTP  bool          // 410 as the response status, not as an ERROR event
	token     string        // required bearer token; empty: none
	changed   chan struct{} // closed and replaced on every change
	drop      chan struct{} // closed and replaced to drop open watches
	hold      chan struct{} // non-nil: new watches wait until it is closed
	silent    bool          // watches never end at their timeoutSeconds
	sent      map[string]int
	requests  []string // "list", "watch", "watchlist", "refused", "gone", "unauthorized", "node"
	accepts   []string
	watchRVs  []string // the resourceVersion of every watch request
	agents    []string // the User-Agent of every request
	stop      chan struct{}
	nodes     map[string]map[string]any
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
	s := Start(node, pods, resourceVersion, t.Errorf)
	s.watchList = watchList
	t.Cleanup(s.Close)
	return s
}

// Start serves pods at resourceVersion to clients that select node, outside
// a test (a benchmark's API server); errorf reports requests a real server
// would refuse too. Close stops it.
func Start(node string, pods []map[string]any, resourceVersion int, errorf func(format string, args ...any)) *APIServer {
	s := &APIServer{errorf: errorf, node: node, changed: make(chan struct{}), drop: make(chan struct{}), stop: make(chan struct{})}
	s.rv = resourceVersion
	s.pods = pods
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close ends open watches and stops the server.
func (s *APIServer) Close() {
	close(s.stop)
	s.srv.Close()
}

// SetToken makes every request need "Authorization: Bearer token" (401
// otherwise); empty accepts any request.
func (s *APIServer) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// Compact forgets the changes so far, as etcd compaction and the watch
// cache's window do: a watch from an older resource version than the
// current one is answered 410 Gone ("too old resource version"), as an
// ERROR event in a 200 response (what kube-apiserver's watch cache sends) or,
// with httpStatus, as the response status.
func (s *APIServer) Compact(httpStatus bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted, s.goneHTTP = s.rv, httpStatus
}

// Advance moves the resource version on by n without a change to the
// node's pods: other objects of the cluster changed.
func (s *APIServer) Advance(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv += n
}

// Bookmark sends a BOOKMARK event at the current resource version to open
// watches that allow bookmarks.
func (s *APIServer) Bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, watchEvent{rv: s.rv, typ: "BOOKMARK", obj: map[string]any{
		"metadata": map[string]any{"resourceVersion": strconv.Itoa(s.rv)}}})
	close(s.changed)
	s.changed = make(chan struct{})
}

// DropWatches breaks every open watch connection mid-stream (no final
// chunk), as a restarting API server or a load balancer does.
func (s *APIServer) DropWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.drop)
	s.drop = make(chan struct{})
}

// IgnoreWatchTimeouts makes watches outlive their timeoutSeconds, as a
// connection that died without a word does: only the client's own deadline
// ends them.
func (s *APIServer) IgnoreWatchTimeouts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = true
}

// HoldWatches makes new watch requests wait (a slow server) until
// ReleaseWatches.
func (s *APIServer) HoldWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
}

// ReleaseWatches lets held and new watch requests proceed.
func (s *APIServer) ReleaseWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold != nil {
		close(s.hold)
		s.hold = nil
	}
}

// Replace sets the node's pods without a watch event: changes that a watch
// missed and only a list shows. The resource version moves on.
func (s *APIServer) Replace(pods []map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rv++
	s.pods = pods
}

// Sent returns how many watch events of a type (ADDED, MODIFIED, DELETED,
// BOOKMARK, ERROR) were written and flushed to clients.
func (s *APIServer) Sent(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[typ]
}

// ResourceVersion returns the current resource version.
func (s *APIServer) ResourceVersion() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rv
}

// WatchResourceVersions returns the resourceVersion each watch request
// started from.
func (s *APIServer) WatchResourceVersions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.watchRVs...)
}

// UserAgents returns the User-Agent header of every request.
func (s *APIServer) UserAgents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.agents...)
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
	s.mu.Lock()
	s.agents = append(s.agents, r.Header.Get("User-Agent"))
	token := s.token
	s.mu.Unlock()
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		s.record("unauthorized")
		s.fail(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
		return
	}
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
		s.errorf("unexpected request %s %s", r.Method, r.URL)
		s.fail(w, http.StatusNotFound, "NotFound", "not found")
		return
	}
	if got := q.Get("fieldSelector"); got != "spec.nodeName="+s.node {
		s.errorf("request without the node's field selector: %s", r.URL)
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
		s.mu.Lock()
		s.watchRVs = append(s.watchRVs, q.Get("resourceVersion"))
		s.mu.Unlock()
		s.record("watch")
	}
	timeout, _ := strconv.Atoi(q.Get("timeoutSeconds"))
	s.watch(w, r, q.Get("sendInitialEvents") == "true", q.Get("resourceVersion"), q.Get("allowWatchBookmarks") == "true", time.Duration(timeout)*time.Second)
}

func (s *APIServer) count(typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string]int{}
	}
	s.sent[typ]++
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
		s.errorf("list: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// watch streams events from rv; like kube-apiserver it ends the watch
// after timeout (timeoutSeconds) unless IgnoreWatchTimeouts.
func (s *APIServer) watch(w http.ResponseWriter, r *http.Request, initial bool, rv string, bookmarks bool, timeout time.Duration) {
	s.mu.Lock()
	if hold := s.hold; hold != nil {
		s.mu.Unlock()
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
		s.mu.Lock()
	}
	cursor, _ := strconv.Atoi(rv)
	if !initial && cursor < s.compacted {
		compacted, goneHTTP := s.compacted, s.goneHTTP
		s.mu.Unlock()
		s.record("gone")
		msg := fmt.Sprintf("too old resource version: %d (%d)", cursor, compacted)
		if goneHTTP {
			s.fail(w, http.StatusGone, "Expired", msg)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":"Expired","code":410}}`+"\n", msg)
		s.count("ERROR")
		return
	}
	drop := s.drop
	var expired <-chan time.Time
	if timeout > 0 && !s.silent {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush() // As kube-apiserver does: the client sees the watch open.
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
		s.count(typ)
		return true
	}
	s.mu.Lock()
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
	next := 0 // index of the next event to consider
	for ; next < len(s.events) && s.events[next].rv <= cursor; next++ {
	}
	for {
		select {
		case <-drop:
			s.mu.Unlock()
			panic(http.ErrAbortHandler) // Dropped: nothing more is sent.
		default:
		}
		pending := append([]watchEvent(nil), s.events[next:]...)
		next = len(s.events)
		changed := s.changed
		s.mu.Unlock()
		for _, e := range pending {
			if e.typ == "BOOKMARK" && !bookmarks {
				continue
			}
			if !send(e.typ, e.obj) {
				return
			}
		}
		select {
		case <-changed:
		case <-drop:
			panic(http.ErrAbortHandler) // The connection breaks without the final chunk.
		case <-expired:
			return
		case <-r.Context().Done():
			return
		case <-s.stop:
			return
		}
		s.mu.Lock()
	}
}

// Kubeconfig returns a kubeconfig that points a client at the server.
func (s *APIServer) Kubeconfig() string {
	return fmt.Sprintf(`apiVersion: v1
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
}

// WriteKubeconfig writes Kubeconfig to path and returns the path.
func (s *APIServer) WriteKubeconfig(t testing.TB, path string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(s.Kubeconfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
