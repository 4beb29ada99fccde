package dashboards

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Spec names one dashboard: its stable uid and the file it is committed as.
type Spec struct {
	// UID is the dashboard's stable Grafana uid; links and bookmarks depend on it.
	UID string
	// File is the JSON file's name under json/.
	File  string
	build func() *dashboard.DashboardBuilder
}

// Specs lists aiwatt's dashboards.
func Specs() []Spec {
	return []Spec{
		{UID: "aiwatt-fleet-overview", File: "aiwatt-fleet-overview.json", build: fleetOverview},
		{UID: "aiwatt-node-gpu-power", File: "aiwatt-node-gpu-power.json", build: nodeGPUPower},
		{UID: "aiwatt-inference-efficiency", File: "aiwatt-inference-efficiency.json", build: inferenceEfficiency},
		{UID: "aiwatt-carbon-disclosure", File: "aiwatt-carbon-disclosure.json", build: carbonDisclosure},
	}
}

// All builds every dashboard.
func All() ([]dashboard.Dashboard, error) {
	var out []dashboard.Dashboard
	for _, s := range Specs() {
		d, err := s.build().Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", s.UID, err)
		}
		if d.Uid == nil || *d.Uid != s.UID {
			return nil, fmt.Errorf("dashboard %s: built with another uid", s.UID)
		}
		numberPanels(&d)
		out = append(out, d)
	}
	return out, nil
}

// numberPanels gives rows and panels stable ids, in layout order, so that links to a panel
// (viewPanel=N) survive regeneration.
func numberPanels(d *dashboard.Dashboard) {
	var id uint32
	for _, p := range d.Panels {
		id++
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
			for i := range p.RowPanel.Panels {
				id++
				p.RowPanel.Panels[i].Id = cog.ToPtr(id)
			}
		}
	}
}

// Render returns every dashboard as committed: indented JSON and a final newline, by file name.
func Render() (map[string][]byte, error) {
	ds, err := All()
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for i, s := range Specs() {
		b, err := json.MarshalIndent(ds[i], "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", s.UID, err)
		}
		out[s.File] = append(b, '\n')
	}
	return out, nil
}

// Units used by the panels (Grafana unit ids).
const (
	unitWatt        = units.Watt
	unitJoule       = units.Joule
	unitKWh         = units.KiloWattHour
	unitGrams       = units.Gram
	unitSeconds     = units.Seconds
	unitPercentUnit = units.PercentUnit
	unitReqPerSec   = units.RequestsPerSecond
	unitIntensity   = "suffix: gCO₂e/kWh"
	unitTokensSec   = "suffix: tokens/s"
	unitShort       = units.Short
)

// Label filters from the template variables. `node` comes from Prometheus relabelling; `cluster` from
// relabelling or, in a fleet, from each Prometheus's external labels, which a global view (Thanos,
// VictoriaMetrics) keeps. With one Prometheus and no cluster label the variable lists nothing and
// "All" (.*) matches the empty label, so every filter below works both ways. Per-node panels keep
// cluster in their grouping and legends: node names repeat across clusters.
const (
	fCluster   = `cluster=~"$cluster"`
	fNode      = `cluster=~"$cluster", node=~"$node"`
	fNamespace = `cluster=~"$cluster", namespace=~"$namespace"`
	fWorkload  = `cluster=~"$cluster", node=~"$node", namespace=~"$namespace"`
	fModel     = `cluster=~"$cluster", namespace=~"$namespace", model_id=~"$model_id", model_id!=""`
)

// workloadJoin restricts workload energy to the workloads that serve inference, exactly as the
// recording rules do (alerts/rules/aiwatt-recording.yml).
const workloadJoin = `and on (cluster, node, instance, job, namespace, pod, container, project, model_id, workload_type) aiwatt_inference_requests_total{` + fCluster + `}`

