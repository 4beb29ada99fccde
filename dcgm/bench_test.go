package dcgm

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// BenchmarkExporterParse parses the L4 GPU Operator capture and folds it
// into the per-GPU state: the exporter backend's work per scrape, without
// the HTTP round trip.
func BenchmarkExporterParse(b *testing.B) {
	body := []byte(readFixture(b, "dcgm_exporter_l4_gpu_operator.prom"))
	be, err := NewExporterBackend(Config{ExporterURL: "http://127.0.0.1:9400/metrics"}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	eb := be.(*exporterBackend)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	now := t0
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		now = now.Add(5 * time.Second)
		r := newResult(1)
		if err := eb.apply(mfs, now, &r); err != nil || len(r.GPUs) != 1 {
			b.Fatalf("apply: %v", err)
		}
	}
}

// BenchmarkExporterScrape is a whole scrape of the L4 capture over HTTP on
// 127.0.0.1.
func BenchmarkExporterScrape(b *testing.B) {
	_, be := newScripted(b, readFixture(b, "dcgm_exporter_l4_gpu_operator.prom"), Config{})
	ctx := context.Background()
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(5 * time.Second)
		if _, err := be.Sample(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
}
