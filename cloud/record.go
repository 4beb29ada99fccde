package cloud

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Metric names what a ledger row measures. CO2e metrics are in kilograms
// CO2e; cost is in the currency named by the row's unit; usage is in the
// provider's usage unit.
type Metric string

// Metrics stored in the ledger.
const (
	CO2eScope1         Metric = "co2e_scope1"
	CO2eScope2         Metric = "co2e_scope2" // basis not stated by the provider
	CO2eScope2Location Metric = "co2e_scope2_location"
	CO2eScope2Market   Metric = "co2e_scope2_market"
	CO2eScope3         Metric = "co2e_scope3"
	CO2eScope3Location Metric = "co2e_scope3_location"
	CO2eScope3Market   Metric = "co2e_scope3_market"
	CO2eTotalLocation  Metric = "co2e_total_location"
	CO2eTotalMarket    Metric = "co2e_total_market"
	Cost               Metric = "cost"
	Usage              Metric = "usage"
)

// UnitKgCO2e is the unit of every CO2e row in the ledger.
const UnitKgCO2e = "kgCO2e"

// IsCO2e reports whether m is a CO2e metric.
func (m Metric) IsCO2e() bool { return strings.HasPrefix(string(m), "co2e_") }

// ScopeBasis splits a CO2e metric into its GHG scope ("1", "2", "3" or
// "total") and basis ("location", "market" or "unspecified" where the
// provider does not say; "" where a basis does not apply).
func (m Metric) ScopeBasis() (scope, basis string) {
	switch m {
	case CO2eScope1:
		return "1", ""
	case CO2eScope2:
		return "2", "unspecified"
	case CO2eScope2Location:
		return "2", "location"
	case CO2eScope2Market:
		return "2", "market"
	case CO2eScope3:
		return "3", ""
	case CO2eScope3Location:
		return "3", "location"
	case CO2eScope3Market:
		return "3", "market"
	case CO2eTotalLocation:
		return "total", "location"
	case CO2eTotalMarket:
		return "total", "market"
	}
	return "", ""
}

func (m Metric) known() bool {
	switch m {
	case CO2eScope1, CO2eScope2, CO2eScope2Location, CO2eScope2Market, CO2eScope3, CO2eScope3Location, CO2eScope3Market,
		CO2eTotalLocation, CO2eTotalMarket, Cost, Usage:
		return true
	}
	return false
}

// Granularity is the length of a ledger period.
type Granularity string

// Granularities.
const (
	Daily   Granularity = "daily"
	Monthly Granularity = "monthly"
)

// PeriodName returns the ledger's name for the period starting at start:
// "2025-01" for a month, "2025-01-31" for a day.
func (g Granularity) PeriodName(start time.Time) string {
	if g == Monthly {
		return start.UTC().Format("2006-01")
	}
	return start.UTC().Format("2006-01-02")
}

// End returns the exclusive end of the period starting at start.
func (g Granularity) End(start time.Time) time.Time {
	if g == Monthly {
		return start.AddDate(0, 1, 0)
	}
	return start.AddDate(0, 0, 1)
}

func (g Granularity) aligned(t time.Time) bool {
	t = t.UTC()
	if t.Hour() != 0 || t.Minute() != 0 || t.Second() != 0 || t.Nanosecond() != 0 {
		return false
	}
	return g != Monthly || t.Day() == 1
}

// Periods returns the starts of the whole periods in [from, to).
func (g Granularity) Periods(from, to time.Time) []time.Time {
	var out []time.Time
	for t := from.UTC(); !g.End(t).After(to.UTC()); t = g.End(t) {
		out = append(out, t)
	}
	return out
}

// Key identifies one ledger row.
type Key struct {
	Provider     string
	Account      string
	Service      string
	Region       string
	Period       string
	ModelVersion string
	Metric       Metric
}

// String returns the key as provider/account/service/region/period/model/metric.
func (k Key) String() string {
	return strings.Join([]string{k.Provider, k.Account, k.Service, k.Region, k.Period, k.ModelVersion, string(k.Metric)}, "/")
}

// Record is one line item of a pulled batch.
type Record struct {
	Key
	// PeriodStart and PeriodEnd bound the period (end exclusive, UTC).
	PeriodStart, PeriodEnd time.Time
	// Value is in Unit.
	Value float64
	// Unit is kgCO2e for CO2e metrics, an ISO 4217 currency for cost, the
	// provider's unit for usage.
	Unit string
}

// Total is a figure the provider reports for a set of line items, used to
// check that the line items add up: the records of Period (and of Account,
// when set) whose metric is in Metrics must sum to Value.
type Total struct {
	Period  string
	Account string
	Metrics []Metric
	Value   float64
	// What names the provider field the total came from, for the error.
	What string
}

