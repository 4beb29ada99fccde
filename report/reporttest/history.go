// Package reporttest generates a known aiwatt history as OpenMetrics text
// for report tests: a month of samples for two inference workloads and one
// training run in two locations, with a gap in the samples and a carbon
// source down for a while. It returns the exact totals the history holds so
// that tests can check a report against them. It is test support only and
// must not be imported by production code.
package reporttest

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Step is the spacing of the generated samples.
const Step = 15 * time.Minute

// Workload is one generated workload and what it did inside the period.
type Workload struct {
	Namespace, Pod, Container, Project, ModelID, WorkloadType, Cluster, Instance string
	// Zone is the grid zone of the workload's cluster.
	Zone string
	// GPUWatts, CPUWatts, DRAMWatts are the base power draws.
	GPUWatts, CPUWatts, DRAMWatts float64
	// RequestsPerSecond and TokensPerSecond are inference rates (0: no series).
	RequestsPerSecond, TokensPerSecond float64
	// Start and End bound the workload's samples (zero: the whole history).
	Start, End time.Time

	// EnergyJ, RequestsN, TokensN are the exact increases inside the period.
	EnergyJ, RequestsN, TokensN float64
	// FirstSample and LastSample are the workload's first and last sample times.
	FirstSample, LastSample time.Time
}

// Span is a time interval.
type Span struct{ Start, End time.Time }

// Truth is what the history holds for the period [From, To].
type Truth struct {
	From, To  time.Time
	Workloads []*Workload
	// IdleJ and UnattributedJ are node energy no workload was charged for.
	IdleJ, UnattributedJ float64
	// LocationIntensity and MarketIntensity are g/kWh by zone (constant).
	LocationIntensity, MarketIntensity map[string]float64
	// Gap is the window where node-a exported no samples at all.
	Gap Span
	// SourceDown is the window where node-a's carbon source was down.
	SourceDown Span
}

