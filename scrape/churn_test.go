package scrape

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A server that restarts between two scrapes and whose counter climbs past
// its old value is seen through its _created series: the new value counts
// whole. Without _created the same scrape can only add the difference.
func TestTrackerCreatedRestart(t *testing.T) {
	const m = `vllm:request_success_total{finished_reason="stop",model_name="m"} `
	const c = `vllm:request_success_created{finished_reason="stop",model_name="m"} `
	for _, tc := range []struct {
		name    string
		bodies  []string
		want    float64
		restart uint64
	}{
		{"created changes", []string{m + "100\n" + c + "1.7e9\n", m + "130\n" + c + "1.7e9\n", m + "150\n" + c + "1.7e9+60\n"}, 30 + 150, 1},
		{"created steady", []string{m + "100\n" + c + "1.7e9\n", m + "130\n" + c + "1.7e9\n", m + "150\n" + c + "1.7e9\n"}, 50, 0},
		{"no created: a climb past the old value looks like an increase", []string{m + "100\n", m + "130\n", m + "150\n"}, 50, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tr tracker
			for _, b := range tc.bodies {
				var p lineParser
				b = fixExp(b)
				e, err := p.read([]byte(b), ServerVLLM, "")
				if err != nil {
					t.Fatal(err)
				}
				tr.apply(&e)
			}
			models, _ := tr.totals.stats()
			got, _ := modelByName(models, "m")
			if got.Requests["stop"] != tc.want || tr.restarts != tc.restart {
				t.Fatalf("requests %v (want %v), restarts %d (want %d)", got.Requests, tc.want, tr.restarts, tc.restart)
			}
		})
	}
}

