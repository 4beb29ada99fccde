package carbon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Market holds the contractual instruments used for market-based (GHG
// Protocol Scope 2) emissions. For energy E drawn while the location
// intensity is I:
//
//	market grams = E_kWh × (1 − CoveredShare) × F
//	F = SupplierFactor   if set (supplier-specific emission factor)
//	  = ResidualFactor   else, if set (residual mix of the grid)
//	  = I                else (location factor; the provenance says so)
//
// CoveredShare is the fraction (0..1) of consumption matched by PPAs, RECs
// or GOs; that share counts at zero. The location-based total is always
// E_kWh × I.
type Market struct {
	// SupplierFactor is the supplier-specific emission factor; nil if none.
	SupplierFactor *GramsPerKWh
	// SupplierSource documents SupplierFactor (supplier, product, year).
	SupplierSource string
	// ResidualFactor is the residual-mix factor used when there is no
	// supplier factor; nil if none.
	ResidualFactor *GramsPerKWh
	// ResidualSource documents ResidualFactor.
	ResidualSource string
	// CoveredShare is the share of consumption covered by PPAs/RECs/GOs,
	// 0..1.
	CoveredShare float64
	// CoveredSource documents the instruments (e.g. "PPA Windpark X 2025,
	// 60% of site load").
	CoveredSource string
}

// Validate checks ranges and that every factor used is documented.
func (m *Market) Validate() error {
	if !(m.CoveredShare >= 0 && m.CoveredShare <= 1) {
		return fmt.Errorf("market: covered share %v outside [0, 1]", m.CoveredShare)
	}
	if m.CoveredShare > 0 && m.CoveredSource == "" {
		return errors.New("market: a covered share needs covered_source naming the instruments")
	}
	for _, f := range []struct {
		name string
		v    *GramsPerKWh
		src  string
	}{{"supplier", m.SupplierFactor, m.SupplierSource}, {"residual", m.ResidualFactor, m.ResidualSource}} {
		if f.v == nil {
			continue
		}
		if !(*f.v >= 0) || *f.v > 2000 {
			return fmt.Errorf("market: %s factor %v out of range [0, 2000] g/kWh", f.name, float64(*f.v))
		}
		if f.src == "" {
			return fmt.Errorf("market: the %s factor needs a source", f.name)
		}
	}
	return nil
}

// factor returns F (see Market) for location intensity loc, and where it
// came from.
func (m *Market) factor(loc Intensity) (GramsPerKWh, string) {
	switch {
	case m.SupplierFactor != nil:
		return *m.SupplierFactor, "supplier factor: " + m.SupplierSource
	case m.ResidualFactor != nil:
		return *m.ResidualFactor, "residual mix: " + m.ResidualSource
	}
	return loc.Value, "no supplier or residual factor configured: location factor of " + loc.Provider + " used"
}

// Interval is energy drawn over [Start, End).
type Interval struct {
	Start, End time.Time
	Energy     Joules
}

// Segment is the part of an Interval that one intensity window covers.
type Segment struct {
	Start, End time.Time
	// Energy is the interval's energy pro rata by time.
	Energy Joules
	// Intensity is the location intensity used.
	Intensity Intensity
	// Location is Energy × Intensity.
	Location Grams
	// MarketFactor is F in the Market formula; zero without a Market.
	MarketFactor GramsPerKWh
	// MarketFactorSource says where MarketFactor came from.
	MarketFactorSource string
	// Market is Energy × (1 − CoveredShare) × MarketFactor.
	Market Grams
	// Marginal is Energy × Intensity for a marginal Calculator (Location
	// and Market are then zero).
	Marginal Grams
}

// Emissions is the result for one interval.
type Emissions struct {
	Energy    Joules
	Location  Grams
	Market    Grams // zero and meaningless unless HasMarket
	HasMarket bool
	// Marginal is the marginal (avoided or induced) emissions of a marginal
	// Calculator; a location Calculator leaves it zero. It is a steering
	// signal and never part of Location or Market.
	Marginal Grams
	Segments []Segment
}

// Calculator turns energy intervals into time-matched emissions: each part
// of an interval is multiplied by the location intensity valid at that
// time, and an interval that straddles a boundary between two intensity
// windows is split pro rata by time:
//
//	grams = Σ_segments E × (seg.End − seg.Start)/(End − Start) / 3.6e6 × I(seg)
//
// A Calculator has one basis. NewCalculator's accepts only location-basis
// intensities; a marginal (or market) value fails with ErrBasis, so a
// steering signal never leaks into an inventory total.
// NewMarginalCalculator's accepts only marginal values and fills
// Emissions.Marginal alone.
type Calculator struct {
	lookup Provider
	zone   string
	market *Market
	basis  Basis
}

// NewCalculator returns a Calculator that asks lookup (usually a
// location-basis *Chain) for zone. market may be nil (no market basis).
func NewCalculator(lookup Provider, zone string, market *Market) (*Calculator, error) {
	if lookup == nil {
		return nil, errors.New("carbon: calculator needs an intensity provider")
	}
	if b, ok := lookup.(basisOf); ok && b.Basis() != BasisLocation {
		return nil, fmt.Errorf("carbon: %s provides %s intensity; emissions totals need location intensity: %w",
			lookup.Name(), b.Basis(), ErrBasis)
	}
	if market != nil {
		if err := market.Validate(); err != nil {
			return nil, err
		}
		m := *market
		market = &m
	}
	return &Calculator{lookup: lookup, zone: zone, market: market, basis: BasisLocation}, nil
}

// NewMarginalCalculator returns a Calculator that asks lookup (usually a
// marginal-basis *Chain) for zone and time-matches marginal intensities
// exactly as NewCalculator's does location ones. Its results are in
// Emissions.Marginal only.
func NewMarginalCalculator(lookup Provider, zone string) (*Calculator, error) {
	if lookup == nil {
		return nil, errors.New("carbon: marginal calculator needs an intensity provider")
	}
	if b, ok := lookup.(basisOf); ok && b.Basis() != BasisMarginal {
		return nil, fmt.Errorf("carbon: %s provides %s intensity; marginal emissions need marginal intensity: %w",
			lookup.Name(), b.Basis(), ErrBasis)
	}
	return &Calculator{lookup: lookup, zone: zone, basis: BasisMarginal}, nil
}

// Emissions computes the emissions of iv. It returns an error (and no
// partial result) if any intensity lookup fails or offers the wrong basis.
func (c *Calculator) Emissions(ctx context.Context, iv Interval) (Emissions, error) {
	if !(iv.Energy >= 0) {
		return Emissions{}, fmt.Errorf("carbon: interval energy %v J is negative", float64(iv.Energy))
	}
	span := iv.End.Sub(iv.Start)
	if span < 0 {
		return Emissions{}, fmt.Errorf("carbon: interval ends before it starts")
	}
	out := Emissions{Energy: iv.Energy, HasMarket: c.market != nil}
	if span == 0 {
		if iv.Energy != 0 {
			return Emissions{}, fmt.Errorf("carbon: %v J in an empty interval", float64(iv.Energy))
		}
		return out, nil
	}
	segs := make([]Segment, 0, 2)
	for t := iv.Start; t.Before(iv.End); {
		in, err := c.lookup.Intensity(ctx, c.zone, t)
		if err != nil {
			return Emissions{}, err
		}
		if in.Basis != c.basis {
			return Emissions{}, fmt.Errorf("carbon: refusing %s intensity from %s in %s emissions: %w",
				in.Basis, in.Provider, c.basis, ErrBasis)
		}
		end := iv.End
		// Split at the window's end if it falls inside the interval. A value
		// that does not cover t (a stale value a Chain accepted) is used for
		// the rest of the interval.
		if in.Contains(t) && in.ValidTo.Before(end) {
			end = in.ValidTo
		}
		var e Joules
		if end.Equal(iv.End) && t.Equal(iv.Start) {
			e = iv.Energy
		} else {
			e = Joules(float64(iv.Energy) * float64(end.Sub(t)) / float64(span))
		}
		s := Segment{Start: t, End: end, Energy: e, Intensity: in}
		if c.basis == BasisMarginal {
			s.Marginal = in.Value.Emissions(e)
		} else {
			s.Location = in.Value.Emissions(e)
		}
		if c.market != nil {
			s.MarketFactor, s.MarketFactorSource = c.market.factor(in)
			s.Market = Grams(float64(s.MarketFactor.Emissions(e)) * (1 - c.market.CoveredShare))
		}
		out.Location += s.Location
		out.Market += s.Market
		out.Marginal += s.Marginal
		segs = append(segs, s)
		t = end
	}
	out.Segments = segs
	return out, nil
}

// SourceUse is one intensity source that contributed to a total, with how
// much energy it covered.
type SourceUse struct {
	Provider   string
	Zone       string
	Source     string
	Dataset    string
	Licence    string
	FactorType FactorType
	// From and To bound the time it was used for.
	From, To time.Time
	// Energy covered and Location grams attributed with this source.
	Energy   Joules
	Location Grams
	// Estimated is true if any value used was estimated or forecast.
	Estimated bool
	// Fallback is true if any value used came after skipping a provider.
	Fallback bool
	// MarketFactorSources lists where market factors came from.
	MarketFactorSources []string
}

// Totals is the running sum of an Accumulator.
type Totals struct {
	Energy    Joules
	Location  Grams
	Market    Grams
	HasMarket bool
	// Sources are the intensity sources used, by first use.
	Sources []SourceUse
}

// Accumulator sums the emissions of a sequence of intervals and records the
// provenance of every intensity used. It is safe for concurrent use.
type Accumulator struct {
	calc *Calculator

	mu     sync.Mutex
	totals Totals
	index  map[sourceKey]int
}

type sourceKey struct {
	provider, zone, source, dataset, licence string
	factor                                   FactorType
}

// NewAccumulator returns an empty accumulator over calc.
func NewAccumulator(calc *Calculator) *Accumulator {
	return &Accumulator{calc: calc, index: map[sourceKey]int{}, totals: Totals{HasMarket: calc.market != nil}}
}

// Add computes iv's emissions and adds them to the totals. On error nothing
// is added.
func (a *Accumulator) Add(ctx context.Context, iv Interval) (Emissions, error) {
	e, err := a.calc.Emissions(ctx, iv)
	if err != nil {
		return Emissions{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.totals.Energy += e.Energy
	a.totals.Location += e.Location
	a.totals.Market += e.Market
	for _, s := range e.Segments {
		p := s.Intensity.Provenance
		k := sourceKey{s.Intensity.Provider, s.Intensity.Zone, p.Source, p.Dataset, p.Licence, p.FactorType}
		i, ok := a.index[k]
		if !ok {
			i = len(a.totals.Sources)
			a.index[k] = i
			a.totals.Sources = append(a.totals.Sources, SourceUse{Provider: k.provider, Zone: k.zone,
				Source: k.source, Dataset: k.dataset, Licence: k.licence, FactorType: k.factor, From: s.Start, To: s.End})
		}
		u := &a.totals.Sources[i]
		if s.Start.Before(u.From) {
			u.From = s.Start
		}
		if s.End.After(u.To) {
			u.To = s.End
		}
		u.Energy += s.Energy
		u.Location += s.Location
		u.Estimated = u.Estimated || p.Estimated
		u.Fallback = u.Fallback || len(p.Skipped) > 0
		if s.MarketFactorSource != "" {
			j := sort.SearchStrings(u.MarketFactorSources, s.MarketFactorSource)
			if j == len(u.MarketFactorSources) || u.MarketFactorSources[j] != s.MarketFactorSource {
				u.MarketFactorSources = append(u.MarketFactorSources, "")
				copy(u.MarketFactorSources[j+1:], u.MarketFactorSources[j:])
				u.MarketFactorSources[j] = s.MarketFactorSource
			}
		}
	}
	return e, nil
}

// Totals returns a copy of the running totals.
func (a *Accumulator) Totals() Totals {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.totals
	t.Sources = make([]SourceUse, len(a.totals.Sources))
	for i, s := range a.totals.Sources {
		s.MarketFactorSources = append([]string(nil), s.MarketFactorSources...)
		t.Sources[i] = s
	}
	return t
}
