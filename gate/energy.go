package gate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Joules per unit of the energy quantities ParseEnergy accepts.
var energyUnits = map[string]float64{
	"j": 1, "kj": 1e3, "mj": 1e6, "gj": 1e9, "tj": 1e12,
	"wh": 3600, "kwh": 3.6e6, "mwh": 3.6e9, "gwh": 3.6e12,
}

// ParseEnergy parses an energy quantity such as "50kWh", "12 kWh", "3.6MJ",
// "500Wh" or "1000J" into joules. Units are case-insensitive except for the
// m/M prefix: "MJ" and "MWh" are mega, and a lower-case "mJ" or "mWh"
// (milli, 10⁹ times smaller) is refused with the unit that was probably
// meant, rather than read one way or the other silently.
func ParseEnergy(s string) (float64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return unicode.IsLetter(r) })
	if i <= 0 {
		return 0, fmt.Errorf("energy %q: want a number and a unit (J, kJ, MJ, GJ, Wh, kWh, MWh, GWh)", s)
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("energy %q: bad number %q", s, num)
	}
	raw := strings.TrimSpace(t[i:])
	if strings.HasPrefix(raw, "m") && (unit == "mj" || unit == "mwh") {
		mega := map[string]string{"mj": "MJ", "mwh": "MWh"}[unit]
		return 0, fmt.Errorf("energy %q: %q would be milli (10⁻³), which aiwatt does not read; write %s for mega (10⁶)", s, raw, mega)
	}
	mult, ok := energyUnits[unit]
	if !ok {
		return 0, fmt.Errorf("energy %q: unknown unit %q (want J, kJ, MJ, GJ, Wh, kWh, MWh, GWh)", s, t[i:])
	}
	if v < 0 {
		return 0, fmt.Errorf("energy %q: must not be negative", s)
	}
	return v * mult, nil
}

// FormatEnergy writes joules in the most readable of J, kJ, MJ with kWh beside.
func FormatEnergy(j float64) string {
	kwh := j / 3.6e6
	switch a := math.Abs(j); {
	case a >= 3.6e6:
		return fmt.Sprintf("%.4g kWh", kwh)
	case a >= 3600:
		return fmt.Sprintf("%.4g Wh", j/3600)
	default:
		return fmt.Sprintf("%.4g J", j)
	}
}
