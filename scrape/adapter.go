package scrape

import "strings"

// role is what a consumed sample measures.
type role uint8

const (
	roleRequests role = iota + 1
	roleInputTokens
	roleOutputTokens
	roleInferences
	roleEnergy
)

// Finished-request reasons for servers that do not export one. vLLM,
// TensorRT-LLM and LMDeploy pass their own finished_reason label through
// (stop, length, abort, ...); an empty label becomes ReasonUnknown.
const (
	// ReasonSuccess: the server counts successful requests without saying
	// why they stopped (TGI tgi_request_success, Triton
	// nv_inference_request_success).
	ReasonSuccess = "success"
	// ReasonError: the server counts failed requests (TGI
	// tgi_request_failure, every err label; Triton
	// nv_inference_request_failure, every reason label).
	ReasonError = "error"
	// ReasonUnknown: the server counts finished requests with no outcome
	// (SGLang sglang:num_requests_total), or left finished_reason empty.
	ReasonUnknown = "unknown"
)

// metricSpec says how one metric name of one server is consumed.
type metricSpec struct {
	role        role
	reason      string // fixed finished_reason, when reasonLabel is empty
	reasonLabel string // label holding finished_reason
}

// adapter describes one server family's exposition.
type adapter struct {
	server Server
	// metrics maps exact metric names to what they measure.
	metrics map[string]metricSpec
	// modelLabels are tried in order for the model name; none: model "".
	modelLabels []string
	// rankLabels are dropped from a series' identity: series that differ
	// only in them are replicas of the same work and count once (the
	// largest value is kept, see doc.go).
	rankLabels []string
}

// vllmStyle adds the three vLLM-derived counters under each prefix.
func vllmStyle(m map[string]metricSpec, prefixes ...string) {
	for _, p := range prefixes {
		m[p+"request_success_total"] = metricSpec{role: roleRequests, reasonLabel: "finished_reason"}
		m[p+"prompt_tokens_total"] = metricSpec{role: roleInputTokens}
		m[p+"generation_tokens_total"] = metricSpec{role: roleOutputTokens}
	}
}

// tritonCore adds Triton's own per-model counters and GPU energy.
func tritonCore(m map[string]metricSpec) {
	m["nv_inference_request_success"] = metricSpec{role: roleRequests, reason: ReasonSuccess}
	m["nv_inference_request_failure"] = metricSpec{role: roleRequests, reason: ReasonError}
	m["nv_inference_count"] = metricSpec{role: roleInferences}
	m["nv_energy_consumption"] = metricSpec{role: roleEnergy}
}

var adapters = func() map[Server]*adapter {
	vllm := map[string]metricSpec{}
	vllmStyle(vllm, "vllm:", "vllm_", "ray_vllm_", "ray_vllm:")

	tgi := map[string]metricSpec{
		"tgi_request_success":              {role: roleRequests, reason: ReasonSuccess},
		"tgi_request_failure":              {role: roleRequests, reason: ReasonError},
		"tgi_request_input_length_sum":     {role: roleInputTokens},
		"tgi_request_generated_tokens_sum": {role: roleOutputTokens},
	}

	sglang := map[string]metricSpec{}
	for _, p := range []string{"sglang:", "sglang_"} {
		sglang[p+"num_requests_total"] = metricSpec{role: roleRequests, reason: ReasonUnknown}
		sglang[p+"prompt_tokens_total"] = metricSpec{role: roleInputTokens}
		sglang[p+"generation_tokens_total"] = metricSpec{role: roleOutputTokens}
	}

	// Triton with the vLLM backend re-exports vLLM's token counters with
	// Triton's model/version labels; requests come from Triton's own
	// counter only, so vllm:request_success_total is not read here.
	triton := map[string]metricSpec{
		"vllm:prompt_tokens_total":     {role: roleInputTokens},
		"vllm:generation_tokens_total": {role: roleOutputTokens},
	}
	tritonCore(triton)

	trt := map[string]metricSpec{}
	vllmStyle(trt, "trtllm_", "trtllm:")
	tritonCore(trt) // Triton's TensorRT-LLM backend: counters are Triton's.

	llama := map[string]metricSpec{
		"llamacpp:prompt_tokens_total":    {role: roleInputTokens},
		"llamacpp:tokens_predicted_total": {role: roleOutputTokens},
	}

	lmdeploy := map[string]metricSpec{}
	vllmStyle(lmdeploy, "lmdeploy:")

	return map[Server]*adapter{
		ServerVLLM:        {server: ServerVLLM, metrics: vllm, modelLabels: []string{"model_name", "model"}},
		ServerTGI:         {server: ServerTGI, metrics: tgi},
		ServerSGLang:      {server: ServerSGLang, metrics: sglang, modelLabels: []string{"model_name", "name"}, rankLabels: []string{"tp_rank", "pp_rank", "moe_ep_rank"}},
		ServerTriton:      {server: ServerTriton, metrics: triton, modelLabels: []string{"model"}},
		ServerTensorRTLLM: {server: ServerTensorRTLLM, metrics: trt, modelLabels: []string{"model_name", "model"}},
		ServerLlamaCpp:    {server: ServerLlamaCpp, metrics: llama},
		ServerLMDeploy:    {server: ServerLMDeploy, metrics: lmdeploy, modelLabels: []string{"model_name"}},
	}
}()

