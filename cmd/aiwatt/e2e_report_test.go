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
	ledger := filepath.Join(t.TempDir(), "cloud.csv")
	if err := os.WriteFile(ledger, reporttest.LedgerCSV(reporttest.LedgerMonth(from)), 0o644); err != nil {
		t.Fatal(err)
	}
	runReport := func(out string, extra ...string) {
		t.Helper()
		args := append([]string{"report", "--prometheus=" + srv.URL, "--from=2026-11-01", "--to=2026-12-01", "--config=" + cfg, "--out=" + out}, extra...)
		b, err := exec.Command(binPath, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("aiwatt report: %v\n%s", err, b)
		}
	}
	out1, out2, out3 := t.TempDir(), t.TempDir(), t.TempDir()
	runReport(out1, "--ledger="+ledger)
	runReport(out2, "--ledger="+ledger, "--format=json,csv")
	runReport(out3, "--format=json,pdf")
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
		Ledger string `json:"ledger"`
		Cloud  struct {
			ModelVersions []string `json:"model_versions"`
			Totals        []struct {
				Provider, Metric, Unit string
				Value                  float64
			} `json:"totals"`
		} `json:"cloud_provider_figures"`
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
	if !strings.Contains(rep.Ledger, "providers' own estimates") || !strings.Contains(rep.Ledger, "NOT added") || !strings.Contains(rep.Ledger, ledger) {
		t.Errorf("ledger: %q", rep.Ledger)
	}
	if got := strings.Join(rep.Cloud.ModelVersions, "|"); got != "aws: v3.0.0|gcp: 12" || len(rep.Cloud.Totals) != 5 ||
		rep.Cloud.Totals[4].Provider != "gcp" || rep.Cloud.Totals[4].Value != 0.25075 || rep.Cloud.Totals[4].Unit != "t CO2e" {
		t.Errorf("cloud-provider figures: %+v", rep.Cloud)
	}
	// The measured figures are the same without --ledger: never added together.
	var base map[string]json.RawMessage
	var with map[string]json.RawMessage
	raw0, _ := os.ReadFile(filepath.Join(out3, "report.json"))
	if json.Unmarshal(raw0, &base) != nil || json.Unmarshal(raw, &with) != nil {
		t.Fatal("report.json does not parse")
	}
	for _, k := range []string{"totals", "shared", "groups", "by_project", "by_model", "by_location", "frameworks", "trend", "training_runs"} {
		if !bytes.Equal(base[k], with[k]) {
			t.Errorf("%s differs with --ledger:\n%s\n%s", k, with[k], base[k])
		}
	}
	if !strings.Contains(string(base["ledger"]), "no ledger") {
		t.Errorf("without --ledger: %s", base["ledger"])
	}
	if pdftotext, err := exec.LookPath("pdftotext"); err != nil {
		t.Error("pdftotext is needed to check the PDF (Debian: apt-get install -y poppler-utils)")
	} else {
		txt, err := exec.Command(pdftotext, "-layout", filepath.Join(out1, "report.pdf"), "-").CombinedOutput()
		if err != nil {
			t.Fatalf("pdftotext: %v\n%s", err, txt)
		}
		for _, w := range []string{"Cloud-provider figures", "providers' own estimates", "NOT added", "aws: v3.0.0; gcp: 12",
			"Beside aiwatt's measured totals (never added together)", "aiwatt (measured)", "gcp (provider estimate)"} {
			if !strings.Contains(string(txt), w) {
				t.Errorf("PDF text lacks %q", w)
			}
		}
		txt0, _ := exec.Command(pdftotext, "-layout", filepath.Join(out3, "report.pdf"), "-").CombinedOutput()
		if !strings.Contains(string(txt0), "no ledger") || strings.Contains(string(txt0), "provider estimate") {
			t.Errorf("PDF without --ledger must say no ledger and show no provider figures")
		}
	}
	// A --ledger file that cannot be read, or is not the export, exits 2 with the reason.
	for arg, want := range map[string]string{filepath.Join(t.TempDir(), "absent.csv"): "absent.csv", cfg: "missing columns"} {
		b, err := exec.Command(binPath, "report", "--prometheus="+srv.URL, "--from=2026-11-01", "--to=2026-12-01", "--ledger="+arg, "--out="+t.TempDir()).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(b), want) {
			t.Errorf("--ledger=%s: %v\n%s", arg, err, b)
		}
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
