package report_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/inferensys/aiwatt/report"
	"github.com/inferensys/aiwatt/report/reporttest"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLedgerCSVColumnsMatchExportHeader(t *testing.T) {
	if got := strings.Join(report.LedgerCSVColumns, ","); got != reporttest.LedgerCSVHeader {
		t.Fatalf("LedgerCSVColumns %s, want the ledger writer's header %s", got, reporttest.LedgerCSVHeader)
	}
}

func TestLedgerCSVLoad(t *testing.T) {
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rows := reporttest.LedgerMonth(month)
	l, err := report.LoadLedgerCSV(writeFile(t, "cloud.csv", reporttest.LedgerCSV(rows)))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Rows) != len(rows) {
		t.Fatalf("%d rows, want %d", len(l.Rows), len(rows))
	}
	g := l.Rows[7]
	if g.Service != "Vertex AI, Training" || g.Value != 250.75 || g.Revision != 2 || g.ModelVersion != "12" || !g.FetchedAt.Equal(rows[7].FetchedAt) {
		t.Errorf("row 8: %+v", g)
	}
}

func TestLedgerCSVRefused(t *testing.T) {
	good := reporttest.LedgerCSV(reporttest.LedgerMonth(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)))
	lines := strings.SplitN(string(good), "\n", 3)
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"missing columns", strings.Replace(string(good), "model_version,metric,", "", 1), []string{"bad.csv", "missing columns model_version, metric"}},
		{"unknown column", strings.Replace(lines[0], "revision", "revision,extra", 1) + "\n", []string{"bad.csv", `unknown columns "extra"`}},
		{"other layout", "section,project,key,value\n", []string{"bad.csv", "missing columns provider, account"}},
		{"empty", "", []string{"bad.csv", "empty file"}},
		{"sqlite", "SQLite format 3\x00rest", []string{"bad.csv", "SQLite ledger", "--export.csv"}},
		{"bad value", lines[0] + "\n" + strings.Replace(lines[1], ",12.5,", ",twelve,", 1) + "\n", []string{"bad.csv", "line 2", `value "twelve"`}},
		{"unknown metric", lines[0] + "\n" + strings.Replace(lines[1], "co2e_scope2_location", "watts", 1) + "\n", []string{"line 2", `unknown metric "watts"`}},
		{"bad period", lines[0] + "\n" + strings.Replace(lines[1], ",2026-11,", ",2026-10,", 1) + "\n", []string{"line 2", `period "2026-10"`}},
		{"short row", lines[0] + "\naws,1\n", []string{"bad.csv", "wrong number of fields"}},
	} {
		_, err := report.LoadLedgerCSV(writeFile(t, "bad.csv", []byte(c.body)))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	if _, err := report.LoadLedgerCSV(filepath.Join(t.TempDir(), "absent.csv")); err == nil || !strings.Contains(err.Error(), "absent.csv") {
		t.Errorf("absent file: %v", err)
	}
}