// Batch is what one provider call sequence returned for one set of whole
// periods. It enters the ledger whole or not at all.
type Batch struct {
	// Provider is "aws", "azure" or "gcp".
	Provider string
	// Source names the API (and table) the records came from.
	Source string
	// FetchedAt is when the pull finished.
	FetchedAt time.Time
	// Granularity, From and To declare the periods the batch covers (To
	// exclusive); every record must fall in one of them and the last must
	// have ended by FetchedAt.
	Granularity Granularity
	From, To    time.Time
	Records     []Record
	Totals      []Total
}

// ValidationError lists why a batch was refused.
type ValidationError struct {
	Source  string
	Reasons []string
}

func (e *ValidationError) Error() string {
	const max = 5
	r := e.Reasons
	more := ""
	if len(r) > max {
		more = fmt.Sprintf(" (and %d more)", len(r)-max)
		r = r[:max]
	}
	return fmt.Sprintf("batch from %s refused: %s%s", e.Source, strings.Join(r, "; "), more)
}

// ErrInvalid is matched by every *ValidationError with errors.Is.
var ErrInvalid = errors.New("invalid batch")

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// Validate checks a batch before it may enter the ledger: schema (required
// fields, known metrics, no duplicate keys), units, finite non-negative
// values, whole and completed periods inside the declared range, and line
// items consistent with the provider's totals (relative tolerance 1e-6,
// absolute 1e-9). It returns a *ValidationError or nil.
func Validate(b *Batch) error {
	var reasons []string
	add := func(format string, a ...any) { reasons = append(reasons, fmt.Sprintf(format, a...)) }
	if b.Provider == "" || b.Source == "" {
		add("provider and source are required")
	}
	if b.FetchedAt.IsZero() {
		add("fetch time is required")
	}
	if b.Granularity != Daily && b.Granularity != Monthly {
		add("unknown granularity %q", b.Granularity)
	} else {
		if !b.Granularity.aligned(b.From) || !b.Granularity.aligned(b.To) || !b.From.Before(b.To) {
			add("declared range %s..%s is not a whole number of %s periods", b.From.Format(time.DateOnly), b.To.Format(time.DateOnly), b.Granularity)
		}
		if b.To.After(b.FetchedAt) {
			add("period ending %s is not complete at fetch time %s", b.To.Format(time.DateOnly), b.FetchedAt.UTC().Format(time.RFC3339))
		}
	}
	seen := make(map[Key]bool, len(b.Records))
	for i, r := range b.Records {
		at := fmt.Sprintf("record %d (%s)", i, r.Key)
		switch {
		case r.Provider != b.Provider:
			add("%s: provider differs from batch provider %q", at, b.Provider)
		case r.Account == "" || r.Period == "":
			add("%s: account and period are required", at)
		case !r.Metric.known():
			add("%s: unknown metric", at)
		}
		if seen[r.Key] {
			add("%s: duplicate key", at)
		}
		seen[r.Key] = true
		switch {
		case r.Metric.IsCO2e() && r.Unit != UnitKgCO2e:
			add("%s: unit %q, want %s", at, r.Unit, UnitKgCO2e)
		case r.Metric == Cost && !currencyRE.MatchString(r.Unit):
			add("%s: cost unit %q is not an ISO 4217 currency", at, r.Unit)
		case r.Metric == Usage && r.Unit == "":
			add("%s: usage unit is empty", at)
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			add("%s: value is not finite", at)
		} else if r.Value < 0 {
			add("%s: negative value %g", at, r.Value)
		}
		if b.Granularity == Daily || b.Granularity == Monthly {
			if !b.Granularity.aligned(r.PeriodStart) || !r.PeriodEnd.Equal(b.Granularity.End(r.PeriodStart)) {
				add("%s: period %s..%s is not one whole %s period", at, r.PeriodStart.Format(time.DateOnly), r.PeriodEnd.Format(time.DateOnly), b.Granularity)
			} else if r.Period != b.Granularity.PeriodName(r.PeriodStart) {
				add("%s: period name does not match its start %s", at, r.PeriodStart.Format(time.DateOnly))
			}
			if r.PeriodStart.Before(b.From) || r.PeriodEnd.After(b.To) {
				add("%s: period outside the requested range", at)
			}
		}
	}
	for _, t := range b.Totals {
		in := make(map[Metric]bool, len(t.Metrics))
		for _, m := range t.Metrics {
			in[m] = true
		}
		var sum float64
		for _, r := range b.Records {
			if r.Period == t.Period && in[r.Metric] && (t.Account == "" || r.Account == t.Account) {
				sum += r.Value
			}
		}
		if math.Abs(sum-t.Value) > 1e-9+1e-6*math.Max(math.Abs(sum), math.Abs(t.Value)) {
			add("period %s: line items sum to %g but %s reports %g", t.Period, sum, t.What, t.Value)
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	sort.Strings(reasons)
	return &ValidationError{Source: b.Source, Reasons: reasons}
}
