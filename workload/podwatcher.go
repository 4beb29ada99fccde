package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inferensys/aiwatt/internal/kubeapi"
	"github.com/inferensys/aiwatt/internal/retry"
)

// PodWatcherOptions configure a PodWatcher.
type PodWatcherOptions struct {
	// NodeName is the node whose pods are watched (NODE_NAME from the
	// downward API); required.
	NodeName string
	// DeletedRetention keeps a deleted pod resolvable for this long
	// (0 means DefaultDeletedRetention).
	DeletedRetention time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives lost connections, relists and back-offs; nil
	// discards them.
	Logger *slog.Logger
}

// How the watcher talks to the API server.
const (
	podsPath = "/api/v1/pods"
	// listTimeout bounds one list of the node's pods.
	listTimeout = 2 * time.Minute
	// watchTimeout is the least timeoutSeconds of a watch; each watch asks
	// for a random duration between it and twice it, so that the agents of
	// a cluster do not re-watch in step.
	watchTimeout = 5 * time.Minute
	// watchGrace is how long past its timeoutSeconds the watcher waits for
	// the server to end a watch before it takes the connection for dead.
	watchGrace = 30 * time.Second
	// maxObjectBytes caps one pod (or watch event) in a response; the API
	// server's own limit is about 1.5 MiB.
	maxObjectBytes = 4 << 20
	// backoffMin is the ceiling of the first wait after a failed request
	// (the wait is drawn below it: full jitter); it doubles with each
	// failure in a row up to backoffMax.
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// PodWatcher keeps the metadata of the pods on one node: it lists them
// through the API server with the field selector spec.nodeName=<node>, then
// watches them from the list's resource version. See the package
// documentation for why this and not the kubelet's /pods.
type PodWatcher struct {
	client    *kubeapi.Client
	selector  string
	logger    *slog.Logger
	retention time.Duration
	clock     func() time.Time

	// Tuning; tests shorten them.
	backoffMin, backoffMax time.Duration
	watchTimeout           time.Duration
	watchGrace             time.Duration
	maxObject              int64

	synced   chan struct{}
	syncOnce sync.Once

	mu     sync.RWMutex
	byUID  map[string]*PodMeta
	byName map[string]*PodMeta // "namespace/name"
}

// RESTConfig returns the API server configuration: from the kubeconfig
// file when one is given, else in-cluster (the pod's service account).
func RESTConfig(kubeconfig string) (*kubeapi.Config, error) {
	return kubeapi.Load(kubeconfig)
}

// NewPodWatcher returns a watcher of the pods on opts.NodeName through the
// API server at cfg. It needs list and watch on pods. Nothing is
// requested until Run.
func NewPodWatcher(cfg *kubeapi.Config, opts PodWatcherOptions) (*PodWatcher, error) {
	if opts.NodeName == "" {
		return nil, errors.New("pod watcher: node name is empty (set NODE_NAME from spec.nodeName)")
	}
	if opts.DeletedRetention < 0 {
		return nil, fmt.Errorf("pod watcher: deleted retention must not be negative, got %s", opts.DeletedRetention)
	}
	if opts.DeletedRetention == 0 {
		opts.DeletedRetention = DefaultDeletedRetention
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := kubeapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("pod watcher: %w", err)
	}
	return &PodWatcher{
		client:       client,
		selector:     "spec.nodeName=" + opts.NodeName,
		logger:       opts.Logger,
		retention:    opts.DeletedRetention,
		clock:        opts.Clock,
		backoffMin:   backoffMin,
		backoffMax:   backoffMax,
		watchTimeout: watchTimeout,
		watchGrace:   watchGrace,
		maxObject:    maxObjectBytes,
		synced:       make(chan struct{}),
		byUID:        map[string]*PodMeta{},
		byName:       map[string]*PodMeta{},
	}, nil
}

// Run lists and watches the node's pods until ctx is cancelled, then
// returns nil. A watch that ends is resumed from the last resource version
// seen (an event's or a bookmark's); one the server no longer has (410
// Gone) is replaced by a new list. Failed requests are retried after a
// capped exponential back-off with jitter, and the last known pods are
// served meanwhile.
func (w *PodWatcher) Run(ctx context.Context) error {
	defer w.client.CloseIdleConnections()
	var (
		rv         string // empty: list first
		consistent bool   // the next list must be current (after 410 Gone)
		bo         = backoff{policy: retry.Policy{Base: w.backoffMin, Max: w.backoffMax, Jitter: rand.Float64}}
	)
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = w.list(ctx, consistent); err != nil {
				if ctx.Err() == nil {
					d := bo.next()
					w.logger.Warn("listing pods failed; serving the last known pods", "err", err, "retry_in", d)
					_ = retry.Sleep(ctx, d)
				}
				continue
			}
			consistent = false
			bo.reset()
		}
		events, err := w.watch(ctx, &rv)
		switch {
		case ctx.Err() != nil:
		case err == nil:
			bo.reset() // The watch ended at its timeout: resume at once.
		case kubeapi.IsGone(err):
			w.logger.Info("the pods' resource version expired; listing again", "err", err)
			rv, consistent = "", true
		default:
			if events > 0 {
				bo.reset()
			}
			d := bo.next()
			w.logger.Warn("watching pods failed; serving the last known pods", "err", err, "retry_in", d, "resource_version", rv)
			_ = retry.Sleep(ctx, d)
		}
	}
	return nil
}

