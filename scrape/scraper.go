package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [Options] and [Target].
const (
	// DefaultTimeout bounds one target's scrape when neither the target nor
	// the Options set one.
	DefaultTimeout = 5 * time.Second
	// DefaultBodyLimit is the largest body read (after decompression); a
	// vLLM exposition of one model is about 16 KiB, Triton with a hundred
	// models a few hundred KiB.
	DefaultBodyLimit int64 = 4 << 20
	// DefaultConcurrency is the most targets scraped at once.
	DefaultConcurrency = 64
)

// acceptHeader asks for the classic text format; OpenMetrics text is read
// too, protobuf is not.
const acceptHeader = "text/plain;version=0.0.4;q=1,text/plain;q=0.5,*/*;q=0.1"

// Target is one inference-server metrics endpoint. The Scraper keeps the
// target's totals under ID.
type Target struct {
	// ID identifies the target across ticks (for example "pod/ns/name:8000");
	// empty means the URL. Totals are kept per ID; an ID whose URL, Server or
	// Model changes starts afresh.
	ID string
	// URL is the full metrics URL, path included.
	URL string
	// Server is the server family; ServerAuto detects it from metric names
	// (once detected it stays fixed for the target). An explicit Server wins.
	Server Server
	// Model, when not empty, is reported as the model of every series of
	// the target, replacing the server's model label. Servers without a
	// model label (TGI, llama.cpp) need it; on a multi-model server (Triton)
	// it merges all models into one.
	Model string
	// Timeout bounds this target's scrape; 0 means Options.Timeout. The
	// tick's context deadline bounds it too.
	Timeout time.Duration
	// BodyLimit is the largest body accepted; 0 means Options.BodyLimit.
	BodyLimit int64
	// Workload is opaque to this package and returned in the Result; the
	// agent puts its workload key here.
	Workload any
}

// Options configures a Scraper. The zero value is usable.
type Options struct {
	// Client performs the requests. Nil: a client with its own transport,
	// no proxy (pod IPs must not go through HTTP_PROXY), no client-wide
	// timeout (the per-target context bounds each request).
	Client *http.Client
	// Timeout is the default per-target timeout (DefaultTimeout if 0).
	Timeout time.Duration
	// BodyLimit is the default body limit (DefaultBodyLimit if 0).
	BodyLimit int64
	// Concurrency is the most scrapes in flight (DefaultConcurrency if 0).
	Concurrency int
	// UserAgent is sent with every request ("aiwatt" if empty).
	UserAgent string
	// Now is the clock used for Result.Duration and for the retention of
	// per-target state (time.Now if nil).
	Now func() time.Time
	// MaxModels is the most distinct models kept per target
	// (DefaultMaxModels if 0); more are folded into OtherModel and counted
	// as ErrReasonModelsFolded, so a server that reports a new model name
	// on every scrape cannot grow the state.
	MaxModels int
	// MaxSeries is the most series remembered per target
	// (DefaultMaxSeries if 0); more are skipped (ErrReasonSeriesCap).
	MaxSeries int
	// Retention is how long a series or model that a target no longer
	// exports is remembered (DefaultRetention if 0).
	Retention time.Duration
}

// Result is one target's outcome in one tick.
type Result struct {
	// Target is the target as given, Workload included.
	Target Target
	// Server is the configured or detected server (ServerAuto: unrecognized).
	Server Server
	// Up is true when the body was fetched and parsed in this tick.
	Up bool
	// Reason is the failure reason when Up is false (ErrReasonTimeout, ...).
	Reason string
	// Err is the failure with context when Up is false.
	Err error
	// Duration is how long the scrape took (to the deadline on timeout).
	Duration time.Duration
	// Models are the monotonic per-model totals since the first successful
	// scrape of the target, sorted by model. A failed scrape leaves them as
	// they were.
	Models []ModelStats
	// GPUEnergy is the server's self-reported GPU energy (Triton), monotonic
	// since first seen. Never add it to aiwatt's own GPU energy.
	GPUEnergy []GPUEnergy
	// Errors counts, since the target was first seen, failed scrapes and
	// skipped lines or samples by reason (the ErrReason constants).
	Errors map[string]uint64
	// Restarts counts server restarts detected (a counter drop or a changed
	// process_start_time_seconds).
	Restarts uint64
}

// Scraper scrapes many targets concurrently, one tick at a time, and keeps
// each target's monotonic totals. It is safe for concurrent use, but ticks
// run one after another.
type Scraper struct {
	client      *http.Client
	timeout     time.Duration
	bodyLimit   int64
	concurrency int
	userAgent   string
	now         func() time.Time
	maxModels   int
	maxSeries   int
	retention   time.Duration

	tick    sync.Mutex // serializes Scrape calls
	mu      sync.Mutex // guards states
	states  map[string]*targetState
	parsers sync.Pool // *lineParser
	buffers sync.Pool // *[]byte, body buffers
}

// targetState is what the Scraper remembers of one target.
type targetState struct {
	mu     sync.Mutex
	url    string // identity: a change starts afresh
	server Server
	model  string
	tr     tracker
	errors map[string]uint64
}

