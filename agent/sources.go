package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/source"
	"github.com/inferensys/aiwatt/workload"
)

// The adapters below wrap the workload discovery, the kubelet's
// pod-resources and the carbon calculator as sources, so the tick runs them
// like the hardware: concurrently, under its one deadline.

// scanSource is the process scan (/proc).
type scanSource struct{ scanner *workload.Scanner }

// Name implements source.Source.
func (s scanSource) Name() string { return SourceProcfs }

// Sample implements source.Source; the scan is the detail.
func (s scanSource) Sample(context.Context, time.Time) (source.Reading, error) {
	scan, err := s.scanner.Scan()
	if err != nil {
		return source.Reading{Errors: source.Errors{source.ReasonReadError: 1}}, fmt.Errorf("scan processes: %w", err)
	}
	var skipErr error
	if scan.Err != nil && len(scan.Processes) == 0 {
		skipErr = scan.Err
	}
	return source.Reading{Errors: source.Errors(scan.Skipped), Detail: scan}, skipErr
}

// kubeSource is the health of the pod watcher: down until the first list.
type kubeSource struct{ pods *workload.PodWatcher }

// Name implements source.Source.
func (s kubeSource) Name() string { return SourceKubernetes }

// quick: the watcher runs on its own; a Sample only reads a flag.
func (s kubeSource) quick() bool { return true }

// Sample implements source.Source.
func (s kubeSource) Sample(context.Context, time.Time) (source.Reading, error) {
	if !s.pods.Synced() {
		return source.Reading{}, errors.New("pods not listed yet")
	}
	return source.Reading{}, nil
}

// podResSource lists the kubelet's GPU allocations.
type podResSource struct{ client *workload.PodResources }

// Name implements source.Source.
func (s podResSource) Name() string { return SourcePodResources }

// Sample implements source.Source; the allocations are the detail.
func (s podResSource) Sample(ctx context.Context, _ time.Time) (source.Reading, error) {
	allocs, err := s.client.List(ctx, "nvidia.com/")
	if err != nil {
		reason := source.ReasonOf(err)
		switch {
		case errors.Is(err, workload.ErrMessageTooLarge):
			reason = source.ReasonBodyTooLarge
		case errors.Is(err, workload.ErrMalformed):
			reason = source.ReasonParseError
		}
		return source.Reading{Errors: source.Errors{reason: 1}}, err
	}
	return source.Reading{Detail: allocs}, nil
}

// carbonSource looks up the grid intensity over each tick: the emissions of
// 1 kWh over the time since its previous sample, which the attribution step
// scales by each workload's energy. Its providers' failures are targets.
type carbonSource struct {
	cfg    *carbon.Config // as configured, to tell whether a reload changes it
	calc   *carbon.Calculator
	chain  *carbon.Chain
	mcalc  *carbon.Calculator // marginal emissions; nil unless carbon.marginal is configured
	mchain *carbon.Chain
	zone   string // the grid zone asked
	err    error  // why there is no calculator

	mu       sync.Mutex
	last     time.Time
	prevErrs map[string]map[string]uint64 // provider → reason → count, as last seen
}

