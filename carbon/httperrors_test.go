package carbon

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// providerCase builds one HTTP provider against a test server.
type providerCase struct {
	name     string
	dataPath string // the endpoint the call below hits
	clock    string
	zone     string
	at       string
	build    func(t *testing.T, base string, clock Clock) Provider
}

func httpProviderCases() []providerCase {
	return []providerCase{
		{
			name: "electricitymaps", dataPath: "/v3/carbon-intensity/latest",
			clock: "2024-03-06T19:20:00Z", zone: "DE", at: "2024-03-06T19:20:00Z",
			build: func(t *testing.T, base string, clock Clock) Provider {
				tok, _ := secretFile(t, "em-secret-token")
				return newEM(t, base, clock, tok)
			},
		},
		{
			name: "watttime", dataPath: "/v3/historical",
			clock: "2024-01-01T00:00:00Z", zone: "CAISO_NORTH", at: "2022-07-15T00:07:00Z",
			build: func(t *testing.T, base string, clock Clock) Provider {
				pw, _ := secretFile(t, "wt-secret-password")
				w, err := NewWattTime(WattTimeOptions{HTTPOptions: HTTPOptions{BaseURL: base, Clock: clock}, Username: "aiwatt", Password: pw})
				if err != nil {
					t.Fatal(err)
				}
				return w
			},
		},
		{
			name: "aiwatt", dataPath: IntensityAPIPath,
			clock: "2024-03-06T19:20:00Z", zone: "DE", at: "2024-03-06T19:20:00Z",
			build: func(t *testing.T, base string, clock Clock) Provider {
				pw, _ := secretFile(t, "aiwatt-secret-password")
				r, err := NewRemote(RemoteOptions{HTTPOptions: HTTPOptions{BaseURL: base, Clock: clock}, Username: "agent", Password: pw})
				if err != nil {
					t.Fatal(err)
				}
				return r
			},
		},
		{
			name: "ukci", dataPath: "/intensity/2018-01-20T12:00Z/2018-01-20T12:30Z",
			clock: "2018-02-01T00:00:00Z", zone: "GB", at: "2018-01-20T12:10:00Z",
			build: func(t *testing.T, base string, clock Clock) Provider {
				u, err := NewUKCarbonIntensity(HTTPOptions{BaseURL: base, Clock: clock})
				if err != nil {
					t.Fatal(err)
				}
				return u
			},
		},
	}
}

func TestHTTPProviderErrors(t *testing.T) {
	for _, pc := range httpProviderCases() {
		t.Run(pc.name, func(t *testing.T) {
			modes := []struct {
				name    string
				handler func(w http.ResponseWriter, r *http.Request, release <-chan struct{})
				ctxTO   time.Duration
				check   func(t *testing.T, err error, clock *fakeClock)
			}{
				{"401 auth", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var ae *APIError
					if !errors.Is(err, ErrAuth) || !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Provider != pc.name {
						t.Fatalf("err %v", err)
					}
				}},
				{"403 auth", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					w.WriteHeader(http.StatusForbidden)
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					if !errors.Is(err, ErrAuth) {
						t.Fatalf("err %v", err)
					}
				}},
				{"429 retry-after seconds", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					w.Header().Set("Retry-After", "30")
					w.WriteHeader(http.StatusTooManyRequests)
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var rl *RateLimitError
					if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter != 30*time.Second {
						t.Fatalf("err %v", err)
					}
					if !strings.Contains(err.Error(), "rate limited (retry after 30s)") {
						t.Fatalf("message %q", err)
					}
				}},
				{"429 retry-after date", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					w.Header().Set("Retry-After", mustTime(pc.clock).Add(2*time.Minute).Format(http.TimeFormat))
					w.WriteHeader(http.StatusTooManyRequests)
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var rl *RateLimitError
					if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Minute {
						t.Fatalf("err %v", err)
					}
				}},
				{"429 without retry-after", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					w.WriteHeader(http.StatusTooManyRequests)
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var rl *RateLimitError
					if !errors.As(err, &rl) || rl.RetryAfter != 0 {
						t.Fatalf("err %v", err)
					}
				}},
				{"malformed JSON", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					writeJSON(w, []byte(`{"data": [{"from": "2018-01-20T12:00Z", `))
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var pe *ParseError
					if !errors.As(err, &pe) || pe.Provider != pc.name || pe.Endpoint == "" {
						t.Fatalf("err %v", err)
					}
					if !strings.Contains(err.Error(), pc.name) || !strings.Contains(err.Error(), pe.Endpoint) {
						t.Fatalf("message %q does not name provider and endpoint", err)
					}
				}},
				{"wrong JSON shape", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					writeJSON(w, []byte(`{"data": "not a list", "history": 3, "carbonIntensity": "high"}`))
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var pe *ParseError
					if !errors.As(err, &pe) {
						t.Fatalf("err %v", err)
					}
				}},
				{"body too large", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					writeJSON(w, []byte(`{"pad":"`+strings.Repeat("x", 5<<20)+`"}`))
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var pe *ParseError
					if !errors.As(err, &pe) || !strings.Contains(err.Error(), "larger than") {
						t.Fatalf("err %v", err)
					}
				}},
				{"server error", func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
					w.WriteHeader(http.StatusServiceUnavailable)
				}, 0, func(t *testing.T, err error, _ *fakeClock) {
					var ae *APIError
					if !errors.As(err, &ae) || ae.StatusCode != 503 || errors.Is(err, ErrAuth) {
						t.Fatalf("err %v", err)
					}
				}},
				{"slow server", func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
					select {
					case <-r.Context().Done():
					case <-release:
					}
				}, 50 * time.Millisecond, func(t *testing.T, err error, _ *fakeClock) {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("err %v, want deadline exceeded", err)
					}
				}},
				{"slow body", func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusOK)
					w.Write([]byte(`{"data": [`))
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
					case <-release:
					}
				}, 50 * time.Millisecond, func(t *testing.T, err error, _ *fakeClock) {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("err %v, want deadline exceeded", err)
					}
				}},
			}
			for _, m := range modes {
				t.Run(m.name, func(t *testing.T) {
					release := make(chan struct{})
					srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
						if r.URL.Path == "/login" && !strings.HasPrefix(m.name, "401") && !strings.HasPrefix(m.name, "403") {
							writeJSON(w, []byte(`{"token":"wt-token"}`))
							return
						}
						m.handler(w, r, release)
					})
					t.Cleanup(func() { close(release) }) // runs before srv.Close
					clock := newClock(pc.clock)
					p := pc.build(t, srv.URL, clock)
					ctx := context.Background()
					if m.ctxTO > 0 {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, m.ctxTO)
						defer cancel()
					}
					start := time.Now()
					_, err := p.Intensity(ctx, pc.zone, mustTime(pc.at))
					if err == nil {
						t.Fatal("no error")
					}
					if m.ctxTO > 0 && time.Since(start) > 5*time.Second {
						t.Fatalf("slow server held the call for %s", time.Since(start))
					}
					m.check(t, err, clock)
					if strings.Contains(err.Error(), "secret-") {
						t.Fatalf("error leaks a secret: %v", err)
					}
					if pc.name != "watttime" || strings.HasPrefix(m.name, "401") || strings.HasPrefix(m.name, "403") {
						return
					}
					if srv.count(pc.dataPath) == 0 {
						t.Fatalf("%s not requested", pc.dataPath)
					}
				})
			}
		})
	}
}
