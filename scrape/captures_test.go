package scrape

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

// want is one expected quantity: its raw value in the capture and the
// number of series summed into it (each series advances by delta per step).
type want struct {
	raw    float64
	series int
}

type modelWant struct {
	requests   map[string]want // nil: the server exports no request counter
	input      *want           // nil: absent
	output     *want
	inferences *want
}

type captureCase struct {
	file   string
	model  string // Target.Model / Parse model override
	server Server // expected (auto-detected)
	models map[string]modelWant
	energy map[string]want
}

func w(raw float64, series int) *want { return &want{raw, series} }

// captureCases is written by reading each capture by eye, independently of
// the parser. Every file in the fixture directory must appear here.
var captureCases = []captureCase{
	{file: "llamacpp_ik_pr695_excerpt.prom", model: "ik-llama", server: ServerLlamaCpp,
		models: map[string]modelWant{"ik-llama": {input: w(6886, 1), output: w(3469, 1)}}},
	{file: "llamacpp_pr11915_before_fix_nan.prom", server: ServerLlamaCpp,
		models: map[string]modelWant{"": {input: w(0, 1), output: w(0, 1)}}},
	{file: "sglang_docs_production_metrics_example.prom", server: ServerSGLang,
		models: map[string]modelWant{"meta-llama/Llama-3.1-8B-Instruct": {input: w(8128902, 1), output: w(7557572, 1)}}},
	{file: "tgi_RECONSTRUCTED_from_source_NOT_A_SCRAPE.prom", model: "bigscience/bloom-560m", server: ServerTGI,
		models: map[string]modelWant{"bigscience/bloom-560m": {
			requests: map[string]want{ReasonSuccess: {1031, 1}, ReasonError: {11, 2}},
			input:    w(311204, 1), output: w(262915, 1)}}},
	{file: "tgi_ibm_tgis_compat_pr18_excerpt.prom", server: ServerTGI},
	{file: "triton_client70_gpu_metrics_excerpt.prom", server: ServerTriton},
	{file: "triton_docs_examples.prom", server: ServerTriton,
		models: map[string]modelWant{"my_model": {requests: map[string]want{ReasonSuccess: {161, 1}}}}},
	{file: "triton_pr3569_old_format_excerpt.prom", server: ServerTriton,
		models: map[string]modelWant{
			"simple_identity": {requests: map[string]want{ReasonSuccess: {40, 1}, ReasonError: {0, 1}}, inferences: w(2, 1)},
			"simple_int8":     {requests: map[string]want{ReasonSuccess: {10, 1}, ReasonError: {0, 1}}, inferences: w(1, 1)},
			"simple_string":   {requests: map[string]want{ReasonSuccess: {10, 1}, ReasonError: {0, 1}}, inferences: w(1, 1)},
			"simple_sequence": {requests: map[string]want{ReasonSuccess: {0, 1}, ReasonError: {0, 1}}},
			"simple":          {requests: map[string]want{ReasonSuccess: {20, 1}, ReasonError: {0, 1}}},
		}},
	{file: "triton_tensorrtllm_backend_readme_example.prom", server: ServerTensorRTLLM,
		models: map[string]modelWant{"tensorrt_llm": {requests: map[string]want{ReasonSuccess: {0, 1}, ReasonError: {0, 1}}, inferences: w(0, 1)}}},
	{file: "triton_vllm_backend_readme_example.prom", server: ServerVLLM,
		models: map[string]modelWant{"vllm_model": {input: w(10, 1), output: w(16, 1)}}},
	{file: "vllm_docs_usage_iteration_tokens.prom", server: ServerVLLM},
	{file: "vllm_http_instrumentator_excerpt.prom", server: ServerAuto},
	{file: "vllm_v0.5.3_issue8115_excerpt.prom", server: ServerVLLM,
		models: map[string]modelWant{"meta-llama/Meta-Llama-3-70B-Instruct": {requests: map[string]want{"stop": {3810, 1}, "length": {108, 1}}}}},
	{file: "vllm_v0_production-stack-318_excerpt.prom", server: ServerVLLM},
	{file: "vllm_v0engine_full_dump_qwen3_0.6b.prom", server: ServerVLLM,
		models: map[string]modelWant{"Qwen/Qwen3-0.6B": {requests: map[string]want{"length": {38, 1}}, input: w(43952, 1), output: w(4874, 1)}}},
	{file: "vllm_v1_docs_cache_config_info.prom", server: ServerVLLM},
	{file: "vllm_v1_docs_design_metrics_example.prom", server: ServerVLLM,
		models: map[string]modelWant{"meta-llama/Llama-3.1-8B-Instruct": {
			requests: map[string]want{"stop": {1, 1}, "length": {131, 1}, "abort": {0, 1}}, output: w(27453, 1)}}},
}

