package report

import (
	"sort"
	"time"
)

// Report is everything one report holds; every renderer works from it.
type Report struct {
	// Title is "aiwatt energy and carbon report".
	Title string `json:"title"`
	// Organisation and Boundary come from the configuration.
	Organisation string `json:"organisation"`
	Boundary     string `json:"boundary"`
	// From and To bound the period; To is the evaluation time of every total.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Source is the Prometheus URL queried.
	Source string `json:"source"`
	// Resolution is the step used for gaps, outages and GPU-active time.
	Resolution string `json:"resolution"`
	// PUE applied to IT energy.
	PUE float64 `json:"pue"`
	// Totals over the whole boundary.
	Totals KPIs `json:"totals"`
	// Shared is node idle and unattributed energy, and the CO2e it carries.
	Shared KPIs `json:"shared"`
	// Groups are the KPIs by project, model, workload type and location.
	Groups []Group `json:"groups"`
	// ByProject, ByModel, ByWorkloadType and ByLocation aggregate Groups.
	ByProject      []Group `json:"by_project"`
	ByModel        []Group `json:"by_model"`
	ByWorkloadType []Group `json:"by_workload_type"`
	ByLocation     []Group `json:"by_location"`
	// Training lists training runs (workload_type="training").
	Training []TrainingRun `json:"training_runs"`
	// Trend is energy and CO2e per trend step.
	Trend []TrendPoint `json:"trend"`
	// TrendStep is the width of a trend point.
	TrendStep string `json:"trend_step"`
	// TopModels are models by facility energy, largest first (at most 10).
	TopModels []Group `json:"top_models"`
	// Frameworks are the disclosure tables.
	Frameworks []FrameworkTable `json:"frameworks"`
	// Targets is progress against configured targets.
	Targets []TargetProgress `json:"targets"`
	// Methodology is generated from provenance.
	Methodology Methodology `json:"methodology"`
	// DataQuality lists gaps, outages and estimated shares.
	DataQuality DataQuality `json:"data_quality"`
	// Ledger says what cloud-provider figures are shown beside the measured ones.
	Ledger string `json:"ledger"`
	// Cloud are the cloud providers' own figures from the --ledger CSV
	// export, beside (never added to) the measured figures; empty without
	// a ledger.
	Cloud CloudFigures `json:"cloud_provider_figures"`
	// Queries are the PromQL queries run, in order.
	Queries []QueryRecord `json:"queries"`
}

// KPIs are the figures of one group (or of the totals).
type KPIs struct {
	ITEnergyKWh              Num `json:"it_energy_kwh"`
	ITEnergyMWh              Num `json:"it_energy_mwh"`
	ITEnergyGJ               Num `json:"it_energy_gj"`
	FacilityEnergyKWh        Num `json:"facility_energy_kwh"`
	FacilityEnergyMWh        Num `json:"facility_energy_mwh"`
	FacilityEnergyGJ         Num `json:"facility_energy_gj"`
	CO2eLocationT            Num `json:"co2e_location_t"`
	CO2eMarketT              Num `json:"co2e_market_t"`
	Inferences               Num `json:"inferences"`
	OutputTokens             Num `json:"output_tokens"`
	EnergyPer1kInferencesKWh Num `json:"energy_per_1k_inferences_kwh"`
	CO2ePer1kInferencesG     Num `json:"co2e_per_1k_inferences_g"`
	JoulesPerOutputToken     Num `json:"joules_per_output_token"`
	SCIGramsPerUnit          Num `json:"sci_g_per_unit"`
}

// kpiUnits names every KPI key and its unit, in table order.
var kpiUnits = map[string]string{
	"it_energy_kwh": "kWh", "it_energy_mwh": "MWh", "it_energy_gj": "GJ",
	"facility_energy_kwh": "kWh", "facility_energy_mwh": "MWh", "facility_energy_gj": "GJ",
	"co2e_location_t": "t CO2e", "co2e_market_t": "t CO2e",
	"inferences": "requests", "output_tokens": "tokens",
	"energy_per_1k_inferences_kwh": "kWh (facility) / 1k inferences", "co2e_per_1k_inferences_g": "g CO2e / 1k inferences",
	"joules_per_output_token": "J (IT) / output token", "sci_g_per_unit": "g CO2e / functional unit",
	// Report-level figures for the frameworks.
	"grid_share_percent": "%", "renewable_share_percent": "%",
	"renewable_energy_mwh": "MWh", "nonrenewable_energy_mwh": "MWh",
}

// KPIKeys lists the per-group KPI keys in table order.
var KPIKeys = []string{
	"it_energy_kwh", "it_energy_mwh", "it_energy_gj", "facility_energy_kwh", "facility_energy_mwh", "facility_energy_gj",
	"co2e_location_t", "co2e_market_t", "inferences", "output_tokens",
	"energy_per_1k_inferences_kwh", "co2e_per_1k_inferences_g", "joules_per_output_token", "sci_g_per_unit",
}

// Unit returns the unit of a KPI key.
func Unit(key string) string { return kpiUnits[key] }

// Map returns the figures by KPI key.
func (k KPIs) Map() map[string]Num {
	return map[string]Num{
		"it_energy_kwh": k.ITEnergyKWh, "it_energy_mwh": k.ITEnergyMWh, "it_energy_gj": k.ITEnergyGJ,
		"facility_energy_kwh": k.FacilityEnergyKWh, "facility_energy_mwh": k.FacilityEnergyMWh, "facility_energy_gj": k.FacilityEnergyGJ,
		"co2e_location_t": k.CO2eLocationT, "co2e_market_t": k.CO2eMarketT,
		"inferences": k.Inferences, "output_tokens": k.OutputTokens,
		"energy_per_1k_inferences_kwh": k.EnergyPer1kInferencesKWh, "co2e_per_1k_inferences_g": k.CO2ePer1kInferencesG,
		"joules_per_output_token": k.JoulesPerOutputToken, "sci_g_per_unit": k.SCIGramsPerUnit,
	}
}

