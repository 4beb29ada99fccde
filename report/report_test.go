package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

func TestNumFormatting(t *testing.T) {
	for _, c := range []struct {
		n    Num
		want string
	}{
		{N(1234.5678901234), "1234.56789"}, {N(0.1 + 0.2), "0.3"}, {N(0), "0"}, {NoData, ""}, {N(2.5e-7), "0.00000025"},
	} {
		if got := c.n.Canonical(); got != c.want {
			t.Errorf("Canonical(%v) = %q, want %q", c.n.v, got, c.want)
		}
	}
	if got := Sig(1.2749, 2); got != "1.3" {
		t.Errorf("Sig = %s", got)
	}
	if got := Sig(0.04449, 2); got != "0.044" {
		t.Errorf("Sig = %s", got)
	}
	if NoData.Human() != "no data" || N(3).Div(N(0)).Valid() {
		t.Error("missing figures must stay missing")
	}
}

func TestConfigStrict(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{"pue: 0.8\n", "report.yml:1: pue: must be at least 1"},
		{"organisation: x\nunknown: 1\n", "report.yml:2: field unknown not found"},
		{"targets:\n  - {kpi: nope, baseline_year: 2025, target_year: 2030}\n", "report.yml:2: targets[0].kpi: unknown KPI"},
		{"training_runs:\n  - {pod: a, gpus: 0}\n", "training_runs[0].gpus: must be positive"},
	} {
		p := filepath.Join(dir, "report.yml")
		if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
	}
	c, err := LoadConfig("")
	if err != nil || c.PUE != 1 || c.LocationLabel != "cluster" || *c.GridSharePercent != 100 {
		t.Errorf("defaults: %+v %v", c, err)
	}
}

func TestFrameworksVersioned(t *testing.T) {
	fw, err := Frameworks()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range fw {
		got[f.Framework] = f.Version
		for _, d := range f.Disclosures {
			got[f.Framework+" "+d.ID] = f.Version
		}
	}
	for _, want := range []string{"GRI 302-1", "GRI 302-3", "GRI 305-2", "GRI 305-4", "SASB TC-SI-130a.1", "ESRS E1-5", "ESRS E1-6"} {
		if got[want] == "" {
			t.Errorf("no mapping for %s", want)
		}
	}
}

// emptyProm answers every query with no series: Prometheus up, no data.
type emptyProm struct{}

func (emptyProm) Query(context.Context, string, time.Time, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return model.Vector{}, nil, nil, nil
}

func (emptyProm) QueryRange(context.Context, string, v1.Range, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return model.Matrix{}, nil, nil, nil
}

// TestNoDataIsNotZero: with no series at all every KPI is "no data" (null
// in JSON, empty in CSV), the whole period is a gap, and the trend is gaps.
func TestNoDataIsNotZero(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	r, err := Build(context.Background(), emptyProm{}, Options{From: from, To: from.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.Totals.Map() {
		if v.Valid() {
			t.Errorf("%s = %v with no data", k, v.Float())
		}
	}
	if len(r.DataQuality.Gaps) != 1 || r.DataQuality.Gaps[0].Hours.Float() != 48 {
		t.Errorf("gaps: %+v", r.DataQuality.Gaps)
	}
	for _, p := range r.Trend {
		if p.FacilityEnergyKWh.Valid() || !p.Gap {
			t.Errorf("trend point %+v", p)
		}
	}
	var js, cs, md, html, pdf bytes.Buffer
	for _, f := range []func() error{
		func() error { return RenderJSON(&js, r) }, func() error { return RenderCSV(&cs, r) }, func() error { return RenderMarkdown(&md, r) },
		func() error { return RenderHTML(&html, r) }, func() error { return RenderPDF(&pdf, r) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	var v struct {
		Totals map[string]any `json:"totals"`
	}
	if err := json.Unmarshal(js.Bytes(), &v); err != nil || v.Totals["it_energy_kwh"] != nil {
		t.Errorf("JSON totals: %v %v", v.Totals, err)
	}
	if !strings.Contains(cs.String(), "1 totals,,,,,it_energy_kwh,kWh,\n") {
		t.Errorf("CSV: missing value must be an empty cell")
	}
	if !strings.Contains(md.String(), "Facility energy no data MWh") {
		t.Errorf("Markdown summary must say no data")
	}
	if !bytes.HasPrefix(pdf.Bytes(), []byte("%PDF-")) {
		t.Error("not a PDF")
	}
}
