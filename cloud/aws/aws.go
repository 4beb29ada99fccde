// Package aws pulls AI/ML spend and usage from AWS Cost Explorer
// (GetCostAndUsage, daily, SageMaker and EC2 accelerator instance families)
// and carbon from the AWS Sustainability API (GetEstimatedCarbonEmissions,
// monthly, scopes 1/2/3, location- and market-based) into cloud batches.
//
// Cost Explorer goes through the generated aws-sdk-go-v2 client. The
// generated Sustainability client (service/sustainability) is not published
// in the Go module proxy, so that call is made with the SDK's own parts: the
// aws.Config credentials chain, its HTTP client and its SigV4 signer
// (service "sustainability"), speaking the documented REST-JSON protocol.
//
// It owns nothing else and must not import other providers or the ledger.
package aws

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/costexplorer"
	cetypes "github.com/aws/aws-sdk-go-v2/service/costexplorer/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/internal/retry"
)

// Options configure the AWS task.
type Options struct {
	// Config is the SDK configuration (credentials from the default chain in
	// production; static fake ones in tests).
	Config aws.Config
	// Accounts restricts Cost Explorer to these linked accounts, one query
	// each; empty means one query over the whole payer, labelled "all".
	Accounts []string
	// CostDays is how many whole days back Cost Explorer is read (default 14).
	CostDays int
	// CarbonMonths is how many whole months back carbon is read (default 3).
	CarbonMonths int
	// CostServices are Cost Explorer SERVICE values to read.
	CostServices []string
	// CarbonServices are Sustainability SERVICE values to read.
	CarbonServices []string
	// CostEndpoint and CarbonEndpoint override the API endpoints (VPC
	// endpoints; tests). Empty uses the SDK's resolver for Cost Explorer
	// and DefaultCarbonEndpoint for Sustainability.
	CostEndpoint, CarbonEndpoint string
	// CarbonRegion is the region Sustainability requests are signed for.
	// Empty: the region named in CarbonEndpoint's host
	// (sustainability.REGION.amazonaws.com, VPC endpoint names included),
	// else the default endpoint's (us-east-1). It is never Config.Region:
	// a request must be signed for the region of the endpoint it goes to.
	CarbonRegion string
	// SkipCost and SkipCarbon turn a half off.
	SkipCost, SkipCarbon bool
}

// DefaultCarbonEndpoint is the Sustainability API endpoint used when none is
// configured.
const DefaultCarbonEndpoint = "https://sustainability.us-east-1.amazonaws.com"

// Default service lists.
var (
	DefaultCostServices   = []string{"Amazon Elastic Compute Cloud - Compute", "Amazon SageMaker"}
	DefaultCarbonServices = []string{"AmazonEC2", "AmazonSageMaker"}
)

// gpuRE matches accelerator instance types inside usage types, e.g.
// "BoxUsage:p4d.24xlarge", "USE1-BoxUsage:g5.xlarge", "USE1-ml.p4d.24xlarge".
var gpuRE = regexp.MustCompile(`(?:^|[-:.])((?:ml\.)?(?:p[2-6][a-z]*|g[3-6][a-z]*|trn[12][a-z]*|inf[12][a-z]*|dl[12][a-z]*)\.[0-9]*x?[a-z]+)`)

// Task pulls AWS.
type Task struct {
	opts Options
	ce   *costexplorer.Client
}

var _ cloud.Task = (*Task)(nil)

// New returns the AWS task. SDK-level retries are off: the runner's
// Retrier retries with jitter and honours Retry-After.
func New(o Options) *Task {
	if o.CostDays <= 0 {
		o.CostDays = 14
	}
	if o.CarbonMonths <= 0 {
		o.CarbonMonths = 3
	}
	if len(o.CostServices) == 0 {
		o.CostServices = DefaultCostServices
	}
	if len(o.CarbonServices) == 0 {
		o.CarbonServices = DefaultCarbonServices
	}
	if o.CarbonEndpoint == "" {
		o.CarbonEndpoint = DefaultCarbonEndpoint
	}
	ce := costexplorer.NewFromConfig(o.Config, func(co *costexplorer.Options) {
		co.Retryer = aws.NopRetryer{}
		if o.CostEndpoint != "" {
			co.BaseEndpoint = aws.String(o.CostEndpoint)
		}
	})
	return &Task{opts: o, ce: ce}
}

// Name returns "aws".
func (t *Task) Name() string { return "aws" }

