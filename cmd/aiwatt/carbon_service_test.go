package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inferensys/aiwatt/carbon"
)

// carbonFixtures holds the recorded carbon API responses.
var carbonFixtures = filepath.Join("..", "..", "carbon", "testdata", "captures")

func readCarbonFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(carbonFixtures, name))
	if err != nil {
		t.Fatalf("fixture %s: %v (the recorded responses live in carbon/testdata/captures)", name, err)
	}
	return b
}

// carbonTestClock is a settable carbon.Clock.
type carbonTestClock struct {
	mu sync.Mutex
	t  time.Time
}

func newCarbonTestClock(t *testing.T, s string) *carbonTestClock {
	t.Helper()
	return &carbonTestClock{t: mustRFC3339(t, s)}
}

func (c *carbonTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *carbonTestClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustRFC3339(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

// fakeElectricityMaps serves recorded Electricity Maps v3 responses: the
// /latest capture for its zone (US-CAR-DUK) and the /history capture for
// its zone (DE, whose /latest is the newest history point). It answers only
// the accepted auth-token and records every token it was sent.
type fakeElectricityMaps struct {
	srv *httptest.Server

	mu       sync.Mutex
	accept   string
	fail     int    // status to answer with; 0: answer
	retry    string // Retry-After with fail
	tokens   []string
	okTokens []string
}

func startFakeElectricityMaps(t *testing.T, accept string) *fakeElectricityMaps {
	t.Helper()
	latest := readCarbonFixture(t, "electricitymaps_v3_carbon-intensity_latest.json")
	history := readCarbonFixture(t, "electricitymaps_v3_carbon-intensity_history.json")
	var h struct {
		History []json.RawMessage `json:"history"`
	}
	if err := json.Unmarshal(history, &h); err != nil || len(h.History) == 0 {
		t.Fatalf("history fixture: %v", err)
	}
	deLatest := h.History[len(h.History)-1]
	f := &fakeElectricityMaps{accept: accept}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("auth-token")
		f.mu.Lock()
		f.tokens = append(f.tokens, tok)
		fail, retry, ok := f.fail, f.retry, tok == f.accept
		if ok && fail == 0 {
			f.okTokens = append(f.okTokens, tok)
		}
		f.mu.Unlock()
		switch {
		case !ok:
			http.Error(w, `{"message":"invalid auth-token"}`, http.StatusUnauthorized)
			return
		case fail != 0:
			if retry != "" {
				w.Header().Set("Retry-After", retry)
			}
			w.WriteHeader(fail)
			return
		}
		zone := r.URL.Query().Get("zone")
		var body []byte
		switch {
		case r.URL.Path == "/v3/carbon-intensity/latest" && zone == "US-CAR-DUK":
			body = latest
		case r.URL.Path == "/v3/carbon-intensity/latest" && zone == "DE":
			body = deLatest
		case r.URL.Path == "/v3/carbon-intensity/history" && zone == "DE":
			body = history
		default:
			http.Error(w, `{"message":"zone not available"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeElectricityMaps) set(accept string, fail int, retry string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accept, f.fail, f.retry = accept, fail, retry
}

// answered reports whether a request with tok was answered with data.
func (f *fakeElectricityMaps) answered(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.okTokens {
		if t == tok {
			return true
		}
	}
	return false
}

func (f *fakeElectricityMaps) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokens)
}

// emServiceConfig is a service configuration over the fake: two zones
// sharing one provider list, the first with market instruments.
func emServiceConfig(base, tokenFile string) string {
	return `zones:
  - zone: US-CAR-DUK
    providers: &em
      - type: electricitymaps
        base_url: ` + base + `
        token: {file: ` + tokenFile + `}
        max_age: 2h
    market:
      supplier_factor_g_per_kwh: 120
      supplier_source: "Supplier X 2024 disclosure"
      covered_share: 0.4
      covered_source: "GOs 2025, 40% of site load"
  - zone: DE
    providers: *em
`
}

// testCarbonService builds a service from a configuration text (empty: the
// static table for zone) on a fake clock, refreshed once.
func testCarbonService(t *testing.T, clock carbon.Clock, cfgText, zone string) *carbonService {
	t.Helper()
	f := defaultCarbonFile(zone)
	if cfgText != "" {
		var err error
		if f, err = parseCarbonFile("carbon.yml", []byte(cfgText)); err != nil {
			t.Fatal(err)
		}
	}
	zones, err := f.build(carbon.BuildOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	svc := newCarbonService(zones, clock, nil)
	svc.refresh(context.Background())
	if !svc.ready() {
		t.Fatal("not ready after a refresh")
	}
	return svc
}

func writeTokenFile(t *testing.T, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "electricitymaps-token")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// apiGet calls the handler and decodes the JSON body into out.
func apiGet(t *testing.T, h http.Handler, target string, out any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: content type %q", target, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatalf("%s: %v\n%s", target, err, rec.Body)
	}
	return rec.Code
}

func newTestCarbonHandler(t *testing.T, svc *carbonService) http.Handler {
	t.Helper()
	h, err := newCarbonHandler(svc, carbonHandlerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCarbonServiceStaticTable(t *testing.T) {
	clock := newCarbonTestClock(t, "2024-03-06T19:20:00Z")
	svc := testCarbonService(t, clock, "", "DE")
	age := clock.Now().Sub(mustRFC3339(t, "2024-01-01T00:00:00Z")).Seconds()
	want := `# HELP aiwatt_grid_carbon_intensity_age_seconds Seconds since the start of the validity window of the value in aiwatt_grid_carbon_intensity_grams_per_kwh (hourly sources: 0-3600 when current; annual factors: time since 1 January).
# TYPE aiwatt_grid_carbon_intensity_age_seconds gauge
aiwatt_grid_carbon_intensity_age_seconds{basis="location",provider="static",zone="DE"} ` + ftoa(age) + `
# HELP aiwatt_grid_carbon_intensity_grams_per_kwh Grid carbon intensity of the zone at the last refresh, in grams CO2e per kWh; provider is the provider that answered (after fallbacks).
# TYPE aiwatt_grid_carbon_intensity_grams_per_kwh gauge
aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="static",zone="DE"} 336.38
# HELP aiwatt_source_up 1 when the provider's last call for the zone succeeded with a fresh value, 0 while it fails or is stale; providers not yet asked are absent.
# TYPE aiwatt_source_up gauge
aiwatt_source_up{provider="static",source="carbon",zone="DE"} 1
`
	if err := testutil.CollectAndCompare(newCarbonCollector(svc), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	h := newTestCarbonHandler(t, svc)
	var resp carbon.IntensityResponse
	clock.Advance(time.Minute)
	if code := apiGet(t, h, "/api/v1/intensity?zone=de", &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	in := resp.Intensity
	if resp.Zone != "DE" || !resp.Cached || in.Value != 336.38 || in.Provider != "static" || in.Basis != carbon.BasisLocation ||
		in.Provenance.Licence != "CC-BY-4.0" || in.Provenance.Source != "Ember/OWID" || in.Provenance.Dataset != "annual average, data year 2024" ||
		!resp.At.Equal(clock.Now()) || resp.AgeSeconds != age+60 {
		t.Fatalf("response %+v", resp)
	}

	// A past time is asked of the chain: the 2023 row.
	resp = carbon.IntensityResponse{}
	if code := apiGet(t, h, "/api/v1/intensity?zone=DE&at=2023-06-01T00:00:00Z&basis=location", &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	if resp.Cached || resp.Intensity.Value != 362.92 || !resp.Intensity.ValidFrom.Equal(mustRFC3339(t, "2023-01-01T00:00:00Z")) {
		t.Fatalf("past response %+v", resp)
	}

	for _, tc := range []struct {
		target string
		code   int
		msg    string
	}{
		{"/api/v1/intensity", 400, "zone is required"},
		{"/api/v1/intensity?zone=FR", 404, `zone "FR" is not configured; configured zones: DE`},
		{"/api/v1/intensity?zone=DE&basis=hourly", 400, `basis "hourly"`},
		{"/api/v1/intensity?zone=DE&basis=marginal", 404, "no marginal provider"},
		{"/api/v1/intensity?zone=DE&basis=market", 404, "no market instruments"},
		{"/api/v1/intensity?zone=DE&at=yesterday", 400, `at "yesterday": want an RFC 3339 time`},
		{"/api/v1/intensity?zone=DE&time=now", 400, `unknown parameter "time"`},
	} {
		var e carbon.IntensityErrorResponse
		if code := apiGet(t, h, tc.target, &e); code != tc.code || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: %d %+v, want %d %q", tc.target, code, e, tc.code, tc.msg)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/intensity?zone=DE", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", rec.Code, rec.Header())
	}
	for path, code := range map[string]int{"/-/ready": 200, "/-/healthy": 200, "/": 200, "/metrics": 200} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != code {
			t.Errorf("%s: %d", path, rec.Code)
		}
		if path == "/metrics" && !strings.Contains(rec.Body.String(), "aiwatt_build_info{") {
			t.Errorf("no aiwatt_build_info:\n%s", rec.Body)
		}
	}
}

func TestCarbonServiceNotReadyBeforeFirstRefresh(t *testing.T) {
	f := defaultCarbonFile("DE")
	zones, err := f.build(carbon.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := newTestCarbonHandler(t, newCarbonService(zones, nil, nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("ready before the first refresh: %d", rec.Code)
	}
	// The API still answers, through the chain.
	var resp carbon.IntensityResponse
	if code := apiGet(t, h, "/api/v1/intensity?zone=DE", &resp); code != 200 || resp.Cached || resp.Intensity.Provider != "static" {
		t.Fatalf("%d %+v", code, resp)
	}
}

func ftoa(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCarbonServiceElectricityMaps(t *testing.T) {
	const token = "em-key-never-shown-1"
	em := startFakeElectricityMaps(t, token)
	clock := newCarbonTestClock(t, "2024-03-06T19:20:00Z")
	svc := testCarbonService(t, clock, emServiceConfig(em.srv.URL, writeTokenFile(t, token)), "")
	want := `# HELP aiwatt_grid_carbon_intensity_age_seconds Seconds since the start of the validity window of the value in aiwatt_grid_carbon_intensity_grams_per_kwh (hourly sources: 0-3600 when current; annual factors: time since 1 January).
# TYPE aiwatt_grid_carbon_intensity_age_seconds gauge
aiwatt_grid_carbon_intensity_age_seconds{basis="location",provider="electricitymaps",zone="DE"} 1200
aiwatt_grid_carbon_intensity_age_seconds{basis="location",provider="electricitymaps",zone="US-CAR-DUK"} 1200
aiwatt_grid_carbon_intensity_age_seconds{basis="market",provider="market",zone="US-CAR-DUK"} 1200
# HELP aiwatt_grid_carbon_intensity_grams_per_kwh Grid carbon intensity of the zone at the last refresh, in grams CO2e per kWh; provider is the provider that answered (after fallbacks).
# TYPE aiwatt_grid_carbon_intensity_grams_per_kwh gauge
aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="electricitymaps",zone="DE"} 689
aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="electricitymaps",zone="US-CAR-DUK"} 216
aiwatt_grid_carbon_intensity_grams_per_kwh{basis="market",provider="market",zone="US-CAR-DUK"} 72
# HELP aiwatt_source_up 1 when the provider's last call for the zone succeeded with a fresh value, 0 while it fails or is stale; providers not yet asked are absent.
# TYPE aiwatt_source_up gauge
aiwatt_source_up{provider="electricitymaps",source="carbon",zone="DE"} 1
aiwatt_source_up{provider="electricitymaps",source="carbon",zone="US-CAR-DUK"} 1
`
	if err := testutil.CollectAndCompare(newCarbonCollector(svc), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	h := newTestCarbonHandler(t, svc)
	var resp carbon.IntensityResponse
	if code := apiGet(t, h, "/api/v1/intensity?zone=US-CAR-DUK", &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	p := resp.Intensity.Provenance
	if resp.Intensity.Value != 216 || p.Source != "Electricity Maps" || p.FactorType != carbon.FactorLifecycle || p.Method != "estimated (TIME_SLICER_AVERAGE)" ||
		!p.Estimated || !p.FetchedAt.Equal(mustRFC3339(t, "2024-03-06T19:20:00Z")) || !resp.Cached {
		t.Fatalf("response %+v", resp)
	}
	if !containsString(p.Notes, "requested emissionFactorType=direct but the response says lifecycle") {
		t.Fatalf("notes %q", p.Notes)
	}
	var mk carbon.IntensityResponse
	if code := apiGet(t, h, "/api/v1/intensity?zone=US-CAR-DUK&basis=market", &mk); code != 200 || mk.Intensity.Value != 72 ||
		mk.Intensity.Provenance.Source != "Supplier X 2024 disclosure" || mk.Intensity.Basis != carbon.BasisMarket {
		t.Fatalf("market %d %+v", code, mk)
	}

	// A time earlier today comes from /history through the chain.
	calls := em.calls()
	var past carbon.IntensityResponse
	if code := apiGet(t, h, "/api/v1/intensity?zone=DE&at=2024-03-06T10:30:00Z", &past); code != 200 {
		t.Fatalf("status %d", code)
	}
	if past.Cached || past.Intensity.Value != 511 || !past.Intensity.ValidFrom.Equal(mustRFC3339(t, "2024-03-06T10:00:00Z")) ||
		!strings.Contains(past.Intensity.Provenance.Dataset, "/v3/carbon-intensity/history") || em.calls() != calls+1 {
		t.Fatalf("past %+v (calls %d -> %d)", past, calls, em.calls())
	}
	// A time within the current hour is served from the refreshed value.
	if code := apiGet(t, h, "/api/v1/intensity?zone=DE&at=2024-03-06T19:10:00Z", &past); code != 200 || !past.Cached || em.calls() != calls+1 {
		t.Fatalf("current hour not cached: %d %+v", code, past)
	}

	body := scrapeHandler(t, h)
	if strings.Contains(body, token) || strings.Contains(string(mustJSON(t, resp)), token) {
		t.Fatal("the token leaked into metrics or the API")
	}
}

func TestCarbonServiceFallsBackAndCountsErrors(t *testing.T) {
	const token = "em-key-never-shown-2"
	em := startFakeElectricityMaps(t, token)
	em.set(token, http.StatusTooManyRequests, "30")
	clock := newCarbonTestClock(t, "2024-03-06T19:20:00Z")
	svc := testCarbonService(t, clock, emServiceConfig(em.srv.URL, writeTokenFile(t, token)), "")
	clock.Advance(10 * time.Second)
	svc.refresh(context.Background()) // within Retry-After: no call, static again

	h := newTestCarbonHandler(t, svc)
	var resp carbon.IntensityResponse
	if code := apiGet(t, h, "/api/v1/intensity?zone=US-CAR-DUK", &resp); code != 200 {
		t.Fatalf("status %d", code)
	}
	in := resp.Intensity
	if in.Provider != "static" || in.Zone != "US" || in.Value != 383.78 || len(in.Provenance.Skipped) != 1 ||
		in.Provenance.Skipped[0].String() != "electricitymaps: rate limited (retry after 20s)" {
		t.Fatalf("fallback %s %+v", in, in.Provenance.Skipped)
	}
	body := scrapeHandler(t, h)
	for _, line := range []string{
		`aiwatt_grid_carbon_intensity_grams_per_kwh{basis="location",provider="static",zone="US-CAR-DUK"} 383.78`,
		`aiwatt_grid_carbon_intensity_grams_per_kwh{basis="market",provider="market",zone="US-CAR-DUK"} 72`,
		`aiwatt_source_up{provider="electricitymaps",source="carbon",zone="US-CAR-DUK"} 0`,
		`aiwatt_source_up{provider="static",source="carbon",zone="US-CAR-DUK"} 1`,
		`aiwatt_source_errors_total{provider="electricitymaps",reason="rate_limited",source="carbon",zone="US-CAR-DUK"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("missing %s in\n%s", line, body)
		}
	}
	if em.calls() != 2 { // one per zone; the second refresh waited
		t.Fatalf("calls %d", em.calls())
	}
}

