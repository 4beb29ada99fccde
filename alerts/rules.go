package alerts

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"

	"go.yaml.in/yaml/v3"
)

// RuleFiles holds the rule files, as rules/*.yml.
//
//go:embed rules/*.yml
var RuleFiles embed.FS

// RunbookBaseURL is where every alert's runbook_url points: the runbook of alert A is
// RunbookBaseURL + A + ".md", the file docs/runbooks/A.md of this repository.
const RunbookBaseURL = "https://github.com/inferensys/aiwatt/blob/main/docs/runbooks/"

// ContractMetrics lists the metrics that the aiwatt agent (or, for budgets, aiwatt's configuration)
// exports and that rules and dashboards may query, besides Prometheus's own `up` and the names the
// rules record.
var ContractMetrics = []string{
	"aiwatt_cpu_energy_joules_total",
	"aiwatt_gpu_energy_joules_total",
	"aiwatt_gpu_power_watts",
	"aiwatt_gpu_power_limit_watts",
	"aiwatt_gpu_info",
	"aiwatt_workload_energy_joules_total",
	"aiwatt_node_idle_energy_joules_total",
	"aiwatt_workload_co2e_grams_total",
	"aiwatt_inference_requests_total",
	"aiwatt_inference_input_tokens_total",
	"aiwatt_inference_output_tokens_total",
	"aiwatt_grid_carbon_intensity_grams_per_kwh",
	"aiwatt_grid_carbon_intensity_age_seconds",
	"aiwatt_source_up",
	"aiwatt_source_errors_total",
	"aiwatt_sample_duration_seconds",
	"aiwatt_samples_total",
	"aiwatt_last_sample_timestamp_seconds",
	"aiwatt_build_info",
	"aiwatt_config_last_reload_successful",
	"aiwatt_config_last_reload_success_timestamp_seconds",
	"aiwatt_project_energy_budget_joules",
}

// RuleFile is one Prometheus rule file.
type RuleFile struct {
	// Name is the file's name under rules/.
	Name string `yaml:"-"`
	// Groups are the file's rule groups.
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one rule group.
type RuleGroup struct {
	// Name is the group's name.
	Name string `yaml:"name"`
	// Interval overrides the global evaluation interval; empty means the global one.
	Interval string `yaml:"interval,omitempty"`
	// Rules are the group's rules, evaluated in order.
	Rules []Rule `yaml:"rules"`
}

// Rule is a recording rule (Record set) or an alerting rule (Alert set).
type Rule struct {
	// Record is the name a recording rule writes.
	Record string `yaml:"record,omitempty"`
	// Alert is an alerting rule's name.
	Alert string `yaml:"alert,omitempty"`
	// Expr is the PromQL expression.
	Expr string `yaml:"expr"`
	// For is how long an alert stays pending before it fires.
	For string `yaml:"for,omitempty"`
	// Labels are added to the result.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Annotations are an alert's templated texts.
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// LoadRules parses the embedded rule files, sorted by name.
func LoadRules() ([]RuleFile, error) {
	names, err := fs.Glob(RuleFiles, "rules/*.yml")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	files := make([]RuleFile, 0, len(names))
	for _, name := range names {
		b, err := RuleFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var f RuleFile
		if err := yaml.Unmarshal(b, &f); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		f.Name = path.Base(name)
		files = append(files, f)
	}
	return files, nil
}

// RecordedMetrics returns the names written by the recording rules, sorted and unique.
func RecordedMetrics() ([]string, error) {
	files, err := LoadRules()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					names = append(names, r.Record)
				}
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// QueryableMetrics returns every metric name a rule or a dashboard may select: the contract, `up`
// and the recorded names.
func QueryableMetrics() (map[string]bool, error) {
	recorded, err := RecordedMetrics()
	if err != nil {
		return nil, err
	}
	ok := map[string]bool{"up": true}
	for _, n := range ContractMetrics {
		ok[n] = true
	}
	for _, n := range recorded {
		ok[n] = true
	}
	return ok, nil
}
