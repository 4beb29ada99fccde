package dcgm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixtureDir holds the real dcgm-exporter captures, beside the clone.
var fixtureDir = filepath.Join("testdata", "captures")

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return string(b)
}

// rewriteValues adds add[metric] to the value of every row of the named
// metrics (matched case-insensitively), keeping names and labels byte for
// byte. Values are integers (energy, mJ) or decimals (power, W).
func rewriteValues(t testing.TB, body string, set func(metric string, v float64) (float64, bool)) string {
	t.Helper()
	lines := strings.Split(body, "\n")
	for i, line := range lines {
		if line == "" || line[0] == '#' {
			continue
		}
		nameEnd := strings.IndexAny(line, "{ ")
		if nameEnd < 0 {
			continue
		}
		valStart := strings.LastIndexByte(line, '}') + 1
		if valStart == 0 {
			valStart = nameEnd
		}
		prefix, val := line[:valStart], strings.TrimSpace(line[valStart:])
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("line %q: value %q: %v", line, val, err)
		}
		nv, ok := set(line[:nameEnd], v)
		if !ok {
			continue
		}
		if strings.Contains(val, ".") {
			lines[i] = prefix + " " + strconv.FormatFloat(nv, 'f', 6, 64)
		} else {
			lines[i] = prefix + " " + strconv.FormatUint(uint64(nv), 10)
		}
	}
	return strings.Join(lines, "\n")
}

func isMetric(name, want string) bool { return strings.EqualFold(name, want) }

// addEnergy returns body with offsetMJ added to every energy counter row.
func addEnergy(t testing.TB, body string, offsetMJ uint64) string {
	return rewriteValues(t, body, func(m string, v float64) (float64, bool) {
		if !isMetric(m, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") {
			return 0, false
		}
		return v + float64(offsetMJ), true
	})
}

// scripted is an exporter whose body the test sets between scrapes.
type scripted struct {
	mu       sync.Mutex
	body     string
	status   int
	requests atomic.Int64
}

