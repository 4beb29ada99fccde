package carbon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The key test: a known hourly series (the recorded Electricity Maps
// history for DE, served over HTTP) and a known energy trace give exactly
// Σ E·I computed by hand, across hour boundaries, and differ from the
// annual-average product.
func TestTimeMatchedEmissionsAcrossHourBoundaries(t *testing.T) {
	tok, _ := secretFile(t, "em-token-1")
	srv := emServer(t, "em-token-1")
	clock := newClock("2024-03-06T19:30:00Z")
	chain, err := NewChain(ChainOptions{Clock: clock},
		Link{Provider: newEM(t, srv.URL, clock, tok), MaxAge: 2 * time.Hour},
		Link{Provider: newStaticT(t)})
	if err != nil {
		t.Fatal(err)
	}
	calc, err := NewCalculator(chain, "DE", nil)
	if err != nil {
		t.Fatal(err)
	}
	acc := NewAccumulator(calc)
	ctx := context.Background()

	// The recorded hourly values used below (g/kWh):
	// 03-05 20h 599, 21h 607, 22h 599, 23h 606; 03-06 00h 623,
	// 05h 635, 06h 632, 07h 616.
	trace := []Interval{
		{mustTime("2024-03-05T20:00:00Z"), mustTime("2024-03-05T20:30:00Z"), 1.8e6},  // 0.5 kWh inside 20h
		{mustTime("2024-03-05T20:30:00Z"), mustTime("2024-03-05T21:30:00Z"), 3.6e6},  // 1 kWh, half in 20h, half in 21h
		{mustTime("2024-03-05T21:45:00Z"), mustTime("2024-03-05T23:15:00Z"), 5.4e6},  // 1.5 kWh: 15 min 21h, 60 min 22h, 15 min 23h
		{mustTime("2024-03-05T23:50:00Z"), mustTime("2024-03-06T00:10:00Z"), 0.72e6}, // 0.2 kWh across midnight
		{mustTime("2024-03-06T05:20:00Z"), mustTime("2024-03-06T07:05:00Z"), 7.2e6},  // 2 kWh over 105 min: 40 in 05h, 60 in 06h, 5 in 07h
	}
	want := 0.5*599 +
		0.5*599 + 0.5*607 +
		0.25*607 + 1.0*599 + 0.25*606 +
		0.1*606 + 0.1*623 +
		2*40.0/105*635 + 2*60.0/105*632 + 2*5.0/105*616
	wantSegments := 1 + 2 + 3 + 2 + 3
	var kwh float64
	segs := 0
	for _, iv := range trace {
		e, err := acc.Add(ctx, iv)
		if err != nil {
			t.Fatal(err)
		}
		// Conservation: the segments' energy adds up to the interval's.
		var sum Joules
		for _, s := range e.Segments {
			sum += s.Energy
			if s.Intensity.Provider != "electricitymaps" || len(s.Intensity.Provenance.Skipped) != 0 {
				t.Fatalf("segment %s..%s used %s", s.Start, s.End, s.Intensity)
			}
			if !s.Intensity.Contains(s.Start) || s.End.After(s.Intensity.ValidTo) {
				t.Fatalf("segment %s..%s outside its window %s", s.Start, s.End, s.Intensity)
			}
		}
		if !approx(float64(sum), float64(iv.Energy)) {
			t.Fatalf("segments hold %v J of %v J", sum, iv.Energy)
		}
		segs += len(e.Segments)
		kwh += float64(iv.Energy) / 3.6e6
	}
	tot := acc.Totals()
	if !approx(float64(tot.Location), want) {
		t.Fatalf("time-matched grams %.6f, hand-computed %.6f", float64(tot.Location), want)
	}
	if segs != wantSegments {
		t.Fatalf("%d segments, want %d", segs, wantSegments)
	}
	if !approx(kwh, 5.2) || !approx(float64(tot.Energy), 5.2*3.6e6) {
		t.Fatalf("energy %v kWh, totals %v J", kwh, tot.Energy)
	}
	// The annual-average product (static DE 2024 factor) is a different,
	// much lower number for this evening/night trace.
	annual := kwh * 336.38
	if d := float64(tot.Location) - annual; d < 0.3*annual {
		t.Fatalf("time-matched %.1f g vs annual-average %.1f g: expected them to differ clearly", float64(tot.Location), annual)
	}
	// Provenance of what was used.
	if len(tot.Sources) == 0 {
		t.Fatal("no sources recorded")
	}
	var srcEnergy Joules
	for _, s := range tot.Sources {
		srcEnergy += s.Energy
		if s.Provider != "electricitymaps" || s.Source != "Electricity Maps" || s.Fallback {
			t.Fatalf("source %+v", s)
		}
	}
	if !approx(float64(srcEnergy), float64(tot.Energy)) {
		t.Fatalf("sources cover %v of %v J", srcEnergy, tot.Energy)
	}
	if tot.HasMarket || tot.Market != 0 {
		t.Fatalf("market without instruments: %+v", tot)
	}
}

// fakeHourly is a location provider with a value per UTC hour.
type fakeHourly map[time.Time]GramsPerKWh

func (f fakeHourly) Name() string { return "hourly" }
func (f fakeHourly) Basis() Basis { return BasisLocation }
func (f fakeHourly) Intensity(_ context.Context, zone string, at time.Time) (Intensity, error) {
	h := at.UTC().Truncate(time.Hour)
	v, ok := f[h]
	if !ok {
		return Intensity{}, ErrNoData
	}
	return Intensity{Zone: zone, Value: v, ValidFrom: h, ValidTo: h.Add(time.Hour), Basis: BasisLocation, Provider: "hourly",
		Provenance: Provenance{Source: "test", Dataset: "hourly", Licence: "n/a", FactorType: FactorDirect}}, nil
}

func TestMarketBasis(t *testing.T) {
	h0 := mustTime("2024-01-01T10:00:00Z")
	series := fakeHourly{h0: 400, h0.Add(time.Hour): 200}
	iv := Interval{h0.Add(30 * time.Minute), h0.Add(90 * time.Minute), 7.2e6} // 2 kWh: 1 at 400, 1 at 200
	ctx := context.Background()
	supplier, residual := GramsPerKWh(120), GramsPerKWh(500)

	cases := []struct {
		name       string
		m          *Market
		wantMarket float64
		wantSource string
	}{
		{"supplier factor and 40% PPA", &Market{SupplierFactor: &supplier, SupplierSource: "Supplier X 2024", CoveredShare: 0.4, CoveredSource: "PPA Y"},
			2 * 0.6 * 120, "supplier factor: Supplier X 2024"},
		{"residual mix when no supplier factor", &Market{ResidualFactor: &residual, ResidualSource: "AIB 2024 DE"},
			2 * 500, "residual mix: AIB 2024 DE"},
		{"supplier wins over residual", &Market{SupplierFactor: &supplier, SupplierSource: "S", ResidualFactor: &residual, ResidualSource: "R"},
			2 * 120, "supplier factor: S"},
		{"location fallback, fully covered", &Market{CoveredShare: 1, CoveredSource: "RECs for all load"}, 0, "location factor of hourly used"},
		{"location fallback, half covered", &Market{CoveredShare: 0.5, CoveredSource: "GOs"}, 0.5 * (400 + 200), "location factor of hourly used"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			calc, err := NewCalculator(series, "DE", tc.m)
			if err != nil {
				t.Fatal(err)
			}
			e, err := calc.Emissions(ctx, iv)
			if err != nil {
				t.Fatal(err)
			}
			if !e.HasMarket || !approx(float64(e.Market), tc.wantMarket) {
				t.Fatalf("market %v, want %v", float64(e.Market), tc.wantMarket)
			}
			if !approx(float64(e.Location), 400+200) {
				t.Fatalf("location %v", float64(e.Location))
			}
			for _, s := range e.Segments {
				if !strings.Contains(s.MarketFactorSource, tc.wantSource) {
					t.Fatalf("market factor source %q", s.MarketFactorSource)
				}
			}
		})
	}
	bad := GramsPerKWh(-1)
	for name, m := range map[string]*Market{
		"share > 1":             {CoveredShare: 1.5, CoveredSource: "x"},
		"share without source":  {CoveredShare: 0.5},
		"negative factor":       {SupplierFactor: &bad, SupplierSource: "x"},
		"factor without source": {SupplierFactor: &supplier},
	} {
		if _, err := NewCalculator(series, "DE", m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCalculatorRefusesMarginal(t *testing.T) {
	pw, _ := secretFile(t, "pw")
	wt, _ := NewWattTime(WattTimeOptions{Username: "u", Password: pw})
	if _, err := NewCalculator(wt, "CAISO_NORTH", nil); !errors.Is(err, ErrBasis) {
		t.Fatalf("calculator over watttime: %v", err)
	}
	at := mustTime("2024-06-01T00:00:00Z")
	marg := &fixedProvider{name: "mystery", in: Intensity{Value: 500, ValidFrom: at, ValidTo: at.Add(time.Hour), Basis: BasisMarginal, Provider: "mystery"}}
	calc, err := NewCalculator(marg, "DE", nil)
	if err != nil {
		t.Fatal(err)
	}
	acc := NewAccumulator(calc)
	if _, err := acc.Add(context.Background(), Interval{at, at.Add(time.Minute), 1000}); !errors.Is(err, ErrBasis) {
		t.Fatalf("marginal value summed: %v", err)
	}
	if tot := acc.Totals(); tot.Energy != 0 || tot.Location != 0 {
		t.Fatalf("partial add: %+v", tot)
	}
}

func TestCalculatorIntervalChecks(t *testing.T) {
	h0 := mustTime("2024-01-01T10:00:00Z")
	calc, _ := NewCalculator(fakeHourly{h0: 100}, "DE", nil)
	ctx := context.Background()
	for name, iv := range map[string]Interval{
		"negative energy":   {h0, h0.Add(time.Minute), -1},
		"reversed":          {h0.Add(time.Minute), h0, 1},
		"energy in no time": {h0, h0, 5},
	} {
		if _, err := calc.Emissions(ctx, iv); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if e, err := calc.Emissions(ctx, Interval{h0, h0, 0}); err != nil || e.Location != 0 {
		t.Errorf("empty interval: %v %v", e, err)
	}
	// A lookup failure fails the interval.
	if _, err := calc.Emissions(ctx, Interval{h0.Add(30 * time.Minute), h0.Add(90 * time.Minute), 1}); !errors.Is(err, ErrNoData) {
		t.Errorf("missing hour: %v", err)
	}
}

// A stale value accepted by a chain (its window ended before the interval)
// is applied to the whole remaining interval, and the chain's note shows.
func TestCalculatorWithStaleAcceptedValue(t *testing.T) {
	h := mustTime("2024-01-01T10:00:00Z")
	old := &fixedProvider{name: "lagging", in: Intensity{Zone: "DE", Value: 300, ValidFrom: h, ValidTo: h.Add(time.Hour), Basis: BasisLocation, Provider: "lagging"}}
	chain, _ := NewChain(ChainOptions{Clock: newClock("2024-01-01T11:30:00Z")}, Link{Provider: old, MaxAge: time.Hour})
	calc, _ := NewCalculator(chain, "DE", nil)
	e, err := calc.Emissions(context.Background(), Interval{h.Add(80 * time.Minute), h.Add(100 * time.Minute), 3.6e6})
	if err != nil || len(e.Segments) != 1 || !approx(float64(e.Location), 300) {
		t.Fatalf("%v %+v", err, e)
	}
}

func benchCalc(b *testing.B) *Calculator {
	h0 := mustTime("2024-01-01T00:00:00Z")
	series := fakeHourly{}
	for i := range 48 {
		series[h0.Add(time.Duration(i)*time.Hour)] = GramsPerKWh(300 + i)
	}
	chain, _ := NewChain(ChainOptions{Clock: newClock("2024-01-03T00:00:00Z")}, Link{Provider: series})
	supplier := GramsPerKWh(100)
	calc, err := NewCalculator(chain, "DE", &Market{SupplierFactor: &supplier, SupplierSource: "s", CoveredShare: 0.3, CoveredSource: "p"})
	if err != nil {
		b.Fatal(err)
	}
	return calc
}

// BenchmarkAccumulatorAdd is one 5 s sampling tick through a chain with a
// cached hourly value (the agent's hot path).
func BenchmarkAccumulatorAdd(b *testing.B) {
	acc := NewAccumulator(benchCalc(b))
	ctx := context.Background()
	t0 := mustTime("2024-01-01T00:00:00Z")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := t0.Add(time.Duration(i%(36*720)) * 5 * time.Second)
		if _, err := acc.Add(ctx, Interval{s, s.Add(5 * time.Second), 1500}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCalculatorStraddling is a 90 min interval split over 3 hours.
func BenchmarkCalculatorStraddling(b *testing.B) {
	calc := benchCalc(b)
	ctx := context.Background()
	s := mustTime("2024-01-01T10:45:00Z")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := calc.Emissions(ctx, Interval{s, s.Add(90 * time.Minute), 1e6}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMarginalCalculatorTimeMatches: a marginal calculator splits an
// interval at the marginal windows' boundaries like the location one,
// fills Marginal only, and refuses location values (and location
// providers), so the two bases never mix.
func TestMarginalCalculatorTimeMatches(t *testing.T) {
	at := mustTime("2024-06-01T00:00:00Z")
	series := fakeMarginal{at: 400, at.Add(5 * time.Minute): 800}
	calc, err := NewMarginalCalculator(series, "CAISO_NORTH")
	if err != nil {
		t.Fatal(err)
	}
	// 3.6e6 J = 1 kWh over [2.5 min, 7.5 min): half at 400, half at 800 g/kWh.
	em, err := calc.Emissions(context.Background(), Interval{at.Add(150 * time.Second), at.Add(450 * time.Second), 3.6e6})
	if err != nil {
		t.Fatal(err)
	}
	if !approx(float64(em.Marginal), 600) || em.Location != 0 || em.Market != 0 || len(em.Segments) != 2 {
		t.Fatalf("marginal %v g, location %v g, market %v g, %d segments; want 600 g marginal only over 2 segments",
			em.Marginal, em.Location, em.Market, len(em.Segments))
	}
	if _, err := NewMarginalCalculator(newStaticT(t), "DE"); !errors.Is(err, ErrBasis) {
		t.Fatalf("marginal calculator over the static table: %v", err)
	}
	loc := &fixedProvider{name: "mystery", in: Intensity{Value: 300, ValidFrom: at, ValidTo: at.Add(time.Hour), Basis: BasisLocation, Provider: "mystery"}}
	mc, err := NewMarginalCalculator(loc, "DE")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.Emissions(context.Background(), Interval{at, at.Add(time.Minute), 1000}); !errors.Is(err, ErrBasis) {
		t.Fatalf("location value in marginal emissions: %v", err)
	}
}

// fakeMarginal is a marginal provider with a value per 5-minute window.
type fakeMarginal map[time.Time]GramsPerKWh

func (f fakeMarginal) Name() string { return "marginal" }
func (f fakeMarginal) Basis() Basis { return BasisMarginal }
func (f fakeMarginal) Intensity(_ context.Context, zone string, at time.Time) (Intensity, error) {
	w := at.UTC().Truncate(5 * time.Minute)
	v, ok := f[w]
	if !ok {
		return Intensity{}, ErrNoData
	}
	return Intensity{Zone: zone, Value: v, ValidFrom: w, ValidTo: w.Add(5 * time.Minute), Basis: BasisMarginal, Provider: "marginal",
		Provenance: Provenance{Source: "test", Dataset: "5-minute", Licence: "n/a", FactorType: FactorUnspecified}}, nil
}
