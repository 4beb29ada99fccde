package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestAgentScrapeErrorsAreDeltas: the scraper hands out each scrape's errors
// only, and the agent's aiwatt_source_errors_total for a target is their
// sum: a server that sends one NaN sample per scrape is counted once per
// tick, and one that fails every scrape once per tick, never the running
// count again.
func TestAgentScrapeErrorsAreDeltas(t *testing.T) {
	nan := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "vllm:prompt_tokens_total{model_name=\"m\"} NaN\nvllm:generation_tokens_total{model_name=\"m\"} 10\n")
	}))
	defer nan.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	cfg, err := ParseConfig("aiwatt.yml", []byte(fmt.Sprintf(`
gpu:
  backend: none
inference:
  targets:
    - url: %s/metrics
      server: vllm
    - url: %s/metrics
      server: vllm
`, nan.URL, down.URL)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	procStat(t, dir, 100, 100, 4)
	clk := newClock()
	a, err := New(Options{Interval: 5 * time.Second, SysfsRoot: t.TempDir(), ProcfsRoot: dir, Clock: clk.now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := uint64(1); i <= 4; i++ {
		s := a.Tick()
		clk.step(5 * time.Second)
		got := map[string]map[string]uint64{}
		for _, st := range s.Sources {
			if st.Name == "scrape" {
				got[st.Target] = st.Errors
			}
		}
		if n := got[nan.URL+"/metrics"]["invalid_value"]; n != i {
			t.Fatalf("tick %d: NaN target counted %d invalid_value, want %d (%v)", i, n, i, got)
		}
		if n := got[down.URL+"/metrics"]["http_status"]; n != i {
			t.Fatalf("tick %d: failing target counted %d http_status, want %d (%v)", i, n, i, got)
		}
	}
}