func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// base is a dashboard with aiwatt's common settings and variables.
func base(uid, title, description string, extra ...cog.Builder[dashboard.VariableModel]) *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"aiwatt", "energy"}).
		Refresh("1m").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Editable().
		Link(dashboard.NewDashboardLinkBuilder("aiwatt").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"aiwatt"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus")).
		WithVariable(queryVar("cluster", "Cluster", `label_values(aiwatt_build_info, cluster)`)).
		WithVariable(queryVar("node", "Node", `label_values(aiwatt_build_info{cluster=~"$cluster"}, node)`)).
		WithVariable(queryVar("namespace", "Namespace", `label_values(aiwatt_workload_energy_joules_total{cluster=~"$cluster"}, namespace)`))
	for _, v := range extra {
		b = b.WithVariable(v)
	}
	return b
}

// queryVar is a multi-value variable with "All" (matching every value, or none where the label is
// not set) selected by default.
func queryVar(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("All")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("$__all")},
		})
}

// q is one panel query.
type q struct {
	expr, legend string
}

func target(i int, x q) *prometheus.DataqueryBuilder {
	t := prometheus.NewDataqueryBuilder().
		RefId(string(rune('A' + i))).
		Datasource(datasource()).
		Expr(strings.TrimSpace(x.expr))
	if x.legend != "" {
		t = t.LegendFormat(x.legend)
	}
	return t
}

// ts is a time series panel.
func ts(title, description, unit string, w uint32, queries ...q) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Unit(unit).
		Span(w).
		Height(8).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for i, x := range queries {
		p = p.WithTarget(target(i, x).Range())
	}
	return p
}

// stacked is a stacked time series panel (parts of a whole).
func stacked(title, description, unit string, w uint32, queries ...q) *timeseries.PanelBuilder {
	return ts(title, description, unit, w, queries...).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
		FillOpacity(40)
}

// bars is a time series panel drawn as bars, one per interval (e.g. energy per day).
func bars(title, description, unit, interval string, w uint32, queries ...q) *timeseries.PanelBuilder {
	return stacked(title, description, unit, w, queries...).
		DrawStyle(common.GraphDrawStyleBars).
		FillOpacity(80).
		Interval(interval)
}

// st is a stat panel showing the last value.
func st(title, description, unit string, w uint32, queries ...q) *stat.PanelBuilder {
	p := stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Unit(unit).
		Span(w).
		Height(4).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
	for i, x := range queries {
		p = p.WithTarget(target(i, x).Instant())
	}
	return p
}

// tbl is a table panel of instant values.
func tbl(title, description, unit string, w uint32, queries ...q) *table.PanelBuilder {
	p := table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource()).
		Unit(unit).
		Span(w).
		Height(8)
	for i, x := range queries {
		p = p.WithTarget(target(i, x).Instant().Format(prometheus.PromQueryFormatTable))
	}
	return p
}

// basisOptions are the CO₂e bases, location first (the default).
func basisOptions() []dashboard.VariableOption {
	var out []dashboard.VariableOption
	for i, b := range []string{"location", "market"} {
		out = append(out, dashboard.VariableOption{
			Selected: cog.ToPtr(i == 0),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr(b)},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr(b)},
		})
	}
	return out
}

func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }

