// Package gcp pulls the Google Cloud Carbon Footprint BigQuery export (per
// project, service and location, by month; scope 1, scope 2 location- and
// market-based, scope 3 and the totals) through cloud.google.com/go/bigquery
// with Application Default Credentials.
//
// It owns nothing else and must not import other providers or the ledger.
package gcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/internal/retry"
)

// Options configure the GCP task.
type Options struct {
	// BillingProject is the project the query job runs (and is billed) in.
	BillingProject string
	// Table is the export table, "project.dataset.table".
	Table string
	// Projects restricts the pull to these project IDs; empty reads all.
	Projects []string
	// Months is the look-back window in whole months (default 3).
	Months int
	// ClientOptions are passed to bigquery.NewClient (endpoint and
	// no-auth in tests; nothing in production: ADC).
	ClientOptions []option.ClientOption
}

var tableRE = regexp.MustCompile("^[a-zA-Z0-9_.:-]+\\.[a-zA-Z0-9_]+\\.[a-zA-Z0-9_$-]+$")

// Task pulls GCP.
type Task struct {
	opts   Options
	client *bigquery.Client
}

var _ cloud.Task = (*Task)(nil)

// New builds the task; the table name is checked because it is spliced
// into SQL (it cannot be a query parameter).
func New(ctx context.Context, o Options) (*Task, error) {
	if o.Months <= 0 {
		o.Months = 3
	}
	if !tableRE.MatchString(o.Table) {
		return nil, fmt.Errorf("gcp: table %q is not project.dataset.table", o.Table)
	}
	c, err := bigquery.NewClient(ctx, o.BillingProject, o.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("gcp: bigquery client: %w", err)
	}
	return &Task{opts: o, client: c}, nil
}

// Close releases the client.
func (t *Task) Close() error { return t.client.Close() }

// Name returns "gcp".
func (t *Task) Name() string { return "gcp" }

// row is one result row of the query.
type row struct {
	UsageMonth     civil.Date          `bigquery:"usage_month"`
	ProjectID      bigquery.NullString `bigquery:"project_id"`
	Service        bigquery.NullString `bigquery:"service"`
	Location       bigquery.NullString `bigquery:"location"`
	ModelVersion   bigquery.NullInt64  `bigquery:"model_version"`
	Scope1         bigquery.NullFloat64
	Scope2Location bigquery.NullFloat64 `bigquery:"scope2_location"`
	Scope2Market   bigquery.NullFloat64 `bigquery:"scope2_market"`
	Scope3         bigquery.NullFloat64
	TotalLocation  bigquery.NullFloat64 `bigquery:"total_location"`
	TotalMarket    bigquery.NullFloat64 `bigquery:"total_market"`
}

// Query returns the SQL run against the export table.
func (t *Task) Query() string {
	q := "SELECT usage_month, project.id AS project_id, service.description AS service, location.location AS location, " +
		"carbon_model_version AS model_version, " +
		"carbon_footprint_kgCO2e.scope1 AS scope1, " +
		"carbon_footprint_kgCO2e.scope2.location_based AS scope2_location, " +
		"carbon_footprint_kgCO2e.scope2.market_based AS scope2_market, " +
		"carbon_footprint_kgCO2e.scope3 AS scope3, " +
		"carbon_footprint_total_kgCO2e.location_based AS total_location, " +
		"carbon_footprint_total_kgCO2e.market_based AS total_market " +
		"FROM `" + t.opts.Table + "` WHERE usage_month >= @from AND usage_month < @to"
	if len(t.opts.Projects) > 0 {
		q += " AND project.id IN UNNEST(@projects)"
	}
	return q
}

// classify maps googleapi errors to cloud.HTTPError; BigQuery's
// rateLimitExceeded arrives as 403 and counts as 429.
func classify(err error) error {
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return err
	}
	status := ge.Code
	for _, e := range ge.Errors {
		if e.Reason == "rateLimitExceeded" || e.Reason == "backendError" {
			status = http.StatusTooManyRequests
		}
	}
	return &cloud.HTTPError{Status: status, After: retry.HeaderAfter(ge.Header, time.Now()), Err: err}
}

