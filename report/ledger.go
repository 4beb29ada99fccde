package report

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// LedgerCSVColumns is the header of aiwatt-cloud's ledger CSV export
// (--export.csv), in the order its writer puts them. A test in cloud/ledger
// compares it with the writer's header, so the two cannot drift.
var LedgerCSVColumns = []string{"provider", "account", "service", "region", "period", "model_version", "metric",
	"period_start", "period_end", "value", "unit", "source", "fetched_at", "revision"}

// ledgerMetrics are the metrics the ledger stores, with their GHG scope and
// basis ("" where they do not apply; "unspecified" where the provider does
// not say).
var ledgerMetrics = map[string][2]string{
	"co2e_scope1":          {"1", ""},
	"co2e_scope2":          {"2", "unspecified"},
	"co2e_scope2_location": {"2", "location"},
	"co2e_scope2_market":   {"2", "market"},
	"co2e_scope3":          {"3", ""},
	"co2e_scope3_location": {"3", "location"},
	"co2e_scope3_market":   {"3", "market"},
	"co2e_total_location":  {"total", "location"},
	"co2e_total_market":    {"total", "market"},
	"cost":                 {"", ""},
	"usage":                {"", ""},
}

// LedgerRow is one row of the ledger CSV export: one provider figure for one
// account, service, region, period (a day "2006-01-02" or a month
// "2006-01"), carbon model version and metric.
type LedgerRow struct {
	Provider, Account, Service, Region, Period, ModelVersion, Metric string
	// PeriodStart and PeriodEnd bound the period (end exclusive, UTC).
	PeriodStart, PeriodEnd time.Time
	Value                  float64
	Unit, Source           string
	FetchedAt              time.Time
	Revision               int
}

// Ledger is a parsed ledger CSV export.
type Ledger struct {
	// Path is the file it was read from.
	Path string
	Rows []LedgerRow
}

// LoadLedgerCSV reads the CSV that `aiwatt-cloud --export.csv FILE` writes.
// The header must be exactly the export's columns (any order); a file with
// missing or unknown columns, a bad row, or aiwatt-cloud's SQLite file
// itself is refused with an error naming the file.
func LoadLedgerCSV(path string) (*Ledger, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	if bytes.HasPrefix(raw, []byte("SQLite format 3\x00")) {
		return nil, fmt.Errorf("ledger %s: this is aiwatt-cloud's SQLite ledger; aiwatt report reads its CSV export: run aiwatt-cloud with --export.csv FILE and pass that FILE to --ledger", path)
	}
	return ParseLedgerCSV(bytes.NewReader(raw), path)
}

// ParseLedgerCSV parses a ledger CSV export; name is used in errors.
func ParseLedgerCSV(in io.Reader, name string) (*Ledger, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("ledger %s: "+format, append([]any{name}, a...)...)
	}
	cr := csv.NewReader(in)
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fail("empty file: not an aiwatt-cloud CSV export (want the header %s)", strings.Join(LedgerCSVColumns, ","))
	}
	if err != nil {
		return nil, fail("%v", err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	col := map[string]int{}
	var unknown, dup []string
	for i, h := range header {
		if _, ok := col[h]; ok {
			dup = append(dup, h)
		}
		col[h] = i
	}
	var missing []string
	known := map[string]bool{}
	for _, c := range LedgerCSVColumns {
		known[c] = true
		if _, ok := col[c]; !ok {
			missing = append(missing, c)
		}
	}
	for _, h := range header {
		if !known[h] {
			unknown = append(unknown, strconv.Quote(h))
		}
	}
	if len(missing) > 0 || len(unknown) > 0 || len(dup) > 0 {
		var why []string
		if len(missing) > 0 {
			why = append(why, "missing columns "+strings.Join(missing, ", "))
		}
		if len(unknown) > 0 {
			why = append(why, "unknown columns "+strings.Join(unknown, ", "))
		}
		if len(dup) > 0 {
			why = append(why, "duplicate columns "+strings.Join(dup, ", "))
		}
		return nil, fail("not the aiwatt-cloud CSV export layout: %s (want the header %s)", strings.Join(why, "; "), strings.Join(LedgerCSVColumns, ","))
	}
	l := &Ledger{Path: name, Rows: []LedgerRow{}}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fail("%v", err)
		}
		line, _ := cr.FieldPos(0)
		row, err := parseLedgerRow(func(c string) string { return rec[col[c]] })
		if err != nil {
			return nil, fail("line %d: %v", line, err)
		}
		l.Rows = append(l.Rows, row)
	}
	return l, nil
}

