package carbon

import (
	"context"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed data/grid_factors.csv
var defaultFactorsCSV string

// AllowedSources maps each source the static table may cite to the licence
// its data is published under. A row must name one of these sources with
// exactly this licence; adding a source means checking its licence first.
var AllowedSources = map[string]string{
	"Ember/OWID":                "CC-BY-4.0",
	"EEA":                       "CC-BY-4.0",
	"EPA eGRID":                 "US-Gov-PD",
	"Google region-carbon-info": "Apache-2.0",
	"Cloud Carbon Footprint":    "Apache-2.0",
}

// tableColumns is the required header of a factor table.
var tableColumns = []string{"key", "name", "g_co2e_per_kwh", "basis", "factor_type", "data_year", "source", "source_ref", "licence", "notes"}

var (
	countryKey = regexp.MustCompile(`^([A-Z]{2}|WORLD)$`)
	cloudKey   = regexp.MustCompile(`^(aws|gcp|azure):[a-z0-9]+(-[a-z0-9]+)*$`)
	yearRange  = regexp.MustCompile(`^(\d{4})(?:-(\d{4}))?$`)
)

// Factor is one row of the static table: an annual-average intensity for a
// country or cloud region.
type Factor struct {
	Key        string      // "DE", "WORLD", "aws:eu-west-1", "gcp:europe-west4", "azure:westeurope"
	Name       string      // human-readable place name
	Value      GramsPerKWh // annual average
	Basis      Basis       // location or market
	FactorType FactorType  // direct, lifecycle or unspecified
	YearFrom   int         // first data year the value describes
	YearTo     int         // last data year (== YearFrom for a single year)
	Source     string      // one of AllowedSources
	SourceRef  string      // exact file/commit/page the value was copied from
	Licence    string      // the source's licence
	Notes      string      // upstream, caveats
}

// DataYear formats the data year(s), e.g. "2024" or "2019-2021".
func (f Factor) DataYear() string {
	if f.YearTo == f.YearFrom {
		return strconv.Itoa(f.YearFrom)
	}
	return fmt.Sprintf("%d-%d", f.YearFrom, f.YearTo)
}

// Table is a validated, immutable set of annual factors.
type Table struct {
	byKey map[string][]Factor // sorted by YearFrom
	n     int
}

// ParseTable reads a factor table in the embedded CSV format ('#' comment
// lines, a header row, then one factor per row). It refuses the whole table
// if any row lacks a source, source reference or licence, cites a source or
// licence not in AllowedSources, has a negative or non-numeric value, an
// unknown basis (marginal is refused: annual averages are not marginal), a
// missing or malformed data year, a malformed key, or overlaps another row
// of the same key in years.
func ParseTable(r io.Reader) (*Table, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = len(tableColumns)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("factor table: header: %w", err)
	}
	for i, c := range tableColumns {
		if strings.TrimSpace(header[i]) != c {
			return nil, fmt.Errorf("factor table: column %d is %q, want %q", i+1, header[i], c)
		}
	}
	t := &Table{byKey: map[string][]Factor{}}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("factor table: %w", err)
		}
		f, err := parseFactor(rec)
		if err != nil {
			return nil, fmt.Errorf("factor table: line %d: %w", line, err)
		}
		k := normKey(f.Key)
		for _, o := range t.byKey[k] {
			if f.YearFrom <= o.YearTo && o.YearFrom <= f.YearTo {
				return nil, fmt.Errorf("factor table: line %d: %s %s overlaps data year %s of the same key", line, f.Key, f.DataYear(), o.DataYear())
			}
		}
		t.byKey[k] = append(t.byKey[k], f)
		t.n++
	}
	if t.n == 0 {
		return nil, errors.New("factor table: no rows")
	}
	for _, fs := range t.byKey {
		sort.Slice(fs, func(i, j int) bool { return fs[i].YearFrom < fs[j].YearFrom })
	}
	return t, nil
}

func parseFactor(rec []string) (Factor, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	f := Factor{Key: rec[0], Name: rec[1], Basis: Basis(rec[3]), FactorType: FactorType(rec[4]),
		Source: rec[6], SourceRef: rec[7], Licence: rec[8], Notes: rec[9]}
	if !countryKey.MatchString(f.Key) && !cloudKey.MatchString(f.Key) {
		return f, fmt.Errorf("key %q: want an ISO country code, WORLD, or aws:|gcp:|azure:region", f.Key)
	}
	v, err := strconv.ParseFloat(rec[2], 64)
	if err != nil || v != v {
		return f, fmt.Errorf("%s: g_co2e_per_kwh %q is not a number", f.Key, rec[2])
	}
	if v < 0 || v > 2000 {
		return f, fmt.Errorf("%s: g_co2e_per_kwh %g out of range [0, 2000]", f.Key, v)
	}
	f.Value = GramsPerKWh(v)
	if f.Basis != BasisLocation && f.Basis != BasisMarket {
		return f, fmt.Errorf("%s: basis %q: want location or market", f.Key, rec[3])
	}
	if !f.FactorType.Valid() {
		return f, fmt.Errorf("%s: factor_type %q: want direct, lifecycle or unspecified", f.Key, rec[4])
	}
	m := yearRange.FindStringSubmatch(rec[5])
	if m == nil {
		return f, fmt.Errorf("%s: data_year %q: want YYYY or YYYY-YYYY", f.Key, rec[5])
	}
	f.YearFrom, _ = strconv.Atoi(m[1])
	f.YearTo = f.YearFrom
	if m[2] != "" {
		f.YearTo, _ = strconv.Atoi(m[2])
	}
	if f.YearFrom < 1990 || f.YearTo < f.YearFrom || f.YearTo > 2100 {
		return f, fmt.Errorf("%s: data_year %q out of range", f.Key, rec[5])
	}
	if f.Source == "" {
		return f, fmt.Errorf("%s: missing source", f.Key)
	}
	if f.SourceRef == "" {
		return f, fmt.Errorf("%s: missing source_ref", f.Key)
	}
	if f.Licence == "" {
		return f, fmt.Errorf("%s: missing licence", f.Key)
	}
	want, ok := AllowedSources[f.Source]
	if !ok {
		return f, fmt.Errorf("%s: source %q is not an allowed openly licensed source", f.Key, f.Source)
	}
	if f.Licence != want {
		return f, fmt.Errorf("%s: licence %q: %s is published under %s", f.Key, f.Licence, f.Source, want)
	}
	return f, nil
}

