package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inferensys/aiwatt/internal/yamlconf"
)

// TestConfigErrorLines checks that every validation error is reported at
// the line of the key it is about, nested list items included.
func TestConfigErrorLines(t *testing.T) {
	src := `rapl:
  max_power_watts: 500
workloads:
  pod_labels:
    project: [team, "bad key"]
  rules:
    - name: ok
      match: {cmdline: python}
    - name: broken
      match:
        cmdline: "("
carbon:
  zone: DE
  providers:
    - type: ukci
    - type: carbonapi
    - type: electricitymaps
`
	_, err := ParseConfig("a.yml", []byte(src))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"a.yml:5: workloads.pod_labels.project.1: ",
		"a.yml:11: workloads.rules.1.match.cmdline: rule 1 (broken): bad regular expression",
		"a.yml:16: carbon: carbon.providers[1]: type \"carbonapi\"",
	} {
		if !strings.Contains(err.Error(), want+"") {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	// A nested key of a provider is placed at its own line.
	_, err = ParseConfig("b.yml", []byte("carbon:\n  zone: DE\n  providers:\n    - type: ukci\n    - type: electricitymaps\n      token: {file: /a, env: B}\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "b.yml:6: carbon: carbon.providers[1]: token:") {
		t.Fatalf("token error: %v", err)
	}
}

// TestConfigRefusesNaNFractionsAndLargeFiles covers values the YAML library
// would accept silently.
func TestConfigRefusesNaNFractionsAndLargeFiles(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"rapl:\n  max_power_watts: .nan\n", "a.yml:2: not-a-number"},
		{"cpu_model:\n  min_watts_per_cpu: .inf\n", "a.yml:2: not-a-number"},
		{"cpu_model:\n  cpus: 7.9\n", "a.yml:2: a whole number is required"},
		{"attribution:\n  max_workloads: 10.5\n", "a.yml:2: a whole number is required"},
		{"carbon:\n  zone: DE\n  market: {supplier_factor_g_per_kwh: .nan, supplier_source: x}\n", "a.yml:3: not-a-number"},
	} {
		if _, err := ParseConfig("a.yml", []byte(tc.src)); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want prefix %q", tc.src, err, tc.want)
		}
	}
	path := filepath.Join(t.TempDir(), "huge.yml")
	if err := os.WriteFile(path, []byte(strings.Repeat("#\n", yamlconf.MaxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("large file: %v", err)
	}
}

// TestTargetErrorLines places inference-target errors at the key's line.
func TestTargetErrorLines(t *testing.T) {
	src := "inference:\n  targets:\n    - url: http://127.0.0.1:8000/metrics\n      server: vllm\n    - url: http://127.0.0.1:8001/metrics\n      server: vllm\n      timeout: 10m\n      model: ' spaced '\n"
	_, err := ParseConfig("t.yml", []byte(src))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"t.yml:7: inference.targets[1]: scrape target", "t.yml:8: inference.targets[1]: scrape target"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
