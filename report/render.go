package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Formats Write accepts.
var Formats = []string{"json", "csv", "md", "html", "pdf"}

// Write renders the report in each format into dir as report.FORMAT and
// returns the paths written.
func Write(r *Report, dir string, formats []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	var paths []string
	for _, f := range formats {
		var buf bytes.Buffer
		var err error
		switch f {
		case "json":
			err = RenderJSON(&buf, r)
		case "csv":
			err = RenderCSV(&buf, r)
		case "md":
			err = RenderMarkdown(&buf, r)
		case "html":
			err = RenderHTML(&buf, r)
		case "pdf":
			err = RenderPDF(&buf, r)
		default:
			return paths, fmt.Errorf("unknown format %q (want %s)", f, strings.Join(Formats, ", "))
		}
		if err != nil {
			return paths, fmt.Errorf("render %s: %w", f, err)
		}
		p := filepath.Join(dir, "report."+f)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return paths, fmt.Errorf("write %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// RenderJSON writes the report as JSON with sorted keys and canonical numbers.
func RenderJSON(w io.Writer, r *Report) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// Decode into generic values (numbers kept as written) and encode again:
	// encoding/json writes map keys sorted.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// RenderCSV writes one long table: section, labels, key, unit, value. Rows
// are sorted within each section; missing values are empty cells.
func RenderCSV(w io.Writer, r *Report) error {
	cw := csv.NewWriter(w)
	header := []string{"section", "project", "model_id", "workload_type", "location", "key", "unit", "value"}
	rows := [][]string{}
	add := func(section string, g Group, key, unit, value string) {
		rows = append(rows, []string{section, g.Project, g.ModelID, g.WorkloadType, g.Location, key, unit, value})
	}
	meta := []struct{ k, v string }{
		{"organisation", r.Organisation}, {"boundary", r.Boundary}, {"from", ts(r.From)}, {"to", ts(r.To)},
		{"pue", strconv.FormatFloat(r.PUE, 'f', -1, 64)}, {"resolution", r.Resolution}, {"source", r.Source}, {"ledger", r.Ledger},
	}
	for _, m := range meta {
		add("0 meta", Group{}, m.k, "", m.v)
	}
	kpiRows := func(section string, g Group) {
		m := g.Map()
		for _, k := range KPIKeys {
			add(section, g, k, Unit(k), m[k].Canonical())
		}
	}
	kpiRows("1 totals", Group{KPIs: r.Totals})
	kpiRows("2 shared (node idle and unattributed)", Group{KPIs: r.Shared})
	for _, g := range r.Groups {
		kpiRows("3 group", g)
	}
	for _, g := range r.ByProject {
		kpiRows("4 by project", g)
	}
	for _, g := range r.ByModel {
		kpiRows("4 by model", g)
	}
	for _, g := range r.ByWorkloadType {
		kpiRows("4 by workload type", g)
	}
	for _, g := range r.ByLocation {
		kpiRows("4 by location", g)
	}
	for _, t := range r.Training {
		g := Group{Project: t.Project, ModelID: t.ModelID, WorkloadType: "training", Location: t.Location}
		id := t.Namespace + "/" + t.Pod
		add("5 training run", g, id+" energy_mwh_2sf", "MWh", t.EnergyMWh)
		add("5 training run", g, id+" energy_kwh", "kWh", t.EnergyKWh.Canonical())
		add("5 training run", g, id+" first_sample", "RFC 3339", ts(t.FirstSample))
		add("5 training run", g, id+" last_sample", "RFC 3339", ts(t.LastSample))
		add("5 training run", g, id+" wall_clock_hours", "h", t.WallClockHours.Canonical())
		add("5 training run", g, id+" gpu_active_hours", "h", t.GPUActiveHours.Canonical())
		add("5 training run", g, id+" gpus", "", strconv.Itoa(t.GPUs))
		add("5 training run", g, id+" gpu_hours", "GPU-h", t.GPUHours.Canonical())
		add("5 training run", g, id+" co2e_location_t", "t CO2e", t.CO2eLocationT.Canonical())
	}
	for _, f := range r.Frameworks {
		for _, d := range f.Disclosures {
			for _, it := range d.Items {
				v := it.Value.Canonical()
				if it.KPI == "" {
					v = "n/a: " + it.Note
				}
				add("6 framework "+f.Framework+" "+f.Version, Group{}, d.ID+" "+it.Label, it.Unit, v)
			}
		}
	}
	for _, t := range r.Targets {
		add("7 target", Group{}, t.KPI+" current", t.Unit, t.Current.Canonical())
		add("7 target", Group{}, t.KPI+" progress", "%", t.ProgressPercent.Canonical())
	}
	for _, p := range r.Trend {
		add("8 trend "+r.TrendStep, Group{}, ts(p.End)+" facility_energy_kwh", "kWh", p.FacilityEnergyKWh.Canonical())
		add("8 trend "+r.TrendStep, Group{}, ts(p.End)+" co2e_location_kg", "kg CO2e", p.CO2eLocationKg.Canonical())
	}
	for _, o := range r.DataQuality.Gaps {
		add("9 gap", Group{}, o.Series+" "+ts(o.Start)+"/"+ts(o.End), "h", o.Hours.Canonical())
	}
	for _, o := range r.DataQuality.SourcesDown {
		add("9 source down", Group{}, o.Series+" "+ts(o.Start)+"/"+ts(o.End), "h", o.Hours.Canonical())
	}
	add("9 estimated share", Group{}, "estimated_share_percent", "%", r.DataQuality.EstimatedSharePercent.Canonical())
	const cloudSec = "11 cloud-provider figure (provider estimate, not added to measured totals)"
	for _, x := range r.Cloud.Totals {
		add("11 cloud-provider total (provider estimate, not added to measured totals)", Group{},
			x.Provider+" "+x.Metric+" model_versions="+strings.Join(x.ModelVersions, ";"), x.Unit, x.Value.Canonical())
	}
	for _, f := range r.Cloud.Figures {
		id := strings.Join([]string{f.Provider, f.Account, f.Service, f.Region, f.Period, f.Metric}, "/")
		g := Group{Location: f.Region}
		add(cloudSec, g, id+" value", f.Unit, f.Value.Canonical())
		add(cloudSec, g, id+" model_version", "", f.ModelVersion)
		add(cloudSec, g, id+" revision", "", strconv.Itoa(f.Revision))
		add(cloudSec, g, id+" fetched_at", "RFC 3339", f.FetchedAt)
		add(cloudSec, g, id+" days", "", strconv.Itoa(f.Days))
	}
	for i, q := range r.Queries {
		add("10 query", Group{}, fmt.Sprintf("%03d %s", i+1, q.Kind), q.Step, q.Query)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		for k := range 6 {
			if rows[i][k] != rows[j][k] {
				return rows[i][k] < rows[j][k]
			}
		}
		return false
	})
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(rows); err != nil {
		return err
	}
	return cw.Error()
}