func fleetOverview() *dashboard.DashboardBuilder {
	return base("aiwatt-fleet-overview", "aiwatt / Fleet overview",
		"Power and energy of every node aiwatt measures, where it goes, and whether the agents are healthy. "+
			"Power panels read the recording rules of alerts/rules/aiwatt-recording.yml.").
		WithRow(row("Now")).
		WithPanel(st("IT power", "CPU + DRAM + GPU power measured by aiwatt (recording rule instance:aiwatt_power_watts:rate5m).", unitWatt, 5,
			q{expr: `sum(instance:aiwatt_power_watts:rate5m{` + fNode + `})`})).
		WithPanel(st("Facility power", "IT power times the PUE in use (cluster:aiwatt_pue:effective, set in alerts/rules/aiwatt-config.yml).", unitWatt, 5,
			q{expr: `sum(instance:aiwatt_facility_power_watts:rate5m{` + fNode + `})`})).
		WithPanel(st("IT energy in range", "Average IT power over the dashboard's time range times its length.", unitKWh, 5,
			q{expr: `sum(avg_over_time(instance:aiwatt_power_watts:rate5m{` + fNode + `}[$__range])) * $__range_s / 3.6e6`})).
		WithPanel(st("Workload CO₂e in range", "Location-based CO₂e of the workloads, time-matched to grid intensity by the agent.", unitGrams, 5,
			q{expr: `sum(increase(aiwatt_workload_co2e_grams_total{` + fWorkload + `, basis="location"}[$__range]))`})).
		WithPanel(st("Agents up", "Agents Prometheus scrapes successfully, of all aiwatt targets.", unitPercentUnit, 4,
			q{expr: `sum(up{job=~".*aiwatt.*", ` + fNode + `}) / count(up{job=~".*aiwatt.*", ` + fNode + `})`})).
		WithRow(row("Power")).
		WithPanel(stacked("IT power by cluster", "", unitWatt, 12,
			q{expr: `sum by (cluster) (instance:aiwatt_power_watts:rate5m{` + fNode + `})`, legend: "{{cluster}}"})).
		WithPanel(ts("Power by component", "CPU (package + DRAM) and GPU power, and the part of it no workload was charged for.", unitWatt, 12,
			q{expr: `sum(instance:aiwatt_cpu_power_watts:rate5m{` + fNode + `})`, legend: "cpu + dram"},
			q{expr: `sum(instance:aiwatt_gpu_power_watts:rate5m{` + fNode + `})`, legend: "gpu"},
			q{expr: `sum by (component) (instance_component:aiwatt_node_idle_power_watts:rate5m{` + fNode + `})`, legend: "idle {{component}} (included above)"})).
		WithPanel(stacked("Workload power by namespace", "", unitWatt, 12,
			q{expr: `sum by (namespace) (namespace_component:aiwatt_workload_power_watts:rate5m{` + fNamespace + `})`, legend: "{{namespace}}"})).
		WithPanel(stacked("Workload power by project", "", unitWatt, 12,
			q{expr: `sum by (project) (project:aiwatt_workload_power_watts:rate5m{` + fCluster + `})`, legend: "{{project}}"})).
		WithRow(row("Health")).
		WithPanel(ts("Sources up", "Agents per source whose last sample succeeded. A source absent on a node (no GPU, no RAPL) is 0 there without being an error.", unitShort, 8,
			q{expr: `sum by (source) (aiwatt_source_up{` + fNode + `})`, legend: "{{source}}"})).
		WithPanel(ts("Source errors", "", unitShort, 8,
			q{expr: `sum by (source, reason) (rate(aiwatt_source_errors_total{` + fNode + `}[$__rate_interval]))`, legend: "{{source}} {{reason}}"})).
		WithPanel(ts("Oldest sample", "Age of the oldest agent sample; AiwattSamplingStalled fires above 2 minutes.", unitSeconds, 8,
			q{expr: `max(time() - aiwatt_last_sample_timestamp_seconds{` + fNode + `})`, legend: "oldest"}))
}