// consumedNames is the union of every adapter's metric names plus the
// process start time: the only lines whose labels and values are decoded.
var consumedNames = func() map[string]struct{} {
	m := map[string]struct{}{processStartName: {}}
	for _, a := range adapters {
		for n := range a.metrics {
			m[n] = struct{}{}
		}
	}
	for n := range createdOf {
		m[n] = struct{}{}
	}
	return m
}()

// createdOf maps the creation-time series of every consumed counter
// ("x_created" beside "x_total", as Python's prometheus_client exports
// them) to the counter's name. A changed creation time means the counter
// was created again: the server restarted, even when the new value has
// already climbed past the old one.
var createdOf = func() map[string]string {
	m := map[string]string{}
	for _, a := range adapters {
		for n := range a.metrics {
			if base, ok := strings.CutSuffix(n, "_total"); ok {
				m[base+"_created"] = n
			}
		}
	}
	return m
}()

// processStartName is prometheus_client's process collector start time; a
// change means the server restarted.
const processStartName = "process_start_time_seconds"

// detection bits, one per server family, set from metric-name prefixes.
type detectBits uint8

const (
	seenTRT detectBits = 1 << iota
	seenTriton
	seenVLLM
	seenSGLang
	seenLMDeploy
	seenLlama
	seenTGI
)

// detectOrder pairs bits with servers in precedence order: a Triton that
// hosts TensorRT-LLM is TensorRT-LLM; a Triton that hosts vLLM is Triton;
// vLLM's TGIS-compatible adapter (tgi_ names next to vllm: ones) is vLLM.
var detectOrder = []struct {
	bit    detectBits
	server Server
}{
	{seenTRT, ServerTensorRTLLM},
	{seenTriton, ServerTriton},
	{seenVLLM, ServerVLLM},
	{seenSGLang, ServerSGLang},
	{seenLMDeploy, ServerLMDeploy},
	{seenLlama, ServerLlamaCpp},
	{seenTGI, ServerTGI},
}

// detectName returns the family bit a metric name belongs to, if any.
func detectName(name []byte) detectBits {
	if len(name) < 4 {
		return 0
	}
	switch name[0] {
	case 'v':
		if hasPrefix(name, "vllm:") || hasPrefix(name, "vllm_") {
			return seenVLLM
		}
	case 'r':
		if hasPrefix(name, "ray_vllm_") || hasPrefix(name, "ray_vllm:") {
			return seenVLLM
		}
	case 'n':
		if hasPrefix(name, "nv_trt_llm_") {
			return seenTRT
		}
		if hasPrefix(name, "nv_inference_") || hasPrefix(name, "nv_energy_") || hasPrefix(name, "nv_gpu_") ||
			hasPrefix(name, "nv_cache_") || hasPrefix(name, "nv_cpu_") || hasPrefix(name, "nv_pinned_") {
			return seenTriton
		}
	case 't':
		if hasPrefix(name, "trtllm_") || hasPrefix(name, "trtllm:") {
			return seenTRT
		}
		if hasPrefix(name, "tgi_") {
			return seenTGI
		}
	case 's':
		if hasPrefix(name, "sglang:") || hasPrefix(name, "sglang_") {
			return seenSGLang
		}
	case 'l':
		if hasPrefix(name, "llamacpp:") {
			return seenLlama
		}
		if hasPrefix(name, "lmdeploy:") {
			return seenLMDeploy
		}
	}
	return 0
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}

// detect picks the server from the bits seen in one exposition.
func detect(bits detectBits) Server {
	for _, d := range detectOrder {
		if bits&d.bit != 0 {
			return d.server
		}
	}
	return ServerAuto
}

// modelOf returns the model name of a series for adapter a.
func (a *adapter) modelOf(labels []label) string {
	for _, want := range a.modelLabels {
		for _, l := range labels {
			if l.name == want {
				return l.value
			}
		}
	}
	return ""
}

func (a *adapter) isRank(name string) bool {
	for _, r := range a.rankLabels {
		if r == name {
			return true
		}
	}
	return false
}

// label is a decoded label pair of a consumed sample.
type label struct{ name, value string }

// seriesKey is the identity of a consumed series: its name and labels,
// sorted, without rank labels. ranked reports whether rank labels were
// dropped (so a repeated key is a replica, not a duplicate line).
func (a *adapter) seriesKey(name string, labels []label) (key string, ranked bool) {
	var b strings.Builder
	b.WriteString(name)
	for _, l := range labels { // labels are sorted by name
		if a.isRank(l.name) {
			ranked = true
			continue
		}
		b.WriteByte(0xff)
		b.WriteString(l.name)
		b.WriteByte(0xfe)
		b.WriteString(l.value)
	}
	return b.String(), ranked
}
