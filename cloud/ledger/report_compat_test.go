package ledger

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/report"
	"github.com/inferensys/aiwatt/report/reporttest"
)

// TestReportReadsLedgerCSVExport keeps `aiwatt report --ledger` (which must
// not import this package) in step with the CSV writer: the header is the
// report package's column list and its tests' copy, and a real export
// parses with report.ParseLedgerCSV row for row.
func TestReportReadsLedgerCSVExport(t *testing.T) {
	if !reflect.DeepEqual(CSVHeader, report.LedgerCSVColumns) {
		t.Fatalf("ledger CSVHeader %v != report.LedgerCSVColumns %v", CSVHeader, report.LedgerCSVColumns)
	}
	if got := strings.Join(CSVHeader, ","); got != reporttest.LedgerCSVHeader {
		t.Fatalf("ledger CSVHeader %s != reporttest.LedgerCSVHeader %s", got, reporttest.LedgerCSVHeader)
	}
	ctx := context.Background()
	l := open(t)
	t1 := time.Date(2025, 2, 20, 3, 4, 5, 123456789, time.UTC)
	if _, err := l.Apply(ctx, batch(400.125, t1)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, batch(401, t1.Add(time.Hour))); err != nil { // revision 2
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.WriteCSV(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	got, err := report.ParseLedgerCSV(&buf, "export.csv")
	if err != nil {
		t.Fatalf("report cannot read the ledger's CSV export: %v", err)
	}
	rows, err := l.Rows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != len(rows) || len(rows) != 2 {
		t.Fatalf("%d rows parsed, ledger has %d", len(got.Rows), len(rows))
	}
	for i, r := range rows {
		g := got.Rows[i]
		fetched, _ := time.Parse(time.RFC3339Nano, r.FetchedAt)
		if g.Provider != r.Provider || g.Account != r.Account || g.Service != r.Service || g.Region != r.Region || g.Period != r.Period ||
			g.ModelVersion != r.ModelVersion || g.Metric != string(r.Metric) || g.Value != r.Value || g.Unit != r.Unit || g.Source != r.Source ||
			g.Revision != r.Revision || !g.FetchedAt.Equal(fetched) ||
			g.PeriodStart.Format(time.DateOnly) != r.PeriodStart || g.PeriodEnd.Format(time.DateOnly) != r.PeriodEnd {
			t.Errorf("row %d: parsed %+v, ledger %+v", i, g, r)
		}
	}
	if got.Rows[1].Revision != 2 || got.Rows[1].Value != 401 {
		t.Errorf("revised row: %+v", got.Rows[1])
	}
}
