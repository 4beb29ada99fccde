package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/inferensys/aiwatt/carbon"
)

// carbonBases are the bases a zone can serve, in exposition order.
var carbonBases = []carbon.Basis{carbon.BasisLocation, carbon.BasisMarket, carbon.BasisMarginal}

// cacheSkew is how far past the service's clock a client's "at" may lie and
// still be answered from the refreshed value (clocks of nodes differ).
const cacheSkew = time.Minute

// carbonService refreshes the intensity of every zone on a clock and serves
// it from memory: as metrics, and through the JSON API. Values for other
// times are asked of the zone's chain, whose per-link cache and back-off keep
// upstream calls rare.
type carbonService struct {
	zones  []*carbonZone
	byName map[string]*carbonZone // lower-cased zone name
	clock  carbon.Clock
	logger *slog.Logger

	mu        sync.RWMutex
	readings  map[readingKey]carbonReading
	refreshed time.Time // when the last complete refresh started; zero before
}

type readingKey struct {
	zone  string
	basis carbon.Basis
}

// carbonReading is the outcome of the latest refresh of one zone and basis.
type carbonReading struct {
	in  carbon.Intensity
	err error     // non-nil: no usable value at that refresh
	at  time.Time // the time the refresh asked for
}

func newCarbonService(zones []*carbonZone, clock carbon.Clock, logger *slog.Logger) *carbonService {
	if clock == nil {
		clock = carbon.SystemClock
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &carbonService{zones: zones, byName: map[string]*carbonZone{}, clock: clock, logger: logger,
		readings: map[readingKey]carbonReading{}}
	for _, z := range zones {
		s.byName[strings.ToLower(z.name)] = z
	}
	return s
}

// zone returns the served zone named name (case-insensitive), or nil.
func (s *carbonService) zone(name string) *carbonZone { return s.byName[strings.ToLower(name)] }

// zoneNames lists the served zones in configuration order.
func (s *carbonService) zoneNames() []string {
	out := make([]string, len(s.zones))
	for i, z := range s.zones {
		out[i] = z.name
	}
	return out
}

// Run refreshes every zone now and then every interval, until ctx is done.
// It returns when ctx is cancelled.
func (s *carbonService) Run(ctx context.Context, interval time.Duration) {
	s.refresh(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx)
		}
	}
}

