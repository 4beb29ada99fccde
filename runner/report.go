package runner

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/carbon"
)

// ReportSchema names the version of the JSON report.
const ReportSchema = "aiwatt.run/v1"

// AttributionPolicy is the attribution rule a run applies, copied into every
// report.
const AttributionPolicy = "CPU and DRAM: the node's energy times its busy share (/proc/stat), split by CPU time " +
	"between the run's process tree and all other processes; idle energy stays node idle. " +
	"GPU: a GPU assigned to the run, or whose compute processes all belong to the run, is the run's wholly, idle included; " +
	"a shared GPU gives the run its SM-utilisation share (process count share where unknown) of the active energy."

// Report is the account of one run, written as JSON by WriteJSON.
type Report struct {
	// Schema is ReportSchema.
	Schema string `json:"schema"`
	// Command is the command line that was run.
	Command []string `json:"command"`
	// Start and End bound the measurement.
	Start time.Time `json:"start"`
	// End is the time of the last tick.
	End time.Time `json:"end"`
	// DurationSeconds is End − Start.
	DurationSeconds float64 `json:"duration_seconds"`
	// Samples is the number of ticks after the baseline.
	Samples int `json:"samples"`
	// IntervalSeconds is the sampling period.
	IntervalSeconds float64 `json:"interval_seconds"`
	// ExitCode is the exit code of `aiwatt run` itself.
	ExitCode int `json:"exit_code"`
	// ChildExitCode is the command's exit code; nil when a signal ended it.
	ChildExitCode *int `json:"child_exit_code"`
	// ChildSignal names the signal that ended the command, if one did.
	ChildSignal string `json:"child_signal,omitempty"`
	// BudgetJoules is the energy budget; 0 means none.
	BudgetJoules float64 `json:"budget_joules"`
	// BudgetUsed is Energy.Total / BudgetJoules; 0 without a budget.
	BudgetUsed float64 `json:"budget_used"`
	// BudgetExceeded is set when the run used more than its budget and was
	// stopped.
	BudgetExceeded bool `json:"budget_exceeded"`
	// Energy is the run's energy by component, in joules.
	Energy Components `json:"energy_joules"`
	// EnergyKWh is Energy.Total in kilowatt-hours.
	EnergyKWh float64 `json:"energy_kwh"`
	// Power is the run's average and peak power.
	Power PowerReport `json:"power"`
	// CO2e is the run's emissions.
	CO2e CO2eReport `json:"co2e"`
	// Node is the whole node's energy over the run, and the parts that were
	// idle or used by no process of the run.
	Node NodeEnergy `json:"node_energy_joules"`
	// Measurement says how each component's energy was measured.
	Measurement MeasurementReport `json:"measurement"`
	// Carbon is the provenance of the CO2e figures.
	Carbon CarbonReport `json:"carbon"`
	// Tree describes the process tree that was measured.
	Tree TreeReport `json:"process_tree"`
	// Attribution is AttributionPolicy.
	Attribution string `json:"attribution"`
	// Notes are remarks on the measurement: fallbacks, unknowns, errors.
	Notes []string `json:"notes"`
}

// PowerReport is the run's power.
type PowerReport struct {
	// AvgWatts is the run's energy over its duration.
	AvgWatts float64 `json:"avg_watts"`
	// PeakWatts is the highest power over one tick.
	PeakWatts float64 `json:"peak_watts"`
}

// CO2eReport is the run's emissions in grams CO2e.
type CO2eReport struct {
	// LocationGrams is the location-based CO2e.
	LocationGrams float64 `json:"location_grams"`
	// MarketGrams is the market-based CO2e; nil without market instruments.
	MarketGrams *float64 `json:"market_grams,omitempty"`
	// Complete is false when an intensity lookup failed for some tick.
	Complete bool `json:"complete"`
}

// NodeEnergy is the node's energy over the run by component.
type NodeEnergy struct {
	// Total is every joule the node's devices used.
	Total Components `json:"total"`
	// Idle is the idle part of shared devices (not the run's).
	Idle Components `json:"idle"`
	// Unattributed is active energy of processes outside the run, or of
	// activity no process accounted for.
	Unattributed Components `json:"unattributed"`
}

// ComponentMethod says how one component was measured.
type ComponentMethod struct {
	// Method is rapl, estimate, none, or GPU sources joined by "+" (nvml,
	// nvml_power, dcgm_exporter).
	Method string `json:"method"`
	// Detail explains Method.
	Detail string `json:"detail"`
}

