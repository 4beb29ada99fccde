package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/promtest"
	"github.com/inferensys/aiwatt/report/reporttest"
)

// TestEndToEndReport runs `aiwatt report` for a month against a real
// Prometheus loaded with generated history (promtool tsdb
// create-blocks-from openmetrics): every format is written, the totals match
// the history to 0.1 %, the location-based CO2e matches a hand computation,
// the gap is reported, and two runs give byte-identical JSON and CSV.
func TestEndToEndReport(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	om, truth := reporttest.History(from, to)
	srv := promtest.Start(t, promtest.Options{OpenMetrics: om, MaxBlockDuration: 40 * 24 * time.Hour})
	cfg := filepath.Join(t.TempDir(), "report.yml")
	if err := os.WriteFile(cfg, []byte("organisation: Inferensys GmbH\npue: 1.5\ntraining_runs:\n  - {model_id: llama-ft-8b, gpus: 8}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runReport := func(out string, extra ...string) {
		t.Helper()
		args := append([]string{"report", "--prometheus=" + srv.URL, "--from=2026-11-01", "--to=2026-12-01", "--config=" + cfg, "--out=" + out, "--ledger=cloud.db"}, extra...)
		b, err := exec.Command(binPath, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("aiwatt report: %v\n%s", err, b)
		}
	}
	out1, out2 := t.TempDir(), t.TempDir()
	runReport(out1)
	runReport(out2, "--format=json,csv")
	for _, f := range []string{"report.json", "report.csv", "report.md", "report.html", "report.pdf"} {
		if fi, err := os.Stat(filepath.Join(out1, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	for _, f := range []string{"report.json", "report.csv"} {
		a, _ := os.ReadFile(filepath.Join(out1, f))
		b, _ := os.ReadFile(filepath.Join(out2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s is not byte-identical across two runs", f)
		}
	}
	var rep struct {
		Totals struct {
			FacilityEnergyMWh float64 `json:"facility_energy_mwh"`
			CO2eLocationT     float64 `json:"co2e_location_t"`
		} `json:"totals"`
		Training []struct {
			EnergyMWh string   `json:"energy_mwh"`
			GPUHours  *float64 `json:"gpu_hours"`
		} `json:"training_runs"`
		DataQuality struct {
			Gaps []struct{ Start, End time.Time } `json:"gaps"`
		} `json:"data_quality"`
		Ledger  string `json:"ledger"`
		Queries []struct {
			Query string `json:"query"`
		} `json:"queries"`
	}
	raw, _ := os.ReadFile(filepath.Join(out1, "report.json"))
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	const pue = 1.5
	it := truth.TotalITJ()
	var work float64
	for _, w := range truth.Workloads {
		work += w.EnergyJ
	}
	// By hand: Σ workload kWh × zone g/kWh, idle at the weighted average, × PUE.
	wantT := truth.LocationGrams() * it / work * pue / 1e6
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"facility MWh", rep.Totals.FacilityEnergyMWh, it / 3.6e9 * pue},
		{"location-based t CO2e", rep.Totals.CO2eLocationT, wantT},
	} {
		if math.Abs(c.got-c.want)/c.want > 0.001 {
			t.Errorf("%s = %g, want %g (0.1%%)", c.name, c.got, c.want)
		}
	}
	if len(rep.Training) != 1 || rep.Training[0].GPUHours == nil || rep.Training[0].EnergyMWh == "" {
		t.Errorf("training runs: %+v", rep.Training)
	}
	if len(rep.DataQuality.Gaps) != 1 || !rep.DataQuality.Gaps[0].Start.Equal(truth.Gap.Start) {
		t.Errorf("gaps: %+v, want one at %s", rep.DataQuality.Gaps, truth.Gap.Start)
	}
	if !strings.Contains(rep.Ledger, "no ledger") || !strings.Contains(rep.Ledger, "cloud.db") {
		t.Errorf("ledger: %q", rep.Ledger)
	}
	if len(rep.Queries) == 0 || !strings.Contains(rep.Queries[0].Query, "increase(aiwatt_workload_energy_joules_total[30d])") {
		t.Errorf("queries: %+v", rep.Queries)
	}
	md, _ := os.ReadFile(filepath.Join(out1, "report.md"))
	if !strings.Contains(string(md), "## Data quality") || !strings.Contains(string(md), "no data") {
		t.Errorf("report.md lacks data quality or a no-data cell")
	}
	// Bad input is refused with exit 2.
	b, err := exec.Command(binPath, "report", "--prometheus="+srv.URL, "--from=2026-11-01", "--to=2026-12-01", "--format=docx", "--out="+t.TempDir()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(b), "unknown format") {
		t.Errorf("--format=docx: %v\n%s", err, b)
	}
}