// Group is one row of KPIs; empty label fields mean "all" in aggregates.
type Group struct {
	Project      string `json:"project"`
	ModelID      string `json:"model_id"`
	WorkloadType string `json:"workload_type"`
	Location     string `json:"location"`
	// Region is the workload's region label where the location label is
	// not region itself (fleets label each Prometheus with cluster and
	// region); empty elsewhere.
	Region string `json:"region"`
	KPIs
}

// TrainingRun is one training workload (EU AI Act Annex XI style).
type TrainingRun struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Project   string `json:"project"`
	ModelID   string `json:"model_id"`
	Location  string `json:"location"`
	// EnergyMWh is IT energy inside the period, 2 significant figures.
	EnergyMWh string `json:"energy_mwh"`
	// EnergyKWh is the same, unrounded.
	EnergyKWh Num `json:"energy_kwh"`
	// FirstSample and LastSample are the run's first and last samples in the period.
	FirstSample time.Time `json:"first_sample"`
	LastSample  time.Time `json:"last_sample"`
	// WallClockHours is LastSample − FirstSample.
	WallClockHours Num `json:"wall_clock_hours"`
	// GPUActiveHours is the time its GPU energy rose.
	GPUActiveHours Num `json:"gpu_active_hours"`
	// GPUs is the configured GPU count (0: not configured).
	GPUs int `json:"gpus"`
	// GPUHours is GPUs × GPUActiveHours (no data without a GPU count).
	GPUHours Num `json:"gpu_hours"`
	// CO2eLocationT is the run's own location-based CO2e × PUE.
	CO2eLocationT Num `json:"co2e_location_t"`
}

// TrendPoint is energy and CO2e in (End − step, End].
type TrendPoint struct {
	End               time.Time `json:"end"`
	FacilityEnergyKWh Num       `json:"facility_energy_kwh"`
	CO2eLocationKg    Num       `json:"co2e_location_kg"`
	// Gap is true when a data gap overlaps the step.
	Gap bool `json:"gap"`
}

// QueryRecord is one query run against Prometheus.
type QueryRecord struct {
	Kind  string    `json:"kind"` // instant or range
	Query string    `json:"query"`
	Time  time.Time `json:"time,omitzero"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	Step  string    `json:"step,omitempty"`
}

// TargetProgress is one configured target and where the period stands.
type TargetProgress struct {
	Target
	Unit    string `json:"unit"`
	Current Num    `json:"current"`
	// ProgressPercent is (baseline − current) / (baseline − target) × 100.
	ProgressPercent Num `json:"progress_percent"`
}

// Methodology is generated from provenance and configuration.
type Methodology struct {
	Measurement       []MeasurementSource `json:"measurement"`
	Intensity         []IntensitySource   `json:"intensity"`
	AttributionPolicy []string            `json:"attribution_policy"`
	PUE               float64             `json:"pue"`
	PUESource         string              `json:"pue_source"`
	MarketInstruments string              `json:"market_instruments"`
	FunctionalUnit    string              `json:"functional_unit"`
	Notes             []string            `json:"notes"`
}

// MeasurementSource is a device's energy by measurement method.
type MeasurementSource struct {
	Device       string `json:"device"`
	Source       string `json:"source"`
	EnergyKWh    Num    `json:"energy_kwh"`
	SharePercent Num    `json:"share_percent"`
}

// IntensitySource is a grid zone's intensity source in the period.
type IntensitySource struct {
	// Location and Region are the agents' location and region labels
	// (cluster and region in a fleet), so each location shows its own zone.
	Location       string `json:"location"`
	Region         string `json:"region"`
	Zone           string `json:"zone"`
	Provider       string `json:"provider"`
	Basis          string `json:"basis"`
	AvgGramsPerKWh Num    `json:"avg_g_per_kwh"`
	// Dataset names the dataset and version where known (static table rows).
	Dataset string `json:"dataset"`
}

// DataQuality lists what is missing or estimated.
type DataQuality struct {
	Gaps                  []Outage `json:"gaps"`
	SourcesDown           []Outage `json:"sources_down"`
	EstimatedSharePercent Num      `json:"estimated_share_percent"`
	// PartialResponse lists the query engine's warnings: a global engine
	// (Thanos) answers with warnings when a store behind it is down, and
	// such a report is not complete (each warning is also a gap).
	PartialResponse []string `json:"partial_response"`
	Notes           []string `json:"notes"`
}

// Outage is a span with no samples (a gap) or with a source down.
type Outage struct {
	Series string    `json:"series"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Hours  Num       `json:"hours"`
}

// sortGroups orders groups by their labels.
func sortGroups(gs []Group) {
	sort.Slice(gs, func(i, j int) bool {
		a, b := gs[i], gs[j]
		if a.Project != b.Project {
			return a.Project < b.Project
		}
		if a.ModelID != b.ModelID {
			return a.ModelID < b.ModelID
		}
		if a.WorkloadType != b.WorkloadType {
			return a.WorkloadType < b.WorkloadType
		}
		if a.Location != b.Location {
			return a.Location < b.Location
		}
		return a.Region < b.Region
	})
}