// GPUReport is one GPU's part in the run.
type GPUReport struct {
	// Index is the GPU index; -1 unknown.
	Index int `json:"index"`
	// UUID is the GPU UUID.
	UUID string `json:"uuid"`
	// Model is the product name.
	Model string `json:"model,omitempty"`
	// Sources are the energy sources read (nvml, nvml_power, dcgm_exporter).
	Sources []string `json:"sources"`
	// Attribution is the rule (GPU* constants) that gave the run the most
	// energy; Rules has every rule applied.
	Attribution string `json:"attribution"`
	// NodeJoules is the GPU's energy over the run.
	NodeJoules float64 `json:"node_joules"`
	// RunJoules is the part attributed to the run.
	RunJoules float64 `json:"run_joules"`
	// Rules breaks the GPU's energy down by the rule applied in each tick,
	// in order of first use.
	Rules []GPURule `json:"rules"`
}

// GPURule is a GPU's energy over the ticks in which one attribution rule
// applied.
type GPURule struct {
	// Rule is one of the GPU* constants.
	Rule string `json:"rule"`
	// NodeJoules is the GPU's energy in those ticks.
	NodeJoules float64 `json:"node_joules"`
	// RunJoules is the run's part of it.
	RunJoules float64 `json:"run_joules"`
}

// MeasurementReport says how each component was measured.
type MeasurementReport struct {
	// CPU is the CPU package energy method.
	CPU ComponentMethod `json:"cpu"`
	// DRAM is the memory energy method.
	DRAM ComponentMethod `json:"dram"`
	// GPU is the GPU energy method.
	GPU ComponentMethod `json:"gpu"`
	// GPUs details every GPU seen.
	GPUs []GPUReport `json:"gpus"`
}

// SourceReport is one carbon-intensity source used (carbon.SourceUse).
type SourceReport struct {
	// Provider is the intensity provider's name, e.g. "static".
	Provider string `json:"provider"`
	// Zone is the zone as the provider knows it.
	Zone string `json:"zone"`
	// Source is the data's publisher, e.g. "Ember/OWID".
	Source string `json:"source"`
	// Dataset names the dataset and its version (the data year for the
	// static table).
	Dataset string `json:"dataset"`
	// Licence is the data's licence.
	Licence string `json:"licence"`
	// FactorType is direct, lifecycle or unspecified.
	FactorType string `json:"factor_type"`
	// From and To bound the time the source was used for.
	From time.Time `json:"from"`
	// To is the end of that time.
	To time.Time `json:"to"`
	// EnergyJoules is the run's energy the source covered.
	EnergyJoules float64 `json:"energy_joules"`
	// LocationGrams is the location-based CO2e computed with it.
	LocationGrams float64 `json:"location_grams"`
	// Estimated is set when a value used was estimated or forecast.
	Estimated bool `json:"estimated"`
	// Fallback is set when a value used came after skipping a provider.
	Fallback bool `json:"fallback"`
	// MarketFactorSources say where market factors came from.
	MarketFactorSources []string `json:"market_factor_sources,omitempty"`
}

// MarketReport describes the market instruments applied (carbon.Market).
type MarketReport struct {
	// SupplierFactor is the supplier-specific factor in g/kWh, if any.
	SupplierFactor *float64 `json:"supplier_factor_g_per_kwh,omitempty"`
	// SupplierSource documents SupplierFactor.
	SupplierSource string `json:"supplier_source,omitempty"`
	// ResidualFactor is the residual-mix factor in g/kWh, if any.
	ResidualFactor *float64 `json:"residual_factor_g_per_kwh,omitempty"`
	// ResidualSource documents ResidualFactor.
	ResidualSource string `json:"residual_source,omitempty"`
	// CoveredShare is the share of consumption covered by PPAs, RECs or GOs.
	CoveredShare float64 `json:"covered_share"`
	// CoveredSource names those instruments.
	CoveredSource string `json:"covered_source,omitempty"`
}

// CarbonReport is the provenance of the CO2e figures.
type CarbonReport struct {
	// Zone is the carbon-intensity zone asked for.
	Zone string `json:"zone"`
	// Provider is the intensity provider's name.
	Provider string `json:"provider"`
	// Intensity is the value at the start of the run, with its provenance.
	Intensity carbon.Intensity `json:"intensity"`
	// Sources lists every intensity source used, with the energy it covered.
	Sources []SourceReport `json:"sources"`
	// Market describes the market instruments; nil without them.
	Market *MarketReport `json:"market,omitempty"`
}

