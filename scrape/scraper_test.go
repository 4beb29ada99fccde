package scrape

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// hangServer blocks every request until the test ends.
func hangServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for handlers
	return srv
}

// bigServer streams size bytes of valid exposition, chunked (no
// Content-Length), or with Content-Length when withLength.
func bigServer(t *testing.T, size int, withLength bool) *httptest.Server {
	t.Helper()
	line := []byte("vllm:num_requests_running{model_name=\"m\"} 1\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if withLength {
			w.Header().Set("Content-Length", fmt.Sprint(size/len(line)*len(line)))
		}
		for n := 0; n+len(line) <= size; n += len(line) {
			if _, err := w.Write(line); err != nil {
				return // the scraper hung up
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestIsolation: 50 targets, one hangs, one sends 10 MiB. The other 48
// results arrive within the tick deadline with exact totals; the hanging one
// is a timeout and the big one body_too_large, in the same tick.
func TestIsolation(t *testing.T) {
	const (
		n        = 50
		deadline = 2 * time.Second
	)
	capture := readFixture(t, "vllm_v0engine_full_dump_qwen3_0.6b.prom")
	var good []*counterServer
	targets := make([]Target, n)
	hang, big := 17, 33
	for i := range targets {
		switch i {
		case hang:
			targets[i] = Target{ID: "hang", URL: hangServer(t).URL + "/metrics"}
		case big:
			targets[i] = Target{ID: "big", URL: bigServer(t, 10<<20, false).URL + "/metrics"}
		default:
			cs := newCounterServer(t, capture, 5)
			good = append(good, cs)
			targets[i] = Target{ID: fmt.Sprint("good-", i), URL: cs.URL + "/metrics"}
		}
	}
	s := NewScraper(Options{Concurrency: 8}) // fewer workers than targets
	for round := 0; round < 2; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		results := s.Scrape(ctx, targets)
		took := time.Since(start)
		cancel()
		if took > deadline+time.Second {
			t.Fatalf("round %d: Scrape took %s, deadline %s", round, took, deadline)
		}
		for i, r := range results {
			switch i {
			case hang:
				if r.Up || r.Reason != ErrReasonTimeout || r.Err == nil {
					t.Errorf("round %d hang: up=%v reason=%q err=%v", round, r.Up, r.Reason, r.Err)
				}
			case big:
				if r.Up || r.Reason != ErrReasonBodyTooLarge {
					t.Errorf("round %d big: up=%v reason=%q err=%v", round, r.Up, r.Reason, r.Err)
				}
			default:
				m, _ := modelByName(r.Models, "Qwen/Qwen3-0.6B")
				want := float64(round) * 5
				if !r.Up || r.Duration > deadline || m.InputTokens != want || m.OutputTokens != want || m.Requests["length"] != want {
					t.Errorf("round %d target %d: up=%v reason=%q duration=%s model=%+v", round, i, r.Up, r.Reason, r.Duration, m)
				}
			}
		}
		// Each result counts its own scrape's timeout: a delta, never the total so far.
		if got := results[hang].Errors[ErrReasonTimeout]; got != 1 {
			t.Errorf("round %d: hang timeouts in this scrape %d, want 1", round, got)
		}
		for _, cs := range good {
			cs.advance()
		}
	}
}

// A target's own timeout ends its scrape without waiting for the tick.
func TestPerTargetTimeout(t *testing.T) {
	ok := newStaticServer(t, `vllm:prompt_tokens_total{model_name="m"} 1`+"\n")
	targets := []Target{
		{URL: hangServer(t).URL, Timeout: 50 * time.Millisecond},
		{URL: ok.URL},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	res := NewScraper(Options{}).Scrape(ctx, targets)
	if time.Since(start) > 20*time.Second {
		t.Fatalf("waited for the tick deadline")
	}
	if res[0].Reason != ErrReasonTimeout || res[0].Up || !res[1].Up {
		t.Fatalf("results: %+v / %+v", res[0], res[1])
	}
}

func TestScrapeFailures(t *testing.T) {
	status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer status.Close()
	html := newStaticServer(t, "<html>\n<body>not metrics</body>\n")
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	lengthy := bigServer(t, 2<<20, true)
	small := newStaticServer(t, "vllm:prompt_tokens_total{model_name=\"m\"} 1\n")

	cases := []struct {
		target Target
		reason string
	}{
		{Target{URL: status.URL}, ErrReasonHTTPStatus},
		{Target{URL: html.URL}, ErrReasonParse},
		{Target{URL: closedURL}, ErrReasonConnection},
		{Target{URL: lengthy.URL, BodyLimit: 1 << 20}, ErrReasonBodyTooLarge},
		{Target{URL: "ftp://example.invalid/metrics"}, ErrReasonBadTarget},
		{Target{URL: small.URL, BodyLimit: 10}, ErrReasonBodyTooLarge},
	}
	s := NewScraper(Options{})
	var targets []Target
	for i, c := range cases {
		c.target.ID = fmt.Sprint(i)
		targets = append(targets, c.target)
	}
	for i, r := range tick(t, s, targets) {
		if r.Up || r.Reason != cases[i].reason || r.Err == nil || r.Errors[cases[i].reason] != 1 {
			t.Errorf("case %d: up=%v reason=%q err=%v errors=%v, want %s", i, r.Up, r.Reason, r.Err, r.Errors, cases[i].reason)
		}
		if r.Err != nil && !strings.Contains(r.Err.Error(), "scrape") {
			t.Errorf("case %d: error lacks context: %v", i, r.Err)
		}
	}
}

func TestTargetsLifecycle(t *testing.T) {
	cs := newCounterServer(t, readFixture(t, "vllm_v0engine_full_dump_qwen3_0.6b.prom"), 1)
	s := NewScraper(Options{})
	a := Target{ID: "a", URL: cs.URL}
	input := func(r Result) float64 {
		m, _ := modelByName(r.Models, "Qwen/Qwen3-0.6B")
		return m.InputTokens
	}
	tick(t, s, []Target{a})
	cs.advance()
	if r := tick(t, s, []Target{a})[0]; input(r) != 1 || r.Server != ServerVLLM {
		t.Fatalf("a: %+v", r)
	}
	// A duplicate ID in one tick is refused, the first one still counts.
	res := tick(t, s, []Target{a, a})
	if !res[0].Up || res[1].Reason != ErrReasonBadTarget {
		t.Fatalf("duplicate: %+v / %+v", res[0], res[1])
	}
	// A target left out of a tick is forgotten: it comes back as a new baseline.
	tick(t, s, nil)
	cs.advance()
	if r := tick(t, s, []Target{a})[0]; input(r) != 0 {
		t.Fatalf("forgotten target kept totals: %v", input(r))
	}
	// Changing the URL or server of an ID starts afresh too.
	cs.advance()
	if r := tick(t, s, []Target{a})[0]; input(r) != 1 {
		t.Fatalf("a: %v", input(r))
	}
	b := a
	b.Server = ServerVLLM
	if r := tick(t, s, []Target{b})[0]; input(r) != 0 {
		t.Fatalf("server change kept totals: %v", input(r))
	}
	s.Forget("a")
	cs.advance()
	if r := tick(t, s, []Target{b})[0]; input(r) != 0 {
		t.Fatalf("Forget kept totals: %v", input(r))
	}
	c := b
	c.Model = "renamed"
	cs.advance()
	r := tick(t, s, []Target{c})[0]
	if m, ok := modelByName(r.Models, "renamed"); len(r.Models) != 1 || !ok || m.InputTokens != 0 {
		t.Fatalf("model change kept the old model's totals: %+v", r.Models)
	}
}

// A failed scrape keeps the totals; the next good one carries the increase.
func TestDownKeepsTotals(t *testing.T) {
	body := func(v int) string { return fmt.Sprintf("vllm:prompt_tokens_total{model_name=\"m\"} %d\n", v) }
	srv := newStaticServer(t, body(10))
	s := NewScraper(Options{})
	targets := []Target{{URL: srv.URL}}
	tick(t, s, targets)
	srv.set(body(15))
	tick(t, s, targets)
	srv.set("garbage {\n")
	r := tick(t, s, targets)[0]
	m, _ := modelByName(r.Models, "m")
	if r.Up || r.Reason != ErrReasonParse || m.InputTokens != 5 || r.Server != ServerVLLM {
		t.Fatalf("down: %+v", r)
	}
	srv.set(body(40))
	r = tick(t, s, targets)[0]
	m, _ = modelByName(r.Models, "m")
	if !r.Up || m.InputTokens != 30 {
		t.Fatalf("recovered: %+v", r)
	}
}

// The detected server of an auto target stays fixed.
func TestDetectionLocked(t *testing.T) {
	srv := newStaticServer(t, `vllm:prompt_tokens_total{model="m"} 1`+"\n")
	s := NewScraper(Options{})
	targets := []Target{{URL: srv.URL}}
	if r := tick(t, s, targets)[0]; r.Server != ServerVLLM {
		t.Fatalf("first: %s", r.Server)
	}
	srv.set(`vllm:prompt_tokens_total{model="m"} 5` + "\nnv_inference_count{model=\"m\"} 3\n")
	r := tick(t, s, targets)[0]
	m, _ := modelByName(r.Models, "m")
	if r.Server != ServerVLLM || m.InputTokens != 4 || m.HasInferences {
		t.Fatalf("second: %s %+v", r.Server, m)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := NewScraper(Options{}).Scrape(ctx, []Target{{URL: hangServer(t).URL}})[0]
	if r.Up || r.Reason != ErrReasonCanceled {
		t.Fatalf("%+v", r)
	}
}
