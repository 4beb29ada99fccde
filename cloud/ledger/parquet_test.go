package ledger

import (
	"bytes"
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/inferensys/aiwatt/cloud"
)

// fillForExport puts rows that exercise the export into l: two providers,
// a revised row (revision 2), a fractional value, a fetch time with
// nanoseconds, and strings with a comma, a quote and non-ASCII text.
func fillForExport(t *testing.T, l *Ledger) {
	t.Helper()
	ctx := context.Background()
	t1 := time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC)
	for _, b := range []*cloud.Batch{batch(400, t1), batch(420.125, t1.AddDate(0, 1, 0).Add(123456789*time.Nanosecond))} {
		if _, err := l.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	aws := &cloud.Batch{
		Provider: "aws", Source: "aws:test", FetchedAt: time.Date(2025, 3, 5, 7, 8, 9, 987654000, time.UTC), Granularity: cloud.Daily,
		From: day, To: day.AddDate(0, 0, 1),
		Records: []cloud.Record{
			{Key: cloud.Key{Provider: "aws", Account: "111122223333", Service: `Amazon Bedrock, "Claude"`, Region: "eu-west-1", Period: "2025-03-03", ModelVersion: "", Metric: cloud.Cost},
				PeriodStart: day, PeriodEnd: day.AddDate(0, 0, 1), Value: 1234.5678901234, Unit: "EUR"},
			{Key: cloud.Key{Provider: "aws", Account: "111122223333", Service: "Amazon SageMaker", Region: "ap-northeast-1", Period: "2025-03-03", Metric: cloud.Usage},
				PeriodStart: day, PeriodEnd: day.AddDate(0, 0, 1), Value: 1e-7, Unit: "GPU-Stunden (µ)"},
		},
	}
	if _, err := l.Apply(ctx, aws); err != nil {
		t.Fatal(err)
	}
}

func readParquet(t *testing.T, b []byte) []ParquetRow {
	t.Helper()
	rows, err := parquet.Read[ParquetRow](bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("read parquet back: %v", err)
	}
	return rows
}

// parquetMatchesCSV fails t unless the Parquet rows carry the same values,
// in the same order, as the CSV export (fetched_at to the microsecond).
func parquetMatchesCSV(t *testing.T, csvData []byte, prows []ParquetRow) {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(csvData)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(CSVHeader, ",") {
		t.Fatalf("csv header %v", recs[:min(1, len(recs))])
	}
	recs = recs[1:]
	if len(recs) != len(prows) {
		t.Fatalf("csv has %d rows, parquet %d", len(recs), len(prows))
	}
	for i, c := range recs {
		p := prows[i]
		value, err := strconv.ParseFloat(c[9], 64)
		if err != nil {
			t.Fatal(err)
		}
		revision, err := strconv.ParseInt(c[13], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		fetched, err := time.Parse(time.RFC3339Nano, c[12])
		if err != nil {
			t.Fatal(err)
		}
		got := []any{p.Provider, p.Account, p.Service, p.Region, p.Period, p.ModelVersion, p.Metric,
			DateOf(p.PeriodStart).Format(time.DateOnly), DateOf(p.PeriodEnd).Format(time.DateOnly), p.Value, p.Unit, p.Source,
			p.FetchedAt.UTC(), p.Revision}
		want := []any{c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], value, c[10], c[11],
			fetched.Truncate(time.Microsecond), revision}
		for j := range want {
			if g, w := got[j], want[j]; g != w {
				if gt, ok := g.(time.Time); ok && gt.Equal(w.(time.Time)) {
					continue
				}
				t.Errorf("row %d column %s: parquet %v, csv %v", i, CSVHeader[j], g, w)
			}
		}
	}
}

func TestParquetMatchesCSVAndIsStable(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	fillForExport(t, l)
	var csvBuf, pq1 bytes.Buffer
	if err := l.WriteCSV(ctx, &csvBuf); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteParquet(ctx, &pq1); err != nil {
		t.Fatal(err)
	}
	prows := readParquet(t, pq1.Bytes())
	if len(prows) != 4 {
		t.Fatalf("parquet rows = %d, want 4", len(prows))
	}
	parquetMatchesCSV(t, csvBuf.Bytes(), prows)

	// The cases the fill was made for came through.
	var sawRevised, sawNanos bool
	for _, p := range prows {
		if p.Revision == 2 && p.Value == 420.125 {
			sawRevised = true
			if want := time.Date(2025, 3, 20, 0, 0, 0, 123456000, time.UTC); !p.FetchedAt.Equal(want) {
				t.Errorf("fetched_at = %v, want %v (truncated to µs)", p.FetchedAt, want)
			}
			sawNanos = true
		}
	}
	if !sawRevised || !sawNanos {
		t.Errorf("revised row missing: %+v", prows)
	}

	// Re-applying an unchanged batch leaves the ledger as it was, and the
	// export byte for byte.
	if _, err := l.Apply(ctx, batch(420.125, time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	var pq2 bytes.Buffer
	if err := l.WriteParquet(ctx, &pq2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pq1.Bytes(), pq2.Bytes()) {
		t.Errorf("second export of an unchanged ledger differs (%d vs %d bytes)", pq1.Len(), pq2.Len())
	}
}

func TestParquetSchemaTypes(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	fillForExport(t, l)
	var buf bytes.Buffer
	if err := l.WriteParquet(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	want := `message aiwatt_cloud_ledger {
	required binary provider (STRING);
	required binary account (STRING);
	required binary service (STRING);
	required binary region (STRING);
	required binary period (STRING);
	required binary model_version (STRING);
	required binary metric (STRING);
	required int32 period_start (DATE);
	required int32 period_end (DATE);
	required double value;
	required binary unit (STRING);
	required binary source (STRING);
	required int64 fetched_at (TIMESTAMP(isAdjustedToUTC=true,unit=MICROS));
	required int64 revision (INT(64,true));
}`
	if got := f.Schema().String(); got != want {
		t.Errorf("schema:\n%s\nwant:\n%s", got, want)
	}
	var names []string
	for _, c := range f.Schema().Fields() {
		names = append(names, c.Name())
	}
	if strings.Join(names, ",") != strings.Join(CSVHeader, ",") {
		t.Errorf("columns %v, want the CSV header %v", names, CSVHeader)
	}
	if f.NumRows() != 4 {
		t.Errorf("rows = %d", f.NumRows())
	}
	// The stored physical values, below the library's Go mapping: DATE in
	// days since the epoch, TIMESTAMP in microseconds since the epoch, UTC.
	raw := make([]parquet.Row, 8)
	n, err := f.RowGroups()[0].Rows().ReadRows(raw)
	if n != 4 {
		t.Fatalf("read %d raw rows: %v", n, err)
	}
	// The last row is gcp co2e_scope2_location (revised), 2025-01-01..2025-02-01.
	last := raw[n-1]
	if got, want := last[7].Int32(), int32(20089); got != want {
		t.Errorf("raw period_start = %d, want %d", got, want)
	}
	if got, want := last[8].Int32(), int32(20120); got != want {
		t.Errorf("raw period_end = %d, want %d", got, want)
	}
	if got, want := last[12].Int64(), time.Date(2025, 3, 20, 0, 0, 0, 123456000, time.UTC).UnixMicro(); got != want {
		t.Errorf("raw fetched_at = %d, want %d", got, want)
	}
}

func TestParquetEmptyLedger(t *testing.T) {
	l := open(t)
	var buf bytes.Buffer
	if err := l.WriteParquet(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	if rows := readParquet(t, buf.Bytes()); len(rows) != 0 {
		t.Errorf("rows = %+v", rows)
	}
}
