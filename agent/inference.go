package agent

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/agent/attribution"
	"github.com/inferensys/aiwatt/agent/workload"
	"github.com/inferensys/aiwatt/scrape"
)

// Inference counter kinds.
const (
	InferenceRequests     = "requests"
	InferenceInputTokens  = "input_tokens"
	InferenceOutputTokens = "output_tokens"
)

// SourceScrape is the source label of inference-server targets.
const SourceScrape = "scrape"

// AnnotationContainer names the container of a pod that serves the metrics
// scraped through the aiwatt.io/scrape annotations; default: the pod's only
// regular container, else its first.
const AnnotationContainer = "aiwatt.io/container"

// InferenceCounter is one inference counter of a workload, with exactly the
// workload labels of its energy so that energy per request is one division.
type InferenceCounter struct {
	// Key is the workload of the inference server.
	Key attribution.Key
	// Server is the server type (vllm, tgi, …).
	Server string
	// Kind is requests, input_tokens or output_tokens.
	Kind string
	// FinishedReason is the reason of finished requests (requests only).
	FinishedReason string
	// Value is the monotonic total kept by the agent.
	Value float64
}

type inferSeries struct {
	key                  attribution.Key
	server, kind, reason string
}

type inferValue struct {
	v    float64
	seen time.Time
}

type prevKey struct{ target, model, kind, reason string }

// inferenceSource scrapes inference servers and keeps the agent's own
// monotonic totals per workload, so a server restart or a target that moves
// never makes a counter go backwards.
type inferenceSource struct {
	cfg       InferenceConfig
	interval  time.Duration
	retention time.Duration
	procRoot  string
	scraper   *scrape.Scraper
	prev      map[prevKey]float64
	prevErrs  map[string]map[string]uint64
	totals    map[inferSeries]*inferValue
	ports     map[int]portPIDs
}

type portPIDs struct {
	pids []int
	at   time.Time
}

func newInferenceSource(opts Options, cfg *Config, prev *inferenceSource) *inferenceSource {
	s := &inferenceSource{
		cfg: cfg.Inference, interval: opts.Interval, retention: cfg.Attribution.Retention, procRoot: opts.ProcfsRoot,
		prev: map[prevKey]float64{}, prevErrs: map[string]map[string]uint64{}, totals: map[inferSeries]*inferValue{},
		ports: map[int]portPIDs{},
	}
	if prev != nil {
		s.scraper, s.prev, s.prevErrs, s.totals = prev.scraper, prev.prev, prev.prevErrs, prev.totals
	} else {
		s.scraper = scrape.NewScraper(scrape.Options{Timeout: cfg.Inference.Timeout, UserAgent: "aiwatt"})
	}
	return s
}

// sample scrapes every target once, within half the sampling interval.
func (s *inferenceSource) sample(ctx context.Context, now time.Time, w *workloadSource, record func(source, target string, err error, reasons map[string]uint64, took time.Duration)) []InferenceCounter {
	targets := s.targets(now, w, record)
	if len(targets) > 0 {
		timeout := min(s.cfg.Timeout, s.interval/2)
		sctx, cancel := context.WithTimeout(ctx, timeout)
		results := s.scraper.Scrape(sctx, targets)
		cancel()
		for _, r := range results {
			s.add(now, r, record)
		}
	}
	for k, v := range s.totals {
		if now.Sub(v.seen) > s.retention {
			delete(s.totals, k)
		}
	}
	out := make([]InferenceCounter, 0, len(s.totals))
	for k, v := range s.totals {
		out = append(out, InferenceCounter{Key: k.key, Server: k.server, Kind: k.kind, FinishedReason: k.reason, Value: v.v})
	}
	slices.SortFunc(out, func(a, b InferenceCounter) int {
		if c := a.Key.Compare(b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Server+"\x00"+a.Kind+"\x00"+a.FinishedReason, b.Server+"\x00"+b.Kind+"\x00"+b.FinishedReason)
	})
	return out
}

