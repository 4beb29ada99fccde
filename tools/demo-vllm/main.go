// Command demo-vllm is a stand-in inference server for `make demo`: it
// serves requests to itself at a steady rate, spends real CPU time on each
// (so the agent measures and attributes real energy to it), and exposes the
// counters vLLM exposes (vllm:request_success_total, vllm:prompt_tokens_total,
// vllm:generation_tokens_total) on /metrics. It is a demo load, not a model.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8000", "address to serve /metrics on")
	rate := flag.Float64("rps", 5, "requests per second to simulate")
	work := flag.Duration("work", 20*time.Millisecond, "CPU time to spend on each request")
	model := flag.String("model", "demo-llama", "model_name label")
	flag.Parse()

	var requests, prompt, generated atomic.Uint64
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				burn(*work)
				requests.Add(1)
				prompt.Add(120)
				generated.Add(80)
			}
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE vllm:request_success_total counter\nvllm:request_success_total{finished_reason=\"stop\",model_name=%q} %d\n", *model, requests.Load())
		fmt.Fprintf(w, "# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total{model_name=%q} %d\n", *model, prompt.Load())
		fmt.Fprintf(w, "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{model_name=%q} %d\n", *model, generated.Load())
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	log.Printf("demo-vllm: %.1f requests/s, %s CPU each, metrics at http://%s/metrics", *rate, *work, *addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// burn spends about d of CPU time hashing.
func burn(d time.Duration) {
	var sum [32]byte
	for end := time.Now().Add(d); time.Now().Before(end); {
		for range 1000 {
			sum = sha256.Sum256(sum[:])
		}
	}
}