// list reads the node's pods and replaces the known set with them; it
// returns the list's resource version. The first list (and one after an
// error) asks for resourceVersion=0, which the API server answers from its
// watch cache; one after 410 Gone asks for the current state.
func (w *PodWatcher) list(ctx context.Context, consistent bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	q := url.Values{"fieldSelector": {w.selector}}
	if !consistent {
		q.Set("resourceVersion", "0")
	}
	resp, err := w.client.Get(ctx, podsPath, q)
	if err != nil {
		return "", fmt.Errorf("list pods: %w", err)
	}
	defer resp.Body.Close()
	pods := map[string]*PodMeta{}
	rv, err := decodePodList(resp.Body, w.maxObject, func(p *APIPod) {
		m := PodFromAPI(p)
		pods[m.UID] = m
	})
	if err != nil {
		return "", fmt.Errorf("list pods: %w", err)
	}
	if rv == "" {
		return "", errors.New("list pods: the list has no resourceVersion")
	}
	w.replace(pods)
	w.syncOnce.Do(func() { close(w.synced) })
	return rv, nil
}

// decodePodList stream-decodes a PodList, calling fn for each pod, and
// returns the list's resource version. No more than limit bytes are read
// for any one pod.
func decodePodList(r io.Reader, limit int64, fn func(*APIPod)) (string, error) {
	lr := kubeapi.NewLimitReader(r, limit)
	dec := json.NewDecoder(lr)
	if err := expectDelim(dec, '{'); err != nil {
		return "", err
	}
	var rv string
	for dec.More() {
		lr.Reset()
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch tok {
		case "metadata":
			var m struct {
				ResourceVersion string `json:"resourceVersion"`
			}
			if err := dec.Decode(&m); err != nil {
				return "", fmt.Errorf("list metadata: %w", err)
			}
			rv = m.ResourceVersion
		case "items":
			if tok, err = dec.Token(); err != nil {
				return "", err
			} else if tok == nil {
				continue // "items": null
			} else if tok != json.Delim('[') {
				return "", fmt.Errorf("items: want an array, got %v", tok)
			}
			for dec.More() {
				lr.Reset()
				var p APIPod
				if err := dec.Decode(&p); err != nil {
					return "", fmt.Errorf("pod: %w", err)
				}
				fn(&p)
			}
			if err := expectDelim(dec, ']'); err != nil {
				return "", err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return "", fmt.Errorf("%v: %w", tok, err)
			}
		}
	}
	return rv, expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("want %v, got %v", d, tok)
	}
	return nil
}

