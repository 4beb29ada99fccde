package fleet

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/promtest"
)

// benchStep is the spacing of the generated month: coarser than a real
// scrape interval so that backfilling stays quick; query cost grows with
// the samples a range holds.
const benchStep = 5 * time.Minute

// monthHistory writes a month of one cluster's history, N workloads on one
// node, as OpenMetrics (seconds) for promtool and as Prometheus text
// (milliseconds) for VictoriaMetrics' import. It returns the workloads' GPU
// and CPU energy inside [from, to] and the node's idle energy.
func monthHistory(cluster string, n int, from, to time.Time) (om, text string, workJ, idleJ float64) {
	type series struct {
		name, labels string
		perSec       float64
	}
	var ss []series
	for i := 0; i < n; i++ {
		w := fmt.Sprintf(`container="main",model_id="model-%d",namespace="ns-%d",pod="pod-%d",project="project-%d",workload_type="inference",instance="node-%s",job="aiwatt"`,
			i%5, i, i, i%3, cluster)
		gpuW, cpuW := 300+float64(i*17), 40+float64(i*3)
		ss = append(ss,
			series{"aiwatt_workload_energy_joules_total", `component="gpu",` + w, gpuW},
			series{"aiwatt_workload_energy_joules_total", `component="cpu",` + w, cpuW},
			series{"aiwatt_workload_co2e_grams_total", `basis="location",` + w, (gpuW + cpuW) / 3.6e6 * 350},
			series{"aiwatt_workload_co2e_grams_total", `basis="market",` + w, (gpuW + cpuW) / 3.6e6 * 120},
			series{"aiwatt_inference_requests_total", `finished_reason="stop",server="vllm",` + w, 2},
			series{"aiwatt_inference_output_tokens_total", `server="vllm",` + w, 300},
		)
		workJ += (gpuW + cpuW) * to.Sub(from).Seconds()
	}
	node := fmt.Sprintf(`instance="node-%s",job="aiwatt"`, cluster)
	ss = append(ss,
		series{"aiwatt_node_idle_energy_joules_total", `component="gpu",` + node, 60},
		series{"aiwatt_samples_total", node, 0.2},
	)
	idleJ = 60 * to.Sub(from).Seconds()
	var o, x strings.Builder
	start := from.Add(-time.Hour)
	for _, s := range ss {
		fmt.Fprintf(&o, "# TYPE %s counter\n", strings.TrimSuffix(s.name, "_total"))
		for t := start; !t.After(to); t = t.Add(benchStep) {
			v := s.perSec * t.Sub(start).Seconds()
			fmt.Fprintf(&o, "%s{%s} %g %d\n", s.name, s.labels, v, t.Unix())
			fmt.Fprintf(&x, "%s{%s} %g %d\n", s.name, s.labels, v, t.UnixMilli())
		}
	}
	// The intensity gauge, so that each cluster names its zone.
	o.WriteString("# TYPE aiwatt_grid_carbon_intensity_grams_per_kwh gauge\n")
	for t := start; !t.After(to); t = t.Add(benchStep) {
		fmt.Fprintf(&o, "aiwatt_grid_carbon_intensity_grams_per_kwh{basis=\"location\",provider=\"static\",zone=\"DE\",%s} 350 %d\n", node, t.Unix())
		fmt.Fprintf(&x, "aiwatt_grid_carbon_intensity_grams_per_kwh{basis=\"location\",provider=\"static\",zone=\"DE\",%s} 350 %d\n", node, t.UnixMilli())
	}
	o.WriteString("# EOF\n")
	return o.String(), x.String(), workJ, idleJ
}

// BenchmarkMonthReport times `aiwatt report` for a month of 2 clusters × N
// workloads (AIWATT_BENCH_WORKLOADS, default 10) on each engine: one
// cluster's Prometheus, Thanos over both clusters' sidecars, and
// VictoriaMetrics holding both. Every report's IT energy is checked against
// the generated history (0.1 %).
func BenchmarkMonthReport(b *testing.B) {
	n := 10
	if v := os.Getenv("AIWATT_BENCH_WORKLOADS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	thanos := thanosBinary(b)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	vmURL := startVM(b)
	var sidecars []string
	var promA string
	var truthJ float64
	for _, c := range []struct{ name, region string }{{"a", "eu-central"}, {"b", "eu-west"}} {
		om, text, workJ, idleJ := monthHistory(c.name, n, from, to)
		truthJ += workJ + idleJ
		s, _, grpc := startStore(b, thanos, c.name, promtest.Options{OpenMetrics: om, MaxBlockDuration: 40 * 24 * time.Hour,
			Config: externalLabels(c.name, c.region, "0")})
		if promA == "" {
			promA = s.URL
		}
		sidecars = append(sidecars, grpc)
		u := vmURL + "/api/v1/import/prometheus?" + url.Values{"extra_label": {"cluster=" + c.name, "region=" + c.region}}.Encode()
		resp, err := http.Post(u, "text/plain", bytes.NewBufferString(text))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Fatalf("import into VictoriaMetrics: %s", resp.Status)
		}
	}
	thanosURL := startQuerier(b, thanos, sidecars)
	// VictoriaMetrics makes imported samples searchable after a flush.
	waitFor(b, "VictoriaMetrics to serve the import", 60*time.Second, func() (bool, error) {
		resp, err := http.Get(vmURL + "/internal/force_flush")
		if err == nil {
			resp.Body.Close()
		}
		s, _, err := query(b.Context(), vmURL, `count(aiwatt_samples_total)`, to)
		return err == nil && len(s) == 1 && s[0].value == 2, err
	})
	cfg := filepath.Join(b.TempDir(), "report.yml")
	if err := os.WriteFile(cfg, []byte("organisation: Fleet benchmark\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, e := range []struct {
		name, url string
		want      float64
	}{{"prometheus a", promA, 0}, {"thanos", thanosURL, truthJ}, {"victoriametrics", vmURL, truthJ}} {
		b.Run(strings.ReplaceAll(e.name, " ", "_"), func(b *testing.B) {
			var took time.Duration
			for i := 0; i < b.N; i++ {
				r, d := runReport(b, engine{name: e.name, url: e.url}, cfg, from, to, "15m")
				took += d
				if e.want > 0 && !within(r.Totals.ITEnergyKWh, e.want/3.6e6, 0.001) {
					b.Fatalf("%s: IT energy %v kWh, want %v", e.name, r.Totals.ITEnergyKWh, e.want/3.6e6)
				}
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "s/report")
		})
	}
}
