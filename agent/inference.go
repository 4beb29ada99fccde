package agent

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/agent/attribution"
	"github.com/inferensys/aiwatt/agent/workload"
	"github.com/inferensys/aiwatt/scrape"
)

// Inference counter kinds.
const (
	InferenceRequests     = scrape.KindRequests
	InferenceInputTokens  = scrape.KindInputTokens
	InferenceOutputTokens = scrape.KindOutputTokens
	InferenceInferences   = scrape.KindInferences
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
	// Kind is requests, input_tokens, output_tokens or inferences.
	Kind string
	// FinishedReason is the reason of finished requests (requests only).
	FinishedReason string
	// Value is the monotonic total kept by the agent.
	Value float64
	// Unattributed marks counts dropped because their target's workload
	// could not be resolved (Key is zero; Reason says why).
	Unattributed bool
	// Reason is why an Unattributed count was dropped.
	Reason string
}

// inferenceSource scrapes inference servers and keeps the agent's own
// monotonic totals per workload, so a server restart or a target that moves
// never makes a counter go backwards.
type inferenceSource struct {
	cfg      InferenceConfig
	interval time.Duration
	scraper  *scrape.Scraper
	prevErrs map[string]map[string]uint64
	ledger   *scrape.Ledger[attribution.Key]
	owners   *scrape.PortOwners
}

func newInferenceSource(opts Options, cfg *Config, prev *inferenceSource, logger *slog.Logger) *inferenceSource {
	s := &inferenceSource{
		cfg: cfg.Inference, interval: opts.Interval, prevErrs: map[string]map[string]uint64{},
	}
	if prev != nil {
		s.scraper, s.prevErrs, s.ledger, s.owners = prev.scraper, prev.prevErrs, prev.ledger, prev.owners
	} else {
		s.scraper = scrape.NewScraper(scrape.Options{Timeout: cfg.Inference.Timeout, UserAgent: "aiwatt", Retention: cfg.Attribution.Retention})
		// Counts of a target whose workload is unknown wait three ticks
		// (at least 15 s) for it to be resolved.
		s.ledger = scrape.NewLedger[attribution.Key](scrape.LedgerOptions{Retention: cfg.Attribution.Retention,
			Hold: max(3*opts.Interval, 15*time.Second), Logger: logger})
		s.owners = scrape.NewPortOwners(opts.ProcfsRoot)
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
	for id := range s.prevErrs { // targets gone: forgotten, as the scraper forgets them
		if !slices.ContainsFunc(targets, func(t scrape.Target) bool { return t.ID == id }) {
			delete(s.prevErrs, id)
		}
	}
	s.ledger.Expire(now)
	series, lost := s.ledger.Series(), s.ledger.Unattributed()
	out := make([]InferenceCounter, 0, len(series)+len(lost))
	for _, v := range series {
		out = append(out, InferenceCounter{Key: v.Key, Server: v.Server, Kind: v.Kind, FinishedReason: v.Reason, Value: v.Value})
	}
	for _, v := range lost {
		out = append(out, InferenceCounter{Server: v.Server, Kind: v.Kind, Value: v.Value, Unattributed: true, Reason: v.Reason})
	}
	slices.SortFunc(out, func(a, b InferenceCounter) int {
		if c := a.Key.Compare(b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Server+"\x00"+a.Kind+"\x00"+a.FinishedReason+"\x00"+a.Reason, b.Server+"\x00"+b.Kind+"\x00"+b.FinishedReason+"\x00"+b.Reason)
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
	s.ledger.Add(now, r, key, !key.IsZero()) // an unknown workload is held, never exported empty
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
		k, _ := w.owners.PID(h.PID)
		return k
	case h.Rule != "":
		k, _ := w.owners.Rule(h.Rule)
		return k
	case h.SystemdUnit != "":
		k, _ := w.owners.Unit(h.SystemdUnit)
		return k
	}
	port := h.Port
	if port == 0 {
		port = scrape.LocalPort(t.URL)
	}
	if port == 0 {
		return attribution.Key{}
	}
	// The owner is looked up again when the cached one is gone or was
	// never found (a restart, a late start), and once a minute otherwise.
	for _, pid := range s.owners.Owners(now, port, w.owners.Alive) {
		if k, ok := w.owners.PID(pid); ok && !k.IsZero() {
			return k
		}
	}
	return attribution.Key{}
}