func TestCaptureCasesCoverEveryFixture(t *testing.T) {
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatalf("read fixture dir: %v", err)
	}
	var files []string
	for _, e := range entries {
		if e.Name() != "PROVENANCE.md" { // the captures' provenance note
			files = append(files, e.Name())
		}
	}
	var cased []string
	for _, c := range captureCases {
		cased = append(cased, c.file)
	}
	slices.Sort(files)
	slices.Sort(cased)
	if !slices.Equal(files, cased) {
		t.Fatalf("fixtures %v\ncases    %v\nadd a case for every capture", files, cased)
	}
}

// check compares stats against the case, with value(q) giving the expected
// number for each quantity.
func checkStats(t *testing.T, where string, c captureCase, models []ModelStats, energy []GPUEnergy, value func(want) float64) {
	t.Helper()
	var names []string
	for _, m := range models {
		names = append(names, m.Model)
	}
	wantNames := slices.Sorted(maps.Keys(c.models))
	if !slices.Equal(names, wantNames) {
		t.Fatalf("%s: models %q, want %q", where, names, wantNames)
	}
	opt := func(what string, got float64, has bool, w *want) {
		t.Helper()
		switch {
		case w == nil && has:
			t.Errorf("%s: %s present (%v), the capture has no such counter", where, what, got)
		case w != nil && !has:
			t.Errorf("%s: %s absent, want %v", where, what, value(*w))
		case w != nil && got != value(*w):
			t.Errorf("%s: %s = %v, want %v", where, what, got, value(*w))
		}
	}
	for _, m := range models {
		mw := c.models[m.Model]
		at := where + " model " + m.Model
		if (mw.requests == nil) != (m.Requests == nil) {
			t.Errorf("%s: requests %v, want %v", at, m.Requests, mw.requests)
		}
		if len(m.Requests) != len(mw.requests) {
			t.Errorf("%s: request reasons %v, want %v", at, slices.Sorted(maps.Keys(m.Requests)), slices.Sorted(maps.Keys(mw.requests)))
		}
		for reason, rw := range mw.requests {
			got, ok := m.Requests[reason]
			if !ok || got != value(rw) {
				t.Errorf("%s: requests[%s] = %v (present %v), want %v", at, reason, got, ok, value(rw))
			}
		}
		opt("input tokens", m.InputTokens, m.HasInputTokens, mw.input)
		opt("output tokens", m.OutputTokens, m.HasOutputTokens, mw.output)
		opt("inferences", m.Inferences, m.HasInferences, mw.inferences)
	}
	if len(energy) != len(c.energy) {
		t.Errorf("%s: energy %v, want %v", where, energy, c.energy)
	}
	for _, e := range energy {
		ew, ok := c.energy[e.UUID]
		if !ok || e.Joules != value(ew) {
			t.Errorf("%s: energy %s = %v, want %v", where, e.UUID, e.Joules, value(ew))
		}
	}
}

// TestParseCaptures checks the raw values Parse reads from every capture.
func TestParseCaptures(t *testing.T) {
	for _, c := range captureCases {
		t.Run(c.file, func(t *testing.T) {
			r, err := Parse([]byte(readFixture(t, c.file)), ServerAuto, c.model)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Server != c.server {
				t.Errorf("server %q, want %q", r.Server, c.server)
			}
			if len(r.Issues) != 0 {
				t.Errorf("issues %v, want none", r.Issues)
			}
			checkStats(t, "raw", c, r.Models, r.GPUEnergy, func(q want) float64 { return q.raw })
		})
	}
}