// add folds one target's totals into the workload's series.
func (s *inferenceSource) add(now time.Time, r scrape.Result, record func(string, string, error, map[string]uint64, time.Duration)) {
	id := r.Target.ID
	prevErrs := s.prevErrs[id]
	reasons := map[string]uint64{}
	for reason, n := range r.Errors {
		if n > prevErrs[reason] {
			reasons[reason] = n - prevErrs[reason]
		}
	}
	s.prevErrs[id] = r.Errors
	record(SourceScrape, id, r.Err, reasons, r.Duration)
	key, _ := r.Target.Workload.(attribution.Key)
	server := string(r.Server)
	bump := func(model, kind, reason string, v float64) {
		pk := prevKey{id, model, kind, reason}
		p, ok := s.prev[pk]
		d := v
		if ok && v >= p {
			d = v - p
		}
		s.prev[pk] = v
		sk := inferSeries{key: key, server: server, kind: kind, reason: reason}
		cur := s.totals[sk]
		if cur == nil {
			cur = &inferValue{}
			s.totals[sk] = cur
		}
		cur.v += d
		cur.seen = now
	}
	for _, m := range r.Models {
		for reason, v := range m.Requests {
			bump(m.Model, InferenceRequests, reason, v)
		}
		if m.HasInputTokens {
			bump(m.Model, InferenceInputTokens, "", m.InputTokens)
		}
		if m.HasOutputTokens {
			bump(m.Model, InferenceOutputTokens, "", m.OutputTokens)
		}
	}
}

// targets lists this tick's targets: the static ones and the pods on this
// node that opt in by annotation, each tied to its workload.
func (s *inferenceSource) targets(now time.Time, w *workloadSource, record func(string, string, error, map[string]uint64, time.Duration)) []scrape.Target {
	var out []scrape.Target
	for _, tc := range s.cfg.Targets {
		t, err := tc.Target()
		if err != nil {
			record(SourceScrape, tc.URL, err, map[string]uint64{"bad_target": 1}, 0)
			continue
		}
		if t.ID == "" {
			t.ID = t.URL
		}
		t.Workload = s.staticKey(now, tc, t, w)
		out = append(out, t)
	}
	if w.pods != nil && (s.cfg.PodAnnotations == nil || *s.cfg.PodAnnotations) {
		for _, p := range w.pods.Pods() {
			if !p.Deleted.IsZero() || p.Phase != "Running" {
				continue
			}
			t, ok, err := scrape.PodTarget(p.Namespace, p.Name, p.IP, p.Annotations)
			if !ok {
				continue
			}
			if err != nil {
				record(SourceScrape, "pod/"+p.Namespace+"/"+p.Name, err, map[string]uint64{"bad_target": 1}, 0)
				continue
			}
			t.Workload = w.matcher.PodKey(p, podContainer(p))
			out = append(out, t)
		}
	}
	return out
}

// podContainer is the container whose server a pod's annotations describe.
func podContainer(p *workload.PodMeta) string {
	if c := p.Annotations[AnnotationContainer]; c != "" {
		return c
	}
	var regular []string
	for _, c := range p.Containers {
		if !c.Init && !c.Ephemeral {
			regular = append(regular, c.Name)
		}
	}
	if len(regular) > 0 {
		return regular[0]
	}
	return ""
}

// staticKey resolves a static target's workload from its hint: a pod, a
// PID, a local port, or, for a loopback URL, the process listening on it.
func (s *inferenceSource) staticKey(now time.Time, tc scrape.TargetConfig, t scrape.Target, w *workloadSource) attribution.Key {
	h := tc.Workload
	switch {
	case h.Pod != "":
		if w.pods != nil {
			if p, ok := w.pods.PodByName(h.Namespace, h.Pod); ok {
				return w.matcher.PodKey(p, podContainer(p))
			}
		}
		return attribution.Key{Namespace: h.Namespace, Pod: h.Pod}
	case h.PID > 0:
		return w.pidKeys[h.PID]
	}
	port := h.Port
	if port == 0 {
		if u, err := url.Parse(t.URL); err == nil {
			if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
				port, _ = strconv.Atoi(u.Port())
			}
		}
	}
	if port == 0 {
		return attribution.Key{}
	}
	// Walking every process's fds is dear: look a port up once a minute.
	pp, ok := s.ports[port]
	if !ok || now.Sub(pp.at) > time.Minute {
		pids, _ := scrape.ListeningPIDs(s.procRoot, port)
		pp = portPIDs{pids: pids, at: now}
		s.ports[port] = pp
	}
	for _, pid := range pp.pids {
		if k, ok := w.pidKeys[pid]; ok {
			return k
		}
	}
	return attribution.Key{}
}
