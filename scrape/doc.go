// Package scrape reads inference servers' Prometheus endpoints and turns
// them into monotonic per-model totals of finished requests, input tokens,
// output tokens and inferences, the denominators of "joules per request",
// "joules per token" and "joules per inference".
//
// # What it owns
//
//   - Adapters for vLLM, Hugging Face TGI, SGLang, NVIDIA Triton, TensorRT-LLM,
//     llama.cpp and LMDeploy, chosen by [Target.Server] or detected from metric
//     names ([Parse], [Server]).
//   - A tolerant text-exposition reader: a malformed line or a "-nan" value is
//     skipped and counted instead of discarding the scrape, as expfmt's
//     all-or-nothing TextParser does (it refuses the llama.cpp capture whole).
//   - Per-target monotonic totals that survive server restarts, and a
//     [Scraper] that scrapes many targets concurrently with per-target
//     isolation (timeout, body limit, error counts by reason).
//   - Target sources: static [TargetConfig] (YAML), pod annotations
//     ([PodTarget]) and, on bare metal, port → process ([ListeningPIDs],
//     followed across restarts by [PortOwners]; [LocalPort] for URLs on
//     this machine).
//   - [Ledger]: results folded into monotonic counters per workload (an
//     opaque key), holding the counts of a target whose workload is not
//     known yet and dropping them, counted by reason, when it stays unknown.
//
// It knows nothing of workloads or of aiwatt's metrics: [Target.Workload] is
// opaque and comes back in the [Result]; turning Results into
// aiwatt_inference_* counters and aiwatt_source_* self-metrics is the
// agent's and exporter's job. It must not import agent, exporter or a
// Prometheus client registry; it uses no expfmt at run time (the tests use
// expfmt as an oracle for the reader).
//
// # Using it
//
//	s := scrape.NewScraper(scrape.Options{})
//	for each tick {
//		ctx, cancel := context.WithTimeout(ctx, tickDeadline)
//		results := s.Scrape(ctx, targets) // targets: the complete current set
//		cancel()
//		for _, r := range results { /* r.Target.Workload, r.Up, r.Reason, r.Models, r.Errors */ }
//	}
//
// Scrape returns at the latest when ctx is done: a target still running is
// reported as "timeout" in that tick and its late answer is discarded, so a
// hung server never delays the others. Totals are kept per [Target.ID];
// targets missing from a Scrape call are forgotten. A target must be one
// server instance (a pod IP, a host port), never a load-balanced Service:
// counters of several instances behind one URL cannot be made monotonic.
//
// # Adapters
//
// Metric names consumed, per server (requests by finished_reason; model label):
//
//	vLLM          vllm:request_success_total{finished_reason}, vllm:prompt_tokens_total,
//	              vllm:generation_tokens_total; the same names with vllm_ (Ray Serve) and
//	              ray_vllm_ prefixes. Model label model_name, else model (Triton's vLLM
//	              backend). V0 and V1 share the names; V1's engine label is summed.
//	TGI           tgi_request_success (no _total) → "success", tgi_request_failure{err}
//	              → "error"; input tokens tgi_request_input_length_sum, output tokens
//	              tgi_request_generated_tokens_sum. No model label: set Target.Model.
//	SGLang        sglang:num_requests_total → "unknown" (no outcome exported),
//	              sglang:prompt_tokens_total, sglang:generation_tokens_total; sglang_
//	              spelling too. Model label model_name, else name (older releases).
//	Triton        nv_inference_request_success → "success", nv_inference_request_failure
//	              (every reason label) → "error", nv_inference_count → Inferences,
//	              vllm:prompt_tokens_total / vllm:generation_tokens_total of the vLLM
//	              backend; model label model, version summed. nv_energy_consumption
//	              {gpu_uuid} → GPUEnergy (see below).
//	TensorRT-LLM  trtllm_request_success_total{finished_reason}, trtllm_prompt_tokens_total,
//	              trtllm_generation_tokens_total (trtllm-serve, at /prometheus/metrics;
//	              trtllm: as Dynamo prefixes them), plus Triton's names for the Triton
//	              TensorRT-LLM backend, whose nv_trt_llm_* metrics are gauges only.
//	llama.cpp     llamacpp:prompt_tokens_total, llamacpp:tokens_predicted_total (--metrics);
//	              no request counter, no model label.
//	LMDeploy      lmdeploy:request_success_total{finished_reason}, lmdeploy:prompt_tokens_total,
//	              lmdeploy:generation_tokens_total, engine (DP rank) summed. NO CAPTURE
//	              EXISTS: implemented from the names in lmdeploy/metrics/loggers.py (where
//	              request_success_total is present in some versions only).
//
// A counter the server does not export is reported absent (ModelStats.Has*
// false, Requests nil), never as zero. Histogram counts are never used as
// request counters (vLLM issue 8115: TTFT _count is not the number of
// requests), and vllm:iteration_tokens_total is a histogram, not a counter.
// [Target.Model] replaces the server's model label for every series.
// Triton counts an ensemble's request once for the ensemble and once per
// composing model: report them per model, do not sum them, and do not set
// Model on an ensemble-serving Triton.
//
// Detection (Server auto) looks at every metric name's prefix and picks, in
// this order: TensorRT-LLM (nv_trt_llm_, trtllm_), Triton (nv_inference_,
// nv_gpu_, nv_energy_, nv_cache_, ...), vLLM, SGLang, LMDeploy, llama.cpp,
// TGI (tgi_; vLLM's TGIS-compatible adapter exports tgi_ names next to vllm:
// ones and is vLLM). Once detected, a target's server stays fixed, so totals
// never switch adapters; an explicit server always wins.
//
// # Totals across scrapes and restarts
//
// Each consumed series (metric name and labels) is tracked on its own; a
// model's total is the sum of its series' increases. The first successful
// scrape of a target is the baseline and adds nothing: totals count since
// aiwatt first saw the target. Afterwards a series adds value − previous. A
// series whose value dropped restarted: its new value is the increase since
// the restart and is added whole. When the server exports
// process_start_time_seconds and it changed, every series is treated as
// restarted, which also catches a restart whose counters already climbed
// above their old values. A series first seen after the baseline was created
// since the previous scrape and is added whole. A series missing from one
// scrape keeps its last value. NaN, ±Inf, negative values and values above
// [MaxCounterValue] are skipped and counted; the series keeps its last good
// value, so the next good value carries the whole increase. A series that
// appears twice in one exposition counts once (ErrReasonDuplicate). A failed
// scrape changes no total. Nothing here can double count, with one limit:
// a server that resets only part of an aggregated series (not seen in any
// server above) would have the rest of that series added again.
//
// SGLang ranks. The capture (SGLang ~0.4, docs) has no rank labels: one
// tokenizer process exports each counter once. Newer SGLang labels
// scheduler-side series with tp_rank, pp_rank and moe_ep_rank, and with
// dp_rank under DP attention (sglang/srt/metrics/collector.py). Tensor,
// pipeline and expert parallel ranks of one DP group work on the same
// requests and tokens, so series that differ only in tp_rank, pp_rank or
// moe_ep_rank are replicas: they count once, with the largest value (a
// lagging replica can neither lower nor double the count). dp_rank groups
// serve different requests and are summed, like vLLM's engine label.
//
// Triton's nv_energy_consumption is the energy of each whole GPU Triton
// sees, from the driver's counter, since Triton started. It is surfaced as
// [Result.GPUEnergy], the server's self-reported figure, for comparison
// only: it must never be added to aiwatt's measured GPU energy, which
// already counts the same joules (for every process on the GPU).
//
// A counter exported with a creation time (x_created beside x_total, as
// Python's prometheus_client does for vLLM and SGLang) restarted when that
// time changed: its value is added whole, even when it already climbed past
// the old one before the scrape, where no counter value could tell.
//
// # Bounded state
//
// A target's state cannot grow without bound, even against a server that
// reports a new model name on every scrape (per-request adapter names): at
// most [Options.MaxModels] models per target ([DefaultMaxModels], 100) are
// kept, the series of any further model are summed under the model "other"
// ([OtherModel]) and counted as models_folded; at most [Options.MaxSeries]
// series are remembered ([DefaultMaxSeries], further new series are skipped
// and counted as series_cap); and a series or model the server stops
// exporting is forgotten after [Options.Retention] (the agent passes
// attribution.retention). A series that comes back after that counts as
// new. The [Ledger] expires a target's last values and a workload's series
// the same way. Since model names are not exported labels (model_id is the
// workload's), folding changes no exported series.
//
// # Workloads of targets
//
// [Ledger.Add] takes the target's workload and whether it is known. An
// unknown workload (a port whose listener is not found yet, a server that
// restarted and is not in the process scan yet, a hint naming nothing) is
// never exported under empty labels: its increases are held for
// [LedgerOptions.Hold] (the agent: three ticks, at least 15 s) and go to the
// workload once it is resolved, or, past the hold, are dropped into
// [Ledger.Unattributed] with reason workload_unresolved (the agent's
// aiwatt_inference_unattributed_total) and one log line per target.
// [PortOwners] looks a port's listener up again as soon as its cached owner
// is no longer running or none was ever found, and at least once a minute.
//
// # Errors
//
// Result.Reason says why a scrape failed (timeout, canceled, connection,
// http_status, body_too_large, read, parse, bad_target); Result.Errors
// counts failures and skipped lines or samples by reason since the target
// was first seen (bad_line, nan, inf, negative, too_large, duplicate_series,
// unrecognized, models_folded, series_cap), ready to become
// aiwatt_source_errors_total. A body over the
// limit ([DefaultBodyLimit], 4 MiB) is refused, never truncated.
//
// # Captures
//
// What the adapters read from every capture in scrape/testdata/captures
// (the tests serve each over HTTP with its values advancing by a known
// delta, then dropping as after a restart, and assert every quantity below
// exactly; "—" means absent, not zero):
//
//	llamacpp_ik_pr695_excerpt                    llamacpp, model from Target.Model
//	    input 6886, output 3469; requests —
//	llamacpp_pr11915_before_fix_nan              llamacpp, model ""
//	    input 0, output 0; requests —; the -nan is on an unconsumed gauge: parsed, not counted
//	sglang_docs_production_metrics_example       sglang, meta-llama/Llama-3.1-8B-Instruct
//	    input 8128902, output 7557572; requests — (no num_requests_total in that release)
//	tgi_RECONSTRUCTED_from_source_NOT_A_SCRAPE   tgi, model from Target.Model
//	    success 1031, error 11 (two err series), input 311204, output 262915 (shape reference only)
//	tgi_ibm_tgis_compat_pr18_excerpt             tgi, no model: gauges and histograms only
//	triton_client70_gpu_metrics_excerpt          triton, no model: cut before nv_energy_consumption
//	    (the energy test appends one line in Triton's documented shape)
//	triton_docs_examples                         triton, my_model
//	    success 161; tokens —; the invalid hand-written histogram parses line by line
//	triton_pr3569_old_format_excerpt             triton, 5 models
//	    success 40/10/10/0/20, error 0 each; inferences 2/1/1 for the 3 models before the cut
//	triton_tensorrtllm_backend_readme_example    tensorrt_llm, tensorrt_llm
//	    success 0, error 0, inferences 0; tokens — (nv_trt_llm_* are gauges)
//	triton_vllm_backend_readme_example           vllm, vllm_model (label "model")
//	    input 10, output 16; requests —
//	vllm_docs_usage_iteration_tokens             vllm, no model: iteration_tokens_total is a histogram
//	vllm_http_instrumentator_excerpt             unrecognized (http_* only): up, counted "unrecognized"
//	vllm_v0.5.3_issue8115_excerpt                vllm, meta-llama/Meta-Llama-3-70B-Instruct
//	    stop 3810, length 108; tokens —; TTFT _count (8060) ignored
//	vllm_v0_production-stack-318_excerpt         vllm, no model: histogram buckets only
//	vllm_v0engine_full_dump_qwen3_0.6b           vllm, Qwen/Qwen3-0.6B
//	    length 38, input 43952, output 4874
//	vllm_v1_docs_cache_config_info               vllm, no model: info gauge only
//	vllm_v1_docs_design_metrics_example          vllm, meta-llama/Llama-3.1-8B-Instruct
//	    stop 1, length 131, abort 0, output 27453; input — (elided in the source)
//
// No capture has SGLang rank labels, a vLLM V1 engine label, Ray's names,
// trtllm-serve's names or LMDeploy at all: those are tested on expositions
// built from the captures or from the servers' source.
//
// # Port to process
//
// [ListeningPIDs] maps a TCP port to the processes listening on it, from a
// procfs root (/proc, or the host's /proc mounted in the agent's container):
// the LISTEN rows (st 0A) of net/tcp and net/tcp6 give socket inodes, and
// every PID/fd/* link to socket:[INODE] gives a PID. net/tcp is read in the
// network namespace of the reader, so this serves bare metal and
// hostNetwork; a server in another network namespace is not found (use pod
// annotations there). Matching PIDs to GPUs is dcgm's (NVML process list).
// The reader is hand-written: prometheus/procfs's NetTCP was measured
// against it (BenchmarkListenInodes, 5000 sockets per file) and took about
// 1.3-1.7 times as long with 5.5 times the allocations, and is deprecated
// upstream.
//
// # Fuzzing
//
// FuzzParse runs the reader and the accumulator on arbitrary input seeded
// with every capture; in CI run it bounded:
//
//	go test ./scrape -run '^$' -fuzz '^FuzzParse$' -fuzztime 10s
package scrape
