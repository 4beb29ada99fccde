package report

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// partialProm answers like a Thanos Querier with a store down: one
// cluster's energy and a warning naming the missing store.
type partialProm struct{}

const storeDown = "No StoreAPIs matched for this query: store 127.0.0.1:10901 unavailable"

func (partialProm) Query(_ context.Context, q string, _ time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	if strings.HasPrefix(q, "sum by (project, model_id, workload_type, cluster, region) (") && strings.Contains(q, mWorkloadEnergy) {
		return model.Vector{{Metric: model.Metric{"project": "chat", "cluster": "a", "region": "eu-central"}, Value: 3.6e6}}, v1.Warnings{storeDown}, nil, nil
	}
	return model.Vector{}, v1.Warnings{storeDown}, nil, nil
}

func (partialProm) QueryRange(context.Context, string, v1.Range, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return model.Matrix{}, v1.Warnings{storeDown}, nil, nil
}

// TestPartialResponseIsAGap: the engine's warnings are listed once, become
// a gap over the whole period in every format, and every trend point is a
// gap; the region beside the cluster is kept.
func TestPartialResponseIsAGap(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	r, err := Build(context.Background(), partialProm{}, Options{From: from, To: from.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.DataQuality.PartialResponse) != 1 || r.DataQuality.PartialResponse[0] != storeDown {
		t.Fatalf("partial response: %q", r.DataQuality.PartialResponse)
	}
	found := false
	for _, g := range r.DataQuality.Gaps {
		if g.Series == "partial response: "+storeDown && g.Start.Equal(from) && g.End.Equal(from.Add(24*time.Hour)) {
			found = true
		}
	}
	if !found {
		t.Errorf("no gap over the period for the partial response: %+v", r.DataQuality.Gaps)
	}
	for _, p := range r.Trend {
		if !p.Gap {
			t.Errorf("trend point %s is not a gap", p.End)
		}
	}
	if len(r.ByLocation) != 1 || r.ByLocation[0].Location != "a" || r.ByLocation[0].Region != "eu-central" {
		t.Errorf("by location: %+v", r.ByLocation)
	}
	var md bytes.Buffer
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"partial response: " + storeDown, "a (eu-central)"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}