// Run pulls cost (one batch per account) then carbon (one batch).
func (t *Task) Run(ctx context.Context, p *cloud.Pull) error {
	var errs []error
	if !t.opts.SkipCost {
		accounts := t.opts.Accounts
		if len(accounts) == 0 {
			accounts = []string{""}
		}
		for _, acct := range accounts {
			if err := t.pullCost(ctx, p, acct); err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, err)
			}
		}
	}
	if !t.opts.SkipCarbon {
		if err := t.pullCarbon(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (t *Task) pullCost(ctx context.Context, p *cloud.Pull, account string) error {
	to := p.Now.UTC().Truncate(24 * time.Hour)
	from := to.AddDate(0, 0, -t.opts.CostDays)
	label := account
	filters := []cetypes.Expression{
		{Dimensions: &cetypes.DimensionValues{Key: cetypes.DimensionService, Values: t.opts.CostServices,
			MatchOptions: []cetypes.MatchOption{cetypes.MatchOptionEquals}}},
		{Dimensions: &cetypes.DimensionValues{Key: cetypes.DimensionRecordType, Values: []string{"Usage"},
			MatchOptions: []cetypes.MatchOption{cetypes.MatchOptionEquals}}},
	}
	if account == "" {
		label = "all"
	} else {
		filters = append(filters, cetypes.Expression{Dimensions: &cetypes.DimensionValues{
			Key: cetypes.DimensionLinkedAccount, Values: []string{account}, MatchOptions: []cetypes.MatchOption{cetypes.MatchOptionEquals}}})
	}
	in := &costexplorer.GetCostAndUsageInput{
		TimePeriod:  &cetypes.DateInterval{Start: aws.String(from.Format(time.DateOnly)), End: aws.String(to.Format(time.DateOnly))},
		Granularity: cetypes.GranularityDaily,
		Metrics:     []string{"UnblendedCost", "UsageQuantity"},
		Filter:      &cetypes.Expression{And: filters},
		GroupBy: []cetypes.GroupDefinition{
			{Type: cetypes.GroupDefinitionTypeDimension, Key: aws.String(string(cetypes.DimensionUsageType))},
			{Type: cetypes.GroupDefinitionTypeDimension, Key: aws.String(string(cetypes.DimensionRegion))},
		},
	}
	type aggKey struct{ service, region, day, metric, unit string }
	agg := map[aggKey]float64{}
	starts := map[string]time.Time{}
	for page := 1; ; page++ {
		var out *costexplorer.GetCostAndUsageOutput
		err := p.Retrier.Do(ctx, func(ctx context.Context) error {
			var err error
			out, err = t.ce.GetCostAndUsage(ctx, in)
			return classify(err)
		})
		if err != nil {
			return fmt.Errorf("cost explorer GetCostAndUsage (account %s, page %d): %w", label, page, err)
		}
		for _, r := range out.ResultsByTime {
			if r.TimePeriod == nil || r.TimePeriod.Start == nil {
				return fmt.Errorf("cost explorer: result without a time period")
			}
			day := *r.TimePeriod.Start
			if r.Estimated {
				p.Skip(fmt.Sprintf("aws cost %s %s: estimated by Cost Explorer, not final", label, day))
				continue
			}
			start, err := time.Parse(time.DateOnly, day)
			if err != nil {
				return fmt.Errorf("cost explorer: bad period start %q", day)
			}
			starts[day] = start
			for _, g := range r.Groups {
				if len(g.Keys) != 2 {
					return fmt.Errorf("cost explorer: group with %d keys, want 2 (USAGE_TYPE, REGION)", len(g.Keys))
				}
				m := gpuRE.FindStringSubmatch(g.Keys[0])
				if m == nil {
					continue // not an accelerator instance
				}
				svc := "AmazonEC2/" + m[1]
				if strings.HasPrefix(m[1], "ml.") {
					svc = "AmazonSageMaker/" + m[1]
				}
				for name, metric := range map[string]cloud.Metric{"UnblendedCost": cloud.Cost, "UsageQuantity": cloud.Usage} {
					mv, ok := g.Metrics[name]
					if !ok || mv.Amount == nil {
						return fmt.Errorf("cost explorer: %s %s: metric %s missing", day, g.Keys[0], name)
					}
					v, err := strconv.ParseFloat(*mv.Amount, 64)
					if err != nil {
						return fmt.Errorf("cost explorer: %s %s: amount %q is not a number", day, g.Keys[0], *mv.Amount)
					}
					agg[aggKey{svc, g.Keys[1], day, string(metric), aws.ToString(mv.Unit)}] += v
				}
			}
		}
		if out.NextPageToken == nil || *out.NextPageToken == "" {
			break
		}
		in.NextPageToken = out.NextPageToken
	}
	b := &cloud.Batch{Provider: "aws", Source: "aws:costexplorer:GetCostAndUsage",
		Granularity: cloud.Daily, From: from, To: to}
	for k, v := range agg {
		start := starts[k.day]
		b.Records = append(b.Records, cloud.Record{
			Key:         cloud.Key{Provider: "aws", Account: label, Service: k.service, Region: k.region, Period: k.day, Metric: cloud.Metric(k.metric)},
			PeriodStart: start, PeriodEnd: start.AddDate(0, 0, 1), Value: v, Unit: k.unit,
		})
	}
	sortRecords(b.Records)
	return p.Emit(b)
}

func sortRecords(rs []cloud.Record) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Key.String() < rs[j].Key.String() })
}

