package aws

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/cloud/cloudtest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/cloud/ledger"
)

const fixtures = "../testdata/captures/"

// fakeAWS serves Cost Explorer (JSON 1.1, X-Amz-Target) and Sustainability
// (REST-JSON) in the shapes of the recorded fixtures, with paging,
// throttling and a 500 before success.
type fakeAWS struct {
	t              *testing.T
	mu             sync.Mutex
	calls          map[string]int
	revised        bool // 2025-01 carbon restated
	failCarbonHard bool // page 2 of carbon answers 403 (an interrupted pull)
	carbonPage1    json.RawMessage
}

func newFakeAWS(t *testing.T) *fakeAWS {
	raw, err := os.ReadFile(filepath.Join(fixtures, "aws_sustainability_GetEstimatedCarbonEmissions_shape.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Resp struct {
			Results []map[string]any
		} `json:"example_response_ILLUSTRATIVE"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	// The recorded result is grouped by REGION and SERVICE; the task also
	// groups by USAGE_ACCOUNT_ID, so the fake adds it.
	for _, r := range fx.Resp.Results {
		r["DimensionsValues"].(map[string]any)["USAGE_ACCOUNT_ID"] = "111122223333"
	}
	page1, _ := json.Marshal(map[string]any{"Results": fx.Resp.Results, "NextToken": "carbon-2"})
	return &fakeAWS{t: t, calls: map[string]int{}, carbonPage1: page1}
}

func (f *fakeAWS) hit(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[name]++
	return f.calls[name]
}

func ceGroup(usageType, region, cost, hours string) map[string]any {
	return map[string]any{"Keys": []string{usageType, region}, "Metrics": map[string]any{
		"UnblendedCost": map[string]string{"Amount": cost, "Unit": "USD"},
		"UsageQuantity": map[string]string{"Amount": hours, "Unit": "Hrs"},
	}}
}

func ceResult(day string, estimated bool, groups ...map[string]any) map[string]any {
	start, _ := time.Parse(time.DateOnly, day)
	return map[string]any{"Estimated": estimated, "Total": map[string]any{}, "Groups": groups,
		"TimePeriod": map[string]string{"Start": day, "End": start.AddDate(0, 0, 1).Format(time.DateOnly)}}
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.URL.Path == "/" && r.Header.Get("X-Amz-Target") == "AWSInsightsIndexService.GetCostAndUsage":
		if !strings.Contains(auth, "/ce/aws4_request") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		var in struct {
			NextPageToken string
			Granularity   string
		}
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if in.NextPageToken == "" {
			json.NewEncoder(w).Encode(map[string]any{
				"GroupDefinitions": []map[string]string{{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "DIMENSION", "Key": "REGION"}},
				"ResultsByTime": []any{
					ceResult("2025-01-31", false,
						ceGroup("USE1-BoxUsage:p4d.24xlarge", "us-east-1", "786.48", "24"),
						ceGroup("USE1-DataTransfer-Out-Bytes", "us-east-1", "1.5", "10")),
					ceResult("2025-02-01", false,
						ceGroup("USE1-BoxUsage:p4d.24xlarge", "us-east-1", "393.24", "12"),
						ceGroup("USW2-Train:ml.g5.xlarge", "us-west-2", "14.16", "10")),
				},
				"NextPageToken": "ce-2",
			})
			return
		}
		switch n := f.hit("ce-2"); n {
		case 1: // Cost Explorer throttles with 400 LimitExceededException.
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"__type":"com.amazonaws.awsinsightsindexservice#LimitExceededException","Message":"Rate exceeded"}`)
			return
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"__type":"InternalServerError","Message":"oops"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ResultsByTime": []any{
			ceResult("2025-02-02", true, ceGroup("USE1-BoxUsage:p4d.24xlarge", "us-east-1", "100", "3")),
		}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/estimated-carbon-emissions":
		if !strings.Contains(auth, "/sustainability/aws4_request") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		var in carbonRequest
		if err := json.Unmarshal(body, &in); err != nil || in.Granularity != "MONTHLY" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if in.NextToken == "" {
			if f.hit("carbon-1") == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.Write(f.carbonPage1)
			return
		}
		if f.failCarbonHard {
			w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
			http.Error(w, `{"message":"interrupted"}`, http.StatusForbidden)
			return
		}
		if f.hit("carbon-2") == 1 {
			w.Header().Set("Retry-After", "1")
			w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		s2 := 1.2
		if f.revised {
			s2 = 1.5
		}
		v := func(x float64) map[string]any { return map[string]any{"Unit": "MTCO2e", "Value": x} }
		json.NewEncoder(w).Encode(map[string]any{"Results": []any{map[string]any{
			"TimePeriod":       map[string]string{"Start": "2024-12-01T00:00:00Z", "End": "2025-01-01T00:00:00Z"},
			"DimensionsValues": map[string]string{"USAGE_ACCOUNT_ID": "111122223333", "REGION": "us-west-2", "SERVICE": "AmazonSageMaker"},
			"ModelVersion":     "v3.0.0",
			"EmissionsValues": map[string]any{
				"TOTAL_SCOPE_1_CARBON_EMISSIONS":     v(0.001),
				"TOTAL_SCOPE_2_LBM_CARBON_EMISSIONS": v(s2),
				"TOTAL_SCOPE_3_LBM_CARBON_EMISSIONS": v(0.4),
				"TOTAL_LBM_CARBON_EMISSIONS":         v(0.001 + s2 + 0.4),
			},
		}}})
	default:
		http.NotFound(w, r)
	}
}

