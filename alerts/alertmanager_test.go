package alerts

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const alertmanagerConfig = "../examples/alertmanager/alertmanager.yml"

// pagedAlerts are the alerts the example configuration sends to PagerDuty.
var pagedAlerts = []string{
	"AiwattInferenceEnergyPerRequestRegression",
	"AiwattProjectEnergyBudgetFastBurn",
	"AiwattProjectEnergyBudgetSlowBurn",
}

// amtool finds amtool or fails: `make test` installs Debian's prometheus-alertmanager.
func amtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatalf("amtool not found (%v): apt-get install prometheus-alertmanager (make test does) to validate %s", err, alertmanagerConfig)
	}
	return p
}

func TestAlertmanagerConfigChecks(t *testing.T) {
	t.Parallel()
	out := run(t, 30*time.Second, amtool(t), "check-config", alertmanagerConfig)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config: %s", out)
	}
}

// TestAlertmanagerRoutes routes every alert of the rules through the example configuration.
func TestAlertmanagerRoutes(t *testing.T) {
	t.Parallel()
	am := amtool(t)
	for _, r := range alertRules(t) {
		want := "aiwatt-chat"
		if slices.Contains(pagedAlerts, r.Alert) {
			want = "aiwatt-pagerduty"
		}
		out := run(t, 30*time.Second, am, "config", "routes", "test", "--config.file="+alertmanagerConfig,
			"--verify.receivers="+want, "alertname="+r.Alert, "severity="+r.Labels["severity"], "cluster=c1")
		if strings.TrimSpace(lastLine(out)) != want {
			t.Errorf("%s routes to %q, want %q", r.Alert, out, want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "Warning:") {
			return lines[i]
		}
	}
	return ""
}

// amConfig is the part of an Alertmanager configuration these tests read.
type amConfig struct {
	Route struct {
		Routes []struct {
			Receiver string   `yaml:"receiver"`
			Matchers []string `yaml:"matchers"`
			GroupBy  []string `yaml:"group_by"`
		} `yaml:"routes"`
	} `yaml:"route"`
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
	Receivers []map[string]any `yaml:"receivers"`
}

func loadAMConfig(t *testing.T) (amConfig, string) {
	t.Helper()
	b, err := os.ReadFile(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	var c amConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c, string(b)
}

var alertNameInText = regexp.MustCompile(`Aiwatt[A-Za-z]+`)

// TestAlertmanagerConfigContent checks what amtool cannot: names, grouping, inhibitions and secrets.
func TestAlertmanagerConfigContent(t *testing.T) {
	c, raw := loadAMConfig(t)
	alerts := map[string]bool{}
	for _, r := range alertRules(t) {
		alerts[r.Alert] = true
	}
	// Every alert name the configuration mentions exists (a renamed alert would silently fall through).
	for _, n := range alertNameInText.FindAllString(raw, -1) {
		if !alerts[n] && n != "AiwattProjectEnergyBudget" {
			t.Errorf("alertmanager.yml mentions %s, which is not an alert", n)
		}
	}
	// Pages are grouped per model and per project.
	wantGroup := map[string]string{
		"AiwattInferenceEnergyPerRequestRegression": "model_id",
		"AiwattProjectEnergyBudget":                 "project",
	}
	for _, r := range c.Route.Routes {
		for name, label := range wantGroup {
			if strings.Contains(strings.Join(r.Matchers, ","), name) {
				for _, l := range []string{"alertname", "cluster", label} {
					if !slices.Contains(r.GroupBy, l) {
						t.Errorf("route for %s: group_by %v lacks %s", name, r.GroupBy, l)
					}
				}
			}
		}
	}
	// One broken node: AiwattAgentDown suppresses its per-node alerts, matched on the instance.
	var inhibited []string
	for _, ir := range c.InhibitRules {
		if slices.Equal(ir.SourceMatchers, []string{`alertname="AiwattAgentDown"`}) {
			if !slices.Contains(ir.Equal, "instance") {
				t.Errorf("AiwattAgentDown inhibition must be equal on instance, got %v", ir.Equal)
			}
			inhibited = append(inhibited, alertNameInText.FindAllString(strings.Join(ir.TargetMatchers, ","), -1)...)
		}
	}
	for _, a := range []string{"AiwattSourceDown", "AiwattGPUEnergyCounterStuck", "AiwattCPUEnergyCounterStuck", "AiwattSamplingStalled"} {
		if !slices.Contains(inhibited, a) {
			t.Errorf("AiwattAgentDown does not inhibit %s", a)
		}
	}
	// No literal secrets: keys, URLs with tokens and passwords come from files.
	for _, key := range []string{"routing_key:", "service_key:", "api_url:", "smtp_auth_password:", "auth_password:"} {
		if strings.Contains(raw, key) {
			t.Errorf("alertmanager.yml has %s; read secrets from files (*_file)", key)
		}
	}
	if !strings.Contains(raw, "routing_key_file:") {
		t.Error("the PagerDuty receiver must use routing_key_file")
	}
}