func (s *scripted) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	body, status := s.body, s.status
	s.mu.Unlock()
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func newScripted(t testing.TB, body string, cfg Config) (*scripted, Backend) {
	t.Helper()
	s := &scripted{body: body}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	cfg.ExporterURL = srv.URL + "/metrics"
	b, err := NewExporterBackend(cfg, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return s, b
}

type wantGPU struct {
	index                     int
	uuid, model, driver, host string
	energy                    bool // has an energy counter: Joules follow the offsets
	power, limit, util        float64
	mig                       []MIGInstance
	pods                      []PodRef
}

func mig(ids []int, profile string) []MIGInstance {
	var out []MIGInstance
	for _, id := range ids {
		out = append(out, MIGInstance{GPUInstanceID: id, ComputeInstanceID: -1, Profile: profile})
	}
	return out
}

// fixtureWants says what each capture in fixtureDir must yield. Every
// capture must have an entry.
var fixtureWants = map[string]struct {
	gpus       []wantGPU
	errs       map[string]uint64 // per scrape
	sampleFail bool              // no GPU has energy: Sample returns an error
}{
	"a100_mig_nvidia_docs.prom": {gpus: []wantGPU{{
		index: 0, uuid: "GPU-34319582-d595-d1c7-d1d2-179bcfa61660", host: "ub20-a100-k8s",
		energy: true, power: 409.692, util: -1, mig: mig([]int{13}, "1g.5gb"),
	}}},
	"a30_mig_issue317.prom": {gpus: []wantGPU{
		{index: 0, uuid: "GPU-265c9814-6156-355b-e589-ff2064894f16", model: "NVIDIA A30", host: "yg-data-k8s-gpu-a30-node-test-test0003.mt",
			energy: true, power: 52.746, util: -1, mig: mig([]int{3, 4, 5, 6}, "1g.6gb")},
		{index: 1, uuid: "GPU-2d20791a-b4a6-ba59-97f1-e95b99fe5b49", model: "NVIDIA A30", host: "yg-data-k8s-gpu-a30-node-test-test0003.mt",
			energy: true, power: 56.127, util: -1, mig: mig([]int{3, 4}, "1g.6gb")},
	}},
	"dcgm_exporter_l4_gpu_operator.prom": {gpus: []wantGPU{{
		index: 0, uuid: "GPU-c2f76b33-7953-256e-8f33-1343419b1a1c", model: "NVIDIA L4", driver: "580.105.08", host: "i-030791dc5a37cd257",
		energy: true, power: 16.365, util: 0,
	}}},
	"dcgm_exporter_readme_excerpt.prom": {
		gpus:       []wantGPU{{index: 0, uuid: "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52", util: -1}},
		errs:       map[string]uint64{ReasonMissingEnergy: 1},
		sampleFail: true,
	},
	"dcgm_issue317_mig_energy_excerpt.prom": {gpus: []wantGPU{
		{index: 0, uuid: "GPU-265c9814-6156-355b-e589-ff2064894f16", model: "NVIDIA A30", host: "yg-data-k8s-gpu-a30-node-test-test0003.mt",
			energy: true, util: -1, mig: mig([]int{3, 4, 5, 6}, "1g.6gb")},
		{index: 1, uuid: "GPU-2d20791a-b4a6-ba59-97f1-e95b99fe5b49", model: "NVIDIA A30", host: "yg-data-k8s-gpu-a30-node-test-test0003.mt",
			energy: true, util: -1, mig: mig([]int{3}, "1g.6gb")},
	}},
	"pod_labels_real_lines.prom": {
		gpus: []wantGPU{
			{index: 0, uuid: "GPU-55274b56-9033-f166-7723-77088b0ff94d", model: "NVIDIA TITAN V", host: "dcgm-exporter-lcxpl", util: -1},
			{index: 0, uuid: "GPU-603a8873-0edd-c157-ce48-2078e8b1a935", model: "NVIDIA A30", host: "dcgm-exporter-4flp2", util: -1,
				mig:  mig([]int{1}, "2g.12gb"),
				pods: []PodRef{{Namespace: "gi-user1-giops-ai", Pod: "testest-9sxmd", Container: "container-testest-1"}}},
			{index: 0, uuid: "GPU-6bf47ca9-ad3e-15db-beed-1079a7d74116", energy: true, power: 302.206, util: -1},
			{index: 4, uuid: "GPU-931446e6-0413-2864-5b76-11227dcda4ae", model: "NVIDIA A100 80GB PCIe", util: -1,
				pods: []PodRef{{Namespace: "ai-1", Pod: "d85np-t6mdg", Container: "-grpc-pod"}}},
		},
		errs: map[string]uint64{ReasonMissingEnergy: 3},
	},
	"t4_datadog_fixture.prom": {
		gpus: []wantGPU{
			{index: 0, uuid: "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e", model: "Tesla T4", driver: "460.106.00", host: "424773df46e0",
				energy: true, power: 8.969, util: -1},
			// The limit row of this capture belongs to another GPU (another
			// capture): it must not lend its limit to the first one.
			{index: 0, uuid: "GPU-9ef1b6d0-3643-5dd7-b823-c0ec20dcf2d5", model: "Tesla T4", driver: "470.182.03", host: "551bdf382151",
				limit: 70, util: -1},
		},
		errs: map[string]uint64{ReasonMissingEnergy: 1},
	},
}

// energyOffsets are the cumulative energy (mJ) added to every counter row
// at each scrape, 5 s apart.
var energyOffsets = []uint64{0, 1_234_567, 1_234_567 + 987_654, 1_234_567 + 987_654 + 5_000_001}

func TestExporterFixtures(t *testing.T) {
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	seen := 0
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".md") { // PROVENANCE.md says where the captures came from.
			continue
		}
		name := e.Name()
		seen++
		t.Run(name, func(t *testing.T) {
			want, ok := fixtureWants[name]
			if !ok {
				t.Fatalf("no expectations for capture %s: add it to fixtureWants", name)
			}
			orig := readFixture(t, name)
			srv, b := newScripted(t, orig, Config{})
			for k, off := range energyOffsets {
				srv.set(addEnergy(t, orig, off))
				r, err := b.Sample(context.Background(), t0.Add(time.Duration(k)*5*time.Second))
				if want.sampleFail != (err != nil) {
					t.Fatalf("scrape %d: err %v, want failure %v", k, err, want.sampleFail)
				}
				wantErrs := want.errs
				if wantErrs == nil {
					wantErrs = map[string]uint64{}
				}
				if !reflect.DeepEqual(r.Errors, wantErrs) {
					t.Fatalf("scrape %d: errors %v, want %v", k, r.Errors, wantErrs)
				}
				if len(r.GPUs) != len(want.gpus) {
					t.Fatalf("scrape %d: %d GPUs, want %d: %+v", k, len(r.GPUs), len(want.gpus), r.GPUs)
				}
				for i, w := range want.gpus {
					g := r.GPUs[i]
					wantJ := 0.0
					if w.energy {
						// Once per physical GPU, whatever the number of MIG rows.
						wantJ = float64(off) / 1000
					}
					wantMode := MIGModeUnknown
					if len(w.mig) > 0 {
						wantMode = MIGModeEnabled
					}
					if g.Index != w.index || g.UUID != w.uuid || g.Model != w.model || g.Driver != w.driver || g.Hostname != w.host ||
						g.MIGMode != wantMode || !reflect.DeepEqual(g.MIG, w.mig) || !reflect.DeepEqual(g.Pods, w.pods) {
						t.Fatalf("scrape %d GPU %d: got %+v\nwant %+v", k, i, g, w)
					}
					if g.Source != SourceDCGMExporter || g.OK != w.energy || g.Joules != wantJ ||
						g.PowerWatts != w.power || g.PowerLimitWatts != w.limit || g.SMUtil != w.util {
						t.Fatalf("scrape %d GPU %d: source %q OK %v %v J %v W limit %v util %v; want OK %v %v J %v W limit %v util %v",
							k, i, g.Source, g.OK, g.Joules, g.PowerWatts, g.PowerLimitWatts, g.SMUtil,
							w.energy, wantJ, w.power, w.limit, w.util)
					}
					if w.energy && g.Method != MethodEnergyCounter {
						t.Fatalf("scrape %d GPU %d: method %q", k, i, g.Method)
					}
				}
			}
		})
	}
	if seen < len(fixtureWants) {
		t.Fatalf("%d captures in %s, %d expected", seen, fixtureDir, len(fixtureWants))
	}
}

