package aws

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

func TestEndpointRegion(t *testing.T) {
	for endpoint, want := range map[string]string{
		DefaultCarbonEndpoint:                                                    "us-east-1",
		"https://sustainability.eu-west-1.amazonaws.com":                         "eu-west-1",
		"https://sustainability.eu-central-1.amazonaws.com/":                     "eu-central-1",
		"https://vpce-0a1b-xyz.sustainability.ap-southeast-2.vpce.amazonaws.com": "ap-southeast-2",
		"https://sustainability.cn-north-1.amazonaws.com.cn":                     "cn-north-1",
		"https://sustainability-fips.us-gov-west-1.amazonaws.com":                "us-gov-west-1",
		"http://127.0.0.1:8080":                                                  "us-east-1",
		"https://sustainability.eu-west-1.amazonaws.com.attacker.example":        "us-east-1",
		"%%bad": "us-east-1",
	} {
		if got := endpointRegion(endpoint); got != want {
			t.Errorf("endpointRegion(%q) = %q, want %q", endpoint, got, want)
		}
	}
}

// TestCarbonSignedForEndpointRegion sends Sustainability requests to AWS
// host names (dialled to a local server) with aws.region set elsewhere, and
// checks the SigV4 credential scope names the endpoint's region.
func TestCarbonSignedForEndpointRegion(t *testing.T) {
	var mu sync.Mutex
	var scope string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := regexp.MustCompile(`Credential=AKIDFAKEFORTESTS/\d{8}/([^,]+),`).FindStringSubmatch(r.Header.Get("Authorization"))
		mu.Lock()
		scope = ""
		if m != nil {
			scope = m[1]
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Results": []}`))
	}))
	defer srv.Close()
	// Every host name is dialled to the local server: nothing leaves 127.0.0.1.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}}
	for _, tc := range []struct {
		endpoint, region, override, want string
	}{
		{"http://sustainability.us-east-1.amazonaws.com", "eu-west-1", "", "us-east-1/sustainability/aws4_request"},
		{"http://sustainability.eu-central-1.amazonaws.com", "us-east-1", "", "eu-central-1/sustainability/aws4_request"},
		{"http://sustainability.eu-central-1.amazonaws.com", "", "", "eu-central-1/sustainability/aws4_request"},
		{"http://proxy.internal", "eu-west-1", "ap-south-1", "ap-south-1/sustainability/aws4_request"},
	} {
		cfg := aws.Config{Region: tc.region, HTTPClient: client,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKEFORTESTS", "fake-secret-created-in-test", "")}
		task := New(Options{Config: cfg, CarbonEndpoint: tc.endpoint, CarbonRegion: tc.override})
		var out carbonResponse
		if err := task.carbonCall(context.Background(), &carbonRequest{Granularity: "MONTHLY"}, &out); err != nil {
			t.Fatalf("%s: %v", tc.endpoint, err)
		}
		mu.Lock()
		got := scope
		mu.Unlock()
		if got != tc.want {
			t.Errorf("%s with aws.region %q: signed for %q, want %q", tc.endpoint, tc.region, got, tc.want)
		}
	}
}
