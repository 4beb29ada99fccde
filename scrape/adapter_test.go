package scrape

import (
	"fmt"
	"strings"
	"testing"
)

// sglangRanks derives a multi-rank exposition from the SGLang capture: every
// line of a consumed counter is repeated for two DP groups of two TP ranks
// each (global tp_rank numbering, as newer SGLang prints), TP replicas
// carrying the same value (the second possibly lagging by lag) and the
// second DP group carrying dp1 instead of the capture's value.
func sglangRanks(t *testing.T, step, lag, dp1 float64) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(readFixture(t, "sglang_docs_production_metrics_example.prom"), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || (name != "sglang:prompt_tokens_total" && name != "sglang:generation_tokens_total") {
			b.WriteString(line + "\n")
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		var v float64
		if _, err := fmt.Sscan(value, &v); err != nil {
			t.Fatalf("value %q: %v", value, err)
		}
		v += step
		for _, r := range []struct {
			dp, tp string
			v      float64
		}{{"0", "0", v}, {"0", "1", v - lag}, {"1", "2", dp1 + step}, {"1", "3", dp1 + step - lag}} {
			fmt.Fprintf(&b, "%s{%s,dp_rank=%q,tp_rank=%q} %v\n", name, labels, r.dp, r.tp, r.v)
		}
	}
	return b.String()
}

func TestSGLangRankDedup(t *testing.T) {
	const model = "meta-llama/Llama-3.1-8B-Instruct"
	// TP ranks count once, DP ranks add: 8128902 + 1000, not 2*(8128902+1000).
	r, err := Parse([]byte(sglangRanks(t, 0, 0, 1000)), ServerAuto, "")
	if err != nil {
		t.Fatal(err)
	}
	m, ok := modelByName(r.Models, model)
	if r.Server != ServerSGLang || !ok || m.InputTokens != 8128902+1000 || m.OutputTokens != 7557572+1000 || len(r.Issues) != 0 {
		t.Fatalf("server %s issues %v model %+v", r.Server, r.Issues, m)
	}
	// A lagging replica does not lower the count: the largest value wins.
	r, _ = Parse([]byte(sglangRanks(t, 0, 7, 1000)), ServerSGLang, "")
	m, _ = modelByName(r.Models, model)
	if m.InputTokens != 8128902+1000 {
		t.Fatalf("lagging rank: input %v", m.InputTokens)
	}

	// Over HTTP with counters advancing, the replicas never double count.
	srv := newStaticServer(t, sglangRanks(t, 0, 0, 1000))
	s := NewScraper(Options{})
	targets := []Target{{URL: srv.URL}}
	tick(t, s, targets)
	for step := 1; step <= 3; step++ {
		srv.set(sglangRanks(t, float64(step*100), float64(step%2), 1000))
		res := tick(t, s, targets)[0]
		m, _ := modelByName(res.Models, model)
		// Each DP group advanced by 100 per step; TP replicas count once.
		if want := float64(step * 200); m.InputTokens != want || m.OutputTokens != want {
			t.Fatalf("step %d: input %v output %v, want %v (errors %v)", step, m.InputTokens, m.OutputTokens, want, res.Errors)
		}
	}
}