// TestExporterMIGNoDoubleCount: the A30 capture repeats the whole-GPU
// counter on each of 4 GPU instances (one differing slightly); the GPU's
// energy must advance once, not four times.
func TestExporterMIGNoDoubleCount(t *testing.T) {
	orig := readFixture(t, "dcgm_issue317_mig_energy_excerpt.prom")
	if n := strings.Count(orig, "GPU-265c9814-6156-355b-e589-ff2064894f16"); n != 4 {
		t.Fatalf("capture changed: %d rows for GPU 0", n)
	}
	srv, b := newScripted(t, orig, Config{})
	mustSample(t, b, t0)
	srv.set(addEnergy(t, orig, 10_000_000)) // 10 kJ in 30 s on every row
	r := mustSample(t, b, t0.Add(30*time.Second))
	var node float64
	for _, g := range r.GPUs {
		node += g.Joules
	}
	if r.GPUs[0].Joules != 10_000 || node != 20_000 {
		t.Fatalf("GPU 0 %v J, node %v J; want 10000 and 20000 (summing rows would give 50000)", r.GPUs[0].Joules, node)
	}

	// Instances whose values differ: the largest wins, deterministically,
	// and a row lagging behind never looks like a reset.
	lag := rewriteValues(t, orig, func(m string, v float64) (float64, bool) {
		if !isMetric(m, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") {
			return 0, false
		}
		if v == 126272106318 { // the GI 5 row, slightly ahead in the capture
			return v + 10_000_000 + 2_000_000, true
		}
		return v + 10_000_000 + 1_000_000, true
	})
	srv.set(lag)
	r = mustSample(t, b, t0.Add(60*time.Second))
	wantNoErrors(t, r)
	if r.GPUs[0].Joules != 12_000 || r.GPUs[1].Joules != 11_000 {
		t.Fatalf("GPU 0 %v J, GPU 1 %v J; want 12000 and 11000", r.GPUs[0].Joules, r.GPUs[1].Joules)
	}
}