func nodeGPUPower() *dashboard.DashboardBuilder {
	return base("aiwatt-node-gpu-power", "aiwatt / Node and GPU power",
		"Per-node CPU, DRAM and GPU power from the raw energy counters, GPU power against its limit, and the agent's sources.").
		WithRow(row("CPU")).
		WithPanel(ts("CPU power by zone", "RAPL zones nest: core and uncore are parts of package; psys covers the SoC. Sum package and dram for CPU power. source=estimate is the CPU power model.", unitWatt, 12,
			q{expr: `sum by (cluster, node, socket, zone, source) (rate(aiwatt_cpu_energy_joules_total{` + fNode + `}[$__rate_interval]))`, legend: "{{cluster}} {{node}} socket {{socket}} {{zone}} ({{source}})"})).
		WithPanel(ts("CPU power per node", "package + dram; measured RAPL where the rapl source is up, else the estimate.", unitWatt, 12,
			q{expr: `instance:aiwatt_cpu_power_watts:rate5m{` + fNode + `}`, legend: "{{cluster}} {{node}}"})).
		WithRow(row("GPU")).
		WithPanel(ts("GPU power (energy counter)", "Rate of the GPU energy counter: the authoritative power figure.", unitWatt, 12,
			q{expr: `sum by (cluster, node, gpu, uuid) (rate(aiwatt_gpu_energy_joules_total{` + fNode + `}[$__rate_interval]))`, legend: "{{cluster}} {{node}} gpu {{gpu}}"})).
		WithPanel(ts("GPU power and limit", "Instantaneous power at the last sample, with the enforced limit.", unitWatt, 12,
			q{expr: `aiwatt_gpu_power_watts{` + fNode + `}`, legend: "{{cluster}} {{node}} gpu {{gpu}}"},
			q{expr: `aiwatt_gpu_power_limit_watts{` + fNode + `}`, legend: "{{cluster}} {{node}} gpu {{gpu}} limit"})).
		WithPanel(ts("GPU power / limit", "AiwattGPUPowerNearLimit fires when the 10-minute average stays above 95%.", unitPercentUnit, 12,
			q{expr: `aiwatt_gpu_power_watts{` + fNode + `} / (aiwatt_gpu_power_limit_watts{` + fNode + `} > 0)`, legend: "{{cluster}} {{node}} gpu {{gpu}}"})).
		WithPanel(tbl("GPUs", "", unitShort, 12,
			q{expr: `aiwatt_gpu_info{` + fNode + `}`})).
		WithRow(row("Attribution")).
		WithPanel(stacked("Attributed and idle power", "Energy charged to workloads, and node idle energy charged to none, by component. They add up to the devices' energy.", unitWatt, 24,
			q{expr: `sum by (cluster, node, component) (rate(aiwatt_workload_energy_joules_total{` + fWorkload + `}[$__rate_interval]))`, legend: "{{cluster}} {{node}} {{component}} workloads"},
			q{expr: `sum by (cluster, node, component) (rate(aiwatt_node_idle_energy_joules_total{` + fNode + `}[$__rate_interval]))`, legend: "{{cluster}} {{node}} {{component}} idle"})).
		WithRow(row("Agent")).
		WithPanel(ts("Sources up", "", unitShort, 8,
			q{expr: `aiwatt_source_up{` + fNode + `}`, legend: "{{cluster}} {{node}} {{source}}"})).
		WithPanel(ts("Sample duration", "How long each source's last sample took; close to the interval means the loop is at risk.", unitSeconds, 8,
			q{expr: `aiwatt_sample_duration_seconds{` + fNode + `}`, legend: "{{cluster}} {{node}} {{source}}"})).
		WithPanel(ts("Sample age", "", unitSeconds, 8,
			q{expr: `time() - aiwatt_last_sample_timestamp_seconds{` + fNode + `}`, legend: "{{cluster}} {{node}}"}))
}

