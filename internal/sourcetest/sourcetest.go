// Package sourcetest holds test helpers for the agent's sources: an HTTP
// endpoint that can hang (a dcgm-exporter, an inference server or a carbon
// provider that accepts connections and never answers), a minimal
// dcgm-exporter exposition, and the sampling helpers of the GPU backends'
// tests. Tests only; it serves on 127.0.0.1.
package sourcetest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/gpu"
)

// Hangable is an HTTP endpoint whose body a test sets and which, while hung,
// accepts requests and never answers (until the request ends or the test
// releases it).
type Hangable struct {
	// URL is the server's base URL.
	URL string
	// Hits counts requests.
	Hits atomic.Int64

	srv  *httptest.Server
	mu   sync.Mutex
	body string
	hung chan struct{}
}

// NewHangable starts an endpoint serving body; it stops with the test.
func NewHangable(t testing.TB, body string) *Hangable {
	h := &Hangable{body: body}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Hits.Add(1)
		h.mu.Lock()
		hung, body := h.hung, h.body
		h.mu.Unlock()
		if hung != nil {
			select {
			case <-hung:
			case <-r.Context().Done():
				return
			}
		}
		if strings.HasPrefix(body, "{") {
			w.Header().Set("Content-Type", "application/json")
		}
		_, _ = io.WriteString(w, body)
	}))
	h.URL = h.srv.URL
	t.Cleanup(func() { h.Hang(false); h.srv.Close() })
	return h
}

// Set replaces the body.
func (h *Hangable) Set(body string) {
	h.mu.Lock()
	h.body = body
	h.mu.Unlock()
}

// Hang makes the endpoint hang (on) or answer again, releasing the requests
// that wait (off).
func (h *Hangable) Hang(on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case on && h.hung == nil:
		h.hung = make(chan struct{})
	case !on && h.hung != nil:
		close(h.hung)
		h.hung = nil
	}
}

// DCGMBody is a dcgm-exporter exposition of one GPU whose energy counter
// reads mJ millijoules, drawing 300 W.
func DCGMBody(uuid, model string, mJ uint64) string {
	l := `{gpu="0",UUID="` + uuid + `",device="nvidia0",modelName="` + model + `",Hostname="node-1"}`
	return "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" + l + " " +
		strconv.FormatUint(mJ, 10) + "\n# TYPE DCGM_FI_DEV_POWER_USAGE gauge\nDCGM_FI_DEV_POWER_USAGE" + l + " 300\n"
}

// MustSample samples b at now and fails the test on an error.
func MustSample(t testing.TB, b gpu.Backend, now time.Time) gpu.Result {
	t.Helper()
	r, err := b.Sample(context.Background(), now)
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	return r
}

// WantNoErrors fails the test when r counted errors.
func WantNoErrors(t testing.TB, r gpu.Result) {
	t.Helper()
	if len(r.Errors) != 0 {
		t.Fatalf("errors %v, want none", r.Errors)
	}
}
