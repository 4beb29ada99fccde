package ledger

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inferensys/aiwatt/cloud"
)

func month(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

func batch(v float64, fetched time.Time) *cloud.Batch {
	rec := func(metric cloud.Metric, val float64) cloud.Record {
		return cloud.Record{
			Key:         cloud.Key{Provider: "gcp", Account: "proj-a", Service: "Vertex AI", Region: "us-central1", Period: "2025-01", ModelVersion: "12", Metric: metric},
			PeriodStart: month(2025, 1), PeriodEnd: month(2025, 2), Value: val, Unit: cloud.UnitKgCO2e,
		}
	}
	return &cloud.Batch{
		Provider: "gcp", Source: "test", FetchedAt: fetched, Granularity: cloud.Monthly,
		From: month(2025, 1), To: month(2025, 2),
		Records: []cloud.Record{rec(cloud.CO2eScope1, 1), rec(cloud.CO2eScope2Location, v)},
		Totals:  []cloud.Total{{Period: "2025-01", Metrics: []cloud.Metric{cloud.CO2eScope1, cloud.CO2eScope2Location}, Value: 1 + v, What: "total"}},
	}
}

func open(t *testing.T) *Ledger {
	t.Helper()
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestApplyIdempotentAndRevised(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	t1 := time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC)
	st, err := l.Apply(ctx, batch(400, t1))
	if err != nil || st.Inserted != 2 {
		t.Fatalf("first apply: %+v %v", st, err)
	}
	before, _ := l.Rows(ctx)
	st, err = l.Apply(ctx, batch(400, t1.Add(time.Hour)))
	if err != nil || st.Unchanged != 2 || st.Inserted+st.Revised != 0 {
		t.Fatalf("second apply: %+v %v", st, err)
	}
	after, _ := l.Rows(ctx)
	if len(before) != len(after) {
		t.Fatalf("rows %d -> %d", len(before), len(after))
	}
	for i := range before {
		if before[i] != after[i] {
			t.Errorf("row %d changed on re-apply: %+v -> %+v", i, before[i], after[i])
		}
	}
	// A revised month replaces the value and keeps the old one.
	t2 := t1.AddDate(0, 1, 0)
	st, err = l.Apply(ctx, batch(420, t2))
	if err != nil || st.Revised != 1 || st.Unchanged != 1 {
		t.Fatalf("revised apply: %+v %v", st, err)
	}
	rows, _ := l.Rows(ctx)
	var got Row
	for _, r := range rows {
		if r.Metric == cloud.CO2eScope2Location {
			got = r
		}
	}
	if got.Value != 420 || got.Revision != 2 || got.FetchedAt != t2.Format(time.RFC3339Nano) || got.Source != "test" {
		t.Errorf("revised row = %+v", got)
	}
	revs, _ := l.Revisions(ctx)
	if len(revs) != 1 || revs[0].Value != 400 || revs[0].Revision != 1 || revs[0].FetchedAt != t1.Format(time.RFC3339Nano) {
		t.Errorf("revisions = %+v", revs)
	}
}

func TestApplyRefusesInvalidBatchAndLeavesLedger(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	t1 := time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC)
	if _, err := l.Apply(ctx, batch(400, t1)); err != nil {
		t.Fatal(err)
	}
	bad := batch(500, t1)
	bad.Totals[0].Value = 9999 // totals inconsistent with line items
	if _, err := l.Apply(ctx, bad); !errors.Is(err, cloud.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	rows, _ := l.Rows(ctx)
	for _, r := range rows {
		if r.Value == 500 || r.Revision != 1 {
			t.Errorf("ledger changed by a refused batch: %+v", r)
		}
	}
}

func TestCSVAndCollector(t *testing.T) {
	ctx := context.Background()
	l := open(t)
	if _, err := l.Apply(ctx, batch(400, time.Date(2025, 2, 20, 0, 0, 0, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.WriteCSV(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	want := `provider,account,service,region,period,model_version,metric,period_start,period_end,value,unit,source,fetched_at,revision
gcp,proj-a,Vertex AI,us-central1,2025-01,12,co2e_scope1,2025-01-01,2025-02-01,1,kgCO2e,test,2025-02-20T00:00:00Z,1
gcp,proj-a,Vertex AI,us-central1,2025-01,12,co2e_scope2_location,2025-01-01,2025-02-01,400,kgCO2e,test,2025-02-20T00:00:00Z,1
`
	if buf.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", buf.String(), want)
	}
	c := NewCollector(l)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	exp := `# HELP aiwatt_cloud_co2e_kilograms Provider-reported CO2e of a period in kilograms, from the cloud ledger (newest model version per key).
# TYPE aiwatt_cloud_co2e_kilograms gauge
aiwatt_cloud_co2e_kilograms{account="proj-a",basis="",period="2025-01",provider="gcp",region="us-central1",scope="1",service="Vertex AI"} 1
aiwatt_cloud_co2e_kilograms{account="proj-a",basis="location",period="2025-01",provider="gcp",region="us-central1",scope="2",service="Vertex AI"} 400
# HELP aiwatt_cloud_ledger_rows Current rows in the cloud ledger.
# TYPE aiwatt_cloud_ledger_rows gauge
aiwatt_cloud_ledger_rows 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(exp)); err != nil {
		t.Error(err)
	}
}