func TestExporterPowerOnly(t *testing.T) {
	var kept []string
	for _, l := range strings.Split(readFixture(t, "dcgm_exporter_l4_gpu_operator.prom"), "\n") {
		if !strings.Contains(l, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") {
			kept = append(kept, l)
		}
	}
	orig := strings.Join(kept, "\n")
	withPower := func(w float64) string {
		return rewriteValues(t, orig, func(m string, _ float64) (float64, bool) {
			return w, isMetric(m, "DCGM_FI_DEV_POWER_USAGE")
		})
	}
	srv, b := newScripted(t, withPower(100), Config{})
	steps := []struct {
		at    time.Duration
		watts float64
		wantJ float64
	}{
		{0, 100, 0},
		{5 * time.Second, 200, 750},                // (100+200)/2 × 5
		{10 * time.Second, 300, 2000},              // + (200+300)/2 × 5
		{10500 * time.Millisecond, 72.5, 2093.125}, // + (300+72.5)/2 × 0.5
		{40500 * time.Millisecond, 72.5, 4268.125}, // unchanged value is still power: + 72.5 × 30
	}
	for i, s := range steps {
		srv.set(withPower(s.watts))
		r := mustSample(t, b, t0.Add(s.at))
		wantNoErrors(t, r)
		g := r.GPUs[0]
		if g.Source != SourceDCGMExporter || g.Method != MethodPowerIntegration || !g.OK || g.Joules != s.wantJ || g.PowerWatts != s.watts {
			t.Fatalf("step %d: %+v, want %v J", i, g, s.wantJ)
		}
	}
}

func TestExporterUnchangedCounterAndRefresh(t *testing.T) {
	orig := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	srv, b := newScripted(t, orig, Config{})
	// dcgm-exporter refreshes every 30 s; scraping every 5 s sees the same
	// value six times, then the whole 30 s delta at once.
	for i := range 6 {
		r := mustSample(t, b, t0.Add(time.Duration(i)*5*time.Second))
		wantNoErrors(t, r)
		if r.GPUs[0].Joules != 0 || !r.GPUs[0].OK {
			t.Fatalf("scrape %d: %+v", i, r.GPUs[0])
		}
	}
	srv.set(addEnergy(t, orig, 2_100_000)) // 70 W × 30 s
	r := mustSample(t, b, t0.Add(30*time.Second))
	wantNoErrors(t, r)
	if r.GPUs[0].Joules != 2100 {
		t.Fatalf("after refresh: %v J, want 2100", r.GPUs[0].Joules)
	}
	// The first change seen one second after the first scrape still carries
	// a full exporter interval: it is checked over 30 s, not 1 s.
	srv2, b2 := newScripted(t, orig, Config{})
	mustSample(t, b2, t0)
	srv2.set(addEnergy(t, orig, 2_100_000))
	r = mustSample(t, b2, t0.Add(time.Second))
	wantNoErrors(t, r)
	if r.GPUs[0].Joules != 2100 {
		t.Fatalf("early change: %v J, want 2100", r.GPUs[0].Joules)
	}
}