func TestVLLMEnginesAndSpellings(t *testing.T) {
	// V1 prints an engine label per engine core: engines add up per model.
	body := `vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 5
vllm:request_success_total{engine="1",finished_reason="stop",model_name="m"} 7
vllm:request_success_total{engine="1",finished_reason="length",model_name="m"} 2
vllm:prompt_tokens_total{engine="0",model_name="m"} 100
vllm:prompt_tokens_total{engine="1",model_name="m"} 150
vllm:generation_tokens_total{engine="0",model_name="m"} 10
vllm:generation_tokens_total{engine="1",model_name="m"} 15
vllm:prompt_tokens_total{engine="0",model_name="other"} 1
`
	r, err := Parse([]byte(body), ServerAuto, "")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := modelByName(r.Models, "m")
	if r.Server != ServerVLLM || m.Requests["stop"] != 12 || m.Requests["length"] != 2 || m.InputTokens != 250 || m.OutputTokens != 25 {
		t.Fatalf("engines: %+v", r)
	}
	if o, _ := modelByName(r.Models, "other"); o.InputTokens != 1 || o.HasOutputTokens || o.Requests != nil {
		t.Fatalf("other model: %+v", o)
	}
	// Ray Serve spells the names with "_" (and its exporter adds "ray_").
	for _, prefix := range []string{"vllm_", "ray_vllm_"} {
		body := strings.ReplaceAll(body, "vllm:", prefix)
		r, err := Parse([]byte(body), ServerAuto, "")
		m, _ := modelByName(r.Models, "m")
		if err != nil || r.Server != ServerVLLM || m.Requests["stop"] != 12 || m.InputTokens != 250 {
			t.Fatalf("%s: %v %+v", prefix, err, r)
		}
	}
	// An empty finished_reason is "unknown"; the model override merges models.
	r, _ = Parse([]byte(`vllm:request_success_total{finished_reason="",model_name="a"} 3
vllm:request_success_total{model_name="b"} 4
`), ServerVLLM, "served")
	if len(r.Models) != 1 || r.Models[0].Model != "served" || r.Models[0].Requests[ReasonUnknown] != 7 {
		t.Fatalf("override: %+v", r.Models)
	}
}