// Sustainability wire types (REST-JSON).
type carbonRequest struct {
	EmissionsTypes []string             `json:"EmissionsTypes"`
	FilterBy       *carbonFilter        `json:"FilterBy,omitempty"`
	Granularity    string               `json:"Granularity"`
	GroupBy        []string             `json:"GroupBy"`
	MaxResults     int                  `json:"MaxResults,omitempty"`
	NextToken      string               `json:"NextToken,omitempty"`
	TimePeriod     map[string]time.Time `json:"TimePeriod"`
}

type carbonFilter struct {
	Dimensions map[string][]string `json:"Dimensions"`
}

type carbonResponse struct {
	Results []struct {
		TimePeriod       struct{ Start, End time.Time }
		DimensionsValues map[string]string
		EmissionsValues  map[string]struct {
			Unit  string
			Value *float64
		}
		ModelVersion string
	}
	NextToken string
}

var emissionMetrics = map[string]cloud.Metric{
	"TOTAL_SCOPE_1_CARBON_EMISSIONS":     cloud.CO2eScope1,
	"TOTAL_SCOPE_2_LBM_CARBON_EMISSIONS": cloud.CO2eScope2Location,
	"TOTAL_SCOPE_2_MBM_CARBON_EMISSIONS": cloud.CO2eScope2Market,
	"TOTAL_SCOPE_3_LBM_CARBON_EMISSIONS": cloud.CO2eScope3Location,
	"TOTAL_SCOPE_3_MBM_CARBON_EMISSIONS": cloud.CO2eScope3Market,
	"TOTAL_LBM_CARBON_EMISSIONS":         cloud.CO2eTotalLocation,
	"TOTAL_MBM_CARBON_EMISSIONS":         cloud.CO2eTotalMarket,
}

