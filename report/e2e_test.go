package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/inferensys/aiwatt/internal/promtest"
	"github.com/inferensys/aiwatt/report"
	"github.com/inferensys/aiwatt/report/reporttest"
)

// month is the reported period: November 2026.
var (
	monthFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	monthTo   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

const testConfig = `organisation: Inferensys GmbH
boundary: "operational control: clusters de-1 and fr-1"
pue: 1.2
pue_source: "facility meter, 2026 annual average"
market_instruments:
  note: "GoOs covering 30% of DE load, 2026"
  renewable_share_percent: 30
targets:
  - {kpi: co2e_location_t, baseline_year: 2025, baseline_value: 20, target_year: 2030, target_value: 10}
training_runs:
  - {pod: ft-run-7, gpus: 8}
`

func within(t *testing.T, what string, got report.Num, want, tol float64) {
	t.Helper()
	if !got.Valid() {
		t.Errorf("%s: no data, want %g", what, want)
		return
	}
	if d := math.Abs(got.Float()-want) / math.Abs(want); d > tol {
		t.Errorf("%s = %g, want %g (off by %.4f%%, tolerance %.2f%%)", what, got.Float(), want, 100*d, 100*tol)
	}
}

// TestReportEndToEnd builds a month's report from a real Prometheus loaded
// with generated history (promtool tsdb create-blocks-from openmetrics) and
// checks it against that history: totals to 0.1 %, a hand-computed
// location-based CO2e, the training run, the gap and the outage; then it
// renders every format, checks JSON/CSV are byte-identical across two runs,
// extracts the PDF's text with pdftotext and renders page 1 to PNG with
// pdftoppm at testdata/artifacts/report-page1.png for a person to look at.
func TestReportEndToEnd(t *testing.T) {
	om, truth := reporttest.History(monthFrom, monthTo)
	srv := promtest.Start(t, promtest.Options{OpenMetrics: om, MaxBlockDuration: 40 * 24 * time.Hour})
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "report.yml")
	if err := os.WriteFile(cfgPath, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := report.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ledgerPath := filepath.Join(t.TempDir(), "cloud.csv")
	if err := os.WriteFile(ledgerPath, reporttest.LedgerCSV(reporttest.LedgerMonth(monthFrom)), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := report.Options{From: monthFrom, To: monthTo, Resolution: reporttest.Step, Config: cfg, Source: "prometheus-under-test", Ledger: ledgerPath}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := report.Build(ctx, v1.NewAPI(client), opts)
	if err != nil {
		t.Fatal(err)
	}

	// Totals against the generated history.
	const pue = 1.2
	itJ := truth.TotalITJ()
	within(t, "IT energy kWh", r.Totals.ITEnergyKWh, itJ/3.6e6, 0.001)
	within(t, "facility energy MWh", r.Totals.FacilityEnergyMWh, itJ/3.6e9*pue, 0.001)
	within(t, "facility energy GJ", r.Totals.FacilityEnergyGJ, itJ/1e9*pue, 0.001)
	// Location-based CO2e by hand: each workload's energy × its zone's
	// intensity, idle and unattributed energy at the weighted average, × PUE.
	var workJ, reqs float64
	for _, w := range truth.Workloads {
		workJ += w.EnergyJ
		reqs += w.RequestsN
	}
	handT := truth.LocationGrams() * itJ / workJ * pue / 1e6
	within(t, "location-based CO2e t", r.Totals.CO2eLocationT, handT, 0.001)
	within(t, "inferences", r.Totals.Inferences, reqs, 0.001)
	if len(r.Groups) != 3 {
		t.Fatalf("groups: %+v", r.Groups)
	}
	for _, w := range truth.Workloads {
		var g *report.Group
		for i := range r.Groups {
			if r.Groups[i].ModelID == w.ModelID {
				g = &r.Groups[i]
			}
		}
		if g == nil || g.Location != w.Cluster || g.Project != w.Project {
			t.Fatalf("no group for %s: %+v", w.ModelID, r.Groups)
		}
		within(t, w.ModelID+" IT kWh", g.ITEnergyKWh, w.EnergyJ/3.6e6, 0.001)
		within(t, w.ModelID+" CO2e location t", g.CO2eLocationT, w.EnergyJ/3.6e6*truth.LocationIntensity[w.Zone]*pue/1e6, 0.001)
		within(t, w.ModelID+" CO2e market t", g.CO2eMarketT, w.EnergyJ/3.6e6*truth.MarketIntensity[w.Zone]*pue/1e6, 0.001)
		if w.RequestsPerSecond > 0 {
			within(t, w.ModelID+" kWh per 1k inferences", g.EnergyPer1kInferencesKWh, w.EnergyJ/3.6e6*pue/w.RequestsN*1000, 0.001)
		} else if g.Inferences.Valid() || g.EnergyPer1kInferencesKWh.Valid() {
			t.Errorf("%s served no inferences but reports %v", w.ModelID, g.Inferences)
		}
		if w.TokensPerSecond > 0 {
			within(t, w.ModelID+" J per output token", g.JoulesPerOutputToken, w.EnergyJ/w.TokensN, 0.001)
		} else if g.JoulesPerOutputToken.Valid() {
			t.Errorf("%s has no token series but reports J/token %v (must be no data, not a number)", w.ModelID, g.JoulesPerOutputToken.Float())
		}
	}

	// Training run.
	train := truth.Workloads[2]
	if len(r.Training) != 1 {
		t.Fatalf("training runs: %+v", r.Training)
	}
	tr := r.Training[0]
	within(t, "training kWh", tr.EnergyKWh, train.EnergyJ/3.6e6, 0.001)
	if want := report.Sig(train.EnergyJ/3.6e9, 2); tr.EnergyMWh != want {
		t.Errorf("training MWh (2 s.f.) = %s, want %s", tr.EnergyMWh, want)
	}
	if !tr.FirstSample.Equal(train.FirstSample) || !tr.LastSample.Equal(train.LastSample) {
		t.Errorf("training samples %s..%s, want %s..%s", tr.FirstSample, tr.LastSample, train.FirstSample, train.LastSample)
	}
	wall := train.LastSample.Sub(train.FirstSample).Hours()
	within(t, "wall-clock h", tr.WallClockHours, wall, 1e-9)
	if tr.GPUs != 8 || !tr.GPUHours.Valid() || math.Abs(tr.GPUHours.Float()-8*wall) > 8*2*reporttest.Step.Hours() {
		t.Errorf("GPU-hours %v with %d GPUs, want 8 × %.2f h within two steps", tr.GPUHours.Float(), tr.GPUs, wall)
	}

	// The gap and the outage are reported as spans, never as zeros.
	if len(r.DataQuality.Gaps) != 1 {
		t.Fatalf("gaps: %+v", r.DataQuality.Gaps)
	}
	g := r.DataQuality.Gaps[0]
	if !g.Start.Equal(truth.Gap.Start) || !g.End.Equal(truth.Gap.End) || !strings.Contains(g.Series, "node-a") {
		t.Errorf("gap %s %s..%s, want node-a %s..%s", g.Series, g.Start, g.End, truth.Gap.Start, truth.Gap.End)
	}
	if len(r.DataQuality.SourcesDown) != 1 {
		t.Fatalf("sources down: %+v", r.DataQuality.SourcesDown)
	}
	sd := r.DataQuality.SourcesDown[0]
	if sd.Start.After(truth.SourceDown.Start) || sd.End.Before(truth.SourceDown.End) ||
		truth.SourceDown.Start.Sub(sd.Start) > reporttest.Step || sd.End.Sub(truth.SourceDown.End) > reporttest.Step {
		t.Errorf("source down %s..%s, want %s..%s within one step", sd.Start, sd.End, truth.SourceDown.Start, truth.SourceDown.End)
	}
	gapDays := 0
	for _, p := range r.Trend {
		if p.Gap {
			gapDays++
		}
		if !p.FacilityEnergyKWh.Valid() || p.FacilityEnergyKWh.Float() == 0 {
			t.Errorf("trend point %s has no energy (counters continue across the gap)", p.End)
		}
	}
	if len(r.Trend) != 30 || gapDays == 0 {
		t.Errorf("trend: %d points, %d marked as gaps", len(r.Trend), gapDays)
	}
	if r.DataQuality.EstimatedSharePercent.Float() <= 0 || r.DataQuality.EstimatedSharePercent.Float() >= 100 {
		t.Errorf("estimated share %v", r.DataQuality.EstimatedSharePercent)
	}
	// The cloud-provider figures sit beside the measured ones: the same
	// build without --ledger has byte-identical measured figures.
	if !strings.Contains(r.Ledger, "NOT added") || len(r.Cloud.Figures) != 5 || len(r.Cloud.ModelVersions) != 2 {
		t.Errorf("ledger: %s %+v", r.Ledger, r.Cloud)
	}
	noLedger := opts
	noLedger.Ledger = ""
	r0, err := report.Build(ctx, v1.NewAPI(client), noLedger)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r0.Ledger, "no ledger") || len(r0.Cloud.Figures) != 0 {
		t.Errorf("without --ledger: %s", r0.Ledger)
	}
	for name, pair := range map[string][2]any{"totals": {r.Totals, r0.Totals}, "shared": {r.Shared, r0.Shared}, "groups": {r.Groups, r0.Groups},
		"frameworks": {r.Frameworks, r0.Frameworks}, "targets": {r.Targets, r0.Targets}, "trend": {r.Trend, r0.Trend}} {
		a, _ := json.Marshal(pair[0])
		b, _ := json.Marshal(pair[1])
		if !bytes.Equal(a, b) {
			t.Errorf("measured %s change with --ledger:\n%s\n%s", name, a, b)
		}
	}
	if len(r.Queries) < 10 {
		t.Errorf("queries not recorded: %d", len(r.Queries))
	}

	// Render twice from two builds: JSON and CSV byte-identical.
	dir1, dir2 := t.TempDir(), t.TempDir()
	if _, err := report.Write(r, dir1, report.Formats); err != nil {
		t.Fatal(err)
	}
	r2, err := report.Build(ctx, v1.NewAPI(client), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := report.Write(r2, dir2, []string{"json", "csv"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.json", "report.csv"} {
		a, _ := os.ReadFile(filepath.Join(dir1, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two runs over the same data (%d vs %d bytes)", f, len(a), len(b))
		}
	}
	var js map[string]any
	raw, _ := os.ReadFile(filepath.Join(dir1, "report.json"))
	if err := json.Unmarshal(raw, &js); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	html, _ := os.ReadFile(filepath.Join(dir1, "report.html"))
	for _, want := range []string{"<svg", "Executive summary", "Methodology", "GRI 302-1", "hatched: no data or a gap", "<script"} {
		if got := strings.Contains(string(html), want); got != (want != "<script") {
			t.Errorf("report.html: contains %q = %v", want, got)
		}
	}

	checkPDF(t, filepath.Join(dir1, "report.pdf"), r)
}

func checkPDF(t *testing.T, pdf string, r *report.Report) {
	t.Helper()
	pdftotext, err1 := exec.LookPath("pdftotext")
	pdftoppm, err2 := exec.LookPath("pdftoppm")
	if err1 != nil || err2 != nil {
		t.Fatal("pdftotext and pdftoppm are needed to check the PDF (Debian: apt-get install -y poppler-utils; `make test` installs it)")
	}
	out, err := exec.Command(pdftotext, "-layout", pdf, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Executive summary", "KPIs", "Training runs", "Methodology", "KPI progress against targets", "Framework tables",
		"Data quality", "Gaps (no samples)", "Sources down", "Cloud-provider figures", "providers' own estimates", "NOT added",
		"aws: v3.0.0; gcp: 12", "Beside aiwatt's measured totals (never added together)", "aws (provider estimate)", "aiwatt (measured)", "Queries",
		"GRI 302-1", "GRI 305-2", "SASB TC-SI-130a.1", "ESRS E1-5", "ESRS E1-6", "Inferensys GmbH",
		"Facility energy " + r.Totals.FacilityEnergyMWh.Human() + " MWh",
		"Location-based emissions " + r.Totals.CO2eLocationT.Human() + " t CO2e",
		r.Training[0].EnergyMWh, "llama-3-70b", "ft-run-7",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	art, err := filepath.Abs(filepath.Join("testdata", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pdftoppm, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", pdf, filepath.Join(art, "report-page1")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(art, "report-page1.png")); err != nil || fi.Size() < 10000 {
		t.Fatalf("report-page1.png: %v", err)
	}
	_ = os.WriteFile(filepath.Join(art, "report.pdf"), mustRead(t, pdf), 0o644)
	t.Logf("page 1 rendered to %s", filepath.Join(art, "report-page1.png"))
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