func parseLedgerRow(f func(string) string) (LedgerRow, error) {
	r := LedgerRow{Provider: f("provider"), Account: f("account"), Service: f("service"), Region: f("region"),
		Period: f("period"), ModelVersion: f("model_version"), Metric: f("metric"), Unit: f("unit"), Source: f("source")}
	var err error
	switch {
	case r.Provider == "" || r.Account == "" || r.Period == "":
		return r, errors.New("provider, account and period must not be empty")
	}
	if _, ok := ledgerMetrics[r.Metric]; !ok {
		return r, fmt.Errorf("unknown metric %q", r.Metric)
	}
	if strings.HasPrefix(r.Metric, "co2e_") && r.Unit != "kgCO2e" {
		return r, fmt.Errorf("%s in %q, want kgCO2e", r.Metric, r.Unit)
	}
	if r.Unit == "" {
		return r, fmt.Errorf("%s has no unit", r.Metric)
	}
	if r.PeriodStart, err = time.Parse(time.DateOnly, f("period_start")); err != nil {
		return r, fmt.Errorf("period_start: %v", err)
	}
	if r.PeriodEnd, err = time.Parse(time.DateOnly, f("period_end")); err != nil {
		return r, fmt.Errorf("period_end: %v", err)
	}
	if !r.PeriodEnd.After(r.PeriodStart) {
		return r, fmt.Errorf("period_end %s is not after period_start %s", f("period_end"), f("period_start"))
	}
	monthly := r.PeriodStart.Format("2006-01") == r.Period && r.PeriodEnd.Equal(r.PeriodStart.AddDate(0, 1, 0)) && r.PeriodStart.Day() == 1
	daily := r.PeriodStart.Format(time.DateOnly) == r.Period && r.PeriodEnd.Equal(r.PeriodStart.AddDate(0, 0, 1))
	if !monthly && !daily {
		return r, fmt.Errorf("period %q does not match %s..%s (want one whole month YYYY-MM or day YYYY-MM-DD)", r.Period, f("period_start"), f("period_end"))
	}
	if r.Value, err = strconv.ParseFloat(f("value"), 64); err != nil || math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		return r, fmt.Errorf("value %q is not a finite number", f("value"))
	}
	if r.FetchedAt, err = time.Parse(time.RFC3339Nano, f("fetched_at")); err != nil {
		return r, fmt.Errorf("fetched_at: %v", err)
	}
	if r.Revision, err = strconv.Atoi(f("revision")); err != nil || r.Revision < 1 {
		return r, fmt.Errorf("revision %q is not a positive integer", f("revision"))
	}
	return r, nil
}

// CloudFigures are the cloud providers' own figures from the ledger export,
// shown beside aiwatt's measured figures and never added to them.
type CloudFigures struct {
	// Ledger is the --ledger file ("" when none was given).
	Ledger string `json:"ledger"`
	// ModelVersions are "provider: version" of the carbon models behind the
	// figures shown, sorted.
	ModelVersions []string `json:"model_versions"`
	// Totals sum Figures per provider, metric and unit (CO2e in t CO2e).
	Totals []CloudTotal `json:"totals"`
	// Figures are per provider, account, service, region, month, scope and basis.
	Figures []CloudFigure `json:"figures"`
	// RowsRead, RowsInPeriod and RowsOtherModelVersions count ledger rows:
	// all, those overlapping the period, and those of the period not shown
	// because a more recently fetched model version of the same figure is.
	RowsRead               int `json:"rows_read"`
	RowsInPeriod           int `json:"rows_in_period"`
	RowsOtherModelVersions int `json:"rows_other_model_versions"`
}

