package azure

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/cloud/cloudtest"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/cloud/ledger"
)

const fixtures = "../testdata/captures/"

// fakeCredential hands out a token made up in the test.
type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "fake-token-created-in-test", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type fakeAzure struct {
	mu          sync.Mutex
	calls       map[string]int
	summary     map[string]any // fixture: monthly summary body
	details     map[string]any // fixture: item details body (2024-05, skipToken)
	url         string
	revised     bool // 2024-04 restated
	failScope2  bool // Scope2 item details page 2 answers 403 (interrupted pull)
	sawDecoding bool
}

func loadFixture(t *testing.T) (summary, details map[string]any) {
	raw, err := os.ReadFile(filepath.Join(fixtures, "azure_carbon_optimization_carbonEmissionReports_examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Summary struct {
			Responses struct {
				OK struct{ Body map[string]any } `json:"200"`
			} `json:"responses"`
		} `json:"monthly_summary_example"`
		Details struct {
			Responses struct {
				OK struct{ Body map[string]any } `json:"200"`
			} `json:"responses"`
		} `json:"resource_item_details_example_abridged"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	return fx.Summary.Responses.OK.Body, fx.Details.Responses.OK.Body
}

func (f *fakeAzure) hit(k string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[k]++
	return f.calls[k]
}

func item(sub, typ, loc string, v float64) map[string]any {
	return map[string]any{"dataType": "ResourceItemDetailsData", "latestMonthEmissions": v, "subscriptionId": sub,
		"resourceType": typ, "location": loc, "categoryType": "Resource", "itemName": "x"}
}

const sub0 = "00000000-0000-0000-0000-000000000000"

func (f *fakeAzure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer fake-token-created-in-test" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	var q map[string]any
	json.NewDecoder(r.Body).Decode(&q)
	switch {
	case r.URL.Path == "/providers/Microsoft.Carbon/carbonEmissionReports" && r.URL.Query().Get("api-version") == CarbonAPIVersion:
		dr := q["dateRange"].(map[string]any)
		scope := q["carbonScopeList"].([]any)[0].(string)
		if q["reportType"] == "MonthlySummaryReport" {
			body := f.summary
			if f.revised {
				b, _ := json.Marshal(f.summary)
				var c map[string]any
				json.Unmarshal(b, &c)
				for _, v := range c["value"].([]any) {
					if v.(map[string]any)["date"] == "2024-04-01" {
						v.(map[string]any)["latestMonthEmissions"] = 0.12
					}
				}
				body = c
			}
			json.NewEncoder(w).Encode(body)
			return
		}
		month := dr["start"].(string)
		decisions := f.details["subscriptionAccessDecisionList"]
		switch {
		case month == "2024-05-01" && q["skipToken"] == nil:
			json.NewEncoder(w).Encode(f.details) // verbatim fixture: 0.1 and a skipToken
		case month == "2024-05-01":
			if q["skipToken"] != "dGVzZGZhZGZzZnNkZg==" {
				http.Error(w, `{"error":{"code":"BadRequest","message":"bad skipToken"}}`, http.StatusBadRequest)
				return
			}
			if scope == "Scope2" && f.failScope2 {
				http.Error(w, `{"error":{"code":"AuthorizationFailed","message":"interrupted"}}`, http.StatusForbidden)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"subscriptionAccessDecisionList": decisions,
				"value": []any{item(sub0, "microsoft.compute/virtualmachines", "east us", 0)}})
		default:
			if month == "2024-03-01" && f.hit("throttle-"+scope) == 1 {
				w.Header().Set("Retry-After", "3")
				http.Error(w, `{"error":{"code":"TooManyRequests","message":"slow down"}}`, http.StatusTooManyRequests)
				return
			}
			v := 0.1
			if month == "2024-04-01" && f.revised {
				v = 0.12
			}
			json.NewEncoder(w).Encode(map[string]any{"subscriptionAccessDecisionList": decisions,
				"value": []any{item(sub0, "Microsoft.MachineLearningServices/workspaces", "west europe", v)}})
		}
	case r.URL.Path == "/subscriptions/"+sub0+"/providers/Microsoft.CostManagement/query":
		if q["timeframe"] != "Custom" || q["type"] != "ActualCost" {
			http.Error(w, `{"error":{"code":"BadRequest","message":"unexpected query"}}`, http.StatusBadRequest)
			return
		}
		cols := []map[string]string{{"name": "Cost", "type": "Number"}, {"name": "UsageDate", "type": "Number"},
			{"name": "ServiceName", "type": "String"}, {"name": "ResourceLocation", "type": "String"}, {"name": "Currency", "type": "String"}}
		if r.URL.Query().Get("$skiptoken") == "" {
			if f.hit("cost-1") == 1 {
				http.Error(w, `{"error":{"code":"InternalServerError","message":"oops"}}`, http.StatusInternalServerError)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"properties": map[string]any{
				"nextLink": f.url + "/subscriptions/" + sub0 + "/providers/Microsoft.CostManagement/query?api-version=2022-10-01&$skiptoken=AQAAAA%3D%3D",
				"columns":  cols,
				"rows": [][]any{
					{19.545363672276512, 20240608, "Azure Machine Learning", "westeurope", "USD"},
					{173.41979241290323, 20240609, "Azure Machine Learning", "westeurope", "USD"},
				}}})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"properties": map[string]any{"columns": cols,
			"rows": [][]any{{20.359416562625452, 20240609, "Virtual Machines", "eastus", "USD"}}}})
	default:
		http.NotFound(w, r)
	}
}

func newFake(t *testing.T) *fakeAzure {
	s, d := loadFixture(t)
	return &fakeAzure{calls: map[string]int{}, summary: s, details: d}
}

func runOnce(t *testing.T, f *fakeAzure, l *ledger.Ledger) (cloud.Summary, []time.Duration) {
	t.Helper()
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	f.url = srv.URL
	task, err := New(Options{Credential: fakeCredential{}, Subscriptions: []string{sub0, "00000000-0000-0000-0000-000000000006"},
		CostScopes: []string{"subscriptions/" + sub0}, CostDays: 2, Endpoint: srv.URL, Transport: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return cloudtest.RunOnce(task, l, time.Date(2024, 6, 10, 8, 0, 0, 0, time.UTC), 3, 10*time.Second)
}

func TestPullThroughSDK(t *testing.T) {
	f := newFake(t)
	l := cloudtest.OpenLedger(t)
	sum, waits := runOnce(t, f, l)
	if sum.Failed() {
		t.Fatalf("summary:\n%s", cloudtest.SummaryText(sum))
	}
	ts := sum.Tasks[0]
	if ts.Batches != 4 || ts.Retries != 4 {
		t.Errorf("summary:\n%s", cloudtest.SummaryText(sum))
	}
	// Partial subscription access: the denied subscriptions are reported as skipped, once per scope.
	if len(ts.Skipped) != 6 || !strings.Contains(strings.Join(ts.Skipped, "\n"), "000000000008: Denied: Carbon Optimization Reader permisison required") {
		t.Errorf("skipped = %q", ts.Skipped)
	}
	var honoured int
	for _, w := range waits {
		if w == 3*time.Second {
			honoured++
		}
	}
	if honoured != 3 {
		t.Errorf("waits = %v, want Retry-After 3s for each scope", waits)
	}
	rows, _ := l.Rows(context.Background())
	got := map[string]float64{}
	for _, r := range rows {
		got[r.Key.String()+" "+r.Unit] = r.Value
	}
	for k, v := range map[string]float64{
		"azure/" + sub0 + "/microsoft.machinelearningservices/workspaces/west europe/2024-03//co2e_scope1 kgCO2e": 0.1,
		"azure/" + sub0 + "/microsoft.machinelearningservices/workspaces/west europe/2024-04//co2e_scope2 kgCO2e": 0.1,
		"azure/" + sub0 + "/microsoft.storage/storageaccounts/east us/2024-05//co2e_scope3 kgCO2e":                0.1,
		"azure/" + sub0 + "/microsoft.compute/virtualmachines/east us/2024-05//co2e_scope3 kgCO2e":                0,
		"azure/" + sub0 + "/Azure Machine Learning/westeurope/2024-06-08//cost USD":                               19.545363672276512,
		"azure/" + sub0 + "/Azure Machine Learning/westeurope/2024-06-09//cost USD":                               173.41979241290323,
		"azure/" + sub0 + "/Virtual Machines/eastus/2024-06-09//cost USD":                                         20.359416562625452,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(rows) != 3*4+3 {
		t.Errorf("%d rows:\n%s", len(rows), cloudtest.Dump(t, l))
	}

	before := cloudtest.Dump(t, l)
	f.calls = map[string]int{}
	if sum, _ := runOnce(t, f, l); sum.Failed() || sum.Tasks[0].Inserted+sum.Tasks[0].Revised != 0 {
		t.Fatalf("rerun:\n%s", cloudtest.SummaryText(sum))
	}
	if after := cloudtest.Dump(t, l); after != before {
		t.Errorf("rerun changed the ledger:\n%s\nwas:\n%s", after, before)
	}

	f.calls = map[string]int{}
	f.revised = true
	if sum, _ := runOnce(t, f, l); sum.Failed() || sum.Tasks[0].Revised != 3 {
		t.Fatalf("revised run:\n%s", cloudtest.SummaryText(sum))
	}
	if revs, _ := l.Revisions(context.Background()); len(revs) != 3 || revs[0].Period != "2024-04" || revs[0].Value != 0.1 {
		t.Errorf("revisions = %+v", revs)
	}
}

func TestInterruptedPullThenRerunMatchesCleanRun(t *testing.T) {
	ref := cloudtest.OpenLedger(t)
	if sum, _ := runOnce(t, newFake(t), ref); sum.Failed() {
		t.Fatalf("reference:\n%s", cloudtest.SummaryText(sum))
	}
	l := cloudtest.OpenLedger(t)
	f := newFake(t)
	f.failScope2 = true
	sum, _ := runOnce(t, f, l)
	if !sum.Failed() || !strings.Contains(sum.Tasks[0].Err, "Scope2 2024-05 item details page 2") {
		t.Fatalf("interrupted:\n%s", cloudtest.SummaryText(sum))
	}
	rows, _ := l.Rows(context.Background())
	for _, r := range rows {
		if r.Metric == cloud.CO2eScope2 {
			t.Fatalf("part of the Scope2 batch reached the ledger: %+v", r)
		}
	}
	f.failScope2 = false
	f.calls = map[string]int{}
	if sum, _ := runOnce(t, f, l); sum.Failed() {
		t.Fatalf("rerun:\n%s", cloudtest.SummaryText(sum))
	}
	if got, want := cloudtest.Dump(t, l), cloudtest.Dump(t, ref); got != want {
		t.Errorf("interrupted+rerun differs from a clean run:\n%s\nwant:\n%s", got, want)
	}
}

func TestInconsistentTotalsRefused(t *testing.T) {
	f := newFake(t)
	f.summary["value"].([]any)[0].(map[string]any)["latestMonthEmissions"] = 5.0 // 2024-05 summary disagrees
	l := cloudtest.OpenLedger(t)
	sum, _ := runOnce(t, f, l)
	if len(sum.Tasks[0].Refused) != 3 || !strings.Contains(sum.Tasks[0].Refused[0], "period 2024-05: line items sum to 0.1 but MonthlySummaryReport") {
		t.Fatalf("summary:\n%s", cloudtest.SummaryText(sum))
	}
	rows, _ := l.Rows(context.Background())
	for _, r := range rows {
		if r.Metric.IsCO2e() {
			t.Fatalf("refused carbon batch reached the ledger: %+v", r)
		}
	}
}
