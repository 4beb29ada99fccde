package report

import (
	"fmt"
	"strings"
)

// The human-readable sections shared by Markdown, HTML and PDF: each is a
// title, paragraphs and tables of plain strings, so that every format shows
// the same words and numbers.

// Table is a header and rows of cells.
type Table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// Section is one titled part of the report.
type Section struct {
	Title      string
	Paragraphs []string
	Tables     []Table
	// Chart names a chart drawn after the paragraphs: "trend" or "top_models".
	Charts []string
}

func label(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func day(r *Report) (string, string) {
	return r.From.Format("2006-01-02 15:04 MST"), r.To.Format("2006-01-02 15:04 MST")
}

// Sections returns the report's human-readable sections in order.
func Sections(r *Report) []Section {
	from, to := day(r)
	t := r.Totals
	org := r.Organisation
	if org == "" {
		org = "(organisation not configured)"
	}
	exec := Section{Title: "Executive summary", Paragraphs: []string{
		fmt.Sprintf("%s, period %s to %s. Boundary: %s.", org, from, to, label(r.Boundary)),
		fmt.Sprintf("Facility energy %s MWh (%s GJ; IT energy %s MWh at PUE %g). Location-based emissions %s t CO2e; market-based %s t CO2e.",
			t.FacilityEnergyMWh.Human(), t.FacilityEnergyGJ.Human(), t.ITEnergyMWh.Human(), r.PUE, t.CO2eLocationT.Human(), t.CO2eMarketT.Human()),
		fmt.Sprintf("%s inferences at %s kWh and %s g CO2e per 1k inferences; %s J per output token; SCI %s g CO2e per %s.",
			t.Inferences.Human(), t.EnergyPer1kInferencesKWh.Human(), t.CO2ePer1kInferencesG.Human(), t.JoulesPerOutputToken.Human(),
			t.SCIGramsPerUnit.Human(), strings.ReplaceAll(r.Methodology.FunctionalUnit, "_", " ")),
		fmt.Sprintf("%d training run(s); %d data gap(s) and %d source outage(s) in the period; estimated share of device energy %s %%.",
			len(r.Training), len(r.DataQuality.Gaps), len(r.DataQuality.SourcesDown), r.DataQuality.EstimatedSharePercent.Human()),
	}, Charts: []string{"trend", "top_models"}}

	kpiHeader := []string{"project", "model", "type", "location", "IT kWh", "facility MWh", "facility GJ", "t CO2e loc.", "t CO2e mkt.", "inferences", "kWh/1k inf.", "g CO2e/1k inf.", "J/out. token", "SCI g/unit"}
	kpiRow := func(g Group, dims string) []string {
		dim := func(d, v string) string {
			if !strings.Contains(dims, d) {
				return "all"
			}
			return label(v)
		}
		return []string{dim("p", g.Project), dim("m", g.ModelID), dim("t", g.WorkloadType), dim("l", g.where()), g.ITEnergyKWh.Human(), g.FacilityEnergyMWh.Human(),
			g.FacilityEnergyGJ.Human(), g.CO2eLocationT.Human(), g.CO2eMarketT.Human(), g.Inferences.Human(), g.EnergyPer1kInferencesKWh.Human(),
			g.CO2ePer1kInferencesG.Human(), g.JoulesPerOutputToken.Human(), g.SCIGramsPerUnit.Human()}
	}
	tab := func(caption string, gs []Group, dims string) Table {
		tb := Table{Caption: caption, Header: kpiHeader}
		for _, g := range gs {
			tb.Rows = append(tb.Rows, kpiRow(g, dims))
		}
		if dims == "pmtl" {
			sh := kpiRow(Group{Project: "node idle + unattributed", KPIs: r.Shared}, "p")
			tb.Rows = append(tb.Rows, sh)
			tot := kpiRow(Group{Project: "TOTAL", KPIs: r.Totals}, "p")
			tb.Rows = append(tb.Rows, tot)
		}
		return tb
	}
	kpis := Section{Title: "KPIs", Paragraphs: []string{"Figures of the whole period; \"no data\" means the series were absent, not zero. The shared row is node idle and unattributed energy and the CO2e it carries."},
		Tables: []Table{
			tab("By project, model, workload type and location", r.Groups, "pmtl"),
			tab("By project", r.ByProject, "p"), tab("By model", r.ByModel, "m"),
			tab("By workload type", r.ByWorkloadType, "t"), tab("By location", r.ByLocation, "l"),
		}}

	tr := Table{Caption: "Training runs (workload_type=training)", Header: []string{"run", "project", "model", "location", "energy MWh (2 s.f.)", "first sample", "last sample", "wall-clock h", "GPU-active h", "GPUs", "GPU-hours", "t CO2e loc."}}
	for _, x := range r.Training {
		gpus := "not configured"
		if x.GPUs > 0 {
			gpus = fmt.Sprint(x.GPUs)
		}
		tr.Rows = append(tr.Rows, []string{x.Namespace + "/" + x.Pod, x.Project, x.ModelID, label(x.Location), x.EnergyMWh, ts(x.FirstSample), ts(x.LastSample),
			x.WallClockHours.Human(), x.GPUActiveHours.Human(), gpus, x.GPUHours.Human(), x.CO2eLocationT.Human()})
	}
	training := Section{Title: "Training runs", Tables: []Table{tr}}
	if len(r.Training) == 0 {
		training.Paragraphs = []string{"No training runs in the period."}
	}

	me := r.Methodology
	meas := Table{Caption: "Measurement methods", Header: []string{"device", "source", "kWh", "share %"}}
	for _, m := range me.Measurement {
		meas.Rows = append(meas.Rows, []string{m.Device, m.Source, m.EnergyKWh.Human(), m.SharePercent.Human()})
	}
	inten := Table{Caption: "Carbon intensity sources", Header: []string{"location", "zone", "basis", "provider", "average g/kWh", "dataset"}}
	for _, i := range me.Intensity {
		inten.Rows = append(inten.Rows, []string{label(Group{Location: i.Location, Region: i.Region}.where()), i.Zone, i.Basis, i.Provider, i.AvgGramsPerKWh.Human(), i.Dataset})
	}
	meth := Section{Title: "Methodology", Paragraphs: append([]string{
		fmt.Sprintf("PUE %g (%s).", me.PUE, me.PUESource),
		"Market instruments: " + me.MarketInstruments + ".",
		"Attribution policy: " + strings.Join(append([]string{}, orNone(me.AttributionPolicy)...), "; ") + ".",
	}, me.Notes...), Tables: []Table{meas, inten}}

	var fwTables []Table
	for _, f := range r.Frameworks {
		tb := Table{Caption: fmt.Sprintf("%s (mapping version %s): %s", f.Framework, f.Version, f.Title), Header: []string{"disclosure", "item", "value", "unit"}}
		for _, d := range f.Disclosures {
			for _, it := range d.Items {
				v := it.Value.Human()
				if it.KPI == "" {
					v = "n/a: " + it.Note
				}
				tb.Rows = append(tb.Rows, []string{f.Framework + " " + d.ID, it.Label, v, it.Unit})
			}
		}
		fwTables = append(fwTables, tb)
	}
	fw := Section{Title: "Framework tables", Paragraphs: []string{"Mappings are versioned data (report/frameworks/*.yaml)."}, Tables: fwTables}

	tg := Table{Caption: "Reduction targets", Header: []string{"KPI", "unit", "baseline", "current", "target", "progress %"}}
	for _, x := range r.Targets {
		tg.Rows = append(tg.Rows, []string{x.KPI, x.Unit, fmt.Sprintf("%g (%d)", x.BaselineValue, x.BaselineYear), x.Current.Human(), fmt.Sprintf("%g (%d)", x.TargetValue, x.TargetYear), x.ProgressPercent.Human()})
	}
	targets := Section{Title: "KPI progress against targets", Tables: []Table{tg}}
	if len(r.Targets) == 0 {
		targets = Section{Title: "KPI progress against targets", Paragraphs: []string{"No targets configured."}}
	}

	gaps := Table{Caption: "Gaps (no samples)", Header: []string{"series", "from", "to", "hours"}}
	for _, o := range r.DataQuality.Gaps {
		gaps.Rows = append(gaps.Rows, []string{o.Series, ts(o.Start), ts(o.End), o.Hours.Human()})
	}
	down := Table{Caption: "Sources down", Header: []string{"series", "from", "to", "hours"}}
	for _, o := range r.DataQuality.SourcesDown {
		down.Rows = append(down.Rows, []string{o.Series, ts(o.Start), ts(o.End), o.Hours.Human()})
	}
	dq := Section{Title: "Data quality", Paragraphs: append([]string{
		fmt.Sprintf("Estimated share of device energy (power models instead of energy counters): %s %%.", r.DataQuality.EstimatedSharePercent.Human()),
		fmt.Sprintf("Gaps and outages are found at a resolution of %s and shown as gaps, never as zero.", r.Resolution),
	}, r.DataQuality.Notes...), Tables: []Table{gaps, down}}

	cloud := cloudSection(r)

	q := Table{Caption: "Queries run", Header: []string{"#", "kind", "query", "evaluated"}}
	for i, x := range r.Queries {
		ev := ts(x.Time)
		if x.Kind == "range" {
			ev = fmt.Sprintf("%s..%s step %s", ts(x.Start), ts(x.End), x.Step)
		}
		q.Rows = append(q.Rows, []string{fmt.Sprint(i + 1), x.Kind, x.Query, ev})
	}
	queries := Section{Title: "Queries", Paragraphs: []string{"Source: " + r.Source}, Tables: []Table{q}}
	return []Section{exec, kpis, training, meth, targets, fw, dq, cloud, queries}
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"not exported in the period (aiwatt_attribution_info absent)"}
	}
	return s
}

