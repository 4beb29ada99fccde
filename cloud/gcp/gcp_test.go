package gcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/cloud/cloudtest"

	"google.golang.org/api/option"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/cloud/ledger"
)

const fixtures = "../testdata/captures/"

// fakeBigQuery emulates BigQuery REST jobs.query and jobs.getQueryResults
// for a query over the Carbon Footprint export.
type fakeBigQuery struct {
	t        *testing.T
	mu       sync.Mutex
	calls    map[string]int
	revised  bool // 2024-12 restated under a new model version value
	failPage bool // page 2 answers 403 for good (interrupted pull)
	queries  []string
}

func (f *fakeBigQuery) hit(k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[k]++
	return f.calls[k]
}

var schema = map[string]any{"fields": []map[string]string{
	{"name": "usage_month", "type": "DATE"}, {"name": "project_id", "type": "STRING"}, {"name": "service", "type": "STRING"},
	{"name": "location", "type": "STRING"}, {"name": "model_version", "type": "INTEGER"}, {"name": "scope1", "type": "FLOAT"},
	{"name": "scope2_location", "type": "FLOAT"}, {"name": "scope2_market", "type": "FLOAT"}, {"name": "scope3", "type": "FLOAT"},
	{"name": "total_location", "type": "FLOAT"}, {"name": "total_market", "type": "FLOAT"},
}}

func bqRow(cells ...any) map[string]any {
	f := make([]map[string]any, len(cells))
	for i, c := range cells {
		if c == nil {
			f[i] = map[string]any{"v": nil}
		} else {
			f[i] = map[string]any{"v": fmt.Sprint(c)}
		}
	}
	return map[string]any{"f": f}
}

func (f *fakeBigQuery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/bigquery/v2/projects/billing-proj/queries":
		var req struct {
			Query           string
			UseLegacySQL    *bool
			QueryParameters []struct{ Name string }
		}
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.queries = append(f.queries, req.Query)
		f.mu.Unlock()
		if f.hit("query") == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 500, "message": "backend",
				"errors": []map[string]string{{"reason": "backendError", "message": "backend"}}}})
			return
		}
		// The example values of the export schema (scope1 10, scope2 location 400 / market 105.8, total location 1587.3).
		json.NewEncoder(w).Encode(map[string]any{
			"kind": "bigquery#queryResponse", "schema": schema, "jobComplete": true, "totalRows": "3",
			"jobReference": map[string]string{"projectId": "billing-proj", "jobId": "job_1", "location": "US"},
			"rows": []any{
				bqRow("2025-01-01", "proj-ml", "Vertex AI", "us-central1", 12, 10, 400, 105.8, 1177.3, 1587.3, 1293.1),
				bqRow("2025-01-01", "proj-ml", "Compute Engine", "us-central1", 12, 1, 20, 5, 30, 51, 36),
			},
			"pageToken": "page-2",
		})
	case r.Method == http.MethodGet && r.URL.Path == "/bigquery/v2/projects/billing-proj/queries/job_1":
		if r.URL.Query().Get("pageToken") != "page-2" {
			http.Error(w, `{"error":{"code":400,"message":"bad page token"}}`, http.StatusBadRequest)
			return
		}
		if f.failPage {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 403, "message": "interrupted",
				"errors": []map[string]string{{"reason": "accessDenied", "message": "interrupted"}}}})
			return
		}
		if f.hit("page-2") == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 429, "message": "too many requests"}})
			return
		}
		s2 := 2.5
		if f.revised {
			s2 = 3.0
		}
		json.NewEncoder(w).Encode(map[string]any{"kind": "bigquery#getQueryResultsResponse", "jobComplete": true, "totalRows": "3",
			"rows": []any{bqRow("2024-12-01", nil, "Cloud Storage", "us", 12, 0.5, s2, 0.1, 1, 0.5+s2+1, 1.6)}})
	default:
		http.NotFound(w, r)
	}
}

func runOnce(t *testing.T, f *fakeBigQuery, l *ledger.Ledger) (cloud.Summary, []time.Duration) {
	t.Helper()
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	task, err := New(ctx, Options{BillingProject: "billing-proj", Table: "carbon-proj.carbon_ds.carbon_footprint",
		ClientOptions: []option.ClientOption{option.WithEndpoint(srv.URL + "/bigquery/v2/"), option.WithoutAuthentication()}})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()
	return cloudtest.RunOnce(task, l, time.Date(2025, 2, 10, 0, 0, 0, 0, time.UTC), 3, 20*time.Second)
}

