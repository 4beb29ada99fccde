package alerts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const runbookDir = "../docs/runbooks"

// lookTool finds an external tool or fails the test with what to do about it.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH (%v): run `make test` (its deps target installs it) or `apt-get install %s`", name, err, pkg)
	}
	return p
}

// run executes a tool with a deadline and fails the test with its output on error.
func run(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no files match %s (%v)", pattern, err)
	}
	slices.Sort(files)
	return files
}

func TestPromtoolCheckRules(t *testing.T) {
	t.Parallel()
	promtool := lookTool(t, "promtool", "prometheus")
	run(t, time.Minute, promtool, append([]string{"check", "rules"}, glob(t, "rules/*.yml")...)...)
}

func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	promtool := lookTool(t, "promtool", "prometheus")
	run(t, 2*time.Minute, promtool, append([]string{"test", "rules"}, glob(t, "tests/*.yml")...)...)
}

func loadRules(t *testing.T) []RuleFile {
	t.Helper()
	files, err := LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("want 3 rule files (alerts, config, recording), got %d", len(files))
	}
	return files
}

func alertRules(t *testing.T) []Rule {
	t.Helper()
	var out []Rule
	for _, f := range loadRules(t) {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out = append(out, r)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no alerts")
	}
	return out
}

// selectedNames returns the metric names an expression selects; a selector without a plain name
// (a regex on __name__) is an error.
func selectedNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if m.Type != labels.MatchEqual {
					errs = append(errs, fmt.Errorf("selector %s: select metrics by exact name", vs))
				}
				name = m.Value
			}
		}
		names = append(names, name)
		return nil
	})
	return names, errors.Join(errs...)
}

var recordName = regexp.MustCompile(`^[a-z][a-z0-9_]*:aiwatt_[a-z0-9_]+:[a-z0-9_]+$`)

func TestRuleExpressions(t *testing.T) {
	ok, err := QueryableMetrics()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, f := range loadRules(t) {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				id := f.Name + "/" + g.Name + "/" + r.Record + r.Alert
				if (r.Record == "") == (r.Alert == "") {
					t.Errorf("%s: a rule records or alerts, exactly one", id)
				}
				if r.Record != "" && f.Name == "aiwatt-recording.yml" && !recordName.MatchString(r.Record) {
					t.Errorf("%s: recorded name is not level:aiwatt_metric:operations", id)
				}
				if r.Record != "" && f.Name == "aiwatt-config.yml" && !slices.Contains(ContractMetrics, r.Record) && r.Record != "aiwatt_pue" {
					t.Errorf("%s: the config file may only define aiwatt_pue and contract metrics", id)
				}
				if r.Alert != "" {
					if prev, dup := seen[r.Alert]; dup {
						t.Errorf("%s: alert also defined in %s", id, prev)
					}
					seen[r.Alert] = id
				}
				names, err := selectedNames(r.Expr)
				if err != nil {
					t.Errorf("%s: %v", id, err)
					continue
				}
				for _, n := range names {
					if !ok[n] {
						t.Errorf("%s: selects %q, which is neither in the metric contract, nor up, nor recorded by a rule", id, n)
					}
				}
			}
		}
	}
}

// Annotation templates run queries too; the metric names they mention must exist.
var annotationMetric = regexp.MustCompile(`\b(?:[a-z_]+:)?aiwatt_[a-z0-9_]+(?::[a-z0-9_]+)?`)

