package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// valueQuerier answers every query with one series of value v (sample
// timestamps inside the period for timestamp() queries, unless v is used
// there too).
type valueQuerier struct {
	v          float64
	timestamps float64 // answer of timestamp() queries; 0: one hour into the period
}

var qualityFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func (q valueQuerier) Query(_ context.Context, query string, ts time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	m := model.Metric{"project": "p", "model_id": "m", "workload_type": "training", "namespace": "ns", "pod": "pod", "location": "DE", "component": "gpu", "instance": "i"}
	v := q.v
	if strings.Contains(query, "timestamp(") {
		v = q.timestamps
		if v == 0 {
			v = float64(qualityFrom.Add(time.Hour).Unix())
		}
	}
	return model.Vector{{Metric: m, Value: model.SampleValue(v), Timestamp: model.TimeFromUnix(ts.Unix())}}, nil, nil, nil
}

func (q valueQuerier) QueryRange(_ context.Context, _ string, r v1.Range, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	var vals []model.SamplePair
	for t := r.Start; !t.After(r.End); t = t.Add(r.Step) {
		vals = append(vals, model.SamplePair{Timestamp: model.TimeFromUnix(t.Unix()), Value: model.SampleValue(q.v)})
	}
	return model.Matrix{{Metric: model.Metric{"project": "p", "instance": "i"}, Values: vals}}, nil, nil, nil
}

// TestOutOfRangeFindings builds reports from a Prometheus that answers
// negative, absurdly large and out-of-period values: every format renders,
// and each problem is a data-quality finding in the report.
func TestOutOfRangeFindings(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		q     valueQuerier
		want  []string
		clean bool
	}{
		{"negative", valueQuerier{v: -5e6}, []string{
			"Out of range: Totals has negative figures (it_energy_kwh -4.167 kWh, facility_energy_kwh -4.167 kWh",
			"Out of range: Group project=p,model_id=m,workload_type=training has negative figures",
			"Out of range: Training run ns/pod has negative figures (energy_kwh -1.389 kWh",
			"Out of range: 24 trend step(s)"}, false},
		{"1e300", valueQuerier{v: 1e300}, []string{
			"Out of range: Totals has implausibly large figures (it_energy_kwh 8.333e+293 kWh, more than 3e+13",
			"co2e_location_t", "Out of range: Training run ns/pod has implausibly large figures"}, false},
		{"timestamps out of the period", valueQuerier{v: 1, timestamps: 1e300}, []string{
			"Training run ns/pod: its sample timestamps (1e+300, 1e+300) lie outside the period"}, false},
		{"plausible", valueQuerier{v: 3.6e6}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Build(context.Background(), tc.q, Options{From: qualityFrom, To: qualityFrom.Add(24 * time.Hour), Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			paths, err := Write(r, dir, Formats)
			if err != nil || len(paths) != len(Formats) {
				t.Fatalf("write: %v (%d files)", err, len(paths))
			}
			notes := strings.Join(r.DataQuality.Notes, "\n")
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("notes lack %q:\n%s", w, notes)
				}
			}
			if tc.clean && strings.Contains(notes, "Out of range") {
				t.Errorf("plausible data has findings:\n%s", notes)
			}
			if tc.clean && !r.Training[0].FirstSample.Equal(qualityFrom.Add(time.Hour)) {
				t.Errorf("first sample %v", r.Training[0].FirstSample)
			}
			// The findings reach the rendered documents.
			b, err := os.ReadFile(filepath.Join(dir, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			var j struct {
				DataQuality struct {
					Notes []string `json:"notes"`
				} `json:"data_quality"`
			}
			if err := json.Unmarshal(b, &j); err != nil || len(j.DataQuality.Notes) != len(r.DataQuality.Notes) {
				t.Fatalf("json notes %d of %d: %v", len(j.DataQuality.Notes), len(r.DataQuality.Notes), err)
			}
			md, err := os.ReadFile(filepath.Join(dir, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.want) > 0 && !bytes.Contains(md, []byte(tc.want[0][:30])) {
				t.Errorf("markdown lacks the finding %q", tc.want[0][:30])
			}
		})
	}
}
