package report

import (
	"fmt"

	"github.com/inferensys/aiwatt/internal/yamlconf"
)

// Config is the report configuration file (strict YAML).
type Config struct {
	// Organisation is the reporting entity's name.
	Organisation string `yaml:"organisation"`
	// Boundary describes the reporting boundary (operational control, sites, clusters).
	Boundary string `yaml:"boundary"`
	// PUE is the facility's power usage effectiveness (≥ 1); default 1.
	PUE float64 `yaml:"pue"`
	// PUESource says where the PUE comes from (e.g. "facility meter 2025 annual").
	PUESource string `yaml:"pue_source"`
	// LocationLabel is the label that names a workload's location (default "cluster").
	LocationLabel string `yaml:"location_label"`
	// FunctionalUnit is SCI's R: "inference" (default) or "output_token".
	FunctionalUnit string `yaml:"functional_unit"`
	// GridSharePercent is the share of electricity drawn from the grid (SASB); default 100.
	GridSharePercent *float64 `yaml:"grid_share_percent"`
	// MarketInstruments describe contractual instruments behind the market-based figures.
	MarketInstruments MarketInstruments `yaml:"market_instruments"`
	// Targets are reduction targets to report progress against.
	Targets []Target `yaml:"targets"`
	// TrainingRuns give the GPU count of training runs (matched by pod or model_id).
	TrainingRuns []TrainingRunConfig `yaml:"training_runs"`
}

// MarketInstruments describe energy attribute certificates, PPAs and green tariffs.
type MarketInstruments struct {
	// Note is printed in the methodology (e.g. "GoOs for 40% of DE load, 2026").
	Note string `yaml:"note"`
	// RenewableSharePercent is the renewable share of consumption covered by instruments.
	RenewableSharePercent *float64 `yaml:"renewable_share_percent"`
}

// Target is one reduction target for a KPI named as in the KPI table.
type Target struct {
	// KPI is a KPI key, e.g. "co2e_location_t" or "energy_per_1k_inferences_kwh".
	KPI string `yaml:"kpi"`
	// BaselineYear and BaselineValue are the reference.
	BaselineYear  int     `yaml:"baseline_year"`
	BaselineValue float64 `yaml:"baseline_value"`
	// TargetYear and TargetValue are the goal.
	TargetYear  int     `yaml:"target_year"`
	TargetValue float64 `yaml:"target_value"`
}

// TrainingRunConfig gives a training run's GPU count.
type TrainingRunConfig struct {
	// Pod and ModelID match a run (an empty field matches any).
	Pod     string `yaml:"pod"`
	ModelID string `yaml:"model_id"`
	// GPUs is the number of GPUs the run held.
	GPUs int `yaml:"gpus"`
}

// LoadConfig reads and validates a configuration file; an empty path gives the defaults.
func LoadConfig(path string) (*Config, error) {
	c := &Config{}
	if path != "" {
		b, err := yamlconf.ReadFile(path)
		if err != nil {
			return nil, err
		}
		root, err := yamlconf.Decode(path, b, c)
		if err != nil {
			return nil, err
		}
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, yamlconf.Line(root, err.(*fieldError).path), err)
		}
	}
	c.defaults()
	return c, nil
}

type fieldError struct{ path, msg string }

func (e *fieldError) Error() string { return e.path + ": " + e.msg }

func (c *Config) validate() error {
	if c.PUE != 0 && c.PUE < 1 {
		return &fieldError{"pue", "must be at least 1"}
	}
	switch c.FunctionalUnit {
	case "", "inference", "output_token":
	default:
		return &fieldError{"functional_unit", `must be "inference" or "output_token"`}
	}
	for i, t := range c.Targets {
		if _, ok := kpiUnits[t.KPI]; !ok {
			return &fieldError{fmt.Sprintf("targets[%d].kpi", i), "unknown KPI (see the KPI table of a report)"}
		}
		if t.TargetYear < t.BaselineYear {
			return &fieldError{fmt.Sprintf("targets[%d].target_year", i), "before baseline_year"}
		}
	}
	for i, r := range c.TrainingRuns {
		if r.GPUs <= 0 {
			return &fieldError{fmt.Sprintf("training_runs[%d].gpus", i), "must be positive"}
		}
	}
	if p := c.GridSharePercent; p != nil && (*p < 0 || *p > 100) {
		return &fieldError{"grid_share_percent", "must be within 0..100"}
	}
	if p := c.MarketInstruments.RenewableSharePercent; p != nil && (*p < 0 || *p > 100) {
		return &fieldError{"market_instruments.renewable_share_percent", "must be within 0..100"}
	}
	return nil
}

func (c *Config) defaults() {
	if c.PUE == 0 {
		c.PUE = 1
	}
	if c.LocationLabel == "" {
		c.LocationLabel = "cluster"
	}
	if c.FunctionalUnit == "" {
		c.FunctionalUnit = "inference"
	}
	if c.GridSharePercent == nil {
		v := 100.0
		c.GridSharePercent = &v
	}
}

// gpusFor returns the configured GPU count of a training run, or 0.
func (c *Config) gpusFor(pod, modelID string) int {
	for _, r := range c.TrainingRuns {
		if (r.Pod == "" || r.Pod == pod) && (r.ModelID == "" || r.ModelID == modelID) {
			return r.GPUs
		}
	}
	return 0
}
