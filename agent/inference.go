package agent

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/scrape"
	"github.com/inferensys/aiwatt/source"
	"github.com/inferensys/aiwatt/workload"
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

// inferenceSource scrapes inference servers and keeps the agent's own
// monotonic totals per workload, so a server restart or a target that moves
// never makes a counter go backwards. Its targets are prepared by the tick
// before the sources run; their workloads are resolved after the process
// scan of the same tick.
type inferenceSource struct {
	cfg     InferenceConfig
	budget  time.Duration
	scraper *scrape.Scraper

	mu       sync.Mutex      // guards the prepared targets against a late Sample
	targets  []scrape.Target // this tick's targets
	bad      []source.Target // targets that cannot be scraped as given
	prevErrs map[string]map[string]uint64

	static map[string]scrape.TargetConfig  // static targets by ID, to resolve their workload
	ledger *scrape.Ledger[attribution.Key] // the agent's totals; counts of an unknown workload are held, never exported empty
	owners *scrape.PortOwners              // who listens on a port, looked up again when the owner is gone
}

var _ source.Source = (*inferenceSource)(nil)

func newInferenceSource(opts Options, cfg *Config, prev *inferenceSource, logger *slog.Logger) *inferenceSource {
	if prev != nil {
		// One source for the agent's life: its baselines and totals stay,
		// and a scrape still in flight finishes against the same state.
		prev.mu.Lock()
		prev.cfg, prev.static = cfg.Inference, map[string]scrape.TargetConfig{}
		prev.mu.Unlock()
		return prev
	}
	return &inferenceSource{
		cfg: cfg.Inference, budget: budget(opts.Interval),
		prevErrs: map[string]map[string]uint64{}, static: map[string]scrape.TargetConfig{},
		scraper: scrape.NewScraper(scrape.Options{Timeout: cfg.Inference.Timeout, UserAgent: "aiwatt", Retention: cfg.Attribution.Retention}),
		// Counts of a target whose workload is unknown wait three ticks (at
		// least 15 s) for it to be resolved.
		ledger: scrape.NewLedger[attribution.Key](scrape.LedgerOptions{Retention: cfg.Attribution.Retention,
			Hold: max(3*opts.Interval, 15*time.Second), Logger: logger}),
		owners: scrape.NewPortOwners(opts.ProcfsRoot),
	}
}

// Name implements source.Source.
func (s *inferenceSource) Name() string { return SourceScrape }

// quick reports a tick without targets to scrape.
func (s *inferenceSource) quick() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.targets) == 0
}

// targetNames names this tick's targets (see targetLister).
func (s *inferenceSource) targetNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.targets)+len(s.bad))
	for _, t := range s.targets {
		out = append(out, t.ID)
	}
	for _, t := range s.bad {
		out = append(out, t.Name)
	}
	return out
}

// Sample implements source.Source: it scrapes every prepared target once,
// within the scrape timeout and the tick's deadline. The results are the
// detail; each target's health is a target.
func (s *inferenceSource) Sample(ctx context.Context, _ time.Time) (source.Reading, error) {
	s.mu.Lock()
	targets, bad, timeout := s.targets, s.bad, s.cfg.Timeout
	s.mu.Unlock()
	r := source.Reading{Targets: append([]source.Target(nil), bad...)}
	if len(targets) == 0 {
		return r, nil
	}
	// Nine tenths of the budget: a hung server times out inside the scrape,
	// which then reports it per target, just before the tick's deadline.
	sctx, cancel := context.WithTimeout(ctx, min(timeout, s.budget*9/10))
	results := s.scraper.Scrape(sctx, targets)
	cancel()
	s.mu.Lock()
	for _, res := range results {
		id := res.Target.ID
		prevErrs := s.prevErrs[id]
		var reasons source.Errors
		for reason, n := range res.Errors {
			if n > prevErrs[reason] {
				reasons = reasons.Add(scrapeReason(reason), n-prevErrs[reason])
			}
		}
		s.prevErrs[id] = res.Errors
		r.Targets = append(r.Targets, source.Target{Name: id, Err: res.Err, Errors: reasons, Duration: res.Duration})
	}
	for id := range s.prevErrs { // targets gone: forgotten, as the scraper forgets them
		if !slices.ContainsFunc(targets, func(t scrape.Target) bool { return t.ID == id }) {
			delete(s.prevErrs, id)
		}
	}
	s.mu.Unlock()
	r.Detail = results
	return r, nil
}