func newCarbonSource(opts Options, cfg *Config, logger *slog.Logger) (*carbonSource, error) {
	s := &carbonSource{cfg: cfg.Carbon, prevErrs: map[string]map[string]uint64{}}
	if cfg.Carbon == nil || cfg.Carbon.Zone == "" {
		s.err = fmt.Errorf("%w: no grid zone (carbon.zone), so CO2e is not computed", errNotConfigured)
		return s, nil
	}
	ccfg := *cfg.Carbon
	if ccfg.Zone == ZoneFromNode {
		zone, err := nodeZone(opts)
		if err != nil {
			s.err = fmt.Errorf("carbon.zone: node: %w", err)
			return s, nil
		}
		logger.Info("grid zone from the node's cloud region", "zone", zone)
		ccfg.Zone = zone
	}
	src, err := ccfg.Build(carbon.BuildOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	if s.calc, err = src.Calculator(); err != nil {
		return nil, err
	}
	if s.mcalc, err = src.MarginalCalculator(); err != nil {
		return nil, err
	}
	s.chain, s.mchain, s.zone = src.Location, src.MarginalChain, ccfg.Zone
	return s, nil
}

// carbonTick is a carbon sample's detail: the emissions of 1 kWh over the
// tick at the location (and market) intensity, and at the marginal one;
// nil where that lookup failed.
type carbonTick struct {
	location, marginal *carbon.Emissions
}

// Name implements source.Source.
func (s *carbonSource) Name() string { return SourceCarbon }

// continueFrom starts the next interval where prev's last one ended, so a
// reload that changes the carbon settings leaves no CO2e gap.
func (s *carbonSource) continueFrom(prev *carbonSource) {
	prev.mu.Lock()
	last := prev.last
	prev.mu.Unlock()
	s.mu.Lock()
	s.last = last
	s.mu.Unlock()
}

// quick reports a carbon source that is not configured.
func (s *carbonSource) quick() bool { return s.calc == nil }

// Sample implements source.Source: the emissions of 1 kWh since the
// previous sample are the detail (none on the first sample), at the
// location intensity and, when configured, at the marginal one. Both
// lookups run under ctx, the tick's deadline; the marginal chain bounds its
// provider to half the time left. A failed location lookup fails the
// sample; a failed marginal lookup leaves a marginal gap and is counted
// under its provider's target only.
func (s *carbonSource) Sample(ctx context.Context, now time.Time) (source.Reading, error) {
	if s.calc == nil {
		return source.Reading{}, s.err
	}
	s.mu.Lock()
	from := s.last
	s.last = now
	s.mu.Unlock()
	if from.IsZero() || !now.After(from) {
		return source.Reading{}, nil
	}
	iv := carbon.Interval{Start: from, End: now, Energy: 3.6e6}
	var d carbonTick
	em, err := s.calc.Emissions(ctx, iv)
	if err == nil {
		d.location = &em
	}
	if s.mcalc != nil {
		if m, merr := s.mcalc.Emissions(ctx, iv); merr == nil {
			d.marginal = &m
		}
	}
	r := source.Reading{Targets: s.providerErrors(), Detail: &d}
	if err != nil {
		r.Errors = source.Errors{source.ReasonLookupError: 1}
		if errors.Is(err, context.DeadlineExceeded) {
			r.Errors = source.Errors{source.ReasonTimeout: 1}
		}
		return r, err
	}
	return r, nil
}

// providerErrors reports, as targets, every provider of the chains
// (location, then marginal) that has failed since the agent started: its new
// errors by reason, and whether it answers now. Providers that never failed
// add no series.
func (s *carbonSource) providerErrors() []source.Target {
	if s.chain == nil {
		return nil
	}
	byProvider := map[string]*source.Target{}
	var order []string
	for c, chain := range []*carbon.Chain{s.chain, s.mchain} {
		if chain == nil {
			continue
		}
		for _, l := range chain.Status() {
			if len(l.Errors) == 0 {
				continue
			}
			t := byProvider[l.Provider]
			if t == nil {
				t = &source.Target{Name: l.Provider}
				byProvider[l.Provider] = t
				order = append(order, l.Provider)
			}
			if !l.Up && t.Err == nil {
				t.Err = fmt.Errorf("carbon intensity provider %s (zone %s): %s", l.Provider, l.Zone, l.Reason)
			}
			key := fmt.Sprint(c) + "\x00" + l.Provider + "\x00" + l.Zone
			prev := s.prevErrs[key]
			for r, n := range l.Errors {
				t.Errors = t.Errors.Add(carbonReason(r), n-prev[r])
			}
			s.prevErrs[key] = l.Errors
		}
	}
	out := make([]source.Target, 0, len(order))
	for _, p := range order {
		out = append(out, *byProvider[p])
	}
	return out
}

// carbonReason maps the carbon package's error classes onto the shared
// reason vocabulary; classes only carbon providers have keep their names.
func carbonReason(class string) source.Reason {
	switch class {
	case carbon.ReasonParse:
		return source.ReasonParseError
	case carbon.ReasonHTTP:
		return source.ReasonHTTPStatus
	case carbon.ReasonUnreachable:
		return source.ReasonRequestError
	case carbon.ReasonInvalid:
		return source.ReasonInvalidValue
	case carbon.ReasonTimeout:
		return source.ReasonTimeout
	}
	return class // rate_limited, auth, unknown_zone, stale, no_data, other
}