func TestQueryMatchesExportSchema(t *testing.T) {
	// Every column the query reads exists in the recorded export schema.
	raw, err := os.ReadFile(filepath.Join(fixtures, "gcp_carbon_footprint_bigquery_schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Schema []field `json:"bigquery_table_schema"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	cols := map[string]bool{}
	var walk func(prefix string, fs []field)
	walk = func(prefix string, fs []field) {
		for _, f := range fs {
			cols[prefix+f.Name] = true
			walk(prefix+f.Name+".", f.Fields)
		}
	}
	walk("", fx.Schema)
	task := &Task{opts: Options{Table: "p.d.t"}}
	for _, c := range []string{"usage_month", "project.id", "service.description", "location.location", "carbon_model_version",
		"carbon_footprint_kgCO2e.scope1", "carbon_footprint_kgCO2e.scope2.location_based", "carbon_footprint_kgCO2e.scope2.market_based",
		"carbon_footprint_kgCO2e.scope3", "carbon_footprint_total_kgCO2e.location_based", "carbon_footprint_total_kgCO2e.market_based"} {
		if !cols[c] {
			t.Errorf("column %s is not in the export schema", c)
		}
		if !strings.Contains(task.Query(), c) {
			t.Errorf("query does not read %s", c)
		}
	}
}

type field struct {
	Name   string  `json:"name"`
	Fields []field `json:"fields"`
}

func TestPullThroughSDK(t *testing.T) {
	f := &fakeBigQuery{t: t, calls: map[string]int{}}
	l := cloudtest.OpenLedger(t)
	sum, waits := runOnce(t, f, l)
	if sum.Failed() {
		t.Fatalf("summary:\n%s", cloudtest.SummaryText(sum))
	}
	if ts := sum.Tasks[0]; ts.Batches != 1 || ts.Records != 18 || ts.Retries != 1 || len(waits) != 1 || waits[0] != 2*time.Second {
		t.Errorf("summary:\n%s\nwaits %v", cloudtest.SummaryText(sum), waits)
	}
	if !strings.Contains(f.queries[0], "FROM `carbon-proj.carbon_ds.carbon_footprint`") {
		t.Errorf("query = %s", f.queries[0])
	}
	rows, _ := l.Rows(context.Background())
	got := map[string]float64{}
	for _, r := range rows {
		got[r.Key.String()] = r.Value
	}
	for k, v := range map[string]float64{
		"gcp/proj-ml/Vertex AI/us-central1/2025-01/12/co2e_scope1":               10,
		"gcp/proj-ml/Vertex AI/us-central1/2025-01/12/co2e_scope2_location":      400,
		"gcp/proj-ml/Vertex AI/us-central1/2025-01/12/co2e_scope2_market":        105.8,
		"gcp/proj-ml/Vertex AI/us-central1/2025-01/12/co2e_total_location":       1587.3,
		"gcp/(no project)/Cloud Storage/us/2024-12/12/co2e_scope2_location":      2.5,
		"gcp/proj-ml/Compute Engine/us-central1/2025-01/12/co2e_total_market":    36,
		"gcp/(no project)/Cloud Storage/us/2024-12/12/co2e_total_market":         1.6,
		"gcp/proj-ml/Compute Engine/us-central1/2025-01/12/co2e_scope2_location": 20,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}

	before := cloudtest.Dump(t, l)
	f.calls = map[string]int{}
	if sum, _ := runOnce(t, f, l); sum.Failed() || sum.Tasks[0].Unchanged != 18 {
		t.Fatalf("rerun:\n%s", cloudtest.SummaryText(sum))
	}
	if after := cloudtest.Dump(t, l); after != before {
		t.Errorf("rerun changed the ledger:\n%s\nwas:\n%s", after, before)
	}

	f.calls = map[string]int{}
	f.revised = true
	if sum, _ := runOnce(t, f, l); sum.Failed() || sum.Tasks[0].Revised != 2 {
		t.Fatalf("revised:\n%s", cloudtest.SummaryText(sum))
	}
	revs, _ := l.Revisions(context.Background())
	if len(revs) != 2 || revs[0].Period != "2024-12" || revs[0].Metric != cloud.CO2eScope2Location || revs[0].Value != 2.5 {
		t.Errorf("revisions = %+v", revs)
	}
}

func TestInterruptedPullThenRerunMatchesCleanRun(t *testing.T) {
	ref := cloudtest.OpenLedger(t)
	if sum, _ := runOnce(t, &fakeBigQuery{t: t, calls: map[string]int{}}, ref); sum.Failed() {
		t.Fatalf("reference:\n%s", cloudtest.SummaryText(sum))
	}
	l := cloudtest.OpenLedger(t)
	f := &fakeBigQuery{t: t, calls: map[string]int{}, failPage: true}
	if sum, _ := runOnce(t, f, l); !sum.Failed() {
		t.Fatalf("interrupted run did not fail:\n%s", cloudtest.SummaryText(sum))
	}
	if rows, _ := l.Rows(context.Background()); len(rows) != 0 {
		t.Fatalf("half a pull reached the ledger: %d rows", len(rows))
	}
	f.failPage = false
	f.calls = map[string]int{}
	if sum, _ := runOnce(t, f, l); sum.Failed() {
		t.Fatalf("rerun:\n%s", cloudtest.SummaryText(sum))
	}
	if got, want := cloudtest.Dump(t, l), cloudtest.Dump(t, ref); got != want {
		t.Errorf("interrupted+rerun differs:\n%s\nwant:\n%s", got, want)
	}
}