func TestExporterMinRefresh(t *testing.T) {
	orig := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	srv, b := newScripted(t, orig, Config{MinRefresh: 30 * time.Second})
	mustSample(t, b, t0)
	srv.set(addEnergy(t, orig, 1_500_000))
	for i := 1; i < 6; i++ {
		r := mustSample(t, b, t0.Add(time.Duration(i)*5*time.Second))
		if r.GPUs[0].Joules != 0 || !r.GPUs[0].OK || len(r.Errors) != 0 {
			t.Fatalf("cached sample %d: %+v %v", i, r.GPUs[0], r.Errors)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests inside MinRefresh, want 1", n)
	}
	r := mustSample(t, b, t0.Add(30*time.Second))
	if n := srv.requests.Load(); n != 2 || r.GPUs[0].Joules != 1500 {
		t.Fatalf("after MinRefresh: %d requests, %v J", n, r.GPUs[0].Joules)
	}
}

func TestExporterCounterResetAndImplausible(t *testing.T) {
	orig := readFixture(t, "t4_datadog_fixture.prom")
	withEnergy := func(mJ uint64) string {
		return rewriteValues(t, orig, func(m string, _ float64) (float64, bool) {
			return float64(mJ), isMetric(m, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION")
		})
	}
	srv, b := newScripted(t, withEnergy(5_000_000), Config{})
	steps := []struct {
		mJ    uint64
		wantJ float64
		errs  map[string]uint64
	}{
		{5_000_000, 0, nil},
		{5_400_000, 400, nil},
		{100_000, 500, map[string]uint64{ReasonCounterReset: 1}}, // driver reload: 100 J since
		{150_000, 550, nil},
		{150_000 + 1_000_000_000, 550, map[string]uint64{ReasonImplausibleDelta: 1}}, // 1 MJ in 30 s
		{150_000 + 1_000_000_000 + 30_000, 580, nil},
	}
	for i, s := range steps {
		srv.set(withEnergy(s.mJ))
		r, err := b.Sample(context.Background(), t0.Add(time.Duration(i)*30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{ReasonMissingEnergy: 1} // the capture's stray limit-only GPU
		for k, v := range s.errs {
			want[k] = v
		}
		if r.GPUs[0].Joules != s.wantJ || !reflect.DeepEqual(r.Errors, want) {
			t.Fatalf("step %d: %v J %v; want %v J %v", i, r.GPUs[0].Joules, r.Errors, s.wantJ, want)
		}
	}
}

func TestExporterGPUDisappears(t *testing.T) {
	orig := readFixture(t, "dcgm_issue317_mig_energy_excerpt.prom")
	var gpu0 []string
	for _, l := range strings.Split(orig, "\n") {
		if !strings.Contains(l, `gpu="1"`) {
			gpu0 = append(gpu0, l)
		}
	}
	srv, b := newScripted(t, orig, Config{})
	mustSample(t, b, t0)
	srv.set(addEnergy(t, orig, 600_000))
	mustSample(t, b, t0.Add(5*time.Second))
	srv.set(addEnergy(t, strings.Join(gpu0, "\n"), 900_000))
	r := mustSample(t, b, t0.Add(10*time.Second))
	if r.Errors[ReasonGPULost] != 1 || len(r.GPUs) != 2 {
		t.Fatalf("errors %v, %d GPUs", r.Errors, len(r.GPUs))
	}
	if g := r.GPUs[1]; g.OK || g.Joules != 600 || g.UUID != "GPU-2d20791a-b4a6-ba59-97f1-e95b99fe5b49" {
		t.Fatalf("vanished GPU %+v, want OK=false with 600 J kept", g)
	}
	if g := r.GPUs[0]; !g.OK || g.Joules != 900 {
		t.Fatalf("GPU 0 %+v", g)
	}
	// It comes back: the delta since it was last seen counts.
	srv.set(addEnergy(t, orig, 1_000_000))
	r = mustSample(t, b, t0.Add(15*time.Second))
	wantNoErrors(t, r)
	if r.GPUs[1].Joules != 1000 || !r.GPUs[1].OK {
		t.Fatalf("returned GPU %+v", r.GPUs[1])
	}
}

func TestExporterFailures(t *testing.T) {
	l4 := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	var mini string // the L4 energy row alone, under every limit below
	for _, l := range strings.Split(l4, "\n") {
		if strings.HasPrefix(l, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{") {
			mini = l + "\n"
		}
	}
	cases := []struct {
		name   string
		body   string
		status int
		cfg    Config
		reason string
		noData bool
	}{
		{name: "status 500", body: "oops\n", status: http.StatusInternalServerError, reason: ReasonHTTPStatus},
		{name: "status 404", body: "404 page not found\n", status: http.StatusNotFound, reason: ReasonHTTPStatus},
		{name: "body over the limit", body: l4, cfg: Config{MaxBodyBytes: 1024}, reason: ReasonBodyTooLarge},
		{name: "malformed", body: "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-1\" 12.5\n", reason: ReasonParseError},
		{name: "malformed value", body: "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-1\"} twelve\n", reason: ReasonParseError},
		{name: "no GPU rows", body: "# HELP up x\nup 1\n", noData: true},
		{name: "empty", body: "", noData: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, b := newScripted(t, mini, tc.cfg)
			mustSample(t, b, t0) // a good scrape first: its GPU must stay listed
			srv.mu.Lock()
			srv.body, srv.status = tc.body, tc.status
			srv.mu.Unlock()
			r, err := b.Sample(context.Background(), t0.Add(5*time.Second))
			if err == nil {
				t.Fatal("Sample succeeded")
			}
			if errors.Is(err, ErrNoData) != tc.noData {
				t.Fatalf("error %v: ErrNoData %v, want %v", err, errors.Is(err, ErrNoData), tc.noData)
			}
			want := map[string]uint64{}
			if tc.reason != "" {
				want[tc.reason] = 1
			}
			if tc.noData {
				want[ReasonGPULost] = 1
			}
			if !reflect.DeepEqual(r.Errors, want) {
				t.Fatalf("errors %v, want %v", r.Errors, want)
			}
			if len(r.GPUs) != 1 || r.GPUs[0].OK || r.GPUs[0].UUID != "GPU-c2f76b33-7953-256e-8f33-1343419b1a1c" {
				t.Fatalf("GPUs %+v, want the known GPU with OK=false", r.GPUs)
			}
		})
	}
}

func TestExporterBodyAtLimit(t *testing.T) {
	l4 := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	_, b := newScripted(t, l4, Config{MaxBodyBytes: int64(len(l4))})
	wantNoErrors(t, mustSample(t, b, t0))
}

func TestExporterTimeout(t *testing.T) {
	l4 := readFixture(t, "dcgm_exporter_l4_gpu_operator.prom")
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprintf("partial_body=%v", partial), func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if partial {
					_, _ = w.Write([]byte(l4[:200]))
					w.(http.Flusher).Flush()
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) })
			const timeout = 200 * time.Millisecond
			b, err := NewExporterBackend(Config{ExporterURL: srv.URL, ExporterTimeout: timeout}, srv.Client(), nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r, err := b.Sample(context.Background(), t0)
			elapsed := time.Since(start)
			if err == nil || r.Errors[ReasonTimeout] != 1 || len(r.Errors) != 1 {
				t.Fatalf("err %v, errors %v; want a counted timeout", err, r.Errors)
			}
			if elapsed > timeout+time.Second {
				t.Fatalf("Sample took %v with a %v timeout", elapsed, timeout)
			}
		})
	}
}

