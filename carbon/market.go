package carbon

import "fmt"

// MarketProviderName is the Provider of market-basis values derived by
// Market.Intensity.
const MarketProviderName = "market"

// Intensity derives the market-based intensity of the site's consumption
// from the location intensity loc:
//
//	(1 − CoveredShare) × F
//
// with F as described on Market (supplier factor, else residual mix, else
// the location value). Energy × this value equals the market grams of the
// Calculator. The result has BasisMarket, Provider MarketProviderName, loc's
// zone and window, and a provenance naming F's source, the covered share's
// instruments and the links loc's chain skipped.
func (m *Market) Intensity(loc Intensity) (Intensity, error) {
	if loc.Basis != BasisLocation {
		return Intensity{}, fmt.Errorf("carbon: market intensity needs a location value, got %s: %w", loc.Basis, ErrBasis)
	}
	if err := m.Validate(); err != nil {
		return Intensity{}, err
	}
	f, src := m.factor(loc)
	p := Provenance{
		Dataset: fmt.Sprintf("market-based: (1 - covered share %g) x %g gCO2e/kWh", m.CoveredShare, float64(f)),
		Method:  "market-based (GHG Protocol Scope 2)",
		Notes:   []string{src},
		Skipped: loc.Provenance.Skipped,
	}
	switch {
	case m.SupplierFactor != nil:
		p.Source, p.Licence, p.FactorType = m.SupplierSource, "configured by the operator", FactorUnspecified
	case m.ResidualFactor != nil:
		p.Source, p.Licence, p.FactorType = m.ResidualSource, "configured by the operator", FactorUnspecified
	default:
		p.Source, p.Reference, p.Licence, p.FactorType = loc.Provenance.Source, loc.Provenance.Reference, loc.Provenance.Licence, loc.Provenance.FactorType
		p.Estimated, p.FetchedAt = loc.Provenance.Estimated, loc.Provenance.FetchedAt
	}
	if m.CoveredShare > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("covered share %g: %s", m.CoveredShare, m.CoveredSource))
	}
	return Intensity{
		Zone:       loc.Zone,
		Value:      GramsPerKWh((1 - m.CoveredShare) * float64(f)),
		ValidFrom:  loc.ValidFrom,
		ValidTo:    loc.ValidTo,
		Basis:      BasisMarket,
		Provider:   MarketProviderName,
		Provenance: p,
	}, nil
}