func runOnce(t *testing.T, f *fakeAWS, l *ledger.Ledger) (cloud.Summary, []time.Duration) {
	t.Helper()
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKEFORTESTS", "fake-secret-created-in-test", ""),
		HTTPClient:  srv.Client(),
	}
	task := New(Options{Config: cfg, CostDays: 3, CostEndpoint: srv.URL, CarbonEndpoint: srv.URL})
	return cloudtest.RunOnce(task, l, time.Date(2025, 2, 3, 6, 0, 0, 0, time.UTC), 4, 10*time.Second)
}

func TestPullThroughSDK(t *testing.T) {
	f := newFakeAWS(t)
	l := cloudtest.OpenLedger(t)
	sum, waits := runOnce(t, f, l)
	if len(sum.Tasks) != 1 || sum.Failed() {
		var sb strings.Builder
		sum.Write(&sb)
		t.Fatalf("summary:\n%s", sb.String())
	}
	ts := sum.Tasks[0]
	if ts.Batches != 2 || ts.Retries != 4 || len(ts.Skipped) != 1 || !strings.Contains(ts.Skipped[0], "2025-02-02: estimated") {
		t.Errorf("summary = %+v", ts)
	}
	// Retry-After is honoured: 2s (Cost Explorer throttle), 1s (Sustainability 429); jitter 0 for the 500s.
	var honoured int
	for _, w := range waits {
		if w == 2*time.Second || w == time.Second {
			honoured++
		}
	}
	if honoured != 2 {
		t.Errorf("waits = %v, want the two Retry-After values", waits)
	}
	rows, _ := l.Rows(context.Background())
	got := map[string]float64{}
	for _, r := range rows {
		got[r.Key.String()+" "+r.Unit] = r.Value
	}
	want := map[string]float64{
		"aws/all/AmazonEC2/p4d.24xlarge/us-east-1/2025-01-31//cost USD":        786.48,
		"aws/all/AmazonEC2/p4d.24xlarge/us-east-1/2025-01-31//usage Hrs":       24,
		"aws/all/AmazonEC2/p4d.24xlarge/us-east-1/2025-02-01//cost USD":        393.24,
		"aws/all/AmazonEC2/p4d.24xlarge/us-east-1/2025-02-01//usage Hrs":       12,
		"aws/all/AmazonSageMaker/ml.g5.xlarge/us-west-2/2025-02-01//cost USD":  14.16,
		"aws/all/AmazonSageMaker/ml.g5.xlarge/us-west-2/2025-02-01//usage Hrs": 10,
		// From the recorded fixture (MTCO2e -> kg).
		"aws/111122223333/AmazonEC2/us-east-1/2025-01/v3.0.0/co2e_scope1 kgCO2e":                0.812,
		"aws/111122223333/AmazonEC2/us-east-1/2025-01/v3.0.0/co2e_scope2_location kgCO2e":       1234.567,
		"aws/111122223333/AmazonEC2/us-east-1/2025-01/v3.0.0/co2e_scope2_market kgCO2e":         0,
		"aws/111122223333/AmazonEC2/us-east-1/2025-01/v3.0.0/co2e_scope3_location kgCO2e":       456.789,
		"aws/111122223333/AmazonSageMaker/us-west-2/2024-12/v3.0.0/co2e_scope1 kgCO2e":          1,
		"aws/111122223333/AmazonSageMaker/us-west-2/2024-12/v3.0.0/co2e_scope2_location kgCO2e": 1200,
		"aws/111122223333/AmazonSageMaker/us-west-2/2024-12/v3.0.0/co2e_scope3_location kgCO2e": 400,
		"aws/111122223333/AmazonSageMaker/us-west-2/2024-12/v3.0.0/co2e_total_location kgCO2e":  1601,
	}
	if len(got) != len(want) {
		t.Errorf("got %d rows, want %d:\n%s", len(got), len(want), cloudtest.Dump(t, l))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || abs(g-v) > 1e-9*max(1, v) {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	// The same pull again leaves the ledger row for row as it was.
	before := cloudtest.Dump(t, l)
	f.calls = map[string]int{}
	if sum, _ := runOnce(t, f, l); sum.Failed() || sum.Tasks[0].Inserted+sum.Tasks[0].Revised != 0 {
		t.Fatalf("rerun: %+v", sum.Tasks[0])
	}
	if after := cloudtest.Dump(t, l); after != before {
		t.Errorf("rerun changed the ledger:\n%s\nwas:\n%s", after, before)
	}

	// A revised month replaces the value and keeps the revision.
	f.calls = map[string]int{}
	f.revised = true
	sum, _ = runOnce(t, f, l)
	if sum.Failed() || sum.Tasks[0].Revised != 2 {
		t.Fatalf("revised run: %+v", sum.Tasks[0])
	}
	revs, _ := l.Revisions(context.Background())
	if len(revs) != 2 || revs[0].Period != "2024-12" {
		t.Errorf("revisions = %+v", revs)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestInterruptedPullThenRerunMatchesCleanRun(t *testing.T) {
	// Reference: one clean run.
	ref := cloudtest.OpenLedger(t)
	if sum, _ := runOnce(t, newFakeAWS(t), ref); sum.Failed() {
		t.Fatalf("reference run failed: %+v", sum.Tasks)
	}
	// Interrupted half way: carbon page 2 fails for good.
	l := cloudtest.OpenLedger(t)
	f := newFakeAWS(t)
	f.failCarbonHard = true
	sum, _ := runOnce(t, f, l)
	if !sum.Failed() || !strings.Contains(sum.Tasks[0].Err, "page 2") {
		t.Fatalf("interrupted run should fail on page 2: %+v", sum.Tasks[0])
	}
	rows, _ := l.Rows(context.Background())
	for _, r := range rows {
		if r.Metric.IsCO2e() {
			t.Fatalf("half a carbon batch reached the ledger: %+v", r)
		}
	}
	f.failCarbonHard = false
	f.calls = map[string]int{}
	if sum, _ := runOnce(t, f, l); sum.Failed() {
		t.Fatalf("rerun failed: %+v", sum.Tasks)
	}
	if got, want := cloudtest.Dump(t, l), cloudtest.Dump(t, ref); got != want {
		t.Errorf("interrupted+rerun ledger differs from a clean run:\n%s\nwant:\n%s", got, want)
	}
}

func TestRefusedBatchLeavesLedger(t *testing.T) {
	// A unit the task does not know is refused by validation with the reason.
	l := cloudtest.OpenLedger(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"Results": []any{map[string]any{
			"TimePeriod":       map[string]string{"Start": "2025-01-01T00:00:00Z", "End": "2025-02-01T00:00:00Z"},
			"DimensionsValues": map[string]string{"USAGE_ACCOUNT_ID": "1", "REGION": "eu-west-1", "SERVICE": "AmazonEC2"},
			"EmissionsValues":  map[string]any{"TOTAL_SCOPE_1_CARBON_EMISSIONS": map[string]any{"Unit": "lbCO2e", "Value": 3}},
		}}})
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", HTTPClient: srv.Client(),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKEFORTESTS", "fake-secret-created-in-test", "")}
	r := &cloud.Runner{Tasks: []cloud.Task{New(Options{Config: cfg, SkipCost: true, CarbonEndpoint: srv.URL})}, Sink: l,
		Now: func() time.Time { return time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC) }}
	sum := r.RunOnce(context.Background())
	if !sum.Failed() || len(sum.Tasks[0].Refused) != 1 || !strings.Contains(sum.Tasks[0].Refused[0], `unit "lbCO2e"`) {
		t.Fatalf("summary = %+v", sum.Tasks[0])
	}
	if rows, _ := l.Rows(context.Background()); len(rows) != 0 {
		t.Errorf("refused batch wrote %d rows", len(rows))
	}
}
