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
		sourceUp: prometheus.NewDesc("aiwatt_source_up",
			"1 when the source's last sample succeeded, 0 when it is absent or failing.",
			[]string{"source"}, nil),
		sourceErrors: prometheus.NewDesc("aiwatt_source_errors_total",
			"Errors of a source since the agent started, by reason.",
			[]string{"source", "reason"}, nil),
		sampleDuration: prometheus.NewDesc("aiwatt_sample_duration_seconds",
			"How long the source's last sample took.",
			[]string{"source"}, nil),
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
	for _, d := range []*prometheus.Desc{c.cpuEnergy, c.gpuEnergy, c.gpuPower, c.gpuPowerLimit, c.gpuInfo, c.sourceUp, c.sourceErrors, c.sampleDuration,
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
	for _, src := range s.Sources {
		ch <- prometheus.MustNewConstMetric(c.sourceUp, prometheus.GaugeValue, boolFloat(src.Up), src.Name)
		ch <- prometheus.MustNewConstMetric(c.sampleDuration, prometheus.GaugeValue, src.Duration.Seconds(), src.Name)
		for _, reason := range sortedKeys(src.Errors) {
			ch <- prometheus.MustNewConstMetric(c.sourceErrors, prometheus.CounterValue, float64(src.Errors[reason]), src.Name, reason)
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
