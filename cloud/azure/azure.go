// Package azure pulls carbon from Azure Carbon Optimization
// (carbonEmissionReports: ItemDetailsReport per month and scope, paged by
// skipToken, checked against the MonthlySummaryReport) and spend from Cost
// Management query, with Entra ID credentials.
//
// Cost Management goes through the generated armcostmanagement/v2
// QueryClient (nextLink pages through the same ARM pipeline). No generated
// Go client for Microsoft.Carbon is published in the Go module proxy, so
// carbonEmissionReports is called through azcore's ARM runtime pipeline
// (bearer-token, logging and request policies; the SDK's transport).
//
// It owns nothing else and must not import other providers or the ledger.
package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	armruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm/runtime"
	azcloud "github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/costmanagement/armcostmanagement/v2"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/internal/retry"
)

// CarbonAPIVersion is the Microsoft.Carbon API version used.
const CarbonAPIVersion = "2025-04-01"

// Options configure the Azure task.
type Options struct {
	// Credential is an Entra ID credential (azidentity's default chain in
	// production; a fake in tests).
	Credential azcore.TokenCredential
	// Subscriptions are the subscription IDs to read carbon for (and, when
	// CostScopes is empty, cost for).
	Subscriptions []string
	// CostScopes are Cost Management scopes, e.g.
	// "subscriptions/ID" or "providers/Microsoft.Billing/billingAccounts/ID".
	CostScopes []string
	// CostServices filters Cost Management by ServiceName (default
	// DefaultCostServices).
	CostServices []string
	// CostDays and CarbonMonths are the look-back windows (defaults 14, 3).
	CostDays, CarbonMonths int
	// Endpoint overrides the Resource Manager endpoint (sovereign clouds; tests).
	Endpoint string
	// Transport overrides the HTTP client (tests).
	Transport policy.Transporter
	// SkipCost and SkipCarbon turn a half off.
	SkipCost, SkipCarbon bool
}

// DefaultCostServices are the Cost Management ServiceName values read by default.
var DefaultCostServices = []string{"Azure Machine Learning", "Virtual Machines", "Foundry Models"}

// Task pulls Azure.
type Task struct {
	opts     Options
	endpoint string
	pl       runtime.Pipeline
	query    *armcostmanagement.QueryClient
}

var _ cloud.Task = (*Task)(nil)

// New builds the Azure task. SDK retries are off; the runner's Retrier
// retries with jitter and honours Retry-After / x-ms-retry-after-ms.
func New(o Options) (*Task, error) {
	if o.CostDays <= 0 {
		o.CostDays = 14
	}
	if o.CarbonMonths <= 0 {
		o.CarbonMonths = 3
	}
	if len(o.CostServices) == 0 {
		o.CostServices = DefaultCostServices
	}
	if len(o.CostScopes) == 0 {
		for _, s := range o.Subscriptions {
			o.CostScopes = append(o.CostScopes, "subscriptions/"+s)
		}
	}
	cfg := azcloud.AzurePublic
	if o.Endpoint != "" {
		rm := cfg.Services[azcloud.ResourceManager]
		rm.Endpoint = o.Endpoint
		cfg.Services = map[azcloud.ServiceName]azcloud.ServiceConfiguration{azcloud.ResourceManager: rm}
	}
	copts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Cloud:     cfg,
		Transport: o.Transport,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
	pl, err := armruntime.NewPipeline("aiwatt-cloud", "v1", o.Credential, runtime.PipelineOptions{}, copts)
	if err != nil {
		return nil, fmt.Errorf("azure pipeline: %w", err)
	}
	q, err := armcostmanagement.NewQueryClient(o.Credential, copts)
	if err != nil {
		return nil, fmt.Errorf("azure cost management client: %w", err)
	}
	return &Task{opts: o, endpoint: strings.TrimSuffix(cfg.Services[azcloud.ResourceManager].Endpoint, "/"), pl: pl, query: q}, nil
}

// Name returns "azure".
func (t *Task) Name() string { return "azure" }

