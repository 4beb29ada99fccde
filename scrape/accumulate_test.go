package scrape

import (
	"testing"
)

// feed parses body for vLLM and applies it to tr.
func feed(t *testing.T, tr *tracker, body string) {
	t.Helper()
	var p lineParser
	e, err := p.read([]byte(body), ServerVLLM, "")
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	tr.apply(&e)
}

func inputOf(t *testing.T, tr *tracker, model string) float64 {
	t.Helper()
	models, _ := tr.totals.stats()
	m, ok := modelByName(models, model)
	if !ok || !m.HasInputTokens {
		t.Fatalf("model %q has no input tokens: %+v", model, models)
	}
	return m.InputTokens
}

func TestTrackerRules(t *testing.T) {
	const m = `vllm:prompt_tokens_total{engine="0",model_name="m"} `
	steps := []struct {
		name  string
		body  string
		total float64
	}{
		{"baseline adds nothing", m + "1000\n", 0},
		{"increase", m + "1250\n", 250},
		{"unchanged", m + "1250\n", 250},
		{"drop is a restart: new value added whole", m + "40\n", 290},
		{"increase after restart", m + "100\n", 350},
		{"NaN skipped, total kept", m + "NaN\n", 350},
		{"next good value carries the increase", m + "130\n", 380},
		{"series missing from a scrape", "vllm:num_requests_running 0\n", 380},
		{"series back, counted from its last value", m + "150\n", 400},
		{"new series after baseline added whole", m + "150\n" + `vllm:prompt_tokens_total{engine="1",model_name="m"} 7` + "\n", 407},
		{"restart to zero", m + "0\n" + `vllm:prompt_tokens_total{engine="1",model_name="m"} 0` + "\n", 407},
	}
	var tr tracker
	for _, s := range steps {
		feed(t, &tr, s.body)
		if got := inputOf(t, &tr, "m"); got != s.total {
			t.Fatalf("%s: total %v, want %v", s.name, got, s.total)
		}
	}
	if tr.restarts != 2 {
		t.Fatalf("restarts %d, want 2", tr.restarts)
	}
}

// A restart seen through process_start_time_seconds adds the whole new value
// even when it is larger than the old one (no drop to notice).
func TestTrackerProcessStartRestart(t *testing.T) {
	const m = `vllm:prompt_tokens_total{model_name="m"} `
	var tr tracker
	feed(t, &tr, "process_start_time_seconds 1.7e9\n"+m+"100\n")
	feed(t, &tr, "process_start_time_seconds 1.7e9\n"+m+"120\n")
	if got := inputOf(t, &tr, "m"); got != 20 {
		t.Fatalf("before restart: %v", got)
	}
	feed(t, &tr, "process_start_time_seconds 1.7000001e9\n"+m+"500\n")
	if got := inputOf(t, &tr, "m"); got != 520 {
		t.Fatalf("after restart: %v, want 520", got)
	}
	feed(t, &tr, "process_start_time_seconds 1.7000001e9\n"+m+"510\n")
	if got := inputOf(t, &tr, "m"); got != 530 || tr.restarts != 1 {
		t.Fatalf("after restart, steady: %v restarts %d", got, tr.restarts)
	}
}

// A first scrape that shows no consumed series still primes the target:
// a series that appears later was created after it and counts whole.
func TestTrackerPrimedByEmptyScrape(t *testing.T) {
	var tr tracker
	feed(t, &tr, "vllm:num_requests_running 0\n")
	feed(t, &tr, `vllm:request_success_total{finished_reason="stop",model_name="m"} 3`+"\n")
	models, _ := tr.totals.stats()
	if len(models) != 1 || models[0].Requests["stop"] != 3 {
		t.Fatalf("%+v", models)
	}
}