func TestCarbonServiceNoUsableValue(t *testing.T) {
	// A zone the static table does not know, behind a failing provider: 503
	// with every reason.
	em := startFakeElectricityMaps(t, "right-key")
	clock := newCarbonTestClock(t, "2024-03-06T19:20:00Z")
	cfg := "zones:\n  - zone: CAISO_NORTH\n    providers:\n      - type: electricitymaps\n        base_url: " + em.srv.URL +
		"\n        token: {file: " + writeTokenFile(t, "wrong-key-never-shown") + "}\n"
	svc := testCarbonService(t, clock, cfg, "")
	h := newTestCarbonHandler(t, svc)
	var e carbon.IntensityErrorResponse
	if code := apiGet(t, h, "/api/v1/intensity?zone=CAISO_NORTH", &e); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d %+v", code, e)
	}
	if len(e.Skipped) != 2 || !strings.HasPrefix(e.Skipped[0].String(), "electricitymaps: authentication failed (retry after") ||
		!strings.HasPrefix(e.Skipped[1].String(), "static: unknown zone") {
		t.Fatalf("skipped %v", e.Skipped)
	}
	body := scrapeHandler(t, h)
	if strings.Contains(body, "aiwatt_grid_carbon_intensity_grams_per_kwh{") || strings.Contains(body, "wrong-key") {
		t.Fatalf("exposition:\n%s", body)
	}
	if !strings.Contains(body, `aiwatt_source_errors_total{provider="static",reason="unknown_zone",source="carbon",zone="CAISO_NORTH"} 1`) {
		t.Fatalf("exposition:\n%s", body)
	}
}