// Run pulls carbon (one batch per scope) and cost (one batch per cost scope).
func (t *Task) Run(ctx context.Context, p *cloud.Pull) error {
	var errs []error
	if !t.opts.SkipCarbon {
		for _, scope := range []string{"Scope1", "Scope2", "Scope3"} {
			if err := t.pullCarbon(ctx, p, scope); err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, err)
			}
		}
	}
	if !t.opts.SkipCost {
		for _, scope := range t.opts.CostScopes {
			if err := t.pullCost(ctx, p, scope); err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// classify maps azcore errors to cloud.HTTPError (status + Retry-After).
func classify(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.RawResponse != nil {
		return &cloud.HTTPError{Status: re.StatusCode, After: retry.HeaderAfter(re.RawResponse.Header, time.Now()), Err: err}
	}
	return err
}

type dateRange struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type carbonQuery struct {
	ReportType       string    `json:"reportType"`
	SubscriptionList []string  `json:"subscriptionList"`
	CarbonScopeList  []string  `json:"carbonScopeList"`
	DateRange        dateRange `json:"dateRange"`
	CategoryType     string    `json:"categoryType,omitempty"`
	OrderBy          string    `json:"orderBy,omitempty"`
	SortDirection    string    `json:"sortDirection,omitempty"`
	PageSize         int       `json:"pageSize,omitempty"`
	SkipToken        string    `json:"skipToken,omitempty"`
}

type carbonResult struct {
	SubscriptionAccessDecisionList []struct {
		SubscriptionID string `json:"subscriptionId"`
		Decision       string `json:"decision"`
		DenialReason   string `json:"denialReason"`
	} `json:"subscriptionAccessDecisionList"`
	Value []struct {
		DataType             string   `json:"dataType"`
		LatestMonthEmissions *float64 `json:"latestMonthEmissions"`
		Date                 string   `json:"date"`
		SubscriptionID       string   `json:"subscriptionId"`
		ResourceType         string   `json:"resourceType"`
		Location             string   `json:"location"`
	} `json:"value"`
	SkipToken string `json:"skipToken"`
}

func (t *Task) carbonCall(ctx context.Context, p *cloud.Pull, q carbonQuery) (*carbonResult, error) {
	var out carbonResult
	err := p.Retrier.Do(ctx, func(ctx context.Context) error {
		req, err := runtime.NewRequest(ctx, http.MethodPost,
			t.endpoint+"/providers/Microsoft.Carbon/carbonEmissionReports?api-version="+CarbonAPIVersion)
		if err != nil {
			return err
		}
		if err := runtime.MarshalAsJSON(req, q); err != nil {
			return err
		}
		resp, err := t.pl.Do(req)
		if err != nil {
			return &cloud.HTTPError{Status: http.StatusServiceUnavailable, Err: err}
		}
		if !runtime.HasStatusCode(resp, http.StatusOK) {
			return classify(runtime.NewResponseError(resp))
		}
		out = carbonResult{}
		return runtime.UnmarshalAsJSON(resp, &out)
	})
	return &out, err
}

var scopeMetric = map[string]cloud.Metric{"Scope1": cloud.CO2eScope1, "Scope2": cloud.CO2eScope2, "Scope3": cloud.CO2eScope3}

func (t *Task) pullCarbon(ctx context.Context, p *cloud.Pull, scope string) error {
	to := time.Date(p.Now.UTC().Year(), p.Now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, -t.opts.CarbonMonths, 0)
	last := to.AddDate(0, -1, 0)
	metric := scopeMetric[scope]
	b := &cloud.Batch{Provider: "azure", Source: "azure:carbonEmissionReports:" + CarbonAPIVersion,
		Granularity: cloud.Monthly, From: from, To: to}
	// The monthly summary gives the total each month's line items must add up to.
	sum, err := t.carbonCall(ctx, p, carbonQuery{ReportType: "MonthlySummaryReport", SubscriptionList: t.opts.Subscriptions,
		CarbonScopeList: []string{scope}, DateRange: dateRange{from.Format(time.DateOnly), last.Format(time.DateOnly)}})
	if err != nil {
		return fmt.Errorf("carbon %s monthly summary: %w", scope, err)
	}
	// Partial access: a subscription the caller may not read is reported
	// once per scope as skipped; the others are still pulled.
	denied := map[string]bool{}
	noteDenied := func(res *carbonResult) {
		for _, d := range res.SubscriptionAccessDecisionList {
			if d.Decision != "Allowed" && !denied[d.SubscriptionID] {
				denied[d.SubscriptionID] = true
				reason := d.DenialReason
				if reason == "" {
					reason = "access denied"
				}
				p.Skip(fmt.Sprintf("azure carbon %s subscription %s: %s: %s", scope, d.SubscriptionID, d.Decision, reason))
			}
		}
	}
	noteDenied(sum)
	for _, v := range sum.Value {
		if v.LatestMonthEmissions == nil {
			continue
		}
		d, err := time.Parse(time.DateOnly, v.Date)
		if err != nil {
			return fmt.Errorf("carbon %s monthly summary: bad date %q", scope, v.Date)
		}
		b.Totals = append(b.Totals, cloud.Total{Period: cloud.Monthly.PeriodName(d), Metrics: []cloud.Metric{metric},
			Value: *v.LatestMonthEmissions, What: "MonthlySummaryReport " + scope})
	}
	type aggKey struct{ sub, svc, region string }
	for m := from; m.Before(to); m = m.AddDate(0, 1, 0) {
		agg := map[aggKey]float64{}
		q := carbonQuery{ReportType: "ItemDetailsReport", SubscriptionList: t.opts.Subscriptions, CarbonScopeList: []string{scope},
			DateRange: dateRange{m.Format(time.DateOnly), m.Format(time.DateOnly)}, CategoryType: "Resource",
			OrderBy: "LatestMonthEmissions", SortDirection: "Desc", PageSize: 1000}
		for page := 1; ; page++ {
			res, err := t.carbonCall(ctx, p, q)
			if err != nil {
				return fmt.Errorf("carbon %s %s item details page %d: %w", scope, m.Format("2006-01"), page, err)
			}
			noteDenied(res)
			for _, v := range res.Value {
				if v.LatestMonthEmissions == nil {
					return fmt.Errorf("carbon %s %s: item without latestMonthEmissions", scope, m.Format("2006-01"))
				}
				agg[aggKey{strings.ToLower(v.SubscriptionID), strings.ToLower(v.ResourceType), v.Location}] += *v.LatestMonthEmissions
			}
			if res.SkipToken == "" {
				break
			}
			q.SkipToken = res.SkipToken
		}
		for k, v := range agg {
			b.Records = append(b.Records, cloud.Record{
				Key:         cloud.Key{Provider: "azure", Account: k.sub, Service: k.svc, Region: k.region, Period: cloud.Monthly.PeriodName(m), Metric: metric},
				PeriodStart: m, PeriodEnd: m.AddDate(0, 1, 0), Value: v, Unit: cloud.UnitKgCO2e,
			})
		}
	}
	sortRecords(b.Records)
	return p.Emit(b)
}

func sortRecords(rs []cloud.Record) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Key.String() < rs[j].Key.String() })
}