// NewScraper returns a Scraper configured by opts.
func NewScraper(opts Options) *Scraper {
	s := &Scraper{
		client:      opts.Client,
		timeout:     opts.Timeout,
		bodyLimit:   opts.BodyLimit,
		concurrency: opts.Concurrency,
		userAgent:   opts.UserAgent,
		now:         opts.Now,
		maxModels:   opts.MaxModels,
		maxSeries:   opts.MaxSeries,
		retention:   opts.Retention,
		states:      map[string]*targetState{},
	}
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		tr.MaxIdleConnsPerHost = 2
		tr.IdleConnTimeout = 90 * time.Second
		s.client = &http.Client{Transport: tr}
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.bodyLimit <= 0 {
		s.bodyLimit = DefaultBodyLimit
	}
	if s.concurrency <= 0 {
		s.concurrency = DefaultConcurrency
	}
	if s.userAgent == "" {
		s.userAgent = "aiwatt"
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.parsers.New = func() any { return new(lineParser) }
	s.buffers.New = func() any { b := make([]byte, 0, 32<<10); return &b }
	return s
}

// Scrape scrapes every target once and returns one Result per target, in
// order. targets is the complete set: the state of targets not listed is
// forgotten. Scrape returns when every target is done or when ctx is done,
// whichever comes first; a target still running then is reported as
// ErrReasonTimeout (ErrReasonCanceled if ctx was canceled), its request is
// canceled and its late answer is discarded, so one slow server never delays
// the others' results. Give ctx a deadline (the tick deadline).
func (s *Scraper) Scrape(ctx context.Context, targets []Target) []Result {
	s.tick.Lock()
	defer s.tick.Unlock()
	tickCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := s.now()

	states := s.statesFor(targets)
	results := make([]Result, len(targets))
	claimed := make([]atomic.Bool, len(targets))
	done := make(chan struct{}, len(targets))
	sem := make(chan struct{}, s.concurrency)

	remaining := 0
	for i := range targets {
		if states[i] == nil {
			claimed[i].Store(true)
			results[i] = s.failed(targets[i], nil, ErrReasonBadTarget,
				fmt.Errorf("scrape %s: duplicate target ID %q in one tick", targets[i].URL, targets[i].ID), 0)
			continue
		}
		remaining++
		go func(i int) {
			select {
			case sem <- struct{}{}:
			case <-tickCtx.Done():
				return // the collector reports it
			}
			defer func() { <-sem }()
			out := s.fetchAndParse(tickCtx, targets[i], states[i])
			if !claimed[i].CompareAndSwap(false, true) {
				return // reported as timed out; discard the late answer
			}
			results[i] = s.record(targets[i], states[i], out)
			done <- struct{}{}
		}(i)
	}

	for remaining > 0 {
		select {
		case <-done:
			remaining--
			continue
		case <-ctx.Done():
		}
		reason := ErrReasonTimeout
		if errors.Is(ctx.Err(), context.Canceled) {
			reason = ErrReasonCanceled
		}
		took := s.now().Sub(start)
		for i := range targets {
			if claimed[i].CompareAndSwap(false, true) {
				err := fmt.Errorf("scrape %s: tick ended after %s: %w", targets[i].URL, took, ctx.Err())
				results[i] = s.failed(targets[i], states[i], reason, err, took)
				remaining--
			}
		}
		for ; remaining > 0; remaining-- {
			<-done // claimed by a worker: it is only recording
		}
	}
	return results
}

// statesFor returns each target's state (nil for a repeated ID) and
// forgets the states of targets not listed.
func (s *Scraper) statesFor(targets []Target) []*targetState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*targetState, len(targets))
	keep := make(map[string]*targetState, len(targets))
	for i, t := range targets {
		id := t.ID
		if id == "" {
			id = t.URL
		}
		if _, dup := keep[id]; dup {
			continue
		}
		st := s.states[id]
		if st == nil || st.url != t.URL || st.server != t.Server || st.model != t.Model {
			st = &targetState{url: t.URL, server: t.Server, model: t.Model}
			st.tr.maxModels, st.tr.maxSeries, st.tr.retention = s.maxModels, s.maxSeries, s.retention
		}
		keep[id] = st
		out[i] = st
	}
	s.states = keep
	return out
}

// Forget drops the totals of the target with this ID (or URL when the
// target had no ID); its next scrape is a new baseline.
func (s *Scraper) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, id)
}

// outcome is one scrape's result before it is applied to the totals.
type outcome struct {
	e      exposition
	reason string // failure reason; empty on success
	err    error
	took   time.Duration
}

