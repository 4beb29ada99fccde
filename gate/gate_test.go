package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/inferensys/aiwatt/internal/promtest"
)

// history is two hours of a training run at a steady 1 kW of GPU and 200 W
// of CPU, sampled every 15 s, with an agent restart (counter reset) half way,
// plus an unrelated project.
func history(start time.Time) (string, time.Time) {
	var b strings.Builder
	b.WriteString("# TYPE aiwatt_workload_energy_joules counter\n")
	const step = 15
	end := start
	series := []struct {
		labels string
		watts  float64
	}{
		{`component="gpu",project="llm",run_id="r1"`, 1000},
		{`component="cpu",project="llm",run_id="r1"`, 200},
		{`component="gpu",project="other",run_id="x"`, 5000},
	}
	for _, s := range series {
		var total float64
		for i := 0; i <= 2*3600/step; i++ {
			ts := start.Add(time.Duration(i*step) * time.Second)
			if i == 3600/step+7 {
				total = 0 // The agent restarted: Prometheus sees a reset.
			} else if i > 0 {
				total += s.watts * step
			}
			fmt.Fprintf(&b, "aiwatt_workload_energy_joules_total{%s} %g %d\n", s.labels, total, ts.Unix())
			end = ts
		}
	}
	b.WriteString("# EOF\n")
	return b.String(), end
}

func TestCheckAgainstPrometheus(t *testing.T) {
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	om, end := history(start)
	srv := promtest.Start(t, promtest.Options{OpenMetrics: om})
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	q := v1.NewAPI(client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// One hour at 1.2 kW is 1.2 kWh; the reset inside the window loses the
	// one 15 s interval Prometheus cannot see (1.2 kW × 15 s = 5 Wh).
	const wantJ = 1.2 * 3.6e6
	for _, tc := range []struct {
		name    string
		budget  string
		over    bool
		verdict string
	}{
		{"under", "2kWh", false, VerdictPass},
		{"over", "1kWh", true, VerdictOver},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget, err := ParseEnergy(tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Check(ctx, q, Request{Selector: `{project="llm",run_id="r1"}`, Window: time.Hour, Budget: budget, At: end})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.Joules-wantJ)/wantJ > 0.01 {
				t.Fatalf("energy %v J, want %v J within 1%%", r.Joules, wantJ)
			}
			if r.Over != tc.over || Verdict(r, nil) != tc.verdict {
				t.Fatalf("verdict %+v", r)
			}
			if want := 0; tc.over {
				want = 1
				if ExitCode(r, nil) != want {
					t.Fatalf("exit code %d", ExitCode(r, nil))
				}
			} else if ExitCode(r, nil) != want {
				t.Fatalf("exit code %d", ExitCode(r, nil))
			}
		})
	}
	t.Run("no data is an error", func(t *testing.T) {
		r, err := Check(ctx, q, Request{Selector: `project="llm",run_id="typo"`, Window: time.Hour, Budget: 1e9, At: end})
		if !errors.Is(err, ErrNoData) || ExitCode(r, err) != 2 {
			t.Fatalf("want ErrNoData and exit 2, got %v %d", err, ExitCode(r, err))
		}
	})
	t.Run("bad query is an error", func(t *testing.T) {
		_, err := Check(ctx, q, Request{Selector: `{project=}`, Window: time.Hour, Budget: 1, At: end})
		if err == nil || !strings.Contains(err.Error(), "query") {
			t.Fatalf("bad selector: %v", err)
		}
	})
	t.Run("two series are refused", func(t *testing.T) {
		_, err := Check(ctx, q, Request{Query: `increase(aiwatt_workload_energy_joules_total{project="llm"}[1h])`, Budget: 1, At: end})
		if err == nil || !strings.Contains(err.Error(), "2 series") {
			t.Fatalf("two series: %v", err)
		}
	})
}