func TestExporterCallerCancel(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	b, err := NewExporterBackend(Config{ExporterURL: srv.URL, ExporterTimeout: time.Hour}, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var r Result
	go func() {
		defer close(done)
		r, err = b.Sample(ctx, t0)
	}()
	<-entered
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) || len(r.Errors) != 0 {
		t.Fatalf("err %v errors %v; want context.Canceled, nothing counted", err, r.Errors)
	}
}

func TestExporterLabelPrecedence(t *testing.T) {
	body := `# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="2",UUID="GPU-a",modelName="NVIDIA H100 80GB HBM3",hostname="node-a",pod="dcgm-exporter-x",namespace="gpu-operator",container="exporter",exported_pod="llm-0",exported_namespace="ml",exported_container="vllm"} 1000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="2",UUID="GPU-a",modelName="NVIDIA H100 80GB HBM3",hostname="node-a",pod="llm-1",namespace="ml",container="vllm"} 1000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="2",UUID="GPU-a",modelName="NVIDIA H100 80GB HBM3",hostname="node-a",pod="llm-1",namespace="ml",container="vllm"} 1000
# TYPE DCGM_FI_DEV_ENFORCED_LIMIT gauge
DCGM_FI_DEV_ENFORCED_LIMIT{gpu="2",UUID="GPU-a"} 700
# TYPE DCGM_FI_DEV_POWER_MGMT_LIMIT gauge
DCGM_FI_DEV_POWER_MGMT_LIMIT{gpu="2",UUID="GPU-a"} 650
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-a"} 42
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="2",UUID="GPU-a"} 140737488355328
# TYPE DCGM_FI_DEV_NVSWITCH_TEMP gauge
DCGM_FI_DEV_NVSWITCH_TEMP{gpu="0",UUID="",device="nvswitch0"} 40
`
	_, b := newScripted(t, body, Config{})
	r := mustSample(t, b, t0)
	wantNoErrors(t, r)
	if len(r.GPUs) != 1 {
		t.Fatalf("GPUs %+v (NVSwitch rows have no UUID and must be ignored)", r.GPUs)
	}
	g := r.GPUs[0]
	wantPods := []PodRef{{Namespace: "ml", Pod: "llm-0", Container: "vllm"}, {Namespace: "ml", Pod: "llm-1", Container: "vllm"}}
	if !reflect.DeepEqual(g.Pods, wantPods) || g.Index != 2 || g.Model != "NVIDIA H100 80GB HBM3" || g.Hostname != "node-a" {
		t.Fatalf("GPU %+v", g)
	}
	// Enforced limit wins over the management limit; a DCGM blank power is
	// not a reading.
	if g.PowerLimitWatts != 700 || g.SMUtil != 42 || g.PowerWatts != 0 {
		t.Fatalf("limit %v util %v power %v", g.PowerLimitWatts, g.SMUtil, g.PowerWatts)
	}
}

