package reporttest

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"time"
)

// LedgerCSVHeader is the first line aiwatt-cloud's ledger writer
// (cloud/ledger WriteCSV, --export.csv) writes. cloud/ledger's
// report_compat_test.go checks it against the writer's header.
const LedgerCSVHeader = "provider,account,service,region,period,model_version,metric,period_start,period_end,value,unit,source,fetched_at,revision"

// LedgerRow is one row of a ledger export.
type LedgerRow struct {
	Provider, Account, Service, Region, Period, ModelVersion, Metric string
	PeriodStart, PeriodEnd                                           time.Time
	Value                                                            float64
	Unit, Source                                                     string
	FetchedAt                                                        time.Time
	Revision                                                         int
}

// LedgerCSV writes rows exactly as the ledger writer does: LedgerCSVHeader,
// RFC 4180 quoting, dates as YYYY-MM-DD, values in Go's shortest 'g' form,
// fetch times in UTC RFC 3339 with nanoseconds.
func LedgerCSV(rows []LedgerRow) []byte {
	var b bytes.Buffer
	b.WriteString(LedgerCSVHeader + "\n")
	w := csv.NewWriter(&b)
	for _, r := range rows {
		_ = w.Write([]string{r.Provider, r.Account, r.Service, r.Region, r.Period, r.ModelVersion, r.Metric,
			r.PeriodStart.UTC().Format(time.DateOnly), r.PeriodEnd.UTC().Format(time.DateOnly),
			strconv.FormatFloat(r.Value, 'g', -1, 64), r.Unit, r.Source, r.FetchedAt.UTC().Format(time.RFC3339Nano),
			strconv.Itoa(r.Revision)})
	}
	w.Flush()
	return b.Bytes()
}

// LedgerMonth returns ledger rows around the month starting at month (UTC):
//
//   - aws EC2 us-east-1, the month: scope 2 location 12.5 kg and market
//     10.25 kg under model v3.0.0 (fetched later), and scope 2 location 40 kg
//     under v2.0.0 (fetched earlier, so not shown);
//   - aws, the month before: 99 kg (outside the period);
//   - aws cost, "AmazonEC2/p5.48xlarge": the last two days of the month
//     (100.5 + 99.5 USD) and the first day after it (1000 USD, outside);
//   - gcp ml-prod "Vertex AI, Training" europe-west4: total location 250.75 kg
//     under model 12, revision 2;
//   - azure: scope 2 (basis unspecified) 3 kg, no model version.
//
// In the month: aws scope 2 location 0.0125 t (v3.0.0), market 0.01025 t,
// cost 200 USD over 2 days; gcp 0.25075 t (12); azure 0.003 t.
func LedgerMonth(month time.Time) []LedgerRow {
	next, prev := month.AddDate(0, 1, 0), month.AddDate(0, -1, 0)
	fetched := next.AddDate(0, 0, 5).Add(3 * time.Hour)
	older := next.AddDate(0, 0, 1)
	m := month.Format("2006-01")
	const ce, sus = "ce:GetCostAndUsage", "sustainability:GetEstimatedCarbonEmissions"
	day := func(d time.Time, v float64) LedgerRow {
		return LedgerRow{Provider: "aws", Account: "111122223333", Service: "AmazonEC2/p5.48xlarge", Region: "us-east-1", Period: d.Format(time.DateOnly),
			Metric: "cost", PeriodStart: d, PeriodEnd: d.AddDate(0, 0, 1), Value: v, Unit: "USD", Source: ce, FetchedAt: fetched, Revision: 1}
	}
	return []LedgerRow{
		{Provider: "aws", Account: "111122223333", Service: "AmazonEC2", Region: "us-east-1", Period: m, ModelVersion: "v3.0.0", Metric: "co2e_scope2_location",
			PeriodStart: month, PeriodEnd: next, Value: 12.5, Unit: "kgCO2e", Source: sus, FetchedAt: fetched, Revision: 1},
		{Provider: "aws", Account: "111122223333", Service: "AmazonEC2", Region: "us-east-1", Period: m, ModelVersion: "v3.0.0", Metric: "co2e_scope2_market",
			PeriodStart: month, PeriodEnd: next, Value: 10.25, Unit: "kgCO2e", Source: sus, FetchedAt: fetched, Revision: 1},
		{Provider: "aws", Account: "111122223333", Service: "AmazonEC2", Region: "us-east-1", Period: m, ModelVersion: "v2.0.0", Metric: "co2e_scope2_location",
			PeriodStart: month, PeriodEnd: next, Value: 40, Unit: "kgCO2e", Source: sus, FetchedAt: older, Revision: 1},
		{Provider: "aws", Account: "111122223333", Service: "AmazonEC2", Region: "us-east-1", Period: prev.Format("2006-01"), ModelVersion: "v3.0.0", Metric: "co2e_scope2_location",
			PeriodStart: prev, PeriodEnd: month, Value: 99, Unit: "kgCO2e", Source: sus, FetchedAt: fetched, Revision: 1},
		day(next.AddDate(0, 0, -2), 100.5),
		day(next.AddDate(0, 0, -1), 99.5),
		day(next, 1000),
		{Provider: "gcp", Account: "ml-prod", Service: "Vertex AI, Training", Region: "europe-west4", Period: m, ModelVersion: "12", Metric: "co2e_total_location",
			PeriodStart: month, PeriodEnd: next, Value: 250.75, Unit: "kgCO2e", Source: "bigquery:carbon-proj.carbon_ds.carbon_footprint", FetchedAt: fetched.Add(time.Minute), Revision: 2},
		{Provider: "azure", Account: "00000000-0000-0000-0000-000000000000", Service: "microsoft.compute/virtualmachines", Region: "westeurope", Period: m, Metric: "co2e_scope2",
			PeriodStart: month, PeriodEnd: next, Value: 3, Unit: "kgCO2e", Source: "carbonEmissionReports", FetchedAt: fetched, Revision: 1},
	}
}
