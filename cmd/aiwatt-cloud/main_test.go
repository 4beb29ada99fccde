package main

import (
	"bytes"
	"context"
	encsv "encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/inferensys/aiwatt/cloud/ledger"
)

const fakeSecret = "fake-secret-created-in-test"

// isolateAWS points the AWS default chain at fake static credentials made
// up here and away from any real file or metadata endpoint.
func isolateAWS(t *testing.T, withCreds bool) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(k, "")
	}
	if withCreds {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFORTESTS")
		t.Setenv("AWS_SECRET_ACCESS_KEY", fakeSecret)
	}
}

func fakeAWS(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDFAKEFORTESTS/") {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if r.URL.Path == "/v1/estimated-carbon-emissions" {
			json.NewEncoder(w).Encode(map[string]any{"Results": []any{map[string]any{
				"TimePeriod":       map[string]string{"Start": "2025-01-01T00:00:00Z", "End": "2025-02-01T00:00:00Z"},
				"DimensionsValues": map[string]string{"USAGE_ACCOUNT_ID": "111122223333", "REGION": "us-east-1", "SERVICE": "AmazonEC2"},
				"ModelVersion":     "v3.0.0",
				"EmissionsValues":  map[string]any{"TOTAL_SCOPE_1_CARBON_EMISSIONS": map[string]any{"Unit": "MTCO2e", "Value": 0.5}},
			}}})
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"ResultsByTime":[]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeConfig(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "cloud.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func awsConfig(url string) string {
	return "aws:\n  region: us-east-1\n  cost_endpoint: " + url + "\n  carbon_endpoint: " + url + "\n  carbon_months: 36\n"
}

func TestOnceExportsCSVParquetAndSummary(t *testing.T) {
	isolateAWS(t, true)
	srv := fakeAWS(t)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "out.csv")
	pqPath := filepath.Join(dir, "out.parquet")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--config.file", writeConfig(t, awsConfig(srv.URL)), "--once",
		"--ledger", filepath.Join(dir, "l.db"), "--export.csv", csvPath, "--export.parquet", pqPath}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "aws: ok: 2 batches, 1 records fetched (1 new, 0 revised, 0 unchanged)") {
		t.Errorf("summary:\n%s", stdout.String())
	}
	csv, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(csv), "aws,111122223333,AmazonEC2,us-east-1,2025-01,v3.0.0,co2e_scope1,2025-01-01,2025-02-01,500,kgCO2e,aws:sustainability:GetEstimatedCarbonEmissions,") {
		t.Errorf("csv:\n%s", csv)
	}
	pq, err := os.ReadFile(pqPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parquet.Read[ledger.ParquetRow](bytes.NewReader(pq), int64(len(pq)))
	if err != nil {
		t.Fatalf("read parquet export: %v", err)
	}
	recs, err := encsv.NewReader(bytes.NewReader(csv)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || len(recs) != 2 {
		t.Fatalf("parquet rows %+v, csv:\n%s", rows, csv)
	}
	c := recs[1]
	fetched, err := time.Parse(time.RFC3339Nano, c[12])
	if err != nil {
		t.Fatal(err)
	}
	// The CSV row typed as the Parquet export types it.
	want := ledger.ParquetRow{Provider: c[0], Account: c[1], Service: c[2], Region: c[3], Period: c[4], ModelVersion: c[5],
		Metric: c[6], PeriodStart: ledger.Days(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
		PeriodEnd: ledger.Days(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)), Value: 500, Unit: c[10], Source: c[11],
		FetchedAt: fetched.Truncate(time.Microsecond), Revision: 1}
	if c[7] != "2025-01-01" || c[8] != "2025-02-01" || c[9] != "500" || c[13] != "1" {
		t.Errorf("csv row %q", c)
	}
	r := rows[0]
	if !r.FetchedAt.Equal(want.FetchedAt) {
		t.Errorf("parquet fetched_at %v, csv %v", r.FetchedAt, fetched)
	}
	r.FetchedAt = want.FetchedAt
	if r != want {
		t.Errorf("parquet row\n%+v\nwant (from the csv)\n%+v", r, want)
	}
	if strings.Contains(stdout.String()+stderr.String(), fakeSecret) {
		t.Error("the secret access key was printed")
	}
}

func TestMissingCredentialDisablesProvider(t *testing.T) {
	isolateAWS(t, false)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--config.file", writeConfig(t, awsConfig("http://127.0.0.1:1")), "--once",
		"--ledger", filepath.Join(t.TempDir(), "l.db")}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "aws: disabled: no credentials from the AWS default chain") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"aws:\n  regoin: us-east-1\n", ":2: field regoin not found"},
		{"aws:\n  accounts: [\"12\"]\n", ":2: an AWS account ID is 12 digits"},
		{"schedule: 10s\naws: {}\n", ":1: schedule must be at least 1m"},
		{"gcp:\n  billing_project: p\n  table: nodots\n", ":3: gcp.table must be project.dataset.table"},
		{"ledger: x.db\n", "no provider configured"},
	} {
		var stdout, stderr bytes.Buffer
		p := writeConfig(t, tc.body)
		code := run(context.Background(), []string{"--config.file", p, "--once"}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %s; want %q", tc.body, code, stderr.String(), tc.want)
		}
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestScheduledServesMetrics(t *testing.T) {
	isolateAWS(t, true)
	srv := fakeAWS(t)
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--config.file", writeConfig(t, awsConfig(srv.URL)), "--schedule", "1h",
			"--ledger", filepath.Join(t.TempDir(), "l.db"), "--web.listen-address", addr}, &stdout, &stderr)
	}()
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, "aiwatt_cloud_co2e_kilograms{") {
				break
			}
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		`aiwatt_cloud_co2e_kilograms{account="111122223333",basis="",period="2025-01",provider="aws",region="us-east-1",scope="1",service="AmazonEC2"} 500`,
		`aiwatt_cloud_pull_success{provider="aws"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}
