package exporter

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inferensys/aiwatt/agent"
)

// Source is what the collector reads: the agent, or a fake in tests.
type Source interface {
	// Snapshot returns the latest published snapshot; never nil.
	Snapshot() *agent.Snapshot
	// ReloadStatus returns the outcome of the last configuration reload.
	ReloadStatus() agent.ReloadStatus
}

var _ Source = (*agent.Agent)(nil)

// Collector exports a snapshot as Prometheus metrics.
type Collector struct {
	src Source

	cpuEnergy      *prometheus.Desc
	gpuEnergy      *prometheus.Desc
	gpuPower       *prometheus.Desc
	gpuPowerLimit  *prometheus.Desc
	gpuInfo        *prometheus.Desc
	workloadEnergy *prometheus.Desc
	workloadCO2e   *prometheus.Desc
	nodeIdle       *prometheus.Desc
	unattributed   *prometheus.Desc
	unaccountedCPU *prometheus.Desc
	folded         *prometheus.Desc
	foldedEnergy   *prometheus.Desc
	attribution    *prometheus.Desc
	requests       *prometheus.Desc
	inputTokens    *prometheus.Desc
	outputTokens   *prometheus.Desc
	inferences     *prometheus.Desc
	inferLost      *prometheus.Desc
	intensity      *prometheus.Desc
	intensityAge   *prometheus.Desc
	sourceUp       *prometheus.Desc
	sourceErrors   *prometheus.Desc
	sampleDuration *prometheus.Desc
	samples        *prometheus.Desc
	lastSample     *prometheus.Desc
	reloadOK       *prometheus.Desc
	reloadTime     *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector over src.
func NewCollector(src Source) *Collector {
	return &Collector{
		src: src,
		cpuEnergy: prometheus.NewDesc("aiwatt_cpu_energy_joules_total",
			"CPU and DRAM energy since the agent started, per RAPL zone; source=estimate is the utilisation model, not a measurement.",
			[]string{"socket", "zone", "source"}, nil),
		gpuEnergy: prometheus.NewDesc("aiwatt_gpu_energy_joules_total",
			"GPU energy since the agent started, per physical GPU (MIG instances are never counted separately); source=nvml_power is integrated power, not a hardware energy counter.",
			[]string{"gpu", "uuid", "source"}, nil),
		gpuPower: prometheus.NewDesc("aiwatt_gpu_power_watts",
			"GPU power at the last sample.",
			[]string{"gpu", "uuid"}, nil),
		gpuPowerLimit: prometheus.NewDesc("aiwatt_gpu_power_limit_watts",
			"Enforced GPU power limit.",
			[]string{"gpu", "uuid"}, nil),
		gpuInfo: prometheus.NewDesc("aiwatt_gpu_info",
			"GPU identity; always 1.",
			[]string{"gpu", "uuid", "model", "driver", "mig_mode"}, nil),
		workloadEnergy: prometheus.NewDesc("aiwatt_workload_energy_joules_total",
			"Energy attributed to a workload since it was first seen, by component (cpu, dram, gpu).",
			append([]string{"component"}, workloadLabels...), nil),
		workloadCO2e: prometheus.NewDesc("aiwatt_workload_co2e_grams_total",
			"CO2e of a workload's energy, time-matched to the grid intensity, by basis (location, market).",
			append(append([]string(nil), workloadLabels...), "basis"), nil),
		nodeIdle: prometheus.NewDesc("aiwatt_node_idle_energy_joules_total",
			"Idle energy of shared devices that stays with the node (attribution.idle: node).",
			[]string{"component"}, nil),
		unattributed: prometheus.NewDesc("aiwatt_node_unattributed_energy_joules_total",
			"Active energy of processes that belong to no workload (system daemons, kernel threads).",
			[]string{"component"}, nil),
		unaccountedCPU: prometheus.NewDesc("aiwatt_node_unaccounted_cpu_seconds_total",
			"Busy CPU time of the node (steal excluded) that no scanned process or workload cgroup accounts for; its energy went to the workloads seen.",
			nil, nil),
		folded: prometheus.NewDesc("aiwatt_workloads_folded_total",
			"Workloads folded into workload_type=\"other\" by the cardinality cap (attribution.max_workloads).",
			nil, nil),
		foldedEnergy: prometheus.NewDesc("aiwatt_workloads_folded_energy_joules_total",
			"Energy of workloads folded into workload_type=\"other\" by the cardinality cap.",
			[]string{"component"}, nil),
		attribution: prometheus.NewDesc("aiwatt_attribution_info",
			"The attribution policy in force; always 1. idle=node keeps idle energy of shared devices as node idle, idle=allocation spreads it by allocation.",
			[]string{"idle"}, nil),
		requests: prometheus.NewDesc("aiwatt_inference_requests_total",
			"Finished inference requests of a workload's server, by finished_reason.",
			append(append([]string(nil), workloadLabels...), "server", "finished_reason"), nil),
		inputTokens: prometheus.NewDesc("aiwatt_inference_input_tokens_total",
			"Prompt (input) tokens processed by a workload's inference server.",
			append(append([]string(nil), workloadLabels...), "server"), nil),
		outputTokens: prometheus.NewDesc("aiwatt_inference_output_tokens_total",
			"Generated (output) tokens of a workload's inference server.",
			append(append([]string(nil), workloadLabels...), "server"), nil),
		inferences: prometheus.NewDesc("aiwatt_inference_inferences_total",
			"Inferences of a workload's inference server, batch items counted one by one (Triton's nv_inference_count): energy per inference for batched models.",
			append(workloadLabels, "server"), nil),
		inferLost: prometheus.NewDesc("aiwatt_inference_unattributed_total",
			"Inference counts not exported under any workload because the target's workload could not be resolved, by counter (requests, input_tokens, output_tokens, inferences) and reason.",
			[]string{"server", "counter", "reason"}, nil),
		intensity: prometheus.NewDesc("aiwatt_grid_carbon_intensity_grams_per_kwh",
			"Grid carbon intensity applied to the last sample (time-weighted over it).",
			[]string{"zone", "provider", "basis"}, nil),
		intensityAge: prometheus.NewDesc("aiwatt_grid_carbon_intensity_age_seconds",
			"Age of the applied intensity value: the sample time minus the start of the value's validity window.",
			[]string{"zone", "provider", "basis"}, nil),
		sourceUp: prometheus.NewDesc("aiwatt_source_up",
			"1 when the source's last sample succeeded, 0 when it is absent or failing; target names an inference server.",
			[]string{"source", "target"}, nil),
		sourceErrors: prometheus.NewDesc("aiwatt_source_errors_total",
			"Errors of a source since the agent started, by reason.",
			[]string{"source", "target", "reason"}, nil),
		sampleDuration: prometheus.NewDesc("aiwatt_sample_duration_seconds",
			"How long the source's last sample took.",
			[]string{"source", "target"}, nil),
		samples: prometheus.NewDesc("aiwatt_samples_total",
			"Sampling ticks since the agent started.", nil, nil),
		lastSample: prometheus.NewDesc("aiwatt_last_sample_timestamp_seconds",
			"Time of the latest sampling tick, in seconds since the epoch.", nil, nil),
		reloadOK: prometheus.NewDesc("aiwatt_config_last_reload_successful",
			"1 when the last configuration reload succeeded.", nil, nil),
		reloadTime: prometheus.NewDesc("aiwatt_config_last_reload_success_timestamp_seconds",
			"Time of the last successful configuration load, in seconds since the epoch.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpuEnergy, c.gpuEnergy, c.gpuPower, c.gpuPowerLimit, c.gpuInfo,
		c.workloadEnergy, c.workloadCO2e, c.nodeIdle, c.unattributed, c.unaccountedCPU, c.folded, c.foldedEnergy, c.attribution,
		c.requests, c.inputTokens, c.outputTokens, c.inferences, c.inferLost, c.intensity, c.intensityAge, c.sourceUp, c.sourceErrors, c.sampleDuration,
		c.samples, c.lastSample, c.reloadOK, c.reloadTime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads one snapshot and no files.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Snapshot()
	for _, e := range s.CPU {
		ch <- prometheus.MustNewConstMetric(c.cpuEnergy, prometheus.CounterValue, e.Joules, e.Socket, e.Zone, e.Source)
	}
	for _, g := range s.GPU {
		idx := strconv.Itoa(g.Index)
		if g.Index < 0 {
			idx = ""
		}
		ch <- prometheus.MustNewConstMetric(c.gpuEnergy, prometheus.CounterValue, g.Joules, idx, g.UUID, g.Source)
		ch <- prometheus.MustNewConstMetric(c.gpuInfo, prometheus.GaugeValue, 1, idx, g.UUID, g.Model, g.Driver, g.MIGMode)
		if g.OK {
			ch <- prometheus.MustNewConstMetric(c.gpuPower, prometheus.GaugeValue, g.PowerWatts, idx, g.UUID)
		}
		if g.PowerLimitWatts > 0 {
			ch <- prometheus.MustNewConstMetric(c.gpuPowerLimit, prometheus.GaugeValue, g.PowerLimitWatts, idx, g.UUID)
		}
	}
	c.collectAttribution(ch, s)
	for _, src := range s.Sources {
		ch <- prometheus.MustNewConstMetric(c.sourceUp, prometheus.GaugeValue, boolFloat(src.Up), src.Name, src.Target)
		ch <- prometheus.MustNewConstMetric(c.sampleDuration, prometheus.GaugeValue, src.Duration.Seconds(), src.Name, src.Target)
		for _, reason := range sortedKeys(src.Errors) {
			ch <- prometheus.MustNewConstMetric(c.sourceErrors, prometheus.CounterValue, float64(src.Errors[reason]), src.Name, src.Target, reason)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.samples, prometheus.CounterValue, float64(s.Samples))
	if s.Samples > 0 {
		ch <- prometheus.MustNewConstMetric(c.lastSample, prometheus.GaugeValue, float64(s.Time.UnixNano())/1e9)
	}
	r := c.src.ReloadStatus()
	ch <- prometheus.MustNewConstMetric(c.reloadOK, prometheus.GaugeValue, boolFloat(r.Success))
	ch <- prometheus.MustNewConstMetric(c.reloadTime, prometheus.GaugeValue, float64(r.LastSuccess.Unix()))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// workloadLabels is the label set that joins workload energy, CO2e and
// inference counters.
var workloadLabels = []string{"namespace", "pod", "container", "project", "model_id", "workload_type"}

func keyLabels(k agent.Workload, extra ...string) []string { return k.Labels(extra...) }

// collectAttribution exports workload energy, CO2e, node idle, inference
// counters and grid intensity.
func (c *Collector) collectAttribution(ch chan<- prometheus.Metric, s *agent.Snapshot) {
	at := s.Attribution
	if at.Policy == "" {
		return // No tick yet.
	}
	ch <- prometheus.MustNewConstMetric(c.attribution, prometheus.GaugeValue, 1, at.Policy)
	for comp, name := range agent.Components {
		ch <- prometheus.MustNewConstMetric(c.nodeIdle, prometheus.CounterValue, at.Idle[comp], name)
		ch <- prometheus.MustNewConstMetric(c.unattributed, prometheus.CounterValue, at.Unattributed[comp], name)
		ch <- prometheus.MustNewConstMetric(c.foldedEnergy, prometheus.CounterValue, at.FoldedJoules[comp], name)
	}
	ch <- prometheus.MustNewConstMetric(c.unaccountedCPU, prometheus.CounterValue, at.UnaccountedCPUSeconds)
	ch <- prometheus.MustNewConstMetric(c.folded, prometheus.CounterValue, float64(at.FoldedKeys))
	hasCO2e := len(at.Intensity) > 0
	for _, w := range at.Workloads {
		for comp, name := range agent.Components {
			ch <- prometheus.MustNewConstMetric(c.workloadEnergy, prometheus.CounterValue, w.Joules[comp], append([]string{name}, keyLabels(w.Key)...)...)
		}
		if hasCO2e {
			ch <- prometheus.MustNewConstMetric(c.workloadCO2e, prometheus.CounterValue, w.CO2eLocation, keyLabels(w.Key, "location")...)
			if w.HasMarket {
				ch <- prometheus.MustNewConstMetric(c.workloadCO2e, prometheus.CounterValue, w.CO2eMarket, keyLabels(w.Key, "market")...)
			}
		}
	}
	for _, in := range s.Inference {
		if in.Unattributed {
			ch <- prometheus.MustNewConstMetric(c.inferLost, prometheus.CounterValue, in.Value, in.Server, in.Kind, in.Reason)
			continue
		}
		switch in.Kind {
		case agent.InferenceRequests:
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, in.Value, keyLabels(in.Key, in.Server, in.FinishedReason)...)
		case agent.InferenceInputTokens:
			ch <- prometheus.MustNewConstMetric(c.inputTokens, prometheus.CounterValue, in.Value, keyLabels(in.Key, in.Server)...)
		case agent.InferenceOutputTokens:
			ch <- prometheus.MustNewConstMetric(c.outputTokens, prometheus.CounterValue, in.Value, keyLabels(in.Key, in.Server)...)
		case agent.InferenceInferences:
			ch <- prometheus.MustNewConstMetric(c.inferences, prometheus.CounterValue, in.Value, keyLabels(in.Key, in.Server)...)
		}
	}
	for _, i := range at.Intensity {
		ch <- prometheus.MustNewConstMetric(c.intensity, prometheus.GaugeValue, i.GramsPerKWh, i.Zone, i.Provider, i.Basis)
		ch <- prometheus.MustNewConstMetric(c.intensityAge, prometheus.GaugeValue, s.Time.Sub(i.ValidFrom).Seconds(), i.Zone, i.Provider, i.Basis)
	}
}