// normKey makes lookups case-insensitive: country codes upper, cloud keys
// lower.
func normKey(k string) string {
	k = strings.TrimSpace(k)
	if strings.Contains(k, ":") {
		return strings.ToLower(k)
	}
	return strings.ToUpper(k)
}

var defaultTable = sync.OnceValues(func() (*Table, error) {
	return ParseTable(strings.NewReader(defaultFactorsCSV))
})

// DefaultTable returns the embedded table (parsed once). The error is
// non-nil only if the embedded CSV is broken, which a test guards against.
func DefaultTable() (*Table, error) { return defaultTable() }

// Len returns the number of rows.
func (t *Table) Len() int { return t.n }

// Factors returns every row, sorted by key then year.
func (t *Table) Factors() []Factor {
	out := make([]Factor, 0, t.n)
	keys := make([]string, 0, len(t.byKey))
	for k := range t.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, t.byKey[k]...)
	}
	return out
}

// Lookup returns the factor of key for year: the row whose data years
// contain year, else the newest row before it, else the oldest row. ok is
// false when the key is unknown.
func (t *Table) Lookup(key string, year int) (f Factor, ok bool) {
	fs := t.byKey[normKey(key)]
	if len(fs) == 0 {
		return Factor{}, false
	}
	best := -1
	for i, c := range fs {
		if c.YearFrom <= year && year <= c.YearTo {
			return c, true
		}
		if c.YearTo < year {
			best = i
		}
	}
	if best >= 0 {
		return fs[best], true
	}
	return fs[0], true
}

// Static is the Provider over a Table: it needs no key and no network. The
// value for at is the row for at's year (see Table.Lookup), valid for that
// whole calendar year in UTC. An unknown zone of the form "CC-..." (an
// Electricity Maps sub-zone such as "US-CAL-CISO") falls back to the country
// "CC", and says so in the provenance notes.
type Static struct {
	table *Table
}

var (
	_ HistoryProvider = (*Static)(nil)
	_ basisOf         = (*Static)(nil)
)

// NewStatic returns a Static provider over t; nil t means DefaultTable.
func NewStatic(t *Table) (*Static, error) {
	if t == nil {
		var err error
		if t, err = DefaultTable(); err != nil {
			return nil, err
		}
	}
	return &Static{table: t}, nil
}

// Name returns "static".
func (s *Static) Name() string { return "static" }

// Basis returns BasisLocation: the table holds grid averages.
func (s *Static) Basis() Basis { return BasisLocation }

// Table returns the table the provider reads.
func (s *Static) Table() *Table { return s.table }

// Intensity implements Provider.
func (s *Static) Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error) {
	if err := ctx.Err(); err != nil {
		return Intensity{}, err
	}
	at = at.UTC()
	f, ok := s.table.Lookup(zone, at.Year())
	var notes []string
	if !ok {
		if cc, _, cut := strings.Cut(zone, "-"); cut && countryKey.MatchString(strings.ToUpper(cc)) {
			if f, ok = s.table.Lookup(cc, at.Year()); ok {
				notes = append(notes, fmt.Sprintf("no factor for zone %s; used the %s country average", zone, f.Key))
			}
		}
	}
	if !ok {
		return Intensity{}, fmt.Errorf("static: zone %q: %w", zone, ErrUnknownZone)
	}
	if at.Year() < f.YearFrom || at.Year() > f.YearTo {
		notes = append(notes, fmt.Sprintf("data year %s applied to %d", f.DataYear(), at.Year()))
	}
	if f.Notes != "" {
		notes = append(notes, f.Notes)
	}
	from := time.Date(at.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	return Intensity{
		Zone:      f.Key,
		Value:     f.Value,
		ValidFrom: from,
		ValidTo:   from.AddDate(1, 0, 0),
		Basis:     f.Basis,
		Provider:  s.Name(),
		Provenance: Provenance{
			Source:     f.Source,
			Dataset:    "annual average, data year " + f.DataYear(),
			Reference:  f.SourceRef,
			Licence:    f.Licence,
			FactorType: f.FactorType,
			Method:     "annual average",
			Notes:      notes,
		},
	}, nil
}

// History implements HistoryProvider: one value per calendar year that
// overlaps [from, to).
func (s *Static) History(ctx context.Context, zone string, from, to time.Time) ([]Intensity, error) {
	var out []Intensity
	for y := from.UTC().Year(); y <= to.UTC().Year(); y++ {
		start := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		if !start.Before(to) && y != from.UTC().Year() {
			break
		}
		in, err := s.Intensity(ctx, zone, start)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}
