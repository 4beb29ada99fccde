package carbon

import "fmt"

// GramsPerKWh is a carbon intensity of electricity in grams of CO2-equivalent
// per kilowatt-hour.
type GramsPerKWh float64

// Grams is a mass of CO2-equivalent in grams.
type Grams float64

// Joules is an amount of energy in joules, the unit aiwatt's energy counters
// use.
type Joules float64

// JoulesPerKWh is the number of joules in one kilowatt-hour.
const JoulesPerKWh = 3.6e6

// GramsPerKWhPerLbPerMWh converts pounds per megawatt-hour to grams per
// kilowatt-hour: 1 lb/MWh = 453.59237 g / 1000 kWh = 0.45359237 g/kWh.
const GramsPerKWhPerLbPerMWh = 0.45359237

// KWh returns the energy in kilowatt-hours.
func (j Joules) KWh() float64 { return float64(j) / JoulesPerKWh }

// Emissions returns the mass emitted when energy e is drawn at intensity g.
func (g GramsPerKWh) Emissions(e Joules) Grams { return Grams(e.KWh() * float64(g)) }

// String formats the intensity with its unit.
func (g GramsPerKWh) String() string { return fmt.Sprintf("%g gCO2e/kWh", float64(g)) }

// LbsPerMWh converts an intensity in pounds of CO2 per megawatt-hour (the unit
// WattTime reports) to grams per kilowatt-hour.
func LbsPerMWh(v float64) GramsPerKWh { return GramsPerKWh(v * GramsPerKWhPerLbPerMWh) }

// Basis says which accounting question an intensity answers.
type Basis string

const (
	// BasisLocation is the average intensity of the grid the load is on
	// (GHG Protocol Scope 2 location-based method).
	BasisLocation Basis = "location"
	// BasisMarket is the intensity after contractual instruments (supplier
	// factors, PPAs, RECs/GOs) are applied (Scope 2 market-based method).
	BasisMarket Basis = "market"
	// BasisMarginal is the intensity of the generator that responds to a
	// change in load (e.g. WattTime MOER). It is a steering signal for
	// carbon-aware scheduling and must never be summed into location or
	// market inventory totals; the Calculator and Chain refuse it there.
	BasisMarginal Basis = "marginal"
)

// Valid reports whether b is one of the known bases.
func (b Basis) Valid() bool {
	switch b {
	case BasisLocation, BasisMarket, BasisMarginal:
		return true
	}
	return false
}

// FactorType says which emissions an intensity counts.
type FactorType string

const (
	// FactorDirect counts only emissions at the point of generation
	// (combustion); it is what GHG Protocol Scope 2 reporting uses.
	FactorDirect FactorType = "direct"
	// FactorLifecycle also counts upstream emissions (fuel supply, plant
	// construction), as IPCC lifecycle factors do.
	FactorLifecycle FactorType = "lifecycle"
	// FactorUnspecified means the source does not say.
	FactorUnspecified FactorType = "unspecified"
)

// Valid reports whether f is one of the known factor types.
func (f FactorType) Valid() bool {
	switch f {
	case FactorDirect, FactorLifecycle, FactorUnspecified:
		return true
	}
	return false
}
