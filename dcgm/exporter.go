package dcgm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/internal/gpukit"
	"github.com/inferensys/aiwatt/source"
)

// exporterMinWindow is the shortest window the plausibility ceiling is
// applied over for exporter counters: dcgm-exporter refreshes its values
// every 30s by default, so one change can carry 30s of energy even when the
// previous scrape was moments ago.
const exporterMinWindow = 30 * time.Second

// exporterAccept asks for the classic text exposition.
const exporterAccept = "text/plain;version=0.0.4;q=1,*/*;q=0.1"

type exMethod int

const (
	exMethodNone exMethod = iota
	exMethodCounter
	exMethodPower
)

// exGPU is the state kept for one physical GPU seen in the exporter output.
type exGPU struct {
	info     GPU
	hostname string
	method   exMethod
	counter  gpukit.CounterAcc
	power    gpukit.PowerAcc
	powerW   float64
	limitW   float64
	util     float64
	pods     []PodRef
	present  bool   // in the latest successful scrape
	reported uint64 // total millijoules already handed out as deltas
	invalid  uint64 // invalid values in the latest scrape
}

func (g *exGPU) sample(ok bool) GPUSample {
	total := g.counter.TotalMJ + g.power.TotalMJ
	delta := total - g.reported
	g.reported = total
	s := GPUSample{
		GPU:             g.info,
		Source:          SourceDCGMExporter,
		Method:          MethodEnergyCounter,
		Delta:           source.Millijoules(delta),
		Joules:          gpukit.Joules(total),
		PowerWatts:      g.powerW,
		PowerLimitWatts: g.limitW,
		SMUtil:          g.util,
		Pods:            g.pods,
		Hostname:        g.hostname,
		OK:              ok,
	}
	switch g.method {
	case exMethodPower:
		s.Method = MethodPowerIntegration
	case exMethodNone:
		s.Method = ""
	}
	if !ok {
		s.SMUtil = -1
	}
	return s
}

// exporterBackend scrapes a dcgm-exporter endpoint.
type exporterBackend struct {
	cfg    Config
	url    string
	client *http.Client
	logger *slog.Logger

	mu         gpukit.Lock
	closed     bool
	parser     expfmt.TextParser
	buf        bytes.Buffer
	gpus       map[string]*exGPU
	lastScrape time.Time // of the latest successful scrape
	scraped    bool
	cached     []GPUSample
}

var _ Backend = (*exporterBackend)(nil)

// NewExporterBackend returns a backend that scrapes cfg.ExporterURL with
// client (nil: a private client with the default transport settings). Zero
// cfg fields get their defaults. It does not contact the exporter: a
// missing exporter shows as Sample errors, so the source can come up later.
// A nil logger discards logs.
func NewExporterBackend(cfg Config, client *http.Client, logger *slog.Logger) (Backend, error) {
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(cfg.ExporterURL)
	if err != nil {
		return nil, fmt.Errorf("dcgm-exporter url %q: %w", cfg.ExporterURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dcgm-exporter url %q: want http(s)://host:port/path", cfg.ExporterURL)
	}
	if client == nil {
		var rt http.RoundTripper = http.DefaultTransport
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			rt = t.Clone()
		}
		client = &http.Client{Transport: rt}
	}
	return &exporterBackend{
		cfg:    cfg,
		url:    u.String(),
		client: client,
		logger: logger,
		mu:     gpukit.NewLock(),
		parser: expfmt.NewTextParser(model.UTF8Validation),
		gpus:   make(map[string]*exGPU),
	}, nil
}

// Reconfigure takes a new timeout, body limit, refresh window or URL in
// place and keeps every GPU's baseline (GPUs are known by UUID, whatever
// URL reaches them). It returns false for another backend kind or a URL
// that is not http(s).
func (b *exporterBackend) Reconfigure(cfg Config) bool {
	cfg = cfg.WithDefaults()
	if cfg.Backend == BackendNVML || cfg.Backend == BackendNone || cfg.ExporterURL == "" {
		return false
	}
	u, err := url.Parse(cfg.ExporterURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	_ = b.mu.Acquire(context.Background())
	defer b.mu.Release()
	b.cfg, b.url = cfg, u.String()
	b.scraped = false
	return true
}

// Name returns "dcgm_exporter".
func (b *exporterBackend) Name() string { return NameDCGMExporter }

// Close releases idle connections; Sample fails afterwards.
func (b *exporterBackend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ExporterTimeout)
	defer cancel()
	if err := b.mu.Acquire(ctx); err != nil {
		return fmt.Errorf("dcgm-exporter close: %w", err)
	}
	defer b.mu.Release()
	b.closed = true
	b.client.CloseIdleConnections()
	return nil
}

