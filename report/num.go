package report

import (
	"math"
	"strconv"
)

// Num is a figure that may be missing: a KPI with no data is reported as
// "no data" (JSON null, an empty CSV cell), never as zero.
type Num struct {
	v  float64
	ok bool
}

// N returns a present figure; NaN and ±Inf are treated as missing.
func N(v float64) Num {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Num{}
	}
	return Num{v: v, ok: true}
}

// NoData is a missing figure.
var NoData = Num{}

// Valid reports whether the figure is present.
func (n Num) Valid() bool { return n.ok }

// Float returns the value (0 when missing; check Valid).
func (n Num) Float() float64 { return n.v }

// Add returns n+m; missing when both are missing.
func (n Num) Add(m Num) Num {
	switch {
	case !n.ok:
		return m
	case !m.ok:
		return n
	}
	return N(n.v + m.v)
}

// Scale returns n×f (missing stays missing).
func (n Num) Scale(f float64) Num {
	if !n.ok {
		return n
	}
	return N(n.v * f)
}

// Div returns n/d, missing when either is missing or d is 0.
func (n Num) Div(d Num) Num {
	if !n.ok || !d.ok || d.v == 0 {
		return NoData
	}
	return N(n.v / d.v)
}

// Canonical is the fixed text form used by JSON and CSV: the value rounded
// to nine significant digits, written in the shortest decimal form; "" when
// missing. Rounding hides the last-bit noise of Prometheus sums, whose order
// is not fixed, so the same data give the same bytes.
func (n Num) Canonical() string {
	if !n.ok {
		return ""
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(n.v, 'g', 9, 64), 64)
	if r == 0 {
		return "0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// MarshalJSON writes Canonical, or null when missing.
func (n Num) MarshalJSON() ([]byte, error) {
	if !n.ok {
		return []byte("null"), nil
	}
	return []byte(n.Canonical()), nil
}

// Sig formats v to sig significant figures for people, e.g. Sig(1234, 2) = "1200".
func Sig(v float64, sig int) string {
	if v == 0 {
		return "0"
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'e', sig-1, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// Human formats a figure for people: "no data" when missing, else four
// significant figures (thousands kept whole, and figures from 10¹⁵ up in
// exponent form).
func (n Num) Human() string {
	if !n.ok {
		return "no data"
	}
	v := n.v
	if math.Abs(v) >= 1e15 {
		// Beyond any real figure (see ranges): keep it readable.
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return Sig(v, 4)
}