func TestParseEnergy(t *testing.T) {
	for in, want := range map[string]float64{
		"50kWh": 50 * 3.6e6, "12 kWh": 12 * 3.6e6, "3.6MJ": 3.6e6, "500Wh": 500 * 3600, "1000J": 1000,
		"2 MWh": 2 * 3.6e9, "1.5GJ": 1.5e9, "0.5 kwh": 0.5 * 3.6e6, "7kJ": 7000,
	} {
		got, err := ParseEnergy(in)
		if err != nil || math.Abs(got-want) > 1e-6 {
			t.Errorf("ParseEnergy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "kWh", "12", "12 bananas", "-1kWh", "NaNkWh", "1e400kWh"} {
		if _, err := ParseEnergy(bad); err == nil {
			t.Errorf("ParseEnergy(%q) accepted", bad)
		}
	}
}

func TestRender(t *testing.T) {
	over := Result{Query: "q", Window: "1h", Joules: 7.2e6, BudgetJoules: 3.6e6, Used: 2, Over: true}
	pass := Result{Query: "q", Window: "1h", Joules: 1.8e6, BudgetJoules: 3.6e6, Used: 0.5}
	for _, tc := range []struct {
		r        Result
		err      error
		contains []string
	}{
		{over, nil, []string{"OVER BUDGET", "2 kWh used of 1 kWh (200.0%)"}},
		{pass, nil, []string{"within budget", "500 Wh used of 1 kWh (50.0%)"}},
		{Result{Query: "q"}, ErrNoData, []string{"ERROR", "no data"}},
	} {
		var b bytes.Buffer
		if err := Render(&b, FormatText, tc.r, tc.err); err != nil {
			t.Fatal(err)
		}
		for _, c := range tc.contains {
			if !strings.Contains(b.String(), c) {
				t.Errorf("text %q lacks %q", b.String(), c)
			}
		}
	}
	var b bytes.Buffer
	if err := Render(&b, FormatJSON, over, nil); err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b.Bytes(), &j); err != nil || j["verdict"] != VerdictOver || j["kwh"] != 2.0 {
		t.Fatalf("json %s: %v", b.String(), err)
	}
	for _, tc := range []struct {
		r                Result
		err              error
		failures, errors int
	}{{over, nil, 1, 0}, {pass, nil, 0, 0}, {Result{}, ErrNoData, 0, 1}} {
		b.Reset()
		if err := Render(&b, FormatJUnit, tc.r, tc.err); err != nil {
			t.Fatal(err)
		}
		var s junitSuites
		if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
			t.Fatalf("junit %s: %v", b.String(), err)
		}
		if s.Suites[0].Failures != tc.failures || s.Suites[0].Errors != tc.errors || s.Suites[0].Tests != 1 {
			t.Errorf("junit %+v", s.Suites[0])
		}
	}
	if err := Render(&b, "yaml", pass, nil); err == nil {
		t.Fatal("unknown format accepted")
	}
}

// fakeQuerier answers every query with one value and the given warnings.
type fakeQuerier struct {
	value    model.Value
	warnings v1.Warnings
}

func (f fakeQuerier) Query(context.Context, string, time.Time, ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	return f.value, f.warnings, nil, nil
}

func TestCheckRefusesUntrustworthyResults(t *testing.T) {
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	vec := func(v float64) model.Value {
		return model.Vector{{Value: model.SampleValue(v), Timestamp: model.TimeFromUnix(at.Unix())}}
	}
	for _, tc := range []struct {
		name string
		q    fakeQuerier
		want []string
	}{
		{"negative", fakeQuerier{value: vec(-5e6)}, []string{"negative energy", "-1.389 kWh"}},
		{"negative scalar", fakeQuerier{value: &model.Scalar{Value: -1}}, []string{"negative energy", "-1 J"}},
		{"partial under budget", fakeQuerier{value: vec(1e3), warnings: v1.Warnings{"partial response: store eu-1 unavailable"}},
			[]string{"may be partial", "store eu-1 unavailable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Check(context.Background(), tc.q, Request{Selector: `{project="x"}`, Window: time.Hour, Budget: 3.6e6, At: at})
			if !errors.Is(err, ErrBadData) || ExitCode(r, err) != 2 || Verdict(r, err) != VerdictError {
				t.Fatalf("err %v, exit %d", err, ExitCode(r, err))
			}
			var b bytes.Buffer
			if err := Render(&b, FormatText, r, err); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output %q lacks %q", b.String(), w)
				}
			}
		})
	}
	// Zero and a clean answer still pass.
	r, err := Check(context.Background(), fakeQuerier{value: vec(0)}, Request{Selector: `{project="x"}`, Window: time.Hour, Budget: 1, At: at})
	if err != nil || ExitCode(r, err) != 0 {
		t.Fatalf("zero: %v %d", err, ExitCode(r, err))
	}
}

func TestParseEnergyRefusesMilli(t *testing.T) {
	for in, want := range map[string]string{
		"5mJ": "write MJ", "5 mWh": "write MWh", "5mj": "write MJ", "1 mwh": "write MWh",
	} {
		_, err := ParseEnergy(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "milli") {
			t.Errorf("ParseEnergy(%q): %v, want %q", in, err, want)
		}
	}
	for in, want := range map[string]float64{"5MJ": 5e6, "5 MWh": 5 * 3.6e9, "5 Mwh": 5 * 3.6e9, "5 KWH": 5 * 3.6e6} {
		if got, err := ParseEnergy(in); err != nil || got != want {
			t.Errorf("ParseEnergy(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