// Run queries the window and emits one batch. A failure on any page reruns
// the whole query (through the Retrier) so a batch is never partial.
func (t *Task) Run(ctx context.Context, p *cloud.Pull) error {
	to := time.Date(p.Now.UTC().Year(), p.Now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, -t.opts.Months, 0)
	var rows []row
	err := p.Retrier.Do(ctx, func(ctx context.Context) error {
		rows = rows[:0]
		q := t.client.Query(t.Query())
		q.Parameters = []bigquery.QueryParameter{
			{Name: "from", Value: civil.DateOf(from)},
			{Name: "to", Value: civil.DateOf(to)},
		}
		if len(t.opts.Projects) > 0 {
			q.Parameters = append(q.Parameters, bigquery.QueryParameter{Name: "projects", Value: t.opts.Projects})
		}
		it, err := q.Read(ctx)
		if err != nil {
			return classify(err)
		}
		for {
			var r row
			err := it.Next(&r)
			if err == iterator.Done {
				return nil
			}
			if err != nil {
				return classify(err)
			}
			rows = append(rows, r)
		}
	})
	if err != nil {
		return fmt.Errorf("bigquery carbon footprint query: %w", err)
	}
	b := &cloud.Batch{Provider: "gcp", Source: "gcp:bigquery:" + t.opts.Table, Granularity: cloud.Monthly, From: from, To: to}
	agg := map[cloud.Key]float64{}
	starts := map[string]time.Time{}
	totals := map[string]*[2]cloud.Total{}
	for _, r := range rows {
		start := r.UsageMonth.In(time.UTC)
		period := cloud.Monthly.PeriodName(start)
		starts[period] = start
		project := "(no project)"
		if r.ProjectID.Valid && r.ProjectID.StringVal != "" {
			project = r.ProjectID.StringVal
		}
		mv := ""
		if r.ModelVersion.Valid {
			mv = fmt.Sprint(r.ModelVersion.Int64)
		}
		tot := totals[period]
		if tot == nil {
			tot = &[2]cloud.Total{
				{Period: period, Metrics: []cloud.Metric{cloud.CO2eScope1, cloud.CO2eScope2Location, cloud.CO2eScope3}, What: "carbon_footprint_total_kgCO2e.location_based"},
				{Period: period, Metrics: []cloud.Metric{cloud.CO2eScope1, cloud.CO2eScope2Market, cloud.CO2eScope3}, What: "carbon_footprint_total_kgCO2e.market_based"},
			}
			totals[period] = tot
		}
		tot[0].Value += r.TotalLocation.Float64
		tot[1].Value += r.TotalMarket.Float64
		for m, v := range map[cloud.Metric]bigquery.NullFloat64{
			cloud.CO2eScope1: r.Scope1, cloud.CO2eScope2Location: r.Scope2Location, cloud.CO2eScope2Market: r.Scope2Market,
			cloud.CO2eScope3: r.Scope3, cloud.CO2eTotalLocation: r.TotalLocation, cloud.CO2eTotalMarket: r.TotalMarket,
		} {
			if !v.Valid {
				continue
			}
			agg[cloud.Key{Provider: "gcp", Account: project, Service: r.Service.StringVal, Region: r.Location.StringVal,
				Period: period, ModelVersion: mv, Metric: m}] += v.Float64
		}
	}
	for k, v := range agg {
		start := starts[k.Period]
		b.Records = append(b.Records, cloud.Record{Key: k, PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0), Value: v, Unit: cloud.UnitKgCO2e})
	}
	sort.Slice(b.Records, func(i, j int) bool { return b.Records[i].Key.String() < b.Records[j].Key.String() })
	periods := make([]string, 0, len(totals))
	for p := range totals {
		periods = append(periods, p)
	}
	sort.Strings(periods)
	for _, per := range periods {
		b.Totals = append(b.Totals, totals[per][0], totals[per][1])
	}
	return p.Emit(b)
}
