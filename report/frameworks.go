package report

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"github.com/inferensys/aiwatt/internal/yamlconf"
)

//go:embed frameworks/*.yaml
var frameworkFS embed.FS

// Framework is one versioned mapping file from frameworks/*.yaml: which KPI
// fills which disclosure. The mapping is data, not code.
type Framework struct {
	Framework   string       `yaml:"framework" json:"framework"`
	Version     string       `yaml:"version" json:"version"`
	Title       string       `yaml:"title" json:"title"`
	Disclosures []Disclosure `yaml:"disclosures" json:"disclosures"`
}

// Disclosure is one numbered disclosure.
type Disclosure struct {
	ID    string `yaml:"id" json:"id"`
	Title string `yaml:"title" json:"title"`
	Items []Item `yaml:"items" json:"items"`
}

// Item is one line: a KPI key and unit, or a note where aiwatt has no figure.
type Item struct {
	Label string `yaml:"label" json:"label"`
	KPI   string `yaml:"kpi" json:"kpi"`
	Unit  string `yaml:"unit" json:"unit"`
	Note  string `yaml:"note" json:"note"`
	// Value is filled in a report.
	Value Num `yaml:"-" json:"value"`
}

// FrameworkTable is a framework filled with the period's figures.
type FrameworkTable = Framework

// Frameworks loads and validates the embedded mappings, sorted by name.
func Frameworks() ([]Framework, error) {
	names, err := fs.Glob(frameworkFS, "frameworks/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Framework
	for _, n := range names {
		b, err := frameworkFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var f Framework
		root, err := yamlconf.Decode(n, b, &f)
		if err != nil {
			return nil, err
		}
		if f.Framework == "" || f.Version == "" {
			return nil, fmt.Errorf("%s:%d: framework and version are required", n, yamlconf.Line(root, "version"))
		}
		for i, d := range f.Disclosures {
			for j, it := range d.Items {
				if it.KPI == "" && it.Note == "" {
					return nil, fmt.Errorf("%s:%d: an item needs a kpi or a note", n, yamlconf.Line(root, fmt.Sprintf("disclosures[%d].items[%d]", i, j)))
				}
				if _, ok := kpiUnits[it.KPI]; it.KPI != "" && !ok {
					return nil, fmt.Errorf("%s:%d: unknown kpi %q", n, yamlconf.Line(root, fmt.Sprintf("disclosures[%d].items[%d].kpi", i, j)), it.KPI)
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

func fillFrameworks(fw []Framework, vals map[string]Num) []FrameworkTable {
	for fi := range fw {
		for di := range fw[fi].Disclosures {
			for ii := range fw[fi].Disclosures[di].Items {
				it := &fw[fi].Disclosures[di].Items[ii]
				if it.KPI != "" {
					it.Value = vals[it.KPI]
				}
			}
		}
	}
	return fw
}