// CloudFigure is one provider figure for a calendar month.
type CloudFigure struct {
	Provider string `json:"provider"`
	Account  string `json:"account"`
	Service  string `json:"service"`
	Region   string `json:"region"`
	// Period is the calendar month (YYYY-MM).
	Period string `json:"period"`
	// Metric is the ledger's metric; Scope ("1", "2", "3", "total") and
	// Basis ("location", "market", "unspecified") split CO2e metrics.
	Metric string `json:"metric"`
	Scope  string `json:"scope"`
	Basis  string `json:"basis"`
	Value  Num    `json:"value"`
	Unit   string `json:"unit"`
	// Days is the number of daily ledger rows summed (cost, usage); 0 for a
	// monthly figure.
	Days int `json:"days"`
	// WholeMonth is true for a monthly figure whose month reaches outside
	// the report period: it is shown whole, not prorated.
	WholeMonth bool `json:"whole_month_beyond_period"`
	// ModelVersion is the provider's carbon model version ("" when none).
	ModelVersion string `json:"model_version"`
	// Revision is the ledger revision (the highest of the days summed);
	// FetchedAt the latest fetch time; Source the provider API.
	Revision  int    `json:"revision"`
	FetchedAt string `json:"fetched_at"`
	Source    string `json:"source"`
}

// CloudTotal is one provider's figures of one metric summed over accounts,
// services, regions and months.
type CloudTotal struct {
	Provider      string   `json:"provider"`
	Metric        string   `json:"metric"`
	Scope         string   `json:"scope"`
	Basis         string   `json:"basis"`
	Value         Num      `json:"value"`
	Unit          string   `json:"unit"`
	ModelVersions []string `json:"model_versions"`
}

