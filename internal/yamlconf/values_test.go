package yamlconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type limits struct {
	MaxWatts float64       `yaml:"max_watts"`
	Share    *float64      `yaml:"share"`
	CPUs     int           `yaml:"cpus"`
	Count    uint32        `yaml:"count"`
	Every    time.Duration `yaml:"every"`
	Name     string        `yaml:"name"`
	Extra    map[string]any
	Inline   `yaml:",inline"`
	Items    []limits `yaml:"items"`
}

// Inline is embedded inline to check that its keys are found.
type Inline struct {
	Factor float64 `yaml:"factor"`
}

func TestDecodeRefusesNaNInfAndFractions(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"nan", "max_watts: .nan\n", "c.yml:1: not-a-number"},
		{"NaN spelled", "name: x\nmax_watts: .NaN\n", "c.yml:2: not-a-number"},
		{"inf", "share: .inf\n", "c.yml:1: not-a-number and infinite"},
		{"minus inf", "share: -.Inf\n", "c.yml:1: not-a-number and infinite"},
		{"overflow", "max_watts: 1e999\n", "c.yml:1: cannot unmarshal !!str into float64"}, // the library refuses it itself
		{"inline", "factor: .nan\n", "c.yml:1: not-a-number"},
		{"any map", "extra:\n  a: .inf\n", "c.yml:2: not-a-number"},
		{"fraction into int", "cpus: 7.9\n", "c.yml:1: a whole number is required"},
		{"fraction into uint", "count: 0.5\n", "c.yml:1: a whole number is required"},
		{"nested list", "items:\n  - name: a\n  - name: b\n    items:\n      - cpus: 2.5\n", "c.yml:5: a whole number is required"},
		{"through alias", "items:\n  - &x {cpus: 1.5}\n  - *x\n", "c.yml:2: a whole number"},
		{"through merge", "items:\n  - &x {share: .nan}\n  - <<: *x\n    name: y\n", "c.yml:2: not-a-number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l limits
			_, err := Decode("c.yml", []byte(tc.src), &l)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %v, want prefix %q", err, tc.want)
			}
		})
	}
	// What stays allowed: whole floats into integers, strings that look like
	// floats, finite floats.
	var l limits
	if _, err := Decode("c.yml", []byte("cpus: 8.0\nname: .nan\nmax_watts: 1.5e3\nshare: 0.4\nevery: 2s\nitems: [{count: 3}]\n"), &l); err != nil {
		t.Fatal(err)
	}
	if l.CPUs != 8 || l.Name != ".nan" || l.MaxWatts != 1500 || *l.Share != 0.4 || l.Every != 2*time.Second || l.Items[0].Count != 3 {
		t.Fatalf("decoded %+v", l)
	}
}

func TestFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yml")
	data := []byte("name: x\n" + strings.Repeat("# padding\n", MaxFileSize/10+1))
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), big+": configuration file is larger than 1048576 bytes") {
		t.Fatalf("ReadFile: %v", err)
	}
	var l limits
	if _, err := Decode("big.yml", data, &l); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Decode: %v", err)
	}
	small := filepath.Join(dir, "small.yml")
	if err := os.WriteFile(small, data[:MaxFileSize], 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(small)
	if err != nil || len(got) != MaxFileSize {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if _, err := ReadFile(filepath.Join(dir, "absent.yml")); err == nil {
		t.Fatal("absent file read")
	}
}

func TestLineNumericSegments(t *testing.T) {
	src := "workloads:\n  rules:\n    - name: a\n      match: {cmdline: x}\n    - name: b\n      match:\n        cgroup: y\n        cmdline: '('\n"
	var v map[string]any
	root, err := Decode("c.yml", []byte(src), &v)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"workloads.rules.1.match.cmdline":  8,
		"workloads.rules[1].match.cmdline": 8,
		"workloads.rules.0.match":          4,
		"workloads.rules.1":                5,
		"workloads.rules.5.match":          2,
		"workloads.rules.x":                2,
		"workloads.rules.1.match.user":     6,
	} {
		if got := Line(root, path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
}