// Sample scrapes the exporter, unless the previous successful scrape is
// younger than Config.MinRefresh, in which case the previous values are
// returned without a request.
func (b *exporterBackend) Sample(ctx context.Context, now time.Time) (Result, error) {
	if err := b.mu.Acquire(ctx); err != nil {
		return gpukit.CtxResult(err), fmt.Errorf("dcgm-exporter sample: %w", err)
	}
	defer b.mu.Release()
	if b.closed {
		return newResult(0), ErrClosed
	}
	if b.cfg.MinRefresh > 0 && b.scraped {
		if age := now.Sub(b.lastScrape); age >= 0 && age < b.cfg.MinRefresh {
			r := newResult(len(b.cached))
			r.GPUs = append(r.GPUs, b.cached...)
			for i := range r.GPUs {
				r.GPUs[i].Delta = 0 // Handed out with the scrape that read it.
			}
			return r, nil
		}
	}
	r := newResult(len(b.gpus))
	fams, reason, err := b.fetch(ctx)
	if err != nil {
		if reason != "" {
			r.Errors[reason]++
		}
		b.markAllAbsent(&r)
		return r, err
	}
	if err := b.apply(fams, now, &r); err != nil {
		return r, err
	}
	b.scraped, b.lastScrape = true, now
	b.cached = append(b.cached[:0], r.GPUs...)
	return r, nil
}

// fetch GETs and parses the exposition. On failure it returns the error
// reason to count ("" when the caller's context was cancelled).
func (b *exporterBackend) fetch(ctx context.Context) (map[string]*dto.MetricFamily, string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.ExporterTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return nil, ReasonRequestError, fmt.Errorf("dcgm-exporter request %s: %w", b.url, err)
	}
	req.Header.Set("Accept", exporterAccept)
	req.Header.Set("User-Agent", "aiwatt")
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, requestReason(err), fmt.Errorf("dcgm-exporter GET %s: %w", b.url, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, ReasonHTTPStatus, fmt.Errorf("dcgm-exporter GET %s: status %s", b.url, resp.Status)
	}
	b.buf.Reset()
	limit := b.cfg.MaxBodyBytes
	if _, err := b.buf.ReadFrom(io.LimitReader(resp.Body, limit+1)); err != nil {
		return nil, requestReason(err), fmt.Errorf("dcgm-exporter read body %s: %w", b.url, err)
	}
	if int64(b.buf.Len()) > limit {
		return nil, ReasonBodyTooLarge, fmt.Errorf("dcgm-exporter GET %s: body larger than %d bytes", b.url, limit)
	}
	mfs, err := b.parser.TextToMetricFamilies(bytes.NewReader(b.buf.Bytes()))
	if err != nil {
		return nil, ReasonParseError, fmt.Errorf("dcgm-exporter parse %s: %w", b.url, err)
	}
	return mfs, "", nil
}

// requestReason classifies a transport error.
func requestReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ""
	default:
		return ReasonRequestError
	}
}

// markAllAbsent fills r with every known GPU, not read (totals kept). A
// power integration resumes across the gap if it is short (gpukit.MaxPowerGap).
func (b *exporterBackend) markAllAbsent(r *Result) {
	for _, g := range b.gpus {
		r.GPUs = append(r.GPUs, g.sample(false))
	}
	sortSamples(r.GPUs)
}

