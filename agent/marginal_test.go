package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/carbon"
)

// wattTimeFake answers WattTime's login and historical MOER with a value
// per 5-minute window (moer(window start), in lbs/MWh), or 500 while down.
func wattTimeFake(t *testing.T, moer func(time.Time) float64, down *atomic.Bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			fmt.Fprint(w, `{"token":"tok"}`)
			return
		case "/v3/historical":
		default:
			http.NotFound(w, r)
			return
		}
		if down.Load() {
			http.Error(w, "unavailable", http.StatusInternalServerError)
			return
		}
		start, err1 := time.Parse(time.RFC3339, r.URL.Query().Get("start"))
		end, err2 := time.Parse(time.RFC3339, r.URL.Query().Get("end"))
		if err1 != nil || err2 != nil {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		var pts []string
		for p := start.Truncate(5 * time.Minute); p.Before(end); p = p.Add(5 * time.Minute) {
			pts = append(pts, fmt.Sprintf(`{"point_time":%q,"value":%g}`, p.Format(time.RFC3339), moer(p)))
		}
		fmt.Fprintf(w, `{"data":[%s],"meta":{"data_point_period_seconds":300,"region":"CAISO_NORTH","signal_type":"co2_moer","units":"lbs_co2_per_mwh"}}`,
			strings.Join(pts, ","))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAgentMarginalCO2e: with carbon.marginal, each tick's workload energy
// is also multiplied by the marginal intensity over the tick (time-matched
// across WattTime's 5-minute windows) into a ledger of its own; the
// location CO2e is exactly what it is without a marginal provider; the
// marginal intensity is exported with basis="marginal"; and once the
// provider fails, the failure is counted under its target (once: it backs
// off), the carbon source stays up and location CO2e goes on, while marginal
// CO2e follows the chain's rule: the failed refresh at a window's end serves
// the previous value within max_age for that tick, and past max_age the
// marginal CO2e pauses.
func TestAgentMarginalCO2e(t *testing.T) {
	var down atomic.Bool
	// 1000 lbs/MWh in even windows, 2000 in odd ones.
	moer := func(p time.Time) float64 { return float64(1000 * (1 + p.Unix()/300%2)) }
	wt := wattTimeFake(t, moer, &down)
	sys := fixture(t, "intel-2socket")
	proc := fakeProc{t: t, root: t.TempDir()}
	proc.stat(0, 0)
	proc.process(100, "python", "python train.py", "/system.slice/train.service", 0, 0)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "aiwatt.yml")
	writeConfig(t, cfgPath, `
gpu:
  backend: none
workloads:
  rules:
    - name: training
      match: {cmdline: 'train\.py'}
      labels: {project: vision, model_id: m, workload_type: training}
carbon:
  zone: DE
  marginal:
    type: watttime
    zone: CAISO_NORTH
    base_url: `+wt.URL+`
    username: aiwatt
    password: {file: `+pw+`}
    max_age: 1s
`)
	cfg, err := LoadConfigFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock() // 12:00:00, a window boundary
	a, err := New(Options{Interval: 5 * time.Second, SysfsRoot: sys, ProcfsRoot: proc.root, ConfigFile: cfgPath, Clock: clk.now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Tick()

	key := attribution.Key{Project: "vision", ModelID: "m", WorkloadType: "training"}
	var wantLoc, wantMarg float64
	cpuTime := uint64(0)
	// Ticks of 200 s, so the second straddles a 5-minute window boundary.
	// The provider is down from tick 4 on, which needs a new window.
	const tick = 200 * time.Second
	for i := 1; i <= 5; i++ {
		down.Store(i >= 4)
		from := clk.now()
		cpuTime += 400 * 200 // 4 CPUs fully busy for 200 s, all of it the trainer's
		proc.stat(cpuTime, 0)
		proc.process(100, "python", "python train.py", "/system.slice/train.service", cpuTime, 0)
		addUJ(t, sys, "intel-rapl:0", 36_000_000) // 36 J
		clk.step(tick)
		s := a.Tick()

		var got *WorkloadEnergy
		for j := range s.Attribution.Workloads {
			if attribution.Key(s.Attribution.Workloads[j].Key) == key {
				got = &s.Attribution.Workloads[j]
			}
		}
		if got == nil {
			t.Fatalf("tick %d: workloads %+v", i, s.Attribution.Workloads)
		}
		in := staticIntensity(t, "DE", from)
		tickKWh := 36.0 / 3.6e6 // each tick's share: the whole package delta is the trainer's
		wantLoc += tickKWh * float64(in.Value)
		switch {
		case i < 4:
			// Time-matched: each second of the tick at its window's MOER.
			for s := from; s.Before(clk.now()); s = s.Add(time.Second) {
				wantMarg += tickKWh / tick.Seconds() * float64(carbon.LbsPerMWh(moer(s.Truncate(5*time.Minute))))
			}
		case i == 4:
			// The refresh at 12:10 fails; the window that just ended is within max_age.
			wantMarg += tickKWh * float64(carbon.LbsPerMWh(moer(from.Add(-time.Second).Truncate(5*time.Minute))))
		}
		if sum := got.Joules[0] + got.Joules[1] + got.Joules[2]; !near(sum, 36*float64(i)) {
			t.Fatalf("tick %d: trainer %v J, want %v J", i, got.Joules, 36*i)
		}
		if !near(got.CO2eLocation, wantLoc) {
			t.Fatalf("tick %d: location %v g, want %v g (as without a marginal provider)", i, got.CO2eLocation, wantLoc)
		}
		if !got.HasMarginal || !near(got.CO2eMarginal, wantMarg) {
			t.Fatalf("tick %d: marginal %v g (has %v), want %v g", i, got.CO2eMarginal, got.HasMarginal, wantMarg)
		}
		var marg *Intensity
		for j, x := range s.Attribution.Intensity {
			if x.Basis == "marginal" {
				marg = &s.Attribution.Intensity[j]
			}
		}
		if marg == nil || marg.Provider != "watttime" || marg.Zone != "CAISO_NORTH" || s.Attribution.Intensity[0].Basis != "location" {
			t.Fatalf("tick %d: intensities %+v", i, s.Attribution.Intensity)
		}
		if st, ok := status(s, SourceCarbon); !ok || !st.Up {
			t.Fatalf("tick %d: carbon %+v, want up whatever the marginal provider does", i, st)
		}
		var target *SourceStatus
		for j := range s.Sources {
			if s.Sources[j].Name == SourceCarbon && s.Sources[j].Target == "watttime" {
				target = &s.Sources[j]
			}
		}
		switch {
		case i < 4:
			if target != nil {
				t.Fatalf("tick %d: a watttime target %+v before any failure", i, target)
			}
		default:
			// One counted failure: tick 5 falls in the backoff and calls nothing.
			if target == nil || target.Up || target.Errors["http_status"] != 1 {
				t.Fatalf("tick %d: watttime target %+v, want down with one http_status", i, target)
			}
		}
	}

	// A reload with the same settings keeps the chain and the intensities
	// last applied: with the provider still failing, the marginal series
	// stay exported, unchanged, instead of vanishing.
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	proc.stat(cpuTime, 0)
	clk.step(tick)
	s := a.Tick()
	for _, w := range s.Attribution.Workloads {
		if attribution.Key(w.Key) == key && (!w.HasMarginal || !near(w.CO2eMarginal, wantMarg)) {
			t.Fatalf("after a reload: marginal %v g (has %v), want %v g", w.CO2eMarginal, w.HasMarginal, wantMarg)
		}
	}
	if n := len(s.Attribution.Intensity); n != 2 || s.Attribution.Intensity[1].Basis != "marginal" {
		t.Fatalf("after a reload: intensities %+v, want location and marginal", s.Attribution.Intensity)
	}
}