// cloudFigures filters the ledger to the months and days overlapping
// [from, to) and aggregates it.
func cloudFigures(l *Ledger, from, to time.Time) CloudFigures {
	cf := CloudFigures{Ledger: l.Path, ModelVersions: []string{}, Totals: []CloudTotal{}, Figures: []CloudFigure{}, RowsRead: len(l.Rows)}
	// One row per ledger key without model version: the most recently
	// fetched version, then the greatest version string (as aiwatt-cloud's
	// gauges do). Versions are restatements, never added together.
	type key struct{ provider, account, service, region, period, metric string }
	pick := map[key]LedgerRow{}
	for _, r := range l.Rows {
		if !r.PeriodStart.Before(to) || !r.PeriodEnd.After(from) {
			continue
		}
		cf.RowsInPeriod++
		k := key{r.Provider, r.Account, r.Service, r.Region, r.Period, r.Metric}
		old, ok := pick[k]
		if ok {
			cf.RowsOtherModelVersions++
			if old.FetchedAt.After(r.FetchedAt) || (old.FetchedAt.Equal(r.FetchedAt) && old.ModelVersion > r.ModelVersion) {
				continue
			}
		}
		pick[k] = r
	}
	type fkey struct{ provider, account, service, region, month, metric, unit string }
	picked := make([]LedgerRow, 0, len(pick))
	for _, r := range pick {
		picked = append(picked, r)
	}
	// A fixed order keeps the floating-point sums the same from run to run.
	sort.Slice(picked, func(i, j int) bool {
		a, b := picked[i], picked[j]
		for _, p := range [][2]string{{a.Provider, b.Provider}, {a.Account, b.Account}, {a.Service, b.Service}, {a.Region, b.Region},
			{a.Period, b.Period}, {a.Metric, b.Metric}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	figs := map[fkey]*CloudFigure{}
	var fetched = map[fkey]time.Time{}
	for _, r := range picked {
		month := r.PeriodStart.Format("2006-01")
		k := fkey{r.Provider, r.Account, r.Service, r.Region, month, r.Metric, r.Unit}
		f := figs[k]
		if f == nil {
			sb := ledgerMetrics[r.Metric]
			f = &CloudFigure{Provider: r.Provider, Account: r.Account, Service: r.Service, Region: r.Region, Period: month,
				Metric: r.Metric, Scope: sb[0], Basis: sb[1], Value: N(0), Unit: r.Unit, ModelVersion: r.ModelVersion, Source: r.Source}
			figs[k] = f
		}
		f.Value = N(f.Value.Float() + r.Value)
		if len(r.Period) == len("2006-01-02") {
			f.Days++
		} else if r.PeriodStart.Before(from) || r.PeriodEnd.After(to) {
			f.WholeMonth = true
		}
		f.ModelVersion = joinSorted(f.ModelVersion, r.ModelVersion)
		f.Source = joinSorted(f.Source, r.Source)
		f.Revision = max(f.Revision, r.Revision)
		if r.FetchedAt.After(fetched[k]) {
			fetched[k] = r.FetchedAt
			f.FetchedAt = r.FetchedAt.UTC().Format(time.RFC3339Nano)
		}
	}
	type tkey struct{ provider, metric, unit string }
	tots := map[tkey]*CloudTotal{}
	versions := map[string]bool{}
	for _, f := range figs {
		cf.Figures = append(cf.Figures, *f)
	}
	sort.Slice(cf.Figures, func(i, j int) bool {
		a, b := cf.Figures[i], cf.Figures[j]
		for _, p := range [][2]string{{a.Provider, b.Provider}, {a.Account, b.Account}, {a.Service, b.Service}, {a.Region, b.Region},
			{a.Period, b.Period}, {a.Metric, b.Metric}, {a.Unit, b.Unit}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	for _, f := range cf.Figures {
		unit, v := f.Unit, f.Value.Float()
		if unit == "kgCO2e" {
			unit, v = "t CO2e", v/1000
		}
		k := tkey{f.Provider, f.Metric, unit}
		t := tots[k]
		if t == nil {
			t = &CloudTotal{Provider: f.Provider, Metric: f.Metric, Scope: f.Scope, Basis: f.Basis, Value: N(0), Unit: unit, ModelVersions: []string{}}
			tots[k] = t
		}
		t.Value = N(t.Value.Float() + v)
		for _, mv := range strings.Split(f.ModelVersion, ", ") {
			if mv != "" {
				versions[f.Provider+": "+mv] = true
				if !contains(t.ModelVersions, mv) {
					t.ModelVersions = append(t.ModelVersions, mv)
				}
			}
		}
	}
	for _, t := range tots {
		sort.Strings(t.ModelVersions)
		cf.Totals = append(cf.Totals, *t)
	}
	sort.Slice(cf.Totals, func(i, j int) bool {
		a, b := cf.Totals[i], cf.Totals[j]
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Unit < b.Unit
	})
	for v := range versions {
		cf.ModelVersions = append(cf.ModelVersions, v)
	}
	sort.Strings(cf.ModelVersions)
	return cf
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// joinSorted adds v to the sorted ", "-joined list s.
func joinSorted(s, v string) string {
	if v == "" || s == v {
		return s
	}
	if s == "" {
		return v
	}
	parts := strings.Split(s, ", ")
	if contains(parts, v) {
		return s
	}
	parts = append(parts, v)
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// cloudStatement is the plain statement shown with the figures.
func cloudStatement(cf CloudFigures) string {
	mv := "model versions not stated by the providers"
	if len(cf.ModelVersions) > 0 {
		mv = "model versions " + strings.Join(cf.ModelVersions, "; ")
	}
	return fmt.Sprintf("Cloud-provider figures from the aiwatt-cloud ledger export %s are the providers' own estimates (%s). "+
		"They are shown beside aiwatt's measured figures and are NOT added to them: every aiwatt total in this report is measured by aiwatt alone.",
		cf.Ledger, mv)
}