func TestAlertAnnotationsAndRunbooks(t *testing.T) {
	ok, err := QueryableMetrics()
	if err != nil {
		t.Fatal(err)
	}
	alerts := map[string]bool{}
	for _, r := range alertRules(t) {
		alerts[r.Alert] = true
		switch r.Labels["severity"] {
		case "critical", "warning":
		default:
			t.Errorf("%s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
		}
		if s := r.Annotations["summary"]; s == "" || strings.Contains(s, "{{") {
			t.Errorf("%s: summary must be a static, non-empty sentence; got %q", r.Alert, s)
		}
		if d := r.Annotations["description"]; !strings.Contains(d, "{{") {
			t.Errorf("%s: description must be templated (name what is affected); got %q", r.Alert, d)
		}
		for k, v := range r.Annotations {
			if k == "runbook_url" {
				continue
			}
			for _, n := range annotationMetric.FindAllString(v, -1) {
				if !ok[n] {
					t.Errorf("%s: annotation %s mentions %q, which no rule or contract defines", r.Alert, k, n)
				}
			}
		}
		want := RunbookBaseURL + r.Alert + ".md"
		if got := r.Annotations["runbook_url"]; got != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
			continue
		}
		checkRunbook(t, r.Alert, filepath.Join(runbookDir, r.Alert+".md"))
	}

	// No orphan runbooks, and the index links every alert.
	index, err := os.ReadFile(filepath.Join(runbookDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range glob(t, filepath.Join(runbookDir, "*.md")) {
		name := strings.TrimSuffix(filepath.Base(p), ".md")
		if name == "README" {
			continue
		}
		if !alerts[name] {
			t.Errorf("%s: runbook for an alert that does not exist", p)
		}
		if !strings.Contains(string(index), "("+name+".md)") {
			t.Errorf("docs/runbooks/README.md does not link %s", name)
		}
	}
	checkPromQLBlocks(t, filepath.Join(runbookDir, "README.md"))
}

// checkRunbook asserts a runbook's sections and that its PromQL parses.
func checkRunbook(t *testing.T, alert, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: runbook_url points at %s, which does not exist: %v", alert, path, err)
		return
	}
	text := string(b)
	if !strings.HasPrefix(text, "# "+alert+"\n") {
		t.Errorf("%s: must start with the heading \"# %s\"", path, alert)
	}
	for _, h := range []string{"## Meaning", "## Impact", "## Diagnosis", "## Mitigation"} {
		if !strings.Contains(text, "\n"+h+"\n") {
			t.Errorf("%s: missing section %q", path, h)
		}
	}
	if n := checkPromQLBlocks(t, path); n == 0 {
		t.Errorf("%s: the diagnosis has no ```promql block", path)
	}
}

// Prometheus's own metrics that runbooks may point at, besides aiwatt's.
var prometheusSelfMetrics = map[string]bool{
	"scrape_duration_seconds":          true,
	"prometheus_sd_discovered_targets": true,
}

// checkPromQLBlocks parses every line of every ```promql block of a Markdown file as a query and
// returns how many it found.
func checkPromQLBlocks(t *testing.T, path string) int {
	t.Helper()
	ok, err := QueryableMetrics()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, in := 0, false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "```promql":
			in = true
			continue
		case strings.HasPrefix(l, "```"):
			in = false
			continue
		case !in || l == "":
			continue
		}
		n++
		names, err := selectedNames(l)
		if err != nil {
			t.Errorf("%s:%d: %v", path, line, err)
			continue
		}
		for _, name := range names {
			if !ok[name] && !prometheusSelfMetrics[name] {
				t.Errorf("%s:%d: query selects unknown metric %q", path, line, name)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// ruleTestFile is the part of a promtool test file this test reads.
type ruleTestFile struct {
	RuleFiles      []string `yaml:"rule_files"`
	GroupEvalOrder []string `yaml:"group_eval_order"`
	Tests          []struct {
		Name           string `yaml:"name"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryRuleIsUnitTested checks that the promtool tests query every recording rule and see
// every alert both firing and not firing.
func TestEveryRuleIsUnitTested(t *testing.T) {
	tested := map[string]bool{}
	firing, silent := map[string]bool{}, map[string]bool{}
	var groups []string
	for _, f := range loadRules(t) {
		for _, g := range f.Groups {
			groups = append(groups, g.Name)
		}
	}
	for _, p := range glob(t, "tests/*.yml") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tf ruleTestFile
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		if err := dec.Decode(&tf); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, rf := range tf.RuleFiles {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), rf)); err != nil {
				t.Errorf("%s: rule file %s: %v", p, rf, err)
			}
		}
		// promtool evaluates groups in random order unless told; rules that read other groups'
		// output then see it one evaluation late, and results flake.
		for _, g := range groups {
			if slices.Contains(tf.RuleFiles, "../rules/aiwatt-alerts.yml") || !strings.HasSuffix(g, ".alerts") {
				if !slices.Contains(tf.GroupEvalOrder, g) {
					t.Errorf("%s: group_eval_order lacks %s", p, g)
				}
			}
		}
		for _, tc := range tf.Tests {
			for _, e := range tc.PromQLExprTest {
				names, err := selectedNames(e.Expr)
				if err != nil {
					t.Errorf("%s: %q: %v", p, e.Expr, err)
				}
				for _, n := range names {
					tested[n] = true
				}
			}
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					firing[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
		}
	}
	recorded, err := RecordedMetrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recorded {
		if !tested[r] {
			t.Errorf("recording rule %s has no promql_expr_test", r)
		}
	}
	for _, r := range alertRules(t) {
		if !firing[r.Alert] {
			t.Errorf("alert %s has no alert_rule_test in which it fires", r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("alert %s has no alert_rule_test in which it stays silent", r.Alert)
		}
	}
}

func TestSelectedNames(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		want    []string
		wantErr bool
	}{
		{`sum(rate(aiwatt_cpu_energy_joules_total[5m])) / up`, []string{"aiwatt_cpu_energy_joules_total", "up"}, false},
		{`{__name__="aiwatt_source_up"}`, []string{"aiwatt_source_up"}, false},
		{`{__name__=~"aiwatt_.+"}`, nil, true},
		{`sum(`, nil, true},
	} {
		got, err := selectedNames(tc.expr)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v, want error %v", tc.expr, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.expr, got, tc.want)
		}
	}
}
