package scrape

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkScrape50Targets: one Scraper tick over 50 httptest servers
// serving the vLLM V0 full dump.
func BenchmarkScrape50Targets(b *testing.B) {
	body := readFixture(b, "vllm_v0engine_full_dump_qwen3_0.6b.prom")
	targets := make([]Target, 50)
	for i := range targets {
		srv := newStaticServer(b, body)
		targets[i] = Target{ID: fmt.Sprint(i), URL: srv.URL + "/metrics"}
	}
	s := NewScraper(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	s.Scrape(ctx, targets) // connections and baselines
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, r := range s.Scrape(ctx, targets) {
			if !r.Up {
				b.Fatalf("%s: %v", r.Target.ID, r.Err)
			}
		}
	}
}

// BenchmarkParseVLLM parses the vLLM V0 full dump (16 KiB, 195 lines).
func BenchmarkParseVLLM(b *testing.B) {
	body := []byte(readFixture(b, "vllm_v0engine_full_dump_qwen3_0.6b.prom"))
	var p lineParser
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := p.read(body, ServerAuto, "")
		if err != nil || len(e.obs) != 3 {
			b.Fatalf("%v %d", err, len(e.obs))
		}
	}
}