func inferenceEfficiency() *dashboard.DashboardBuilder {
	modelVar := queryVar("model_id", "Model", `label_values(aiwatt_inference_requests_total{cluster=~"$cluster", namespace=~"$namespace"}, model_id)`)
	basisVar := dashboard.NewCustomVariableBuilder("basis").
		Label("CO₂e basis").
		Values(dashboard.StringOrMap{String: cog.ToPtr("location,market")}).
		Options(basisOptions()).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("location")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("location")},
		})
	energy := `sum by (model_id) (rate(aiwatt_workload_energy_joules_total{` + fModel + `}[$__rate_interval]) ` + workloadJoin + `)`
	requests := `sum by (model_id) (rate(aiwatt_inference_requests_total{` + fModel + `}[$__rate_interval]))`
	outTokens := `sum by (model_id) (rate(aiwatt_inference_output_tokens_total{` + fModel + `}[$__rate_interval]))`
	co2e := `sum by (model_id) (rate(aiwatt_workload_co2e_grams_total{` + fModel + `, basis=~"$basis"}[$__rate_interval]) ` + workloadJoin + `)`
	return base("aiwatt-inference-efficiency", "aiwatt / Inference efficiency",
		"Energy and carbon per request and per output token, by model. Numerators and denominators are summed separately, then divided. "+
			"Energy counts only the workloads that serve the model.",
		modelVar, basisVar).
		WithRow(row("Per request")).
		WithPanel(ts("Energy per request", "", unitJoule, 12,
			q{expr: energy + ` / (` + requests + ` > 0)`, legend: "{{model_id}}"})).
		WithPanel(ts("Energy per output token", "", unitJoule, 12,
			q{expr: energy + ` / (` + outTokens + ` > 0)`, legend: "{{model_id}}"})).
		WithPanel(ts("CO₂e per 1,000 requests", "Grams CO₂e per 1,000 requests, IT energy, basis chosen above.", unitGrams, 12,
			q{expr: `1000 * ` + co2e + ` / (` + requests + ` > 0)`, legend: "{{model_id}}"})).
		WithPanel(ts("SCI per request", "SCI-style (E·I)/R: facility energy (PUE applied) times location-based intensity, per request; no embodied term.", unitGrams, 12,
			q{expr: `model_id:aiwatt_sci_co2e_grams_per_request:rate5m{cluster=~"$cluster", model_id=~"$model_id"}`, legend: "{{model_id}}"})).
		WithRow(row("Regression alert")).
		WithPanel(ts("Energy per request against its 7-day baseline", "What AiwattInferenceEnergyPerRequestRegression compares: the 1-hour figure pages above 1.25 × the baseline (at comparable load, ≥ 0.1 req/s).", unitJoule, 24,
			q{expr: `model_id:aiwatt_inference_joules_per_request:rate1h{cluster=~"$cluster", model_id=~"$model_id"}`, legend: "{{model_id}} 1h"},
			q{expr: `model_id:aiwatt_inference_joules_per_request:rate1h_avg7d{cluster=~"$cluster", model_id=~"$model_id"}`, legend: "{{model_id}} 7-day baseline"},
			q{expr: `1.25 * model_id:aiwatt_inference_joules_per_request:rate1h_avg7d{cluster=~"$cluster", model_id=~"$model_id"}`, legend: "{{model_id}} page threshold"})).
		WithRow(row("Load")).
		WithPanel(ts("Requests", "", unitReqPerSec, 8,
			q{expr: requests, legend: "{{model_id}}"})).
		WithPanel(ts("Output tokens", "", unitTokensSec, 8,
			q{expr: outTokens, legend: "{{model_id}}"})).
		WithPanel(stacked("Serving power", "Power of the workloads that serve each model.", unitWatt, 8,
			q{expr: energy, legend: "{{model_id}}"})).
		WithPanel(tbl("Energy per request by pod", "", unitJoule, 24,
			q{expr: `sum by (namespace, pod, model_id) (rate(aiwatt_workload_energy_joules_total{` + fModel + `}[$__rate_interval]) ` + workloadJoin + `)` +
				` / (sum by (namespace, pod, model_id) (rate(aiwatt_inference_requests_total{` + fModel + `}[$__rate_interval])) > 0)`}))
}