func (t *Task) pullCost(ctx context.Context, p *cloud.Pull, scope string) error {
	to := p.Now.UTC().Truncate(24 * time.Hour)
	from := to.AddDate(0, 0, -t.opts.CostDays)
	last := to.Add(-time.Second)
	svcs := make([]*string, len(t.opts.CostServices))
	for i := range t.opts.CostServices {
		svcs[i] = &t.opts.CostServices[i]
	}
	def := armcostmanagement.QueryDefinition{
		Type:       ptr(armcostmanagement.ExportTypeActualCost),
		Timeframe:  ptr(armcostmanagement.TimeframeTypeCustom),
		TimePeriod: &armcostmanagement.QueryTimePeriod{From: &from, To: &last},
		Dataset: &armcostmanagement.QueryDataset{
			Granularity: ptr(armcostmanagement.GranularityTypeDaily),
			Aggregation: map[string]*armcostmanagement.QueryAggregation{
				"totalCost": {Name: ptr("Cost"), Function: ptr(armcostmanagement.FunctionTypeSum)},
			},
			Grouping: []*armcostmanagement.QueryGrouping{
				{Type: ptr(armcostmanagement.QueryColumnTypeDimension), Name: ptr("ServiceName")},
				{Type: ptr(armcostmanagement.QueryColumnTypeDimension), Name: ptr("ResourceLocation")},
			},
			Filter: &armcostmanagement.QueryFilter{Dimensions: &armcostmanagement.QueryComparisonExpression{
				Name: ptr("ServiceName"), Operator: ptr(armcostmanagement.QueryOperatorTypeIn), Values: svcs}},
		},
	}
	account := scope
	if s, ok := strings.CutPrefix(scope, "subscriptions/"); ok {
		account = s
	}
	b := &cloud.Batch{Provider: "azure", Source: "azure:costmanagement:query", Granularity: cloud.Daily, From: from, To: to}
	var props *armcostmanagement.QueryProperties
	err := p.Retrier.Do(ctx, func(ctx context.Context) error {
		resp, err := t.query.Usage(ctx, scope, def, nil)
		if err != nil {
			return classify(err)
		}
		props = resp.Properties
		return nil
	})
	for page := 1; ; page++ {
		if err != nil {
			return fmt.Errorf("cost management query %s page %d: %w", scope, page, err)
		}
		if props == nil {
			break // 204: no data
		}
		recs, err := costRows(props, account)
		if err != nil {
			return fmt.Errorf("cost management query %s page %d: %w", scope, page, err)
		}
		b.Records = append(b.Records, recs...)
		if props.NextLink == nil || *props.NextLink == "" {
			break
		}
		props, err = t.nextCostPage(ctx, p, *props.NextLink, def)
	}
	// Rows of one key may span pages: sum them.
	merged := map[cloud.Key]int{}
	out := b.Records[:0]
	for _, r := range b.Records {
		if i, ok := merged[r.Key]; ok {
			if out[i].Unit != r.Unit {
				return fmt.Errorf("cost management query %s: %s in two currencies", scope, r.Key)
			}
			out[i].Value += r.Value
			continue
		}
		merged[r.Key] = len(out)
		out = append(out, r)
	}
	b.Records = out
	sortRecords(b.Records)
	return p.Emit(b)
}