// refresh asks every zone's chains for the value at the current time, zones
// in parallel.
func (s *carbonService) refresh(ctx context.Context) {
	now := s.clock.Now()
	var wg sync.WaitGroup
	for _, z := range s.zones {
		wg.Go(func() { s.refreshZone(ctx, z, now) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	s.refreshed = now
	s.mu.Unlock()
}

func (s *carbonService) refreshZone(ctx context.Context, z *carbonZone, now time.Time) {
	for _, b := range carbonBases {
		if !z.serves(b) {
			continue
		}
		in, err := s.ask(ctx, z, b, now)
		if ctx.Err() != nil {
			return // shutting down: keep the last readings
		}
		s.store(z.name, b, carbonReading{in: in, err: err, at: now})
	}
}

// ask walks the zone's chain for basis b at at. Market values derive from
// the location value and the zone's market instruments.
func (s *carbonService) ask(ctx context.Context, z *carbonZone, b carbon.Basis, at time.Time) (carbon.Intensity, error) {
	switch b {
	case carbon.BasisLocation:
		return z.location.Intensity(ctx, z.name, at)
	case carbon.BasisMarginal:
		return z.marginal.Intensity(ctx, z.name, at)
	}
	loc, err := z.location.Intensity(ctx, z.name, at)
	if err != nil {
		return carbon.Intensity{}, err
	}
	return z.market.Intensity(loc)
}

// store keeps a reading and logs when a zone loses or regains its value.
func (s *carbonService) store(zone string, b carbon.Basis, r carbonReading) {
	k := readingKey{zone, b}
	s.mu.Lock()
	prev, had := s.readings[k]
	s.readings[k] = r
	s.mu.Unlock()
	switch {
	case r.err != nil && (!had || prev.err == nil):
		s.logger.Warn("no usable carbon intensity", "zone", zone, "basis", b, "err", r.err)
	case r.err == nil && had && prev.err != nil:
		s.logger.Info("carbon intensity available again", "zone", zone, "basis", b, "provider", r.in.Provider)
	case r.err == nil && (!had || prev.in.Provider != r.in.Provider):
		s.logger.Info("carbon intensity source", "zone", zone, "basis", b, "provider", r.in.Provider,
			"g_co2e_per_kwh", float64(r.in.Value), "skipped", len(r.in.Provenance.Skipped))
	}
	if r.err == nil {
		s.logger.Debug("carbon intensity refreshed", "zone", zone, "basis", b, "value", r.in.String())
	}
}

// ready reports whether the first refresh has completed.
func (s *carbonService) ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.refreshed.IsZero()
}

// lookupError is a failed lookup with its HTTP status.
type lookupError struct {
	status  int
	msg     string
	skipped []carbon.Skip
}

func (e *lookupError) Error() string {
	if len(e.skipped) == 0 {
		return e.msg
	}
	parts := make([]string, len(e.skipped))
	for i, s := range e.skipped {
		parts[i] = s.String()
	}
	return e.msg + ": " + strings.Join(parts, "; ")
}

// lookup answers a query for zone and basis at at (at is zero for "now").
// The refreshed value answers when at is zero, when at lies between that
// refresh and now (+cacheSkew), or when the value's window contains at and
// no link was skipped for it (the chain would give the same answer). Other
// times are asked of the chain.
func (s *carbonService) lookup(ctx context.Context, zoneName string, b carbon.Basis, at time.Time) (carbon.IntensityResponse, error) {
	z := s.zone(zoneName)
	if z == nil {
		return carbon.IntensityResponse{}, &lookupError{status: http.StatusNotFound,
			msg: fmt.Sprintf("zone %q is not configured; configured zones: %s", zoneName, strings.Join(s.zoneNames(), ", "))}
	}
	if !z.serves(b) {
		what := map[carbon.Basis]string{carbon.BasisMarket: "no market instruments (market:)", carbon.BasisMarginal: "no marginal provider (marginal:)"}[b]
		return carbon.IntensityResponse{}, &lookupError{status: http.StatusNotFound,
			msg: fmt.Sprintf("zone %s has %s configured", z.name, what)}
	}
	now := s.clock.Now()
	s.mu.RLock()
	r, ok := s.readings[readingKey{z.name, b}]
	s.mu.RUnlock()
	if ok && r.err == nil {
		if at.IsZero() {
			return response(z.name, now, r.in, &r.at), nil
		}
		if (!at.Before(r.at) && !at.After(now.Add(cacheSkew))) ||
			(r.in.Contains(at) && len(r.in.Provenance.Skipped) == 0) {
			return response(z.name, at, r.in, &r.at), nil
		}
	}
	if at.IsZero() {
		at = now
	}
	in, err := s.ask(ctx, z, b, at)
	if err != nil {
		var ce *carbon.ChainError
		switch {
		case errors.As(err, &ce):
			return carbon.IntensityResponse{}, &lookupError{status: http.StatusServiceUnavailable,
				msg: fmt.Sprintf("no provider has a usable %s intensity for zone %s at %s", b, z.name, at.UTC().Format(time.RFC3339)), skipped: ce.Skipped}
		case ctx.Err() != nil:
			return carbon.IntensityResponse{}, &lookupError{status: http.StatusServiceUnavailable, msg: "request cancelled: " + ctx.Err().Error()}
		}
		return carbon.IntensityResponse{}, &lookupError{status: http.StatusInternalServerError, msg: err.Error()}
	}
	return response(z.name, at, in, nil), nil
}

func response(zone string, at time.Time, in carbon.Intensity, refreshed *time.Time) carbon.IntensityResponse {
	resp := carbon.IntensityResponse{Zone: zone, At: at.UTC(), AgeSeconds: max(0, at.Sub(in.ValidFrom).Seconds()), Intensity: in}
	if refreshed != nil {
		resp.Cached, resp.RefreshedAt = true, refreshed.UTC()
	}
	return resp
}

// serveIntensity is GET /api/v1/intensity?zone=Z[&at=RFC3339][&basis=B].
func (s *carbonService) serveIntensity(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeAPIError(w, &lookupError{status: http.StatusMethodNotAllowed, msg: "use GET"}, "")
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "zone" && k != "at" && k != "basis" {
			writeAPIError(w, &lookupError{status: http.StatusBadRequest, msg: fmt.Sprintf("unknown parameter %q; want zone, at, basis", k)}, "")
			return
		}
	}
	zone := strings.TrimSpace(q.Get("zone"))
	if zone == "" {
		writeAPIError(w, &lookupError{status: http.StatusBadRequest, msg: "zone is required, e.g. ?zone=" + url.QueryEscape(s.zones[0].name)}, "")
		return
	}
	b := carbon.Basis(q.Get("basis"))
	if b == "" {
		b = carbon.BasisLocation
	}
	if !b.Valid() {
		writeAPIError(w, &lookupError{status: http.StatusBadRequest, msg: fmt.Sprintf("basis %q: want location, market or marginal", q.Get("basis"))}, zone)
		return
	}
	var at time.Time
	if v := q.Get("at"); v != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, v); err != nil {
			writeAPIError(w, &lookupError{status: http.StatusBadRequest, msg: fmt.Sprintf("at %q: want an RFC 3339 time such as 2024-03-06T19:20:00Z", v)}, zone)
			return
		}
	}
	resp, err := s.lookup(r.Context(), zone, b, at)
	if err != nil {
		writeAPIError(w, err, zone)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

func writeAPIError(w http.ResponseWriter, err error, zone string) {
	body := carbon.IntensityErrorResponse{Error: err.Error(), Zone: zone}
	status := http.StatusInternalServerError
	var le *lookupError
	if errors.As(err, &le) {
		status, body.Error, body.Skipped = le.status, le.msg, le.skipped
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// carbonCollector exposes the refreshed values and the health of every
// chain link. It reads memory only.
type carbonCollector struct {
	svc                      *carbonService
	intensity, age, up, errs *prometheus.Desc
}

var _ prometheus.Collector = (*carbonCollector)(nil)

func newCarbonCollector(svc *carbonService) *carbonCollector {
	return &carbonCollector{
		svc: svc,
		intensity: prometheus.NewDesc("aiwatt_grid_carbon_intensity_grams_per_kwh",
			"Grid carbon intensity of the zone at the last refresh, in grams CO2e per kWh; provider is the provider that answered (after fallbacks).",
			[]string{"zone", "provider", "basis"}, nil),
		age: prometheus.NewDesc("aiwatt_grid_carbon_intensity_age_seconds",
			"Seconds since the start of the validity window of the value in aiwatt_grid_carbon_intensity_grams_per_kwh (hourly sources: 0-3600 when current; annual factors: time since 1 January).",
			[]string{"zone", "provider", "basis"}, nil),
		up: prometheus.NewDesc("aiwatt_source_up",
			"1 when the provider's last call for the zone succeeded with a fresh value, 0 while it fails or is stale; providers not yet asked are absent.",
			[]string{"source", "provider", "zone"}, nil),
		errs: prometheus.NewDesc("aiwatt_source_errors_total",
			"Failed provider calls (including stale and invalid answers) since the service started, by reason.",
			[]string{"source", "provider", "zone", "reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *carbonCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.intensity
	ch <- c.age
	ch <- c.up
	ch <- c.errs
}

// Collect implements prometheus.Collector.
func (c *carbonCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.svc
	now := s.clock.Now()
	s.mu.RLock()
	readings := make(map[readingKey]carbonReading, len(s.readings))
	for k, v := range s.readings {
		readings[k] = v
	}
	s.mu.RUnlock()
	for _, z := range s.zones {
		for _, b := range carbonBases {
			r, ok := readings[readingKey{z.name, b}]
			if !ok || r.err != nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.intensity, prometheus.GaugeValue, float64(r.in.Value), z.name, r.in.Provider, string(b))
			ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, max(0, now.Sub(r.in.ValidFrom).Seconds()), z.name, r.in.Provider, string(b))
		}
		type health struct {
			up     bool
			errors map[string]uint64
		}
		byProvider := map[string]*health{}
		for _, chain := range []*carbon.Chain{z.location, z.marginal} {
			if chain == nil {
				continue
			}
			for _, st := range chain.Status() {
				h := byProvider[st.Provider]
				if h == nil {
					h = &health{up: true, errors: map[string]uint64{}}
					byProvider[st.Provider] = h
				}
				h.up = h.up && st.Up
				for reason, n := range st.Errors {
					h.errors[reason] += n
				}
			}
		}
		for _, p := range sortedKeys(byProvider) {
			h := byProvider[p]
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolValue(h.up), "carbon", p, z.name)
			for _, reason := range sortedKeys(h.errors) {
				ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(h.errors[reason]), "carbon", p, z.name, reason)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// carbonHandlerOptions configure the service's HTTP handler.
type carbonHandlerOptions struct {
	MetricsPath string       // default /metrics
	MaxRequests int          // concurrent scrapes; 0: no limit
	Logger      *slog.Logger // errors of the metrics handler
}

// newCarbonHandler returns the service's handler: the landing page,
// metrics, the JSON API, /-/healthy and /-/ready (200 once the first
// refresh has completed).
func newCarbonHandler(svc *carbonService, o carbonHandlerOptions) (http.Handler, error) {
	if o.MetricsPath == "" {
		o.MetricsPath = "/metrics"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCarbonCollector(svc)); err != nil {
		return nil, fmt.Errorf("register carbon collector: %w", err)
	}
	for _, c := range []prometheus.Collector{
		versioncollector.NewCollector("aiwatt"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register collector: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle(o.MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(o.Logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: o.MaxRequests,
		EnableOpenMetrics:   true,
	}))
	mux.HandleFunc(carbon.IntensityAPIPath, svc.serveIntensity)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "OK") })
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !svc.ready() {
			http.Error(w, "first refresh not finished", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	if o.MetricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "aiwatt carbon",
			Description: "Grid carbon intensity for the cluster, with provenance",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: o.MetricsPath, Text: "Metrics"},
				{Address: carbon.IntensityAPIPath + "?zone=" + url.QueryEscape(svc.zones[0].name), Text: "Intensity of " + svc.zones[0].name},
				{Address: "/-/healthy", Text: "Health"},
			},
		})
		if err != nil {
			return nil, fmt.Errorf("landing page: %w", err)
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}
