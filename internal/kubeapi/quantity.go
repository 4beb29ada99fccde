package kubeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Quantity is a Kubernetes resource quantity ("500m", "2", "0.5", "1Gi",
// "1e3"), held exactly as a rational number. Its zero value is 0.
type Quantity struct {
	r *big.Rat
}

// suffixes of the quantity syntax: binary (powers of 2) and decimal SI.
var (
	binarySuffix = map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
	decimalExp   = map[string]int{"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)

// ParseQuantity parses the Kubernetes quantity syntax exactly:
//
//	quantity ::= [+-] number suffix
//	number   ::= digits | digits "." [digits] | "." digits
//	suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | "" | k | M | G | T | P | E | (e|E) [+-] digits
func ParseQuantity(s string) (Quantity, error) {
	bad := func(why string) (Quantity, error) {
		return Quantity{}, fmt.Errorf("quantity %q: %s", s, why)
	}
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	intDigits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		intDigits++
	}
	mantissa := s[start:i]
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		fracDigits = i - fs
		mantissa += s[fs:i]
	}
	if intDigits+fracDigits == 0 {
		return bad("no digits")
	}
	exp := -fracDigits
	var mult int64 = 1
	suffix := s[i:]
	switch {
	case binarySuffix[suffix] != 0:
		mult = binarySuffix[suffix]
	case len(suffix) > 1 && (suffix[0] == 'e' || suffix[0] == 'E'):
		e := suffix[1:]
		eneg := false
		if e[0] == '+' || e[0] == '-' {
			eneg = e[0] == '-'
			e = e[1:]
		}
		if e == "" || len(e) > 4 || strings.IndexFunc(e, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return bad("bad exponent")
		}
		v := 0
		for _, c := range e {
			v = v*10 + int(c-'0')
		}
		if eneg {
			v = -v
		}
		exp += v
	default:
		d, ok := decimalExp[suffix]
		if !ok {
			return bad("unknown suffix " + fmt.Sprintf("%q", suffix))
		}
		exp += d
	}
	if exp > 1000 || exp < -1000 {
		return bad("exponent out of range")
	}
	n, ok := new(big.Int).SetString(mantissa, 10)
	if !ok {
		return bad("bad number")
	}
	if neg {
		n.Neg(n)
	}
	r := new(big.Rat).SetInt(n)
	r.Mul(r, new(big.Rat).SetInt64(mult))
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
	if exp >= 0 {
		r.Mul(r, new(big.Rat).SetInt(p))
	} else {
		r.Quo(r, new(big.Rat).SetInt(p))
	}
	return Quantity{r: r}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// UnmarshalJSON accepts a quantity as a JSON string (as the API server
// writes it) or a number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*q = Quantity{}
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseQuantity(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*q = v
	return nil
}

// Float64 returns the quantity as the nearest float64.
func (q Quantity) Float64() float64 {
	if q.r == nil {
		return 0
	}
	f, _ := q.r.Float64()
	return f
}

// Value returns the quantity rounded up (away from zero) to an integer, as
// Kubernetes counts extended resources; it saturates at the int64 range.
func (q Quantity) Value() int64 {
	if q.r == nil {
		return 0
	}
	n, rem := new(big.Int).QuoRem(q.r.Num(), q.r.Denom(), new(big.Int))
	if rem.Sign() > 0 {
		n.Add(n, big.NewInt(1))
	} else if rem.Sign() < 0 {
		n.Sub(n, big.NewInt(1))
	}
	switch {
	case n.IsInt64():
		return n.Int64()
	case n.Sign() > 0:
		return math.MaxInt64
	default:
		return math.MinInt64
	}
}

// String returns the exact value as a fraction or integer ("1/2", "1500").
func (q Quantity) String() string {
	if q.r == nil {
		return "0"
	}
	return q.r.RatString()
}