// TreeReport describes the measured process tree.
type TreeReport struct {
	// RootPID is the command's PID.
	RootPID int `json:"root_pid"`
	// ProcessesSeen counts the distinct processes of the run seen by a scan.
	ProcessesSeen int `json:"processes_seen"`
	// MaxProcesses is the most processes of the run alive at one scan.
	MaxProcesses int `json:"max_processes"`
	// CPUSeconds is the CPU time of the run's processes, including
	// descendants that lived between two scans.
	CPUSeconds float64 `json:"cpu_seconds"`
	// OtherCPUSeconds is the CPU time of all other processes.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report JSON: %w", err)
	}
	return nil
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{
	"start", "end", "duration_seconds", "command", "exit_code", "budget_joules", "budget_exceeded",
	"energy_cpu_joules", "energy_dram_joules", "energy_gpu_joules", "energy_total_joules", "energy_kwh",
	"avg_power_watts", "peak_power_watts", "co2e_location_grams", "co2e_market_grams",
	"zone", "intensity_g_per_kwh", "intensity_provider", "intensity_source", "intensity_dataset",
	"intensity_licence", "intensity_factor_type", "cpu_method", "dram_method", "gpu_method",
}

// WriteCSV writes a header row and one row for the run.
func (r *Report) WriteCSV(w io.Writer) error {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	market := ""
	if r.CO2e.MarketGrams != nil {
		market = f(*r.CO2e.MarketGrams)
	}
	in := r.Carbon.Intensity
	row := []string{
		r.Start.UTC().Format(time.RFC3339Nano), r.End.UTC().Format(time.RFC3339Nano), f(r.DurationSeconds),
		strings.Join(r.Command, " "), strconv.Itoa(r.ExitCode), f(r.BudgetJoules), strconv.FormatBool(r.BudgetExceeded),
		f(r.Energy.CPU), f(r.Energy.DRAM), f(r.Energy.GPU), f(r.Energy.Total), f(r.EnergyKWh),
		f(r.Power.AvgWatts), f(r.Power.PeakWatts), f(r.CO2e.LocationGrams), market,
		r.Carbon.Zone, f(float64(in.Value)), in.Provider, in.Provenance.Source, in.Provenance.Dataset,
		in.Provenance.Licence, string(in.Provenance.FactorType),
		r.Measurement.CPU.Method, r.Measurement.DRAM.Method, r.Measurement.GPU.Method,
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write report CSV: %w", err)
	}
	if err := cw.Write(row); err != nil {
		return fmt.Errorf("write report CSV: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write report CSV: %w", err)
	}
	return nil
}

// Metric is one named number of a run's summary.
type Metric struct {
	// Key is the name, e.g. "aiwatt/energy_kwh".
	Key string
	// Value is the number.
	Value float64
}

// Metrics returns the run's summary numbers under flat "aiwatt/" keys, as
// written to W&B summaries and MLflow runs.
func (r *Report) Metrics() []Metric {
	b := 0.0
	if r.BudgetExceeded {
		b = 1
	}
	out := []Metric{
		{"aiwatt/energy_kwh", r.EnergyKWh},
		{"aiwatt/energy_joules", r.Energy.Total},
		{"aiwatt/energy_cpu_joules", r.Energy.CPU},
		{"aiwatt/energy_dram_joules", r.Energy.DRAM},
		{"aiwatt/energy_gpu_joules", r.Energy.GPU},
		{"aiwatt/co2e_g", r.CO2e.LocationGrams},
	}
	if r.CO2e.MarketGrams != nil {
		out = append(out, Metric{"aiwatt/co2e_market_g", *r.CO2e.MarketGrams})
	}
	out = append(out,
		Metric{"aiwatt/duration_s", r.DurationSeconds},
		Metric{"aiwatt/avg_power_w", r.Power.AvgWatts},
		Metric{"aiwatt/peak_power_w", r.Power.PeakWatts},
		Metric{"aiwatt/intensity_g_per_kwh", float64(r.Carbon.Intensity.Value)},
		Metric{"aiwatt/exit_code", float64(r.ExitCode)},
		Metric{"aiwatt/budget_exceeded", b},
	)
	if r.BudgetJoules > 0 {
		out = append(out, Metric{"aiwatt/budget_kwh", r.BudgetJoules / carbon.JoulesPerKWh}, Metric{"aiwatt/budget_used", r.BudgetUsed})
	}
	return out
}

