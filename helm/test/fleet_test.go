package test

import (
	"reflect"
	"testing"
)

// TestPrometheusRuleExcludeGroups: in a fleet the budget groups leave each
// cluster's PrometheusRule (they run in a global ruler); the rest stays.
func TestPrometheusRuleExcludeGroups(t *testing.T) {
	r := render(t, renderOpts{crds: true, values: "prometheusRule: {enabled: true, excludeGroups: [aiwatt.budget.rules, aiwatt.budget.alerts]}"})
	got := renderedRuleGroups(t, r)
	var want []any
	for _, g := range sourceRuleGroups(t) {
		if name := g.(map[string]any)["name"]; name == "aiwatt.budget.rules" || name == "aiwatt.budget.alerts" {
			continue
		}
		want = append(want, g)
	}
	if len(want) != len(sourceRuleGroups(t))-2 {
		t.Fatalf("alerts/rules has no groups aiwatt.budget.rules and aiwatt.budget.alerts to exclude")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with excludeGroups: got %d groups, want %d", len(got), len(want))
	}
}
