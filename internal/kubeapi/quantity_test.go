package kubeapi

import (
	"encoding/json"
	"math"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	for _, tc := range []struct {
		in    string
		exact string // the value as a fraction
		value int64  // rounded up, away from zero
		f     float64
	}{
		{"500m", "1/2", 1, 0.5},
		{"2", "2", 2, 2},
		{"0.5", "1/2", 1, 0.5},
		{"1500m", "3/2", 2, 1.5},
		{"2k", "2000", 2000, 2000},
		{"100m", "1/10", 1, 0.1},
		{"2500m", "5/2", 3, 2.5},
		{"1Gi", "1073741824", 1 << 30, 1 << 30},
		{"1Ki", "1024", 1024, 1024},
		{"1.5Mi", "1572864", 1572864, 1572864},
		{"1e3", "1000", 1000, 1000},
		{"1E3", "1000", 1000, 1000},
		{"1E", "1000000000000000000", 1e18, 1e18},
		{"2.5e-1", "1/4", 1, 0.25},
		{"1e+2", "100", 100, 100},
		{"1n", "1/1000000000", 1, 1e-9},
		{"3u", "3/1000000", 1, 3e-6},
		{".5", "1/2", 1, 0.5},
		{"5.", "5", 5, 5},
		{"+1", "1", 1, 1},
		{"-1", "-1", -1, -1},
		{"-0.5", "-1/2", -1, -0.5},
		{"0", "0", 0, 0},
		{"007", "7", 7, 7},
		{"12345678901234567890", "12345678901234567890", math.MaxInt64, 12345678901234567890},
	} {
		q, err := ParseQuantity(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if q.String() != tc.exact || q.Value() != tc.value || q.Float64() != tc.f {
			t.Errorf("%q = %s, value %d, float %v; want %s, %d, %v", tc.in, q, q.Value(), q.Float64(), tc.exact, tc.value, tc.f)
		}
	}
	for _, bad := range []string{"", "m", ".", "-", "1.2.3", "1x", "1e", "1ee3", "e3", " 1", "1 ", "0x10", "1/2", "--1", "1mi", "1KiB", "1e1.5", "1e99999", "1,5", "١"} {
		if q, err := ParseQuantity(bad); err == nil {
			t.Errorf("%q accepted as %s", bad, q)
		}
	}
}

func TestQuantityJSON(t *testing.T) {
	var v struct {
		A, B, C Quantity
	}
	if err := json.Unmarshal([]byte(`{"A": "250m", "B": 3, "C": null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.Float64() != 0.25 || v.B.Value() != 3 || v.C.Value() != 0 || v.C.String() != "0" {
		t.Errorf("%+v", v)
	}
	if err := json.Unmarshal([]byte(`{"A": "2 cores"}`), &v); err == nil {
		t.Error("bad quantity accepted")
	}
}