func TestLedgerFiguresInReport(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	path := writeFile(t, "cloud.csv", reporttest.LedgerCSV(reporttest.LedgerMonth(from)))
	r := reportWithLedger(t, from, to, path)
	c := r.Cloud
	if c.RowsRead != 9 || c.RowsInPeriod != 7 || c.RowsOtherModelVersions != 1 {
		t.Errorf("rows read %d, in period %d, other versions %d; want 9, 7, 1", c.RowsRead, c.RowsInPeriod, c.RowsOtherModelVersions)
	}
	if got := strings.Join(c.ModelVersions, "|"); got != "aws: v3.0.0|gcp: 12" {
		t.Errorf("model versions %q", got)
	}
	type fig struct {
		metric, value, unit, version string
		days                         int
	}
	var got []fig
	for _, f := range c.Figures {
		got = append(got, fig{f.Provider + " " + f.Metric + " " + f.Scope + "/" + f.Basis + " " + f.Period, f.Value.Canonical(), f.Unit, f.ModelVersion, f.Days})
	}
	want := []fig{
		{"aws co2e_scope2_location 2/location 2026-11", "12.5", "kgCO2e", "v3.0.0", 0},
		{"aws co2e_scope2_market 2/market 2026-11", "10.25", "kgCO2e", "v3.0.0", 0},
		{"aws cost / 2026-11", "200", "USD", "", 2},
		{"azure co2e_scope2 2/unspecified 2026-11", "3", "kgCO2e", "", 0},
		{"gcp co2e_total_location total/location 2026-11", "250.75", "kgCO2e", "12", 0},
	}
	if len(got) != len(want) {
		t.Fatalf("figures %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("figure %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if f := c.Figures[4]; f.Revision != 2 || f.FetchedAt != "2026-12-06T03:01:00Z" || f.WholeMonth {
		t.Errorf("gcp figure: %+v", f)
	}
	var tots []string
	for _, x := range c.Totals {
		tots = append(tots, x.Provider+" "+x.Metric+" "+x.Value.Canonical()+" "+x.Unit)
	}
	if g, w := strings.Join(tots, "|"), "aws co2e_scope2_location 0.0125 t CO2e|aws co2e_scope2_market 0.01025 t CO2e|aws cost 200 USD|azure co2e_scope2 0.003 t CO2e|gcp co2e_total_location 0.25075 t CO2e"; g != w {
		t.Errorf("totals\n got %s\nwant %s", g, w)
	}
	for _, w := range []string{"providers' own estimates", "NOT added", "aws: v3.0.0; gcp: 12", path} {
		if !strings.Contains(r.Ledger, w) {
			t.Errorf("statement %q lacks %q", r.Ledger, w)
		}
	}

	// A half-month report: the carbon months are shown whole and marked,
	// only the cost days inside it are summed.
	r = reportWithLedger(t, from.AddDate(0, 0, 15), to.AddDate(0, 0, -1), path)
	for _, f := range r.Cloud.Figures {
		if f.Metric == "cost" && (f.Days != 1 || f.Value.Canonical() != "100.5") {
			t.Errorf("cost in a period ending before the last day: %+v", f)
		}
		if f.Metric != "cost" && !f.WholeMonth {
			t.Errorf("%s not marked as a whole month beyond the period", f.Metric)
		}
	}

	// JSON and CSV are byte-identical across two builds.
	r2 := reportWithLedger(t, from.AddDate(0, 0, 15), to.AddDate(0, 0, -1), path)
	for name, render := range map[string]func(io.Writer, *report.Report) error{"json": report.RenderJSON, "csv": report.RenderCSV} {
		var a, b bytes.Buffer
		if err := render(&a, r); err != nil {
			t.Fatal(err)
		}
		if err := render(&b, r2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s differs between two builds", name)
		}
		if !strings.Contains(a.String(), "Vertex AI, Training") {
			t.Errorf("%s lacks the gcp figure", name)
		}
	}
	var md bytes.Buffer
	if err := report.RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"## Cloud-provider figures", "Beside aiwatt's measured totals (never added together)", "aws (provider estimate)", "aiwatt (measured)", "whole month", "Vertex AI, Training"} {
		if !strings.Contains(md.String(), w) {
			t.Errorf("Markdown lacks %q", w)
		}
	}
}

// noProm answers every query with an empty result.
type noProm struct{}

func (noProm) Query(context.Context, string, time.Time, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return model.Vector{}, nil, nil, nil
}

func (noProm) QueryRange(context.Context, string, v1.Range, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return model.Matrix{}, nil, nil, nil
}

func reportWithLedger(t *testing.T, from, to time.Time, ledger string) *report.Report {
	t.Helper()
	r, err := report.Build(context.Background(), noProm{}, report.Options{From: from, To: to, Resolution: time.Hour, Ledger: ledger})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLedgerUnreadableFailsBuild(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	_, err := report.Build(context.Background(), noProm{}, report.Options{From: from, To: from.AddDate(0, 1, 0), Ledger: filepath.Join(t.TempDir(), "cloud.db")})
	if err == nil || !strings.Contains(err.Error(), "cloud.db") {
		t.Fatalf("a missing --ledger file must fail the build: %v", err)
	}
	r, err := report.Build(context.Background(), noProm{}, report.Options{From: from, To: from.AddDate(0, 1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Ledger, "no ledger: no --ledger was given") || len(r.Cloud.Figures) != 0 {
		t.Errorf("without --ledger: %q %+v", r.Ledger, r.Cloud)
	}
}