// TestRemoteAgainstCarbonHandler reads the real handler with carbon.Remote,
// alone and as the first link of a node agent's chain built from config.
func TestRemoteAgainstCarbonHandler(t *testing.T) {
	const token = "em-key-never-shown-3"
	em := startFakeElectricityMaps(t, token)
	clock := newCarbonTestClock(t, "2024-03-06T19:20:00Z")
	svc := testCarbonService(t, clock, emServiceConfig(em.srv.URL, writeTokenFile(t, token)), "")
	srv := httptest.NewServer(newTestCarbonHandler(t, svc))
	t.Cleanup(srv.Close)

	r, err := carbon.NewRemote(carbon.RemoteOptions{HTTPOptions: carbon.HTTPOptions{BaseURL: srv.URL, Clock: clock}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in, err := r.Intensity(ctx, "US-CAR-DUK", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if in.Provider != "electricitymaps" || in.Value != 216 || in.Basis != carbon.BasisLocation || in.Provenance.Source != "Electricity Maps" ||
		in.Provenance.FactorType != carbon.FactorLifecycle || !containsString(in.Provenance.Notes, "via aiwatt carbon at "+srv.URL) {
		t.Fatalf("remote %s %+v", in, in.Provenance)
	}
	if _, err := r.Intensity(ctx, "FR", clock.Now()); !errors.Is(err, carbon.ErrUnknownZone) {
		t.Fatalf("unknown zone: %v", err)
	}
	mr, err := carbon.NewRemote(carbon.RemoteOptions{HTTPOptions: carbon.HTTPOptions{BaseURL: srv.URL}, Basis: carbon.BasisMarginal})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mr.Intensity(ctx, "DE", clock.Now()); !errors.Is(err, carbon.ErrUnknownZone) {
		t.Fatalf("marginal not served: %v", err)
	}

	// A node agent's carbon section pointing at the service.
	cfg := carbon.Config{Zone: "DE", Providers: []carbon.ProviderConfig{{Type: carbon.TypeAiwatt, BaseURL: srv.URL, MaxAge: 2 * time.Hour}}}
	src, err := cfg.Build(carbon.BuildOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	in, err = src.Location.Intensity(ctx, "DE", clock.Now())
	if err != nil || in.Provider != "electricitymaps" || in.Value != 689 || len(in.Provenance.Skipped) != 0 {
		t.Fatalf("agent chain: %v %s", err, in)
	}
	// The service goes away: the agent falls back to its static table.
	srv.Close()
	clock.Advance(3*time.Hour + time.Minute) // the cached value is now past max_age
	in, err = src.Location.Intensity(ctx, "DE", clock.Now())
	if err != nil || in.Provider != "static" || len(in.Provenance.Skipped) != 1 || !strings.HasPrefix(in.Provenance.Skipped[0].Provider, "aiwatt") {
		t.Fatalf("fallback: %v %s", err, in)
	}
}

func TestParseCarbonFile(t *testing.T) {
	tok := writeTokenFile(t, "sk_live_never_shown")
	ok := emServiceConfig("http://127.0.0.1:1", tok)
	f, err := parseCarbonFile("carbon.yml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Zones) != 2 || f.Zones[1].Providers[0].Token.File != tok || f.Zones[1].Providers[0].MaxAge != 2*time.Hour {
		t.Fatalf("decoded %+v", f.Zones)
	}
	for _, tc := range []struct {
		name, src string
		want      string
	}{
		{"empty", "", "carbon.yml:1: zones: at least one zone is required"},
		{"unknown key", "zones:\n  - zone: DE\n    provider: []\n", "carbon.yml:3: field provider not found"},
		{"literal secret", "zones:\n  - zone: DE\n    providers:\n      - type: electricitymaps\n        token: sk_live_never_shown\n",
			"carbon.yml:5: cannot unmarshal !!str into carbon.SecretRef\n(a secret is referenced as {file: PATH} or {env: NAME}"},
		{"missing token", "zones:\n  - zone: DE\n  - zone: FR\n    providers:\n      - type: ukci\n      - type: electricitymaps\n",
			"carbon.yml:6: zones[1].providers[1]: token: secret: set file or env"},
		{"no zone", "zones:\n  - providers: [{type: ukci}]\n", "carbon.yml:2: zones[0].zone is required"},
		{"duplicate", "zones:\n  - zone: DE\n  - zone: de\n", "carbon.yml:3: zones[1].zone: de is already served by zones[0]"},
		{"static unknown", "zones:\n  - zone: DE\n  - zone: CAISO_NORTH\n", "carbon.yml:3: zones[1].zone: CAISO_NORTH is not in the embedded static table"},
		{"static override unknown", "zones:\n  - zone: DE\n    providers: [{type: static, zone: XX}]\n", "carbon.yml:2: zones[0].zone: XX is not in the embedded static table"},
		{"marginal", "zones:\n  - zone: DE\n    marginal:\n      type: ukci\n", "carbon.yml:3: zones[0].marginal: type \"ukci\""},
		{"aiwatt url", "zones:\n  - zone: DE\n    providers:\n      - type: aiwatt\n", "carbon.yml:4: zones[0].providers[0]: base_url"},
		{"two documents", "zones: [{zone: DE}]\n---\nzones: [{zone: FR}]\n", "carbon.yml:2: only one YAML document is allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCarbonFile("carbon.yml", []byte(tc.src))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error %q, want prefix %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk_live") {
				t.Fatalf("error echoes the secret: %v", err)
			}
		})
	}
	// Build errors are placed too.
	f, err = parseCarbonFile("carbon.yml", []byte("zones:\n  - zone: DE\n    providers:\n      - {type: ukci, base_url: \"ftp://x\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.build(carbon.BuildOptions{}); err == nil || !strings.HasPrefix(err.Error(), "carbon.yml:4: zones[0].providers[0]: ukci: invalid base URL") {
		t.Fatalf("build error %v", err)
	}
}

func scrapeHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestDocsCarbonExample keeps the configuration example of docs/carbon.md
// valid: it must parse, validate and build.
func TestDocsCarbonExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "carbon.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("docs/carbon.md has no Configuration section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml aiwatt-carbon\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml example in the Configuration section")
	}
	f, err := parseCarbonFile("docs/carbon.md", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	zones, err := f.build(carbon.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, z := range zones {
		names = append(names, z.name+":"+z.location.Name())
	}
	want := "DE:chain(electricitymaps,static) FR:chain(electricitymaps,static) GB-London:chain(ukci,static) US-CAL-CISO:chain(electricitymaps,static) aws:eu-west-1:chain(static)"
	if got := strings.Join(names, " "); got != want || zones[0].market == nil || zones[3].marginal == nil {
		t.Fatalf("zones %s", got)
	}
}

// TestCarbonFlagMisuse checks that contradictory flags exit with status 2
// before anything runs.
func TestCarbonFlagMisuse(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "carbon.yml")
	if err := os.WriteFile(cfg, []byte("zones: [{zone: DE}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"no zone":            {"carbon"},
		"zone with config":   {"carbon", "--config.file=" + cfg, "--zone=DE"},
		"at without once":    {"carbon", "--zone=DE", "--at=2024-01-01T00:00:00Z"},
		"zero interval":      {"carbon", "--zone=DE", "--carbon.interval=0s"},
		"bad format":         {"carbon", "--once", "--zone=DE", "--format=yaml"},
		"bad at":             {"carbon", "--once", "--zone=DE", "--at=tomorrow"},
		"unknown basis flag": {"carbon", "--once", "--zone=DE", "--basis=hourly"},
	} {
		if code := run(append(args, "--log.level=error")); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
}