// TestScrapeCapturesAdvancing serves every capture with counters advancing,
// then restarting, and checks the exact monotonic totals.
func TestScrapeCapturesAdvancing(t *testing.T) {
	const (
		delta    = 10.0
		before   = 3 // steps before the restart
		restartV = 1.0
		after    = 2 // steps after the restart
	)
	servers := make([]*counterServer, len(captureCases))
	targets := make([]Target, len(captureCases))
	for i, c := range captureCases {
		servers[i] = newCounterServer(t, readFixture(t, c.file), delta)
		targets[i] = Target{ID: c.file, URL: servers[i].URL + "/metrics", Model: c.model, Workload: i}
	}
	s := NewScraper(Options{})
	run := func(phase string, expect func(want) float64) {
		t.Helper()
		for i, r := range tick(t, s, targets) {
			c := captureCases[i]
			where := phase + " " + c.file
			if !r.Up || r.Err != nil {
				t.Fatalf("%s: down: %s %v", where, r.Reason, r.Err)
			}
			if r.Target.Workload != i {
				t.Errorf("%s: workload %v, want %d", where, r.Target.Workload, i)
			}
			if r.Server != c.server {
				t.Errorf("%s: server %q, want %q", where, r.Server, c.server)
			}
			wantErrs := 0
			if c.server == ServerAuto {
				wantErrs = 1
			}
			if len(r.Errors) != wantErrs {
				t.Errorf("%s: errors %v", where, r.Errors)
			}
			checkStats(t, where, c, r.Models, r.GPUEnergy, expect)
		}
	}
	run("baseline", func(want) float64 { return 0 })
	for k := 1; k <= before; k++ {
		for _, cs := range servers {
			cs.advance()
		}
		run("advance", func(q want) float64 { return float64(q.series*k) * delta })
	}
	for _, cs := range servers {
		cs.restart(restartV)
	}
	run("restart", func(q want) float64 { return float64(q.series) * (before*delta + restartV) })
	for k := 1; k <= after; k++ {
		for _, cs := range servers {
			cs.advance()
		}
		run("after restart", func(q want) float64 {
			return float64(q.series) * (before*delta + restartV + float64(k)*delta)
		})
	}
	for i, r := range tick(t, s, targets) {
		c := captureCases[i]
		hasCounters := len(c.models) > 0
		if hasCounters && r.Restarts != 1 {
			t.Errorf("%s: restarts %d, want 1", c.file, r.Restarts)
		}
	}
}

// TestLlamaCppNaN: the "-nan" capture parses (expfmt refuses it whole), and
// a NaN on a consumed counter is skipped and counted without touching the
// total; the next good value carries the whole increase.
func TestLlamaCppNaN(t *testing.T) {
	text := readFixture(t, "llamacpp_pr11915_before_fix_nan.prom")
	if !strings.Contains(text, " -nan") {
		t.Fatal("capture lost its -nan line")
	}
	srv := newStaticServer(t, "")
	s := NewScraper(Options{})
	target := []Target{{URL: srv.URL, Model: "llama-3-8b"}}
	set := func(prompt, predicted string) {
		body := strings.Replace(text, "llamacpp:prompt_tokens_total 0", "llamacpp:prompt_tokens_total "+prompt, 1)
		srv.set(strings.Replace(body, "llamacpp:tokens_predicted_total 0", "llamacpp:tokens_predicted_total "+predicted, 1))
	}
	set("100", "50")
	r := tick(t, s, target)[0]
	if !r.Up || r.Server != ServerLlamaCpp || len(r.Errors) != 0 {
		t.Fatalf("baseline: %+v", r)
	}
	set("-nan", "80") // NaN on a consumed counter
	r = tick(t, s, target)[0]
	m, _ := modelByName(r.Models, "llama-3-8b")
	if !r.Up || r.Errors[ErrReasonNaN] != 1 || m.InputTokens != 0 || m.OutputTokens != 30 {
		t.Fatalf("after NaN: up=%v errors=%v model=%+v", r.Up, r.Errors, m)
	}
	set("175", "90")
	r = tick(t, s, target)[0]
	m, _ = modelByName(r.Models, "llama-3-8b")
	if m.InputTokens != 75 || m.OutputTokens != 40 || r.Errors[ErrReasonNaN] != 1 {
		t.Fatalf("after recovery: errors=%v model=%+v", r.Errors, m)
	}
}