// fetchAndParse performs one scrape without touching the target's totals.
func (s *Scraper) fetchAndParse(ctx context.Context, t Target, st *targetState) outcome {
	start := s.now()
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = s.timeout
	}
	limit := t.BodyLimit
	if limit <= 0 {
		limit = s.bodyLimit
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	bufp := s.buffers.Get().(*[]byte)
	defer s.buffers.Put(bufp)
	body, reason, err := s.fetch(ctx, t.URL, limit, (*bufp)[:0])
	if cap(body) > cap(*bufp) && cap(body) <= maxPooledBuffer {
		*bufp = body[:0] // keep the grown buffer for the next scrape
	}
	if err != nil {
		return outcome{reason: reason, err: err, took: s.now().Sub(start)}
	}
	server := t.Server
	if server == ServerAuto {
		st.mu.Lock()
		server = st.tr.server // a detected server stays fixed
		st.mu.Unlock()
	}
	p := s.parsers.Get().(*lineParser)
	e, err := p.read(body, server, t.Model)
	s.parsers.Put(p)
	if err != nil {
		return outcome{reason: ErrReasonParse, err: fmt.Errorf("scrape %s: %w", t.URL, err), took: s.now().Sub(start)}
	}
	return outcome{e: e, took: s.now().Sub(start)}
}

// fetch GETs url and returns its body, read into buf, refusing bodies over
// limit.
func (s *Scraper) fetch(ctx context.Context, rawURL string, limit int64, buf []byte) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ErrReasonBadTarget, fmt.Errorf("scrape %q: not an http(s) URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, ErrReasonBadTarget, fmt.Errorf("scrape %s: %w", rawURL, err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", s.userAgent)
	if d, ok := ctx.Deadline(); ok {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprintf("%.3f", time.Until(d).Seconds()))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, classify(ctx, err, ErrReasonConnection), fmt.Errorf("scrape %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, ErrReasonHTTPStatus, fmt.Errorf("scrape %s: HTTP status %s", rawURL, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, ErrReasonBodyTooLarge, fmt.Errorf("scrape %s: Content-Length %d exceeds the %d-byte limit", rawURL, resp.ContentLength, limit)
	}
	if n := resp.ContentLength + 1; n > int64(cap(buf)) {
		buf = make([]byte, 0, n)
	}
	body, err := readAllLimited(resp.Body, buf, limit)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, ErrReasonBodyTooLarge, fmt.Errorf("scrape %s: body exceeds the %d-byte limit", rawURL, limit)
		}
		return nil, classify(ctx, err, ErrReasonRead), fmt.Errorf("scrape %s: read body: %w", rawURL, err)
	}
	return body, "", nil
}

var errTooLarge = errors.New("body too large")

// maxPooledBuffer is the largest body buffer kept for reuse.
const maxPooledBuffer = 1 << 20

// readAllLimited reads r to the end into buf; more than limit bytes is
// errTooLarge (one byte past the limit is read to tell).
func readAllLimited(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	lr := io.LimitReader(r, limit+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// classify turns a transport error into a reason, preferring the context's
// verdict: a request cut by its deadline is a timeout whatever the error.
func classify(ctx context.Context, err error, fallback string) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return ErrReasonTimeout
	case errors.Is(ctx.Err(), context.Canceled), errors.Is(err, context.Canceled):
		return ErrReasonCanceled
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrReasonTimeout
	}
	return fallback
}

// record applies a finished scrape to the target's state and builds its Result.
func (s *Scraper) record(t Target, st *targetState, out outcome) Result {
	if out.err != nil {
		return s.failed(t, st, out.reason, out.err, out.took)
	}
	e := &out.e
	st.mu.Lock()
	defer st.mu.Unlock()
	if t.Server == ServerAuto && st.tr.server == ServerAuto && e.server != ServerAuto {
		st.tr.server = e.server
	}
	folded, capped := st.tr.applyAt(e, s.now())
	if folded > 0 {
		st.count(ErrReasonModelsFolded, folded)
	}
	if capped > 0 {
		st.count(ErrReasonSeriesCap, capped)
	}
	for r, n := range e.issues {
		st.count(r, n)
	}
	if e.server == ServerAuto {
		st.count(ErrReasonUnrecognized, 1)
	}
	return s.resultLocked(t, st, e.server, true, "", nil, out.took)
}

// failed records a failed scrape (st may be nil for a bad target).
func (s *Scraper) failed(t Target, st *targetState, reason string, err error, took time.Duration) Result {
	if st == nil {
		return Result{Target: t, Server: t.Server, Reason: reason, Err: err, Duration: took,
			Errors: map[string]uint64{reason: 1}}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.count(reason, 1)
	server := t.Server
	if server == ServerAuto {
		server = st.tr.server
	}
	return s.resultLocked(t, st, server, false, reason, err, took)
}

func (st *targetState) count(reason string, n uint64) {
	if st.errors == nil {
		st.errors = map[string]uint64{}
	}
	st.errors[reason] += n
}

func (s *Scraper) resultLocked(t Target, st *targetState, server Server, up bool, reason string, err error, took time.Duration) Result {
	models, energy := st.tr.totals.stats()
	return Result{
		Target:    t,
		Server:    server,
		Up:        up,
		Reason:    reason,
		Err:       err,
		Duration:  took,
		Models:    models,
		GPUEnergy: energy,
		Errors:    maps.Clone(st.errors),
		Restarts:  st.tr.restarts,
	}
}