func (t *Task) pullCarbon(ctx context.Context, p *cloud.Pull) error {
	to := time.Date(p.Now.UTC().Year(), p.Now.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	from := to.AddDate(0, -t.opts.CarbonMonths, 0)
	types := make([]string, 0, len(emissionMetrics))
	for k := range emissionMetrics {
		types = append(types, k)
	}
	sort.Strings(types)
	req := carbonRequest{
		EmissionsTypes: types,
		FilterBy:       &carbonFilter{Dimensions: map[string][]string{"SERVICE": t.opts.CarbonServices}},
		Granularity:    "MONTHLY",
		GroupBy:        []string{"USAGE_ACCOUNT_ID", "REGION", "SERVICE"},
		MaxResults:     1000,
		TimePeriod:     map[string]time.Time{"Start": from, "End": to},
	}
	b := &cloud.Batch{Provider: "aws", Source: "aws:sustainability:GetEstimatedCarbonEmissions",
		Granularity: cloud.Monthly, From: from, To: to}
	totals := map[string]*[2]cloud.Total{}
	hasTotal := map[string]bool{}
	for page := 1; ; page++ {
		var out carbonResponse
		err := p.Retrier.Do(ctx, func(ctx context.Context) error { return t.carbonCall(ctx, &req, &out) })
		if err != nil {
			return fmt.Errorf("sustainability GetEstimatedCarbonEmissions (page %d): %w", page, err)
		}
		for _, r := range out.Results {
			start := r.TimePeriod.Start.UTC()
			period := cloud.Monthly.PeriodName(start)
			acct := r.DimensionsValues["USAGE_ACCOUNT_ID"]
			tot, ok := totals[period+"/"+acct]
			if !ok {
				tot = &[2]cloud.Total{
					{Period: period, Account: acct, What: "TOTAL_LBM_CARBON_EMISSIONS",
						Metrics: []cloud.Metric{cloud.CO2eScope1, cloud.CO2eScope2Location, cloud.CO2eScope3Location}},
					{Period: period, Account: acct, What: "TOTAL_MBM_CARBON_EMISSIONS",
						Metrics: []cloud.Metric{cloud.CO2eScope1, cloud.CO2eScope2Market, cloud.CO2eScope3Market}},
				}
				totals[period+"/"+acct] = tot
			}
			for name, ev := range r.EmissionsValues {
				metric, ok := emissionMetrics[name]
				if !ok || ev.Value == nil {
					continue
				}
				v, unit := *ev.Value, ev.Unit
				if unit == "MTCO2e" {
					v, unit = v*1000, cloud.UnitKgCO2e
				}
				switch metric {
				case cloud.CO2eTotalLocation:
					tot[0].Value += v
					hasTotal[period+"/"+acct+"/l"] = true
				case cloud.CO2eTotalMarket:
					tot[1].Value += v
					hasTotal[period+"/"+acct+"/m"] = true
				}
				b.Records = append(b.Records, cloud.Record{
					Key: cloud.Key{Provider: "aws", Account: acct, Service: r.DimensionsValues["SERVICE"],
						Region: r.DimensionsValues["REGION"], Period: period, ModelVersion: r.ModelVersion, Metric: metric},
					PeriodStart: start, PeriodEnd: r.TimePeriod.End.UTC(), Value: v, Unit: unit,
				})
			}
		}
		if out.NextToken == "" {
			break
		}
		req.NextToken = out.NextToken
	}
	// A total is checked only where AWS sent it: the components must add up.
	for k, tot := range totals {
		if hasTotal[k+"/l"] {
			b.Totals = append(b.Totals, tot[0])
		}
		if hasTotal[k+"/m"] {
			b.Totals = append(b.Totals, tot[1])
		}
	}
	sortRecords(b.Records)
	return p.Emit(b)
}

// defaultCarbonRegion is the region of DefaultCarbonEndpoint.
const defaultCarbonRegion = "us-east-1"

// endpointHostRE reads the region out of an AWS service host name:
// sustainability.eu-west-1.amazonaws.com,
// vpce-0abc-xyz.sustainability.eu-west-1.vpce.amazonaws.com, and the .cn
// partitions.
var endpointHostRE = regexp.MustCompile(`(?:^|\.)sustainability(?:-fips)?\.([a-z]{2}(?:-gov)?-[a-z]+-\d+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$`)

// endpointRegion returns the region a Sustainability endpoint URL serves:
// the one in its host name, else the default endpoint's.
func endpointRegion(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return defaultCarbonRegion
	}
	if m := endpointHostRE.FindStringSubmatch(strings.ToLower(u.Hostname())); m != nil {
		return m[1]
	}
	return defaultCarbonRegion
}

// carbonCall makes one signed Sustainability request.
func (t *Task) carbonCall(ctx context.Context, in *carbonRequest, out *carbonResponse) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	u := strings.TrimSuffix(t.opts.CarbonEndpoint, "/") + "/v1/estimated-carbon-emissions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.opts.Config.Credentials == nil {
		return errors.New("no AWS credentials provider")
	}
	creds, err := t.opts.Config.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("retrieve credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	region := t.opts.CarbonRegion
	if region == "" {
		region = endpointRegion(t.opts.CarbonEndpoint)
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sustainability", region, time.Now()); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	var client aws.HTTPClient = t.opts.Config.HTTPClient
	if client == nil {
		client = awshttp.NewBuildableClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		return &cloud.HTTPError{Status: http.StatusServiceUnavailable, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &cloud.HTTPError{Status: http.StatusServiceUnavailable, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		status := resp.StatusCode
		if isThrottle(e.Type) || isThrottle(resp.Header.Get("X-Amzn-ErrorType")) {
			status = http.StatusTooManyRequests
		}
		return &cloud.HTTPError{Status: status, After: retry.HeaderAfter(resp.Header, time.Now()),
			Err: fmt.Errorf("HTTP %d %s %s", resp.StatusCode, e.Type, e.Message)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

func isThrottle(code string) bool {
	code, _, _ = strings.Cut(code, ":")
	code = code[strings.LastIndex(code, "#")+1:]
	switch code {
	case "ThrottlingException", "LimitExceededException", "TooManyRequestsException", "RequestLimitExceeded":
		return true
	}
	return false
}

// classify turns an SDK error into a cloud.HTTPError carrying the status
// and Retry-After so the Retrier can decide; throttling codes sent with 400
// (Cost Explorer's LimitExceededException) count as 429.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		return err
	}
	status := re.HTTPStatusCode()
	var api smithy.APIError
	if errors.As(err, &api) && isThrottle(api.ErrorCode()) {
		status = http.StatusTooManyRequests
	}
	return &cloud.HTTPError{Status: status, After: retry.HeaderAfter(re.Response.Header, time.Now()), Err: err}
}
