package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// goldenTriton is a Triton inference server for the golden exposition, in
// the shape of Triton's documented metrics: its counters stay at 0 until
// serve, then show 5 requests and 40 inferences (batches of 8), so the
// golden holds exact inference counters, aiwatt_inference_inferences_total
// among them.
type goldenTriton struct {
	srv     *httptest.Server
	mu      sync.Mutex
	served  bool
	scrapes int
}

func startGoldenTriton(t *testing.T) *goldenTriton {
	t.Helper()
	g := &goldenTriton{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		g.mu.Lock()
		g.scrapes++
		n := 0
		if g.served {
			n = 5
		}
		g.mu.Unlock()
		for _, line := range []string{
			"# HELP nv_inference_request_success Number of successful inference requests, all batch sizes",
			"# TYPE nv_inference_request_success counter",
			`nv_inference_request_success{model="resnet50",version="1"} %d`,
			"# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes",
			"# TYPE nv_inference_request_failure counter",
			`nv_inference_request_failure{model="resnet50",reason="OTHER",version="1"} 0`,
			"# HELP nv_inference_count Number of inferences performed (does not include cached requests)",
			"# TYPE nv_inference_count counter",
			`nv_inference_count{model="resnet50",version="1"} %d`,
		} {
			switch {
			case strings.HasPrefix(line, "nv_inference_request_success{"):
				line = fmt.Sprintf(line, n)
			case strings.HasPrefix(line, "nv_inference_count{"):
				line = fmt.Sprintf(line, 8*n)
			}
			fmt.Fprintln(w, line)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// config is the agent configuration of the target, tied to a pod by name.
func (g *goldenTriton) config() string {
	return "inference:\n  pod_annotations: false\n  targets:\n    - url: " + g.srv.URL + "/metrics\n      server: triton\n      workload: {namespace: vision, pod: triton-0}\n"
}

// serve makes the counters advance, once.
func (g *goldenTriton) serve() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.served = true
}

func (g *goldenTriton) scraped() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.scrapes
}

// tritonInferences is the golden's inference series.
const tritonInferences = `aiwatt_inference_inferences_total{container="",model_id="",namespace="vision",pod="triton-0",project="",server="triton",workload_type=""}`

// localTarget masks the port of a local scrape target in a target label.
var localTarget = regexp.MustCompile(`target="http://127\.0\.0\.1:[0-9]+/`)