// History returns OpenMetrics text (ending in "# EOF") covering one day
// before from up to to, and the truth about [from, to].
func History(from, to time.Time) (string, *Truth) {
	tr := &Truth{
		From: from, To: to,
		LocationIntensity: map[string]float64{"DE": 350, "FR": 50},
		MarketIntensity:   map[string]float64{"DE": 120, "FR": 40},
	}
	mid := from.Add(to.Sub(from) / 2)
	tr.Gap = Span{mid.Add(-3 * time.Hour).Truncate(Step).Add(Step), mid.Add(3 * time.Hour).Truncate(Step)}
	tr.SourceDown = Span{from.Add(10 * 24 * time.Hour), from.Add(10*24*time.Hour + 3*time.Hour)}
	tr.Workloads = []*Workload{
		{Namespace: "serving", Pod: "vllm-0", Container: "vllm", Project: "chat", ModelID: "llama-3-70b", WorkloadType: "inference",
			Cluster: "de-1", Instance: "node-a", Zone: "DE", GPUWatts: 1400, CPUWatts: 180, DRAMWatts: 30, RequestsPerSecond: 2, TokensPerSecond: 400},
		{Namespace: "search", Pod: "tei-0", Container: "tei", Project: "search", ModelID: "bge-large", WorkloadType: "inference",
			Cluster: "fr-1", Instance: "node-b", Zone: "FR", GPUWatts: 350, CPUWatts: 90, DRAMWatts: 15, RequestsPerSecond: 20},
		{Namespace: "train", Pod: "ft-run-7", Container: "trainer", Project: "research", ModelID: "llama-ft-8b", WorkloadType: "training",
			Cluster: "de-1", Instance: "node-a", Zone: "DE", GPUWatts: 5600, CPUWatts: 400, DRAMWatts: 60,
			Start: from.Add(5 * 24 * time.Hour), End: from.Add(12*24*time.Hour + 6*time.Hour)},
	}
	start := from.Add(-24 * time.Hour)
	var times []time.Time
	for t := start; !t.After(to); t = t.Add(Step) {
		times = append(times, t)
	}
	in := func(t time.Time, inst string) bool { // Whether inst exported a sample at t.
		return !(inst == "node-a" && !t.Before(tr.Gap.Start) && !t.After(tr.Gap.End))
	}
	inPeriod := func(t time.Time) bool { return t.After(from) && !t.After(to) }
	// load varies by hour of day so trends are not flat: 0.75..1.25.
	load := func(t time.Time) float64 { return 1 + 0.25*math.Sin(2*math.Pi*float64(t.Hour())/24) }

	fam := map[string][]string{} // family -> lines
	typ := map[string]string{}
	add := func(family, kind string, samples []string) {
		typ[family] = kind
		fam[family] = append(fam[family], samples...)
	}
	dt := Step.Seconds()
	for _, w := range tr.Workloads {
		lbl := fmt.Sprintf(`namespace="%s",pod="%s",container="%s",project="%s",model_id="%s",workload_type="%s",cluster="%s",instance="%s"`,
			w.Namespace, w.Pod, w.Container, w.Project, w.ModelID, w.WorkloadType, w.Cluster, w.Instance)
		comps := []struct {
			name string
			watt float64
		}{{"cpu", w.CPUWatts}, {"dram", w.DRAMWatts}, {"gpu", w.GPUWatts}}
		var co2L, co2M, req, tok []string
		var cL, cM, cR, cT float64
		lines := map[string][]string{}
		counters := map[string]float64{}
		first := true
		for _, t := range times {
			if !w.Start.IsZero() && (t.Before(w.Start) || t.After(w.End)) {
				continue
			}
			if !first { // Energy of the interval ending at t.
				var e float64
				for _, c := range comps {
					ce := c.watt * load(t) * dt
					counters[c.name] += ce
					e += ce
				}
				r, k := w.RequestsPerSecond*load(t)*dt, w.TokensPerSecond*load(t)*dt
				cR += r
				cT += k
				cL += e / 3.6e6 * tr.LocationIntensity[w.Zone]
				cM += e / 3.6e6 * tr.MarketIntensity[w.Zone]
				if inPeriod(t) {
					w.EnergyJ += e
					w.RequestsN += r
					w.TokensN += k
				}
			}
			first = false
			if !in(t, w.Instance) {
				continue
			}
			if w.FirstSample.IsZero() {
				w.FirstSample = t
			}
			w.LastSample = t
			ts := t.Unix()
			for _, c := range comps {
				lines[c.name] = append(lines[c.name], fmt.Sprintf("aiwatt_workload_energy_joules_total{component=\"%s\",%s} %.3f %d", c.name, lbl, counters[c.name], ts))
			}
			co2L = append(co2L, fmt.Sprintf("aiwatt_workload_co2e_grams_total{basis=\"location\",%s} %.6f %d", lbl, cL, ts))
			co2M = append(co2M, fmt.Sprintf("aiwatt_workload_co2e_grams_total{basis=\"market\",%s} %.6f %d", lbl, cM, ts))
			if w.RequestsPerSecond > 0 {
				req = append(req, fmt.Sprintf("aiwatt_inference_requests_total{server=\"vllm\",finished_reason=\"stop\",%s} %.3f %d", lbl, cR, ts))
			}
			if w.TokensPerSecond > 0 {
				tok = append(tok, fmt.Sprintf("aiwatt_inference_output_tokens_total{server=\"vllm\",%s} %.3f %d", lbl, cT, ts))
			}
		}
		for _, c := range comps {
			add("aiwatt_workload_energy_joules", "counter", lines[c.name])
		}
		add("aiwatt_workload_co2e_grams", "counter", co2L)
		add("aiwatt_workload_co2e_grams", "counter", co2M)
		add("aiwatt_inference_requests", "counter", req)
		add("aiwatt_inference_output_tokens", "counter", tok)
	}
	// Node series: idle GPU energy and unattributed CPU energy on node-a,
	// CPU energy by source, samples, source health, intensity, policy.
	for _, inst := range []string{"node-a", "node-b"} {
		cluster, zone := "de-1", "DE"
		if inst == "node-b" {
			cluster, zone = "fr-1", "FR"
		}
		nl := fmt.Sprintf(`cluster="%s",instance="%s"`, cluster, inst)
		var idle, unattr, cpu, samples, up, infoL, intL, intM []string
		var ci, cu, cc, cs float64
		for i, t := range times {
			if i > 0 {
				if inst == "node-a" {
					ie, ue := 300*dt, 50*dt
					ci += ie
					cu += ue
					if inPeriod(t) {
						tr.IdleJ += ie
						tr.UnattributedJ += ue
					}
				}
				for _, w := range tr.Workloads {
					if w.Instance == inst && (w.Start.IsZero() || (t.After(w.Start) && !t.After(w.End))) {
						cc += (w.CPUWatts + w.DRAMWatts) * load(t) * dt
					}
				}
				cs += dt / 5
			}
			if !in(t, inst) {
				continue
			}
			ts := t.Unix()
			if inst == "node-a" {
				idle = append(idle, fmt.Sprintf("aiwatt_node_idle_energy_joules_total{component=\"gpu\",%s} %.3f %d", nl, ci, ts))
				unattr = append(unattr, fmt.Sprintf("aiwatt_node_unattributed_energy_joules_total{component=\"cpu\",%s} %.3f %d", nl, cu, ts))
			}
			src := "rapl"
			if inst == "node-b" {
				src = "estimate"
			}
			cpu = append(cpu, fmt.Sprintf("aiwatt_cpu_energy_joules_total{socket=\"0\",zone=\"package\",source=\"%s\",%s} %.3f %d", src, nl, cc, ts))
			samples = append(samples, fmt.Sprintf("aiwatt_samples_total{%s} %.0f %d", nl, cs, ts))
			v := 1
			if inst == "node-a" && !t.Before(tr.SourceDown.Start) && !t.After(tr.SourceDown.End) {
				v = 0
			}
			up = append(up, fmt.Sprintf("aiwatt_source_up{source=\"carbon\",target=\"electricitymaps\",%s} %d %d", nl, v, ts))
			infoL = append(infoL, fmt.Sprintf("aiwatt_attribution_info{idle=\"node\",%s} 1 %d", nl, ts))
			intL = append(intL, fmt.Sprintf("aiwatt_grid_carbon_intensity_grams_per_kwh{zone=\"%s\",provider=\"static\",basis=\"location\",%s} %g %d", zone, nl, tr.LocationIntensity[zone], ts))
			intM = append(intM, fmt.Sprintf("aiwatt_grid_carbon_intensity_grams_per_kwh{zone=\"%s\",provider=\"market\",basis=\"market\",%s} %g %d", zone, nl, tr.MarketIntensity[zone], ts))
		}
		add("aiwatt_node_idle_energy_joules", "counter", idle)
		add("aiwatt_node_unattributed_energy_joules", "counter", unattr)
		add("aiwatt_cpu_energy_joules", "counter", cpu)
		add("aiwatt_samples", "counter", samples)
		add("aiwatt_source_up", "gauge", up)
		add("aiwatt_attribution_info", "gauge", infoL)
		add("aiwatt_grid_carbon_intensity_grams_per_kwh", "gauge", intL)
		add("aiwatt_grid_carbon_intensity_grams_per_kwh", "gauge", intM)
	}
	names := make([]string, 0, len(fam))
	for n := range fam {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if len(fam[n]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# TYPE %s %s\n", n, typ[n])
		for _, l := range fam[n] {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	b.WriteString("# EOF\n")
	return b.String(), tr
}

// TotalITJ is all IT energy in the period: workloads, idle and unattributed.
func (tr *Truth) TotalITJ() float64 {
	s := tr.IdleJ + tr.UnattributedJ
	for _, w := range tr.Workloads {
		s += w.EnergyJ
	}
	return s
}

// LocationGrams is the location-based CO2e of the workloads' own energy,
// computed by hand: energy × the zone's intensity.
func (tr *Truth) LocationGrams() float64 {
	var s float64
	for _, w := range tr.Workloads {
		s += w.EnergyJ / 3.6e6 * tr.LocationIntensity[w.Zone]
	}
	return s
}