// fixExp turns "1.7e9+60" into a number, so the cases read as arithmetic.
func fixExp(b string) string {
	var out []byte
	for _, line := range splitLines(b) {
		var name string
		var a, d float64
		if n, _ := fmt.Sscanf(lastField(line), "%g+%g", &a, &d); n == 2 {
			name = line[:len(line)-len(lastField(line))]
			line = name + fmt.Sprintf("%.0f", a+d)
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return string(out)
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func lastField(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ' ' {
			return s[i+1:]
		}
	}
	return s
}

// The ledger holds the counts of a target whose workload is unknown and
// gives them to the workload once it is known; past the hold it drops them
// into Unattributed, never under an empty workload, and logs once.
func TestLedgerHoldResolveDrop(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	l := NewLedger[string](LedgerOptions{Hold: 15 * time.Second, Retention: time.Minute})
	res := func(id string, requests, tokens float64) Result {
		return Result{Target: Target{ID: id}, Server: ServerVLLM, Models: []ModelStats{{Model: "m",
			Requests: map[string]float64{"stop": requests}, OutputTokens: tokens, HasOutputTokens: true}}}
	}
	get := func(key, kind string) float64 {
		for _, s := range l.Series() {
			if s.Key == key && s.Kind == kind {
				return s.Value
			}
		}
		return -1
	}
	// Tick 1-2: unresolved; tick 3: resolved: everything lands on "svc".
	l.Add(t0, res("a", 0, 0), "", false)
	l.Add(t0.Add(5*time.Second), res("a", 4, 400), "", false)
	l.Expire(t0.Add(5 * time.Second))
	if len(l.Series()) != 0 {
		t.Fatalf("exported while unresolved: %+v", l.Series())
	}
	l.Add(t0.Add(10*time.Second), res("a", 6, 600), "svc", true)
	l.Expire(t0.Add(10 * time.Second))
	if get("svc", KindRequests) != 6 || get("svc", KindOutputTokens) != 600 {
		t.Fatalf("after resolving: %+v", l.Series())
	}
	// Target b never resolves: dropped after the hold, counted, not exported.
	for i := range 5 {
		now := t0.Add(time.Duration(i*5) * time.Second)
		l.Add(now, res("b", float64(i*10), 0), "", false)
		l.Expire(now)
	}
	for _, s := range l.Series() {
		if s.Key == "" {
			t.Fatalf("exported under an empty workload: %+v", s)
		}
	}
	lost := l.Unattributed()
	var dropped float64
	for _, u := range lost {
		if u.Kind == KindRequests && u.Reason == ReasonWorkloadUnresolved {
			dropped += u.Value
		}
	}
	if dropped != 40 { // held from t0, dropped at t0+20 s with everything counted until then
		t.Fatalf("dropped %v requests, want 40: %+v", dropped, lost)
	}
	// Retention: a target gone for longer than a minute is forgotten.
	l.Expire(t0.Add(3 * time.Minute))
	if l.Size() != 0 {
		t.Fatalf("%d entries after retention", l.Size())
	}
}

// PortOwners looks a port up again when its owner is gone (a restart as a
// new process) or was never found (a late start), and not otherwise.
func TestPortOwnersFollowTheProcess(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	listening := map[int][]int{}
	o := NewPortOwners("/nonexistent")
	o.lookup = func(_ string, port int) ([]int, error) { return listening[port], nil }
	alive := map[int]bool{}
	isAlive := func(pid int) bool { return alive[pid] }

	if got := o.Owners(t0, 8000, isAlive); len(got) != 0 || o.Lookups() != 1 {
		t.Fatalf("nothing listening: %v, %d look-ups", got, o.Lookups())
	}
	// The server starts after the agent: found at the next tick.
	listening[8000], alive[100] = []int{100}, true
	if got := o.Owners(t0.Add(5*time.Second), 8000, isAlive); len(got) != 1 || got[0] != 100 {
		t.Fatalf("late start: %v", got)
	}
	// Steady: no look-up while the owner lives (within Refresh).
	n := o.Lookups()
	o.Owners(t0.Add(10*time.Second), 8000, isAlive)
	if o.Lookups() != n {
		t.Fatal("looked up again with a live owner")
	}
	// Restart as a new process: found at the next tick.
	delete(alive, 100)
	listening[8000], alive[230] = []int{230}, true
	if got := o.Owners(t0.Add(15*time.Second), 8000, isAlive); len(got) != 1 || got[0] != 230 {
		t.Fatalf("restart: %v", got)
	}
	// Refresh bounds trust in a live owner.
	n = o.Lookups()
	o.Owners(t0.Add(15*time.Second+2*time.Minute), 8000, isAlive)
	if o.Lookups() != n+1 {
		t.Fatal("no look-up after Refresh")
	}
}

func TestLocalPort(t *testing.T) {
	for url, want := range map[string]int{
		"http://127.0.0.1:8000/metrics": 8000,
		"http://localhost/metrics":      80,
		"https://[::1]/metrics":         443,
		"http://192.0.2.1:8000/metrics": 0, // TEST-NET: not an address of this machine
		"http://example.invalid:80/":    0,
	} {
		if got := LocalPort(url); got != want {
			t.Errorf("%s: %d, want %d", url, got, want)
		}
	}
}

// Memory stays flat against a server that invents a new model name on
// every scrape: the model cap folds the excess into "other" (counted), the
// rest expires, and the heap after 3000 scrapes is where it was after 1000.
func TestScraperStateBoundedByModelCap(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		fmt.Fprintf(w, "vllm:request_success_total{finished_reason=\"stop\",model_name=\"adapter-%d\"} %d\n", i, i)
		fmt.Fprintf(w, "vllm:generation_tokens_total{model_name=\"adapter-%d\"} %d\n", i, 10*i)
		fmt.Fprintf(w, "vllm:request_success_total{finished_reason=\"stop\",model_name=\"base\"} %d\n", i)
	}))
	defer srv.Close()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	s := NewScraper(Options{MaxModels: 8, Retention: time.Minute, Now: func() time.Time { return now }})
	l := NewLedger[string](LedgerOptions{Retention: time.Minute})
	target := Target{ID: "t", URL: srv.URL + "/metrics", Server: ServerVLLM}
	var heap [2]uint64
	var last Result
	for i := 1; i <= 3000; i++ {
		now = now.Add(5 * time.Second)
		r := s.Scrape(context.Background(), []Target{target})[0]
		if !r.Up {
			t.Fatalf("scrape %d: %v", i, r.Err)
		}
		l.Add(now, r, "w", true)
		l.Expire(now)
		last = r
		if i == 1000 || i == 3000 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap[i/2000] = ms.HeapAlloc
		}
	}
	st := s.states["t"]
	if len(last.Models) > 9 || len(st.tr.models) > 9 || len(st.tr.last) > 2*13+2 || l.Size() > 9*3+3 {
		t.Fatalf("state grew: %d models in the result, %d models, %d series, ledger %d", len(last.Models), len(st.tr.models), len(st.tr.last), l.Size())
	}
	if last.Errors[ErrReasonModelsFolded] == 0 {
		t.Fatalf("folding not counted: %v", last.Errors)
	}
	if grew := int64(heap[1]) - int64(heap[0]); grew > 512<<10 {
		t.Fatalf("heap grew by %d bytes from scrape 1000 to 3000", grew)
	}
	// Every request still counts, folded or not: the base model's 2999
	// since the baseline, and each adapter's whole value (2 … 3000; the
	// first is the baseline).
	var requests float64
	for _, v := range l.Series() {
		if v.Kind == KindRequests {
			requests += v.Value
		}
	}
	if want := 2999.0 + 3000*3001/2 - 1; requests != want {
		t.Fatalf("%v requests counted, want %v", requests, want)
	}
}

// Triton's nv_inference_count (batch items) reaches the ledger as its own
// counter kind beside requests, so batched models get energy per inference.
func TestLedgerTritonInferences(t *testing.T) {
	body := readFixture(t, "triton_pr3569_old_format_excerpt.prom")
	srv := newStaticServer(t, body)
	s := NewScraper(Options{})
	l := NewLedger[string](LedgerOptions{})
	target := Target{ID: "triton", URL: srv.URL + "/metrics", Server: ServerTriton}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, advance := range []float64{0, 7} {
		srv.set(rewriteValues(body, func(v float64) float64 { return v + advance }))
		r := s.Scrape(context.Background(), []Target{target})[0]
		if !r.Up {
			t.Fatal(r.Err)
		}
		l.Add(now, r, "triton-workload", true)
	}
	var inferences, requests float64
	for _, v := range l.Series() {
		switch v.Kind {
		case KindInferences:
			inferences += v.Value
		case KindRequests:
			requests += v.Value
		}
	}
	// Three models export nv_inference_count: 7 more each.
	if inferences != 3*7 || requests <= 0 {
		t.Fatalf("inferences %v (want 21), requests %v", inferences, requests)
	}
}