// nextCostPage follows a nextLink through the same ARM pipeline, refusing a
// link to another host so the bearer token never leaves Resource Manager.
func (t *Task) nextCostPage(ctx context.Context, p *cloud.Pull, link string, def armcostmanagement.QueryDefinition) (*armcostmanagement.QueryProperties, error) {
	u, err := url.Parse(link)
	base, _ := url.Parse(t.endpoint)
	if err != nil || base == nil || u.Host != base.Host || u.Scheme != base.Scheme {
		return nil, fmt.Errorf("nextLink points outside %s", t.endpoint)
	}
	var props *armcostmanagement.QueryProperties
	err = p.Retrier.Do(ctx, func(ctx context.Context) error {
		req, err := runtime.NewRequest(ctx, http.MethodPost, link)
		if err != nil {
			return err
		}
		if err := runtime.MarshalAsJSON(req, def); err != nil {
			return err
		}
		resp, err := t.pl.Do(req)
		if err != nil {
			return &cloud.HTTPError{Status: http.StatusServiceUnavailable, Err: err}
		}
		if !runtime.HasStatusCode(resp, http.StatusOK) {
			return classify(runtime.NewResponseError(resp))
		}
		var res armcostmanagement.QueryResult
		if err := runtime.UnmarshalAsJSON(resp, &res); err != nil {
			return err
		}
		props = res.Properties
		return nil
	})
	return props, err
}

// costRows reads the columnar result by column name.
func costRows(props *armcostmanagement.QueryProperties, account string) ([]cloud.Record, error) {
	col := map[string]int{}
	for i, c := range props.Columns {
		if c != nil && c.Name != nil {
			col[strings.ToLower(*c.Name)] = i
		}
	}
	need := func(names ...string) (int, error) {
		for _, n := range names {
			if i, ok := col[strings.ToLower(n)]; ok {
				return i, nil
			}
		}
		return 0, fmt.Errorf("result has no %s column", names[0])
	}
	ci, err := need("Cost", "PreTaxCost", "CostUSD")
	if err != nil {
		return nil, err
	}
	di, err := need("UsageDate")
	if err != nil {
		return nil, err
	}
	si, err := need("ServiceName")
	if err != nil {
		return nil, err
	}
	li, err := need("ResourceLocation")
	if err != nil {
		return nil, err
	}
	ki, err := need("Currency")
	if err != nil {
		return nil, err
	}
	var out []cloud.Record
	for n, row := range props.Rows {
		if len(row) != len(props.Columns) {
			return nil, fmt.Errorf("row %d has %d cells for %d columns", n, len(row), len(props.Columns))
		}
		cost, ok := row[ci].(float64)
		if !ok {
			return nil, fmt.Errorf("row %d: cost is not a number", n)
		}
		var dayNum int64
		switch d := row[di].(type) {
		case float64:
			dayNum = int64(d)
		case string:
			dayNum, _ = strconv.ParseInt(d, 10, 64)
		}
		day, err := time.Parse("20060102", strconv.FormatInt(dayNum, 10))
		if err != nil {
			return nil, fmt.Errorf("row %d: bad UsageDate", n)
		}
		svc, _ := row[si].(string)
		loc, _ := row[li].(string)
		cur, _ := row[ki].(string)
		out = append(out, cloud.Record{
			Key:         cloud.Key{Provider: "azure", Account: account, Service: svc, Region: loc, Period: cloud.Daily.PeriodName(day), Metric: cloud.Cost},
			PeriodStart: day, PeriodEnd: day.AddDate(0, 0, 1), Value: cost, Unit: cur,
		})
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