// apply folds one parsed scrape into the per-GPU state.
func (b *exporterBackend) apply(fams map[string]*dto.MetricFamily, now time.Time, r *Result) error {
	rows := collectGPUs(fams)
	if len(rows) == 0 {
		for _, g := range b.gpus {
			if g.present {
				g.present = false
				r.Errors[ReasonGPULost]++
			}
		}
		b.markAllAbsent(r)
		return fmt.Errorf("%w: dcgm-exporter output at %s has no GPU rows", ErrNoData, b.url)
	}
	read := 0
	for key, row := range rows {
		g := b.gpus[key]
		if g == nil {
			g = &exGPU{util: -1}
			b.gpus[key] = g
			b.logger.Info("dcgm-exporter GPU found", "gpu", row.index, "uuid", row.uuid, "model", row.model)
		}
		if b.applyGPU(g, row, now, r.Errors) {
			read++
		}
		r.GPUs = append(r.GPUs, g.sample(row.readOK))
	}
	for key, g := range b.gpus {
		if _, ok := rows[key]; ok {
			continue
		}
		if g.present {
			b.logger.Warn("GPU missing from dcgm-exporter output, keeping its energy total", "uuid", g.info.UUID)
		}
		g.present = false
		g.power.Unprime()
		r.Errors[ReasonGPULost]++
		r.GPUs = append(r.GPUs, g.sample(false))
	}
	sortSamples(r.GPUs)
	if read == 0 {
		return fmt.Errorf("dcgm-exporter output at %s has no energy or power value for any GPU "+
			"(are DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION or DCGM_FI_DEV_POWER_USAGE in its counters CSV?)", b.url)
	}
	return nil
}

// applyGPU updates g from its rows; it reports whether energy was read.
func (b *exporterBackend) applyGPU(g *exGPU, row *gpuRows, now time.Time, errs map[string]uint64) bool {
	g.present = true
	if g.hostname != "" && row.hostname != "" && g.hostname != row.hostname {
		b.logger.Warn("dcgm-exporter Hostname changed: does the URL reach more than one node?",
			"uuid", row.uuid, "was", g.hostname, "now", row.hostname)
	}
	g.info = GPU{
		Index:   row.index,
		UUID:    row.uuid,
		Model:   firstNonEmpty(row.model, g.info.Model),
		Driver:  firstNonEmpty(row.driver, g.info.Driver),
		MIGMode: MIGModeUnknown,
		MIG:     row.migInstances(),
	}
	if len(g.info.MIG) > 0 {
		g.info.MIGMode = MIGModeEnabled
		g.info.MIGSlices = gpu.SlicesOf(g.info.Model)
	}
	if row.invalid > 0 {
		errs[ReasonInvalidValue] += row.invalid
		b.logger.Warn("invalid GPU value dropped (NaN, negative, infinite or beyond any counter)", "uuid", row.uuid, "values", row.invalid)
	}
	g.hostname = firstNonEmpty(row.hostname, g.hostname)
	g.pods = row.podList()
	switch {
	case row.hasEnforced:
		g.limitW = row.enforced
	case row.hasMgmtLimit:
		g.limitW = row.mgmtLimit
	}
	g.util = -1
	if row.hasUtil {
		g.util = gpukit.ClampUtil(row.util)
	}
	ceiling := gpukit.CeilingWatts(g.limitW)
	if row.hasPower && row.power <= ceiling {
		g.powerW = row.power
	}
	minWindow := max(exporterMinWindow, b.cfg.MinRefresh)
	switch {
	case row.hasEnergy:
		if g.method != exMethodCounter {
			g.counter.Unprime()
			g.method = exMethodCounter
		}
		reset, implausible := g.counter.Update(row.energy, now, ceiling, minWindow)
		if reset {
			errs[ReasonCounterReset]++
			b.logger.Warn("GPU energy counter went backwards (driver reload or GPU reset)", "uuid", row.uuid)
		}
		if implausible {
			errs[ReasonImplausibleDelta]++
			b.logger.Warn("implausible GPU energy step rejected", "uuid", row.uuid, "ceiling_watts", ceiling)
		}
		row.readOK = true
	case row.hasPower:
		if g.method != exMethodPower {
			g.power.Unprime()
			g.counter.Unprime()
			g.method = exMethodPower
		}
		if g.power.Update(uint64(math.Round(row.power*1000)), now, ceiling, gpukit.MaxPowerGap) {
			errs[ReasonImplausibleDelta]++
			b.logger.Warn("implausible GPU power reading rejected", "uuid", row.uuid, "watts", row.power)
		} else {
			row.readOK = true
		}
	default:
		errs[ReasonMissingEnergy]++
	}
	return row.readOK
}

func sortSamples(s []GPUSample) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Index != s[j].Index {
			return s[i].Index < s[j].Index
		}
		return s[i].UUID < s[j].UUID
	})
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