// watchEvent is one event of a watch stream.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch streams changes from *rv, advancing it with every event and
// bookmark, until the server ends the watch (nil), the connection fails, or
// the server sends an ERROR event (a *kubeapi.StatusError). It returns how
// many events it applied.
func (w *PodWatcher) watch(ctx context.Context, rv *string) (int, error) {
	timeout := w.watchTimeout + rand.N(w.watchTimeout+1)
	wctx, cancel := context.WithTimeout(ctx, timeout+w.watchGrace)
	defer cancel()
	q := url.Values{
		"fieldSelector":       {w.selector},
		"watch":               {"true"},
		"resourceVersion":     {*rv},
		"allowWatchBookmarks": {"true"},
		"timeoutSeconds":      {strconv.Itoa(max(1, int(timeout.Seconds())))},
	}
	resp, err := w.client.Get(wctx, podsPath, q)
	if err != nil {
		return 0, fmt.Errorf("watch pods: %w", err)
	}
	defer resp.Body.Close()
	lr := kubeapi.NewLimitReader(resp.Body, w.maxObject)
	dec := json.NewDecoder(lr)
	for n := 0; ; n++ {
		lr.Reset()
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if ctx.Err() == nil && wctx.Err() != nil {
				w.logger.Info("the pod watch outlived its timeout; watching again", "timeout", timeout)
				return n, nil
			}
			return n, fmt.Errorf("watch pods: %w", err)
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED":
			var p APIPod
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return n, fmt.Errorf("watch pods: %s event: %w", ev.Type, err)
			}
			if ev.Type == "DELETED" {
				w.deleted(p.Metadata.UID)
			} else {
				w.upsert(PodFromAPI(&p))
			}
			if p.Metadata.ResourceVersion != "" {
				*rv = p.Metadata.ResourceVersion
			}
		case "BOOKMARK":
			var b struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(ev.Object, &b); err != nil {
				return n, fmt.Errorf("watch pods: bookmark: %w", err)
			}
			if b.Metadata.ResourceVersion != "" {
				*rv = b.Metadata.ResourceVersion
			}
		case "ERROR":
			var st kubeapi.Status
			if err := json.Unmarshal(ev.Object, &st); err != nil {
				return n, fmt.Errorf("watch pods: error event: %w", err)
			}
			return n, st.Err(podsPath)
		default:
			return n, fmt.Errorf("watch pods: unknown event type %q", ev.Type)
		}
	}
}

// backoff counts the failures in a row and draws the wait after each from
// internal/retry's capped exponential back-off with full jitter.
type backoff struct {
	policy retry.Policy
	n      int
}

func (b *backoff) next() time.Duration {
	d := b.policy.Wait(b.n, 0)
	b.n++
	return d
}

func (b *backoff) reset() { b.n = 0 }

// Synced reports whether the first list has been received.
func (w *PodWatcher) Synced() bool {
	select {
	case <-w.synced:
		return true
	default:
		return false
	}
}

// WaitForSync waits until the first list has been received, or ctx ends.
func (w *PodWatcher) WaitForSync(ctx context.Context) error {
	select {
	case <-w.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pod watcher: pods not listed before the deadline: %w", context.Cause(ctx))
	}
}

// Pod returns the pod with the given UID, including a pod deleted less than
// the retention ago.
func (w *PodWatcher) Pod(uid string) (*PodMeta, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	p, ok := w.byUID[uid]
	return p, ok
}

// PodByName returns the pod namespace/name (the pod-resources API names
// pods so).
func (w *PodWatcher) PodByName(namespace, name string) (*PodMeta, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	p, ok := w.byName[namespace+"/"+name]
	return p, ok
}