func carbonDisclosure() *dashboard.DashboardBuilder {
	basisVar := dashboard.NewCustomVariableBuilder("basis").
		Label("CO₂e basis").
		Values(dashboard.StringOrMap{String: cog.ToPtr("location,market")}).
		Options(basisOptions()).
		Multi(true).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr("location")},
			Value: dashboard.StringOrArrayOfString{String: cog.ToPtr("location")},
		})
	return base("aiwatt-carbon-disclosure", "aiwatt / Carbon and disclosure",
		"Energy and CO₂e totals and trends by project, grid carbon intensity and its freshness: the figures a disclosure report starts from. "+
			"Location- and market-based CO₂e are never added together.",
		basisVar).
		Time("now-30d", "now").
		WithRow(row("Totals in range")).
		WithPanel(st("Workload energy", "", unitKWh, 6,
			q{expr: `sum(increase(aiwatt_workload_energy_joules_total{` + fWorkload + `}[$__range])) / 3.6e6`})).
		WithPanel(st("Node idle energy", "Energy charged to no workload.", unitKWh, 6,
			q{expr: `sum(increase(aiwatt_node_idle_energy_joules_total{` + fNode + `}[$__range])) / 3.6e6`})).
		WithPanel(st("Workload CO₂e", "", unitGrams, 6,
			q{expr: `sum by (basis) (increase(aiwatt_workload_co2e_grams_total{` + fWorkload + `, basis=~"$basis"}[$__range]))`, legend: "{{basis}}"})).
		WithPanel(st("PUE in use", "cluster:aiwatt_pue:effective, from alerts/rules/aiwatt-config.yml.", unitShort, 6,
			q{expr: `cluster:aiwatt_pue:effective{` + fCluster + `}`, legend: "{{cluster}}"})).
		WithRow(row("Trend")).
		WithPanel(bars("Energy per day by project", "", unitKWh, "1d", 12,
			q{expr: `sum by (project) (increase(aiwatt_workload_energy_joules_total{` + fWorkload + `}[$__interval])) / 3.6e6`, legend: "{{project}}"})).
		WithPanel(bars("CO₂e per day by project", "", unitGrams, "1d", 12,
			q{expr: `sum by (project, basis) (increase(aiwatt_workload_co2e_grams_total{` + fWorkload + `, basis=~"$basis"}[$__interval]))`, legend: "{{project}} ({{basis}})"})).
		WithPanel(bars("Facility energy per day by project", "Average facility power (IT × PUE) over each day times its length.", unitKWh, "1d", 12,
			q{expr: `sum by (project) (avg_over_time(project:aiwatt_facility_power_watts:rate5m{` + fCluster + `}[$__interval])) * $__interval_ms / 3.6e9`, legend: "{{project}}"})).
		WithPanel(ts("Budget burn rate", "1 spends a project's energy budget exactly over its window; the alerts page above 14.4 (1h) and ticket above 6 (6h).", unitShort, 12,
			q{expr: `project_window:aiwatt_energy_budget_burn_rate:rate1h{` + fCluster + `}`, legend: "{{cluster}} {{project}} {{window}} 1h"},
			q{expr: `project_window:aiwatt_energy_budget_burn_rate:rate6h{` + fCluster + `}`, legend: "{{cluster}} {{project}} {{window}} 6h"})).
		WithRow(row("Grid")).
		WithPanel(ts("Grid carbon intensity", "", unitIntensity, 12,
			q{expr: `max by (zone, provider, basis) (aiwatt_grid_carbon_intensity_grams_per_kwh{` + fCluster + `, basis=~"$basis"})`, legend: "{{zone}} {{provider}} ({{basis}})"})).
		WithPanel(ts("Intensity age", "Time since the validity window of the intensity in use ended; AiwattCarbonIntensityStale fires above 2 hours.", unitSeconds, 12,
			q{expr: `max by (zone, provider, basis) (aiwatt_grid_carbon_intensity_age_seconds{` + fCluster + `, basis=~"$basis"})`, legend: "{{zone}} {{provider}} ({{basis}})"}))
}

// Query is one PromQL expression of a dashboard panel, with its Grafana
// variables ($__rate_interval, $cluster, …) left in.
type Query struct {
	// File is the dashboard's JSON file name.
	File string
	// Panel is the panel's title.
	Panel string
	// Expr is the PromQL.
	Expr string
}

// Queries returns every panel query of every dashboard, in a stable order.
func Queries() ([]Query, error) {
	files, err := Render()
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, s := range Specs() {
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(files[s.File], &d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", s.File, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, Query{File: s.File, Panel: p.Title, Expr: tg.Expr})
				}
			}
		}
	}
	return out, nil
}