func TestExporterBlankEnergyFallsBackToPower(t *testing.T) {
	body := func(energy string, watts string) string {
		return `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-b"} ` + energy + `
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-b"} ` + watts + "\n"
	}
	srv, b := newScripted(t, body("9223372036854775794", "100.000000"), Config{})
	steps := []struct {
		body   string
		wantJ  float64
		method string
	}{
		{body("9223372036854775794", "100.000000"), 0, MethodPowerIntegration},
		{body("9223372036854775794", "100.000000"), 1000, MethodPowerIntegration},
		// The counter appears: it only sets a baseline, never re-counting
		// the interval power already covered.
		{body("5000000", "100.000000"), 1000, MethodEnergyCounter},
		{body("6000000", "100.000000"), 2000, MethodEnergyCounter},
	}
	for i, s := range steps {
		srv.set(s.body)
		r := mustSample(t, b, t0.Add(time.Duration(i)*10*time.Second))
		wantNoErrors(t, r)
		if g := r.GPUs[0]; g.Joules != s.wantJ || g.Method != s.method {
			t.Fatalf("step %d: %v J %q; want %v J %q", i, g.Joules, g.Method, s.wantJ, s.method)
		}
	}
}

func TestExporterClosed(t *testing.T) {
	_, b := newScripted(t, readFixture(t, "dcgm_exporter_l4_gpu_operator.prom"), Config{})
	if b.Name() != NameDCGMExporter {
		t.Fatalf("Name() = %q", b.Name())
	}
	b.Close()
	if _, err := b.Sample(context.Background(), t0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sample after Close: %v", err)
	}
}
