package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// TestEndToEndReportUpload runs `aiwatt report --upload.url` against an
// httptest server: every written file is PUT byte for byte with the bearer
// token from a file (which never reaches the output); a 403 on one file
// exits 1 after the files are written and names the file that failed.
func TestEndToEndReportUpload(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	om, _ := reporttest.History(from, to)
	prom := promtest.Start(t, promtest.Options{OpenMetrics: om, MaxBlockDuration: 40 * 24 * time.Hour})
	var mu sync.Mutex
	puts := map[string][]byte{}
	auth := map[string]string{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		puts[r.Method+" "+r.URL.Path], auth[r.URL.Path] = b, r.Header.Get("Authorization")
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/denied/report.csv") {
			http.Error(w, "AccessDenied", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer up.Close()
	const secret = "e2e-bearer-secret"
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(prefix string) (string, []byte, error) {
		out := t.TempDir()
		cmd := exec.Command(binPath, "report", "--prometheus="+prom.URL, "--from=2026-11-01", "--to=2026-11-02", "--format=json,csv",
			"--out="+out, "--upload.url="+up.URL+prefix, "--upload.bearer-token-file="+tok, "--upload.retries=0")
		b, err := cmd.CombinedOutput()
		return out, b, err
	}
	out, b, err := run("/ok/")
	if err != nil {
		t.Fatalf("aiwatt report --upload.url: %v\n%s", err, b)
	}
	for _, f := range []string{"report.json", "report.csv"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got, ok := puts["PUT /ok/"+f]
		gotAuth := auth["/ok/"+f]
		mu.Unlock()
		if !ok || !bytes.Equal(got, want) || gotAuth != "Bearer "+secret {
			t.Errorf("%s: PUT %v, byte-equal %v, Authorization %q", f, ok, bytes.Equal(got, want), gotAuth)
		}
		if !strings.Contains(string(b), "upload "+f+" -> "+up.URL+"/ok/"+f+": ok, 201 Created") {
			t.Errorf("no summary line for %s:\n%s", f, b)
		}
	}
	if strings.Contains(string(b), secret) {
		t.Errorf("the bearer token appears in the output:\n%s", b)
	}

	out, b, err = run("/denied")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("a 403 must exit 1: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "report.csv: FAILED: 403 Forbidden") || !strings.Contains(string(b), "distribution failed: upload report.csv") || strings.Contains(string(b), secret) {
		t.Errorf("output:\n%s", b)
	}
	for _, f := range []string{"report.json", "report.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s not written before the failed upload: %v", f, err)
		}
	}
}
