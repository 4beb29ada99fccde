package scrape

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtureDir holds the real inference-server captures.
var fixtureDir = filepath.Join("testdata", "captures")

func readFixture(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	return string(b)
}

// rewriteValues returns text with every sample's value replaced by f(value),
// names and labels untouched. It works on the captures' shape (no
// timestamps: the value is the last space-separated token) and leaves values
// that are not numbers ("-nan") alone. It deliberately does not use the
// package's parser.
func rewriteValues(text string, f func(float64) float64) string {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		j := strings.LastIndexByte(line, ' ')
		if j < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[j+1:], 64)
		if err != nil {
			continue
		}
		lines[i] = line[:j+1] + strconv.FormatFloat(f(v), 'g', -1, 64)
	}
	return strings.Join(lines, "\n")
}

// counterServer serves a capture whose sample values advance: value =
// base + step*delta before a restart, restartValue + step*delta after.
type counterServer struct {
	*httptest.Server
	mu        sync.Mutex
	text      string
	step      int
	delta     float64
	restarted bool
	restartV  float64
	hits      int
}

func newCounterServer(tb testing.TB, text string, delta float64) *counterServer {
	tb.Helper()
	cs := &counterServer{text: text, delta: delta}
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		body := cs.renderLocked()
		cs.hits++
		cs.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(body))
	}))
	tb.Cleanup(cs.Close)
	return cs
}

func (cs *counterServer) renderLocked() string {
	step, delta := float64(cs.step), cs.delta
	if cs.restarted {
		r := cs.restartV
		return rewriteValues(cs.text, func(float64) float64 { return r + step*delta })
	}
	return rewriteValues(cs.text, func(v float64) float64 { return v + step*delta })
}

// advance moves the counters one step.
func (cs *counterServer) advance() {
	cs.mu.Lock()
	cs.step++
	cs.mu.Unlock()
}

// restart makes every counter start again at v (small), step 0.
func (cs *counterServer) restart(v float64) {
	cs.mu.Lock()
	cs.restarted, cs.restartV, cs.step = true, v, 0
	cs.mu.Unlock()
}

// tick runs one Scrape with a generous deadline and fails on any error.
func tick(tb testing.TB, s *Scraper, targets []Target) []Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Scrape(ctx, targets)
}

// modelByName finds a model in stats.
func modelByName(stats []ModelStats, name string) (ModelStats, bool) {
	for _, m := range stats {
		if m.Model == name {
			return m, true
		}
	}
	return ModelStats{}, false
}

// staticServer serves whatever body was last set.
type staticServer struct {
	*httptest.Server
	mu   sync.Mutex
	body string
}

func newStaticServer(tb testing.TB, body string) *staticServer {
	tb.Helper()
	ss := &staticServer{body: body}
	ss.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ss.mu.Lock()
		b := ss.body
		ss.mu.Unlock()
		_, _ = w.Write([]byte(b))
	}))
	tb.Cleanup(ss.Close)
	return ss
}

func (ss *staticServer) set(body string) {
	ss.mu.Lock()
	ss.body = body
	ss.mu.Unlock()
}
