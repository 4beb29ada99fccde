package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// TestWithPprof checks the wrapper both ways: without the flag the profile
// paths reach the wrapped handler (which knows nothing of them); with it they
// are served by net/http/pprof and every other path still reaches the handler.
func TestWithPprof(t *testing.T) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			_, _ = io.WriteString(w, "metrics page")
			return
		}
		http.NotFound(w, r)
	})
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	cases := []struct {
		enabled  bool
		path     string
		wantCode int
		wantBody string
	}{
		{false, "/metrics", http.StatusOK, "metrics page"},
		{false, "/debug/pprof/", http.StatusNotFound, ""},
		{false, "/debug/pprof/heap?debug=1", http.StatusNotFound, ""},
		{false, "/debug/pprof/cmdline", http.StatusNotFound, ""},
		{true, "/metrics", http.StatusOK, "metrics page"},
		{true, "/debug/pprof/", http.StatusOK, "goroutine"},
		{true, "/debug/pprof/heap?debug=1", http.StatusOK, "heap profile"},
		{true, "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile"},
		{true, "/debug/pprof/cmdline", http.StatusOK, ""},
		{true, "/nothing", http.StatusNotFound, ""},
	}
	for _, c := range cases {
		code, body := get(withPprof(inner, c.enabled), c.path)
		if code != c.wantCode || !strings.Contains(body, c.wantBody) {
			t.Errorf("enabled=%v GET %s: %d %.80q, want %d containing %q", c.enabled, c.path, code, body, c.wantCode, c.wantBody)
		}
	}
	if h := withPprof(inner, false); h == nil {
		t.Fatal("withPprof(h, false) returned nil")
	}
}

// TestEndToEndPprofFlag runs the agent binary with and without
// --web.enable-pprof: the profiles are served only with the flag, /metrics
// either way.
func TestEndToEndPprofFlag(t *testing.T) {
	root := sysfsfixture.Materialize(t, intelFixture)
	for _, enabled := range []bool{false, true} {
		args := []string{"--path.sysfs=" + root, "--agent.interval=1s"}
		if enabled {
			args = append(args, "--web.enable-pprof")
		}
		p := startAgent(t, nil, args...)
		base := "http://" + p.addr
		waitFor(t, "agent up", 15*time.Second, func() (bool, error) {
			_, err := scrape(nil, base+"/metrics")
			return err == nil, err
		})
		resp, err := http.Get(base + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		served := resp.StatusCode == http.StatusOK && strings.Contains(string(body), "heap profile")
		if served != enabled {
			t.Errorf("--web.enable-pprof=%v: GET /debug/pprof/heap gave %s (%.60q); profile served = %v", enabled, resp.Status, body, served)
		}
	}
}