// Pods returns every known pod, sorted by namespace and name.
func (w *PodWatcher) Pods() []*PodMeta {
	w.mu.RLock()
	out := slices.Collect(maps.Values(w.byUID))
	w.mu.RUnlock()
	slices.SortFunc(out, func(a, b *PodMeta) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// upsert adds or replaces a pod.
func (w *PodWatcher) upsert(m *PodMeta) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
	w.put(m)
}

// put adds or replaces a pod. w.mu is held.
func (w *PodWatcher) put(m *PodMeta) {
	if old, ok := w.byUID[m.UID]; ok && w.byName[old.Namespace+"/"+old.Name] == old {
		delete(w.byName, old.Namespace+"/"+old.Name)
	}
	w.byUID[m.UID] = m
	w.byName[m.Namespace+"/"+m.Name] = m
}

// replace makes pods the known set: pods missing from it are marked
// deleted (and kept for the retention).
func (w *PodWatcher) replace(pods map[string]*PodMeta) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
	for uid, old := range w.byUID {
		if _, ok := pods[uid]; !ok && old.Deleted.IsZero() {
			w.markDeleted(old)
		}
	}
	for _, m := range pods {
		w.put(m)
	}
}

// deleted marks the pod uid deleted.
func (w *PodWatcher) deleted(uid string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
	if old, ok := w.byUID[uid]; ok && old.Deleted.IsZero() {
		w.markDeleted(old)
	}
}

// markDeleted replaces old by a copy marked deleted now. w.mu is held.
func (w *PodWatcher) markDeleted(old *PodMeta) {
	gone := *old
	gone.Deleted = w.clock()
	w.byUID[gone.UID] = &gone
	if w.byName[gone.Namespace+"/"+gone.Name] == old {
		w.byName[gone.Namespace+"/"+gone.Name] = &gone
	}
}

// sweep forgets pods deleted longer than the retention ago. w.mu is held.
func (w *PodWatcher) sweep() {
	cutoff := w.clock().Add(-w.retention)
	for uid, p := range w.byUID {
		if !p.Deleted.IsZero() && p.Deleted.Before(cutoff) {
			delete(w.byUID, uid)
			if w.byName[p.Namespace+"/"+p.Name] == p {
				delete(w.byName, p.Namespace+"/"+p.Name)
			}
		}
	}
}

// Sweep forgets pods deleted longer than the retention ago. Updates sweep
// too; call it on a quiet node to free memory.
func (w *PodWatcher) Sweep() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep()
}

// nodeObjectBytes caps a Node object (its status lists the node's images).
const nodeObjectBytes = 16 << 20

// NodeRegion returns the cloud provider and region of a node from its
// providerID (aws://, gce://, azure://) and its topology.kubernetes.io/region
// label, e.g. ("aws", "eu-west-1"). It needs get on nodes.
func NodeRegion(ctx context.Context, cfg *kubeapi.Config, node string) (provider, region string, err error) {
	client, err := kubeapi.NewClient(cfg)
	if err != nil {
		return "", "", fmt.Errorf("node %s: %w", node, err)
	}
	defer client.CloseIdleConnections()
	var n struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			ProviderID string `json:"providerID"`
		} `json:"spec"`
	}
	if err := client.GetJSON(ctx, "/api/v1/nodes/"+url.PathEscape(node), nil, nodeObjectBytes, &n); err != nil {
		return "", "", fmt.Errorf("get node %s: %w", node, err)
	}
	region = n.Metadata.Labels["topology.kubernetes.io/region"]
	if region == "" {
		region = n.Metadata.Labels["failure-domain.beta.kubernetes.io/region"]
	}
	scheme, _, _ := strings.Cut(n.Spec.ProviderID, ":")
	switch scheme {
	case "aws":
		provider = "aws"
	case "gce":
		provider = "gcp"
	case "azure":
		provider = "azure"
	}
	if provider == "" || region == "" {
		return provider, region, fmt.Errorf("node %s: no cloud region (providerID %q, label topology.kubernetes.io/region %q)", node, n.Spec.ProviderID, region)
	}
	return provider, region, nil
}