// prepare lists this tick's targets: the static ones and the pods on this
// node that opt in by annotation (whose workload is known from the pod).
func (s *inferenceSource) prepare(w *workloadSource) {
	var out []scrape.Target
	var bad []source.Target
	for _, tc := range s.cfg.Targets {
		t, err := tc.Target()
		if err != nil {
			bad = append(bad, source.Target{Name: tc.URL, Err: err, Errors: source.Errors{source.ReasonBadTarget: 1}})
			continue
		}
		if t.ID == "" {
			t.ID = t.URL
		}
		s.static[t.ID] = tc
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
				bad = append(bad, source.Target{Name: "pod/" + p.Namespace + "/" + p.Name, Err: err, Errors: source.Errors{source.ReasonBadTarget: 1}})
				continue
			}
			t.Workload = w.matcher.PodKey(p, podContainer(p))
			out = append(out, t)
		}
	}
	s.mu.Lock()
	s.targets, s.bad = out, bad
	s.mu.Unlock()
}

// fold adds the scraped counters to the workloads' totals (results is nil
// when the scrape was late) and returns every series, sorted; counts whose
// workload could not be resolved in time come last, as Unattributed.
func (s *inferenceSource) fold(now time.Time, results []scrape.Result, w *workloadSource) []InferenceCounter {
	for _, r := range results {
		s.add(now, r, w)
	}
	s.ledger.Expire(now)
	series, lost := s.ledger.Series(), s.ledger.Unattributed()
	out := make([]InferenceCounter, 0, len(series)+len(lost))
	for _, v := range series {
		out = append(out, InferenceCounter{Key: Workload(v.Key), Server: v.Server, Kind: v.Kind, FinishedReason: v.Reason, Value: v.Value})
	}
	for _, v := range lost {
		out = append(out, InferenceCounter{Server: v.Server, Kind: v.Kind, Value: v.Value, Unattributed: true, Reason: v.Reason})
	}
	slices.SortFunc(out, func(a, b InferenceCounter) int {
		if c := attribution.Key(a.Key).Compare(attribution.Key(b.Key)); c != 0 {
			return c
		}
		return strings.Compare(a.Server+"\x00"+a.Kind+"\x00"+a.FinishedReason+"\x00"+a.Reason, b.Server+"\x00"+b.Kind+"\x00"+b.FinishedReason+"\x00"+b.Reason)
	})
	return out
}

// add folds one target's totals into the workload's series.
func (s *inferenceSource) add(now time.Time, r scrape.Result, w *workloadSource) {
	key, ok := r.Target.Workload.(attribution.Key)
	if !ok {
		if tc, static := s.static[r.Target.ID]; static {
			key = s.staticKey(now, tc, r.Target, w)
		}
	}
	s.ledger.Add(now, r, key, !key.IsZero()) // an unknown workload is held, never exported empty
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

// scrapeReason maps the scraper's error reasons onto the shared reason
// vocabulary; reasons only a scrape has (duplicate_series, unrecognized)
// keep their names.
func scrapeReason(r string) source.Reason {
	switch r {
	case scrape.ErrReasonCanceled: // the tick's deadline cut the scrape
		return source.ReasonTimeout
	case scrape.ErrReasonConnection:
		return source.ReasonRequestError
	case scrape.ErrReasonRead:
		return source.ReasonReadError
	case scrape.ErrReasonParse, scrape.ErrReasonBadLine:
		return source.ReasonParseError
	case scrape.ErrReasonNaN, scrape.ErrReasonInf, scrape.ErrReasonNegative, scrape.ErrReasonTooLarge:
		return source.ReasonInvalidValue
	}
	return r // timeout, http_status, body_too_large, bad_target are shared already
}
