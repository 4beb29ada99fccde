package carbon

import (
	"fmt"
	"strings"
	"time"
)

// Provenance records where an intensity value came from, so that every CO2e
// figure can name its source, dataset version, licence and factor type.
type Provenance struct {
	// Source is who publishes the data, e.g. "Electricity Maps",
	// "Ember / Our World in Data", "NESO Carbon Intensity API".
	Source string `json:"source"`
	// Dataset names the dataset and its version, or the API and endpoint,
	// e.g. "API v3 /v3/carbon-intensity/history emissionFactorType=direct".
	Dataset string `json:"dataset"`
	// Reference points at the exact file or document used (path, commit, URL
	// path), where there is one.
	Reference string `json:"reference,omitempty"`
	// Licence is the licence or terms the data is used under.
	Licence string `json:"licence"`
	// FactorType says whether the value counts direct or lifecycle emissions.
	FactorType FactorType `json:"factor_type"`
	// Method says how the value was obtained: "measured", "estimated
	// (TIME_SLICER_AVERAGE)", "actual", "forecast", "annual average", ...
	Method string `json:"method,omitempty"`
	// Estimated is true when the source marks the value as estimated,
	// forecast or imputed rather than measured.
	Estimated bool `json:"estimated"`
	// FetchedAt is when the value was fetched from the source; zero for the
	// embedded static table (its data year is in Dataset).
	FetchedAt time.Time `json:"fetched_at,omitzero"`
	// Notes are further remarks: fallbacks taken, substitutions made,
	// warnings the source returned.
	Notes []string `json:"notes,omitempty"`
	// Skipped lists the providers a Chain tried before this one answered, and
	// why each was skipped. Empty when the first link answered.
	Skipped []Skip `json:"skipped,omitempty"`
}

// Skip says why a Chain passed over one of its providers.
type Skip struct {
	// Provider is the skipped provider's Name.
	Provider string `json:"provider"`
	// Reason is a short human-readable reason, e.g. "rate limited (retry
	// after 30s)" or "stale: ...". It never contains secrets.
	Reason string `json:"reason"`
	// Err is the underlying error, if the skip was caused by one.
	Err error `json:"-"`
}

// String formats the skip as "provider: reason".
func (s Skip) String() string { return s.Provider + ": " + s.Reason }

// Intensity is a grid carbon intensity valid over a time window.
type Intensity struct {
	// Zone is the zone as the provider knows it (e.g. "DE", "GB-13",
	// "CAISO_NORTH", "aws:eu-west-1").
	Zone string `json:"zone"`
	// Value is the intensity in grams CO2e per kWh.
	Value GramsPerKWh `json:"g_co2e_per_kwh"`
	// ValidFrom is the inclusive start of the window the value applies to.
	ValidFrom time.Time `json:"valid_from"`
	// ValidTo is the exclusive end of that window.
	ValidTo time.Time `json:"valid_to"`
	// Basis is location, market or marginal.
	Basis Basis `json:"basis"`
	// Provider is the Name of the provider that produced the value.
	Provider string `json:"provider"`
	// Provenance says where the value came from.
	Provenance Provenance `json:"provenance"`
}

// Contains reports whether t lies in [ValidFrom, ValidTo).
func (i Intensity) Contains(t time.Time) bool {
	return !t.Before(i.ValidFrom) && t.Before(i.ValidTo)
}

// Age returns how long before at the value's window ended: zero when the
// window contains at (or lies after it), at − ValidTo otherwise.
func (i Intensity) Age(at time.Time) time.Duration {
	if at.Before(i.ValidTo) {
		return 0
	}
	return at.Sub(i.ValidTo)
}

// Validate checks the value's internal consistency: a known basis, a
// non-negative finite value and a non-empty window.
func (i Intensity) Validate() error {
	switch {
	case !i.Basis.Valid():
		return fmt.Errorf("invalid basis %q", i.Basis)
	case !(i.Value >= 0) || float64(i.Value) > 1e5: // also rejects NaN
		return fmt.Errorf("implausible intensity %v", float64(i.Value))
	case !i.ValidTo.After(i.ValidFrom):
		return fmt.Errorf("empty validity window %s..%s", i.ValidFrom.Format(time.RFC3339), i.ValidTo.Format(time.RFC3339))
	}
	return nil
}

// String formats the value, window, basis and source on one line.
func (i Intensity) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %g gCO2e/kWh [%s, %s) basis=%s provider=%s source=%q dataset=%q factor=%s",
		i.Zone, float64(i.Value), i.ValidFrom.UTC().Format(time.RFC3339), i.ValidTo.UTC().Format(time.RFC3339),
		i.Basis, i.Provider, i.Provenance.Source, i.Provenance.Dataset, i.Provenance.FactorType)
	if i.Provenance.Method != "" {
		fmt.Fprintf(&b, " method=%q", i.Provenance.Method)
	}
	for _, s := range i.Provenance.Skipped {
		fmt.Fprintf(&b, " skipped=%q", s.String())
	}
	return b.String()
}