func TestTritonEnergySeparate(t *testing.T) {
	// The client#70 capture shows the gpu_uuid label of nv_gpu_* and
	// nv_energy_consumption but was cut before the energy line; append one
	// in Triton's documented shape.
	const uuid = "GPU-1ccddeda-8caf-7d8e-cfe2-a63cddeaafd2"
	text := readFixture(t, "triton_client70_gpu_metrics_excerpt.prom") +
		"\n# HELP nv_energy_consumption GPU energy consumption in joules since the Triton Server started\n" +
		"# TYPE nv_energy_consumption counter\n" +
		`nv_energy_consumption{gpu_uuid="` + uuid + `"} 1234.5` + "\n" +
		readFixture(t, "triton_pr3569_old_format_excerpt.prom")
	r, err := Parse([]byte(text), ServerAuto, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Server != ServerTriton || len(r.GPUEnergy) != 1 || r.GPUEnergy[0] != (GPUEnergy{uuid, 1234.5}) {
		t.Fatalf("energy: server %s %+v", r.Server, r.GPUEnergy)
	}
	for _, m := range r.Models {
		if m.Model == "" {
			t.Fatalf("energy leaked into a model: %+v", m)
		}
	}

	cs := newCounterServer(t, text, 10)
	s := NewScraper(Options{})
	targets := []Target{{URL: cs.URL, Server: ServerTriton}}
	tick(t, s, targets)
	cs.advance()
	cs.advance()
	res := tick(t, s, targets)[0]
	if len(res.GPUEnergy) != 1 || res.GPUEnergy[0].Joules != 20 {
		t.Fatalf("energy total: %+v", res.GPUEnergy)
	}
	if m, _ := modelByName(res.Models, "simple"); m.Requests[ReasonSuccess] != 20 {
		t.Fatalf("simple: %+v", m)
	}
}

func TestDetection(t *testing.T) {
	cases := []struct {
		body string
		want Server
	}{
		{"vllm:num_requests_running 1\n", ServerVLLM},
		{"ray_vllm_num_requests_running 1\n", ServerVLLM},
		{"sglang_num_running_reqs 1\n", ServerSGLang},
		{"tgi_queue_size 1\n", ServerTGI},
		{"tgi_queue_size 1\nvllm:num_requests_running 1\n", ServerVLLM}, // vLLM's TGIS adapter
		{"nv_gpu_utilization 1\nvllm:prompt_tokens_total{model=\"m\"} 1\n", ServerTriton},
		{"nv_trt_llm_request_metrics 1\nnv_inference_count 1\n", ServerTensorRTLLM},
		{"trtllm_request_success_total 1\n", ServerTensorRTLLM},
		{"llamacpp:prompt_tokens_total 1\n", ServerLlamaCpp},
		{"lmdeploy:prompt_tokens_total 1\n", ServerLMDeploy},
		{"http_requests_total 1\nprocess_start_time_seconds 5\n", ServerAuto},
		{"", ServerAuto},
	}
	for _, c := range cases {
		r, err := Parse([]byte(c.body), ServerAuto, "")
		if err != nil || r.Server != c.want {
			t.Errorf("%q: server %q err %v, want %q", c.body, r.Server, err, c.want)
		}
	}
	// An explicit server wins over detection.
	r, _ := Parse([]byte("vllm:prompt_tokens_total{model_name=\"m\"} 3\nsglang:prompt_tokens_total{model_name=\"m\"} 5\n"), ServerSGLang, "")
	if r.Server != ServerSGLang || len(r.Models) != 1 || r.Models[0].InputTokens != 5 {
		t.Fatalf("explicit: %+v", r)
	}
}

// LMDeploy: no capture exists; names from lmdeploy/metrics/loggers.py.
func TestLMDeployDocumentedNames(t *testing.T) {
	body := `lmdeploy:prompt_tokens_total{engine="0",model_name="internlm2"} 30
lmdeploy:prompt_tokens_total{engine="1",model_name="internlm2"} 12
lmdeploy:generation_tokens_total{engine="0",model_name="internlm2"} 9
lmdeploy:request_success_total{engine="0",finished_reason="stop",model_name="internlm2"} 2
`
	r, err := Parse([]byte(body), ServerAuto, "")
	m, _ := modelByName(r.Models, "internlm2")
	if err != nil || r.Server != ServerLMDeploy || m.InputTokens != 42 || m.OutputTokens != 9 || m.Requests["stop"] != 2 {
		t.Fatalf("%v %+v", err, r)
	}
}

// TensorRT-LLM's trtllm-serve names (no capture: names from
// tensorrt_llm/metrics/collector.py and Dynamo's documentation example).
func TestTensorRTLLMServeNames(t *testing.T) {
	body := `trtllm_request_success_total{model_name="Qwen/Qwen3-0.6B",engine_type="trtllm",finished_reason="stop"} 150.0
trtllm_request_success_total{model_name="Qwen/Qwen3-0.6B",engine_type="trtllm",finished_reason="length"} 5.0
trtllm_prompt_tokens_total{model_name="Qwen/Qwen3-0.6B",engine_type="trtllm"} 900
trtllm_generation_tokens_total{model_name="Qwen/Qwen3-0.6B",engine_type="trtllm"} 1200
`
	r, err := Parse([]byte(body), ServerAuto, "")
	m, _ := modelByName(r.Models, "Qwen/Qwen3-0.6B")
	if err != nil || r.Server != ServerTensorRTLLM || m.Requests["stop"] != 150 || m.Requests["length"] != 5 || m.InputTokens != 900 || m.OutputTokens != 1200 {
		t.Fatalf("%v %+v", err, r)
	}
}

func TestSkippedSamples(t *testing.T) {
	body := `vllm:prompt_tokens_total{model_name="m"} NaN
vllm:generation_tokens_total{model_name="m"} +Inf
vllm:request_success_total{finished_reason="stop",model_name="m"} -3
vllm:request_success_total{finished_reason="length",model_name="m"} 1e300
vllm:request_success_total{finished_reason="abort",model_name="m"} 0x1p3
vllm:request_success_total{finished_reason="error",model_name="m"} 4
vllm:request_success_total{model_name="m",finished_reason="error"} 9
this line is { broken
vllm:num_requests_running{model_name="m"} -nan
`
	r, err := Parse([]byte(body), ServerAuto, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{ErrReasonNaN: 1, ErrReasonInf: 1, ErrReasonNegative: 1, ErrReasonTooLarge: 1,
		ErrReasonBadLine: 2, ErrReasonDuplicate: 1}
	if fmt.Sprint(r.Issues) != fmt.Sprint(want) {
		t.Fatalf("issues %v, want %v", r.Issues, want)
	}
	m, _ := modelByName(r.Models, "m")
	if len(m.Requests) != 1 || m.Requests["error"] != 4 || m.HasInputTokens || m.HasOutputTokens {
		t.Fatalf("model %+v", m)
	}
	if _, err := Parse([]byte("<html>\n<body>oops</body>\n"), ServerAuto, ""); err == nil {
		t.Fatal("HTML body parsed")
	}
}