// Tags returns the run's provenance as flat "aiwatt/" string keys.
func (r *Report) Tags() map[string]string {
	in := r.Carbon.Intensity
	return map[string]string{
		"aiwatt/zone":               r.Carbon.Zone,
		"aiwatt/intensity_provider": in.Provider,
		"aiwatt/intensity_source":   in.Provenance.Source,
		"aiwatt/intensity_dataset":  in.Provenance.Dataset,
		"aiwatt/intensity_licence":  in.Provenance.Licence,
		"aiwatt/cpu_method":         r.Measurement.CPU.Method,
		"aiwatt/dram_method":        r.Measurement.DRAM.Method,
		"aiwatt/gpu_method":         r.Measurement.GPU.Method,
		"aiwatt/budget_exceeded":    strconv.FormatBool(r.BudgetExceeded),
	}
}

// FormatEnergy writes joules as J, Wh or kWh, whichever reads best.
func FormatEnergy(j float64) string {
	switch {
	case j >= 3.6e6:
		return fmt.Sprintf("%.4g kWh", j/3.6e6)
	case j >= 3600:
		return fmt.Sprintf("%.4g Wh", j/3600)
	default:
		return fmt.Sprintf("%.4g J", j)
	}
}

// LiveLine is a one-line progress summary: elapsed time, energy, power,
// CO2e and budget used.
func LiveLine(p Progress) string {
	var b strings.Builder
	el := p.Elapsed.Round(time.Second)
	fmt.Fprintf(&b, "aiwatt run %d:%02d:%02d  %s  %.1f W  %.3g gCO2e", int(el.Hours()), int(el.Minutes())%60, int(el.Seconds())%60,
		FormatEnergy(p.Energy.Total), p.Watts, p.CO2eGrams)
	if p.BudgetJoules > 0 {
		fmt.Fprintf(&b, "  budget %.1f%%", 100*p.BudgetUsed)
	}
	fmt.Fprintf(&b, "  %d procs", p.Processes)
	return b.String()
}

// WriteSummary writes the human summary printed at the end of a run.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	switch {
	case r.BudgetExceeded:
		fmt.Fprintf(&b, "aiwatt run: energy budget exceeded: command stopped after %.1fs (exit %d)\n", r.DurationSeconds, r.ExitCode)
	case r.ChildSignal != "":
		fmt.Fprintf(&b, "aiwatt run: command killed by %s after %.1fs (exit %d)\n", r.ChildSignal, r.DurationSeconds, r.ExitCode)
	default:
		fmt.Fprintf(&b, "aiwatt run: command exited with code %d after %.1fs\n", r.ExitCode, r.DurationSeconds)
	}
	fmt.Fprintf(&b, "  energy  %s = cpu %s + dram %s + gpu %s (avg %.1f W, peak %.1f W)\n",
		FormatEnergy(r.Energy.Total), FormatEnergy(r.Energy.CPU), FormatEnergy(r.Energy.DRAM), FormatEnergy(r.Energy.GPU),
		r.Power.AvgWatts, r.Power.PeakWatts)
	in := r.Carbon.Intensity
	fmt.Fprintf(&b, "  co2e    %.4g g location-based (%s %g gCO2e/kWh: %s, %s, %s)", r.CO2e.LocationGrams,
		r.Carbon.Zone, float64(in.Value), in.Provenance.Source, in.Provenance.Dataset, in.Provenance.Licence)
	if r.CO2e.MarketGrams != nil {
		fmt.Fprintf(&b, "; %.4g g market-based", *r.CO2e.MarketGrams)
	}
	b.WriteString("\n")
	if r.BudgetJoules > 0 {
		fmt.Fprintf(&b, "  budget  %s of %s (%.1f%%)\n", FormatEnergy(r.Energy.Total), FormatEnergy(r.BudgetJoules), 100*r.BudgetUsed)
	}
	fmt.Fprintf(&b, "  method  cpu %s, dram %s, gpu %s; processes seen %d, CPU time %.2f s\n", r.Measurement.CPU.Method,
		r.Measurement.DRAM.Method, r.Measurement.GPU.Method, r.Tree.ProcessesSeen, r.Tree.CPUSeconds)
	for _, g := range r.Measurement.GPUs {
		fmt.Fprintf(&b, "  gpu %d   %s of %s: %s\n", g.Index, FormatEnergy(g.RunJoules), FormatEnergy(g.NodeJoules), g.Attribution)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note    %s\n", n)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
