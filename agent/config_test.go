package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfigRefusesBrokenFiles(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error, in order
	}{
		{
			name: "unknown top-level key",
			yaml: "rapl:\n  enabled: true\nrpal:\n  enabled: false\n",
			want: []string{"aiwatt.yml:3:", "field rpal not found"},
		},
		{
			name: "unknown nested key",
			yaml: "cpu_model:\n  estimate: auto\n  max_wats_per_cpu: 4\n",
			want: []string{"aiwatt.yml:3:", "field max_wats_per_cpu not found"},
		},
		{
			name: "wrong type",
			yaml: "rapl:\n  max_power_watts: lots\n",
			want: []string{"aiwatt.yml:2:", "cannot unmarshal !!str into float64"},
		},
		{
			name: "bad enum",
			yaml: "# comment\ncpu_model:\n  estimate: sometimes\n",
			want: []string{"aiwatt.yml:3:", "cpu_model.estimate", `"sometimes"`},
		},
		{
			name: "max below min",
			yaml: "cpu_model:\n  min_watts_per_cpu: 2\n  max_watts_per_cpu: 1\n",
			want: []string{"aiwatt.yml:3:", "cpu_model.max_watts_per_cpu", "at least min_watts_per_cpu (2)"},
		},
		{
			name: "max below default min",
			yaml: "cpu_model:\n  max_watts_per_cpu: 0.5\n",
			want: []string{"aiwatt.yml:2:", "at least min_watts_per_cpu (0.74)"},
		},
		{
			name: "negative min",
			yaml: "cpu_model:\n  min_watts_per_cpu: -1\n",
			want: []string{"aiwatt.yml:2:", "must be positive"},
		},
		{
			name: "negative ceiling",
			yaml: "\n\nrapl:\n  max_power_watts: -5\n",
			want: []string{"aiwatt.yml:4:", "rapl.max_power_watts", "must be positive"},
		},
		{
			name: "negative cpus",
			yaml: "cpu_model:\n  cpus: -2\n",
			want: []string{"aiwatt.yml:2:", "cpu_model.cpus"},
		},
		{
			name: "syntax error",
			yaml: "rapl:\n  enabled: true\n   max_power_watts: 3\n",
			want: []string{"aiwatt.yml:3:"},
		},
		{
			name: "tab indentation",
			yaml: "rapl:\n\tenabled: true\n",
			want: []string{"aiwatt.yml:2:"},
		},
		{
			name: "two documents",
			yaml: "rapl:\n  enabled: true\n---\nrapl:\n  enabled: false\n",
			want: []string{"aiwatt.yml:3:", "one YAML document"},
		},
		{
			name: "scalar instead of mapping",
			yaml: "rapl: yes\n",
			want: []string{"aiwatt.yml:1:"},
		},
		{
			name: "unknown GPU backend",
			yaml: "gpu:\n  backend: dcgm\n",
			want: []string{"aiwatt.yml:2:", "gpu.backend", "dcgm-exporter"},
		},
		{
			name: "exporter URL without scheme",
			yaml: "gpu:\n  backend: dcgm-exporter\n  exporter_url: localhost:9400/metrics\n",
			want: []string{"aiwatt.yml:3:", "gpu.exporter_url", "http(s) URL"},
		},
		{
			name: "bad duration",
			yaml: "gpu:\n  exporter_timeout: five seconds\n",
			want: []string{"aiwatt.yml:2:"},
		},
		{
			name: "negative refresh",
			yaml: "gpu:\n  exporter_min_refresh: -1s\n",
			want: []string{"aiwatt.yml:2:", "gpu.exporter_min_refresh"},
		},
		{
			name: "two errors reported together",
			yaml: "cpu_model:\n  estimate: x\n  cpus: -1\n",
			want: []string{"aiwatt.yml:2:", "aiwatt.yml:3:"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("aiwatt.yml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("config accepted:\n%s", tc.yaml)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order %q)", msg, w, tc.want)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestParseConfigDefaultsAndValues(t *testing.T) {
	cfg, err := ParseConfig("empty.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.RAPLEnabled() || cfg.RAPL.MaxPowerWatts != DefaultRAPLMaxPowerWatts ||
		cfg.CPUModel.Estimate != EstimateAuto || *cfg.CPUModel.MinWattsPerCPU != DefaultMinWattsPerCPU ||
		*cfg.CPUModel.MaxWattsPerCPU != DefaultMaxWattsPerCPU || cfg.CPUModel.CPUs != 0 {
		t.Fatalf("defaults: %+v %+v", cfg.RAPL, cfg.CPUModel)
	}
	cfg, err = ParseConfig("set.yml", []byte(`
rapl:
  enabled: false
  max_power_watts: 800
cpu_model:
  estimate: always
  min_watts_per_cpu: 0.5
  max_watts_per_cpu: 4.5
  cpus: 16
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RAPLEnabled() || cfg.RAPL.MaxPowerWatts != 800 || cfg.CPUModel.Estimate != EstimateAlways ||
		*cfg.CPUModel.MinWattsPerCPU != 0.5 || *cfg.CPUModel.MaxWattsPerCPU != 4.5 || cfg.CPUModel.CPUs != 16 {
		t.Fatalf("values: %+v %+v", cfg.RAPL, cfg.CPUModel)
	}
}

func TestParseConfigNeverEchoesValues(t *testing.T) {
	_, err := ParseConfig("aiwatt.yml", []byte("rapl:\n  max_power_watts: sk_live_0123456789abcdef\n"))
	if err == nil || strings.Contains(err.Error(), "sk_live") {
		t.Fatalf("a value from the file reached the error: %v", err)
	}
}

func TestLoadConfigFileNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yml")
	if err := os.WriteFile(path, []byte("bogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfigFile(path)
	if err == nil || !strings.Contains(err.Error(), path+":1:") {
		t.Fatalf("want %s:1: in error, got %v", path, err)
	}
	if _, err := LoadConfigFile(filepath.Join(t.TempDir(), "missing.yml")); err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Fatalf("missing file: %v", err)
	}
}