// cloudSection lists the providers' own figures beside aiwatt's measured
// totals; it never adds the two.
func cloudSection(r *Report) Section {
	s := Section{Title: "Cloud-provider figures", Paragraphs: []string{r.Ledger}}
	c := r.Cloud
	if c.Ledger == "" {
		return s
	}
	from, to := day(r)
	s.Paragraphs = append(s.Paragraphs,
		fmt.Sprintf("%d ledger row(s) read, %d overlap the period %s to %s; %d row(s) of an older or other carbon model version of the same figure are not shown (the most recently fetched version is).",
			c.RowsRead, c.RowsInPeriod, from, to, c.RowsOtherModelVersions),
		"Figures are per provider, account, service, region and calendar month. Monthly provider figures (carbon) cover whole months and are not prorated: a month that reaches outside the period is marked \"whole month\". Daily figures (cost, usage) are summed over the days inside the period.")
	side := Table{Caption: "Beside aiwatt's measured totals (never added together)", Header: []string{"source", "figure", "scope", "basis", "value", "unit", "model versions"}}
	t := r.Totals
	side.Rows = append(side.Rows,
		[]string{"aiwatt (measured)", "facility energy", "", "", t.FacilityEnergyMWh.Human(), "MWh", ""},
		[]string{"aiwatt (measured)", "CO2e", "", "location", t.CO2eLocationT.Human(), "t CO2e", ""},
		[]string{"aiwatt (measured)", "CO2e", "", "market", t.CO2eMarketT.Human(), "t CO2e", ""})
	for _, x := range c.Totals {
		side.Rows = append(side.Rows, []string{x.Provider + " (provider estimate)", x.Metric, x.Scope, x.Basis, x.Value.Human(), x.Unit, orDash(strings.Join(x.ModelVersions, ", "))})
	}
	det := Table{Caption: "Provider figures by account, service, region and month", Header: []string{"provider", "account", "service", "region", "month", "metric", "value", "unit", "model version", "revision", "fetched at", "coverage"}}
	for _, f := range c.Figures {
		cov := "month"
		switch {
		case f.Days > 0:
			cov = fmt.Sprintf("%d day(s)", f.Days)
		case f.WholeMonth:
			cov = "whole month"
		}
		det.Rows = append(det.Rows, []string{f.Provider, f.Account, label(f.Service), label(f.Region), f.Period, f.Metric, f.Value.Human(), f.Unit,
			orDash(f.ModelVersion), fmt.Sprint(f.Revision), f.FetchedAt, cov})
	}
	s.Tables = []Table{side, det}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
