package carbon

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"
)

// ElectricityMapsDefaultURL is the public Electricity Maps API.
const ElectricityMapsDefaultURL = "https://api.electricitymap.org"

// ElectricityMapsOptions configures an ElectricityMaps provider.
type ElectricityMapsOptions struct {
	HTTPOptions
	// Token is the API key sent in the auth-token header. Required.
	Token *Secret
	// EmissionFactorType is requested with every call: FactorDirect
	// (default; what location-based Scope 2 reporting uses) or
	// FactorLifecycle.
	EmissionFactorType FactorType
}

// ElectricityMaps is the Provider for the Electricity Maps v3 API
// (location-based, hourly). It uses /v3/carbon-intensity/latest for the
// current hour, /v3/carbon-intensity/history for the last 24 hours and
// /v3/carbon-intensity/past-range for older times, and picks the hourly point
// whose hour contains the time asked.
type ElectricityMaps struct {
	api   *apiClient
	token *Secret
	eft   FactorType
}

var (
	_ HistoryProvider = (*ElectricityMaps)(nil)
	_ basisOf         = (*ElectricityMaps)(nil)
)

// NewElectricityMaps returns an Electricity Maps provider.
func NewElectricityMaps(o ElectricityMapsOptions) (*ElectricityMaps, error) {
	if o.Token == nil {
		return nil, fmt.Errorf("electricitymaps: a token (file or env) is required")
	}
	switch o.EmissionFactorType {
	case "":
		o.EmissionFactorType = FactorDirect
	case FactorDirect, FactorLifecycle:
	default:
		return nil, fmt.Errorf("electricitymaps: emission factor type %q: want direct or lifecycle", o.EmissionFactorType)
	}
	api, err := newAPIClient("electricitymaps", ElectricityMapsDefaultURL, o.HTTPOptions)
	if err != nil {
		return nil, err
	}
	return &ElectricityMaps{api: api, token: o.Token, eft: o.EmissionFactorType}, nil
}

// Name returns "electricitymaps".
func (e *ElectricityMaps) Name() string { return "electricitymaps" }

// String returns the name.
func (e *ElectricityMaps) String() string { return e.Name() }

// GoString is String.
func (e *ElectricityMaps) GoString() string { return e.String() }

// Basis returns BasisLocation.
func (e *ElectricityMaps) Basis() Basis { return BasisLocation }

// emPoint is one hourly value in the v3 carbon-intensity responses.
type emPoint struct {
	Zone               string   `json:"zone"`
	CarbonIntensity    *float64 `json:"carbonIntensity"`
	Datetime           string   `json:"datetime"`
	UpdatedAt          string   `json:"updatedAt"`
	CreatedAt          string   `json:"createdAt"`
	EmissionFactorType string   `json:"emissionFactorType"`
	IsEstimated        bool     `json:"isEstimated"`
	EstimationMethod   *string  `json:"estimationMethod"`
}

type emSeries struct {
	Zone    string    `json:"zone"`
	History []emPoint `json:"history"` // /history
	Data    []emPoint `json:"data"`    // /past-range
}

const (
	emLatest    = "/v3/carbon-intensity/latest"
	emHistory   = "/v3/carbon-intensity/history"
	emPastRange = "/v3/carbon-intensity/past-range"
)

func (e *ElectricityMaps) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	q.Set("emissionFactorType", string(e.eft))
	return e.api.getJSON(ctx, endpoint, endpoint, q, func(r *http.Request) error {
		tok, err := e.token.Value()
		if err != nil {
			return fmt.Errorf("electricitymaps: token: %w", err)
		}
		r.Header.Set("auth-token", tok)
		return nil
	}, out)
}

// Intensity implements Provider.
func (e *ElectricityMaps) Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error) {
	if zone == "" {
		return Intensity{}, fmt.Errorf("electricitymaps: empty zone: %w", ErrUnknownZone)
	}
	at = at.UTC()
	now := e.api.clock.Now().UTC()
	hour := at.Truncate(time.Hour)
	if !hour.Before(now.Truncate(time.Hour)) {
		// The current hour (or later): /latest. It may lag; the caller
		// judges the age.
		var p emPoint
		if err := e.get(ctx, emLatest, url.Values{"zone": {zone}}, &p); err != nil {
			return Intensity{}, err
		}
		in, err := e.convert(p, zone, emLatest, now)
		if err != nil {
			return Intensity{}, err
		}
		if !in.ValidFrom.After(at) {
			return in, nil
		}
		// /latest is newer than at (at is late in a closed hour): fall
		// through to the history.
	}
	var pts []Intensity
	var err error
	if !at.Before(now.Truncate(time.Hour).Add(-23 * time.Hour)) {
		pts, err = e.series(ctx, emHistory, url.Values{"zone": {zone}}, zone, now)
	} else {
		pts, err = e.series(ctx, emPastRange, url.Values{"zone": {zone},
			"start": {hour.Format(time.RFC3339)}, "end": {hour.Add(time.Hour).Format(time.RFC3339)}}, zone, now)
	}
	if err != nil {
		return Intensity{}, err
	}
	return pickAt(pts, at, e.Name(), zone)
}

// History implements HistoryProvider: /history when from is within the last
// 24 hours, else /past-range (which the API limits to a few days per call
// and to some plans).
func (e *ElectricityMaps) History(ctx context.Context, zone string, from, to time.Time) ([]Intensity, error) {
	if zone == "" {
		return nil, fmt.Errorf("electricitymaps: empty zone: %w", ErrUnknownZone)
	}
	now := e.api.clock.Now().UTC()
	var pts []Intensity
	var err error
	if !from.Before(now.Truncate(time.Hour).Add(-23 * time.Hour)) {
		pts, err = e.series(ctx, emHistory, url.Values{"zone": {zone}}, zone, now)
	} else {
		pts, err = e.series(ctx, emPastRange, url.Values{"zone": {zone},
			"start": {from.UTC().Truncate(time.Hour).Format(time.RFC3339)}, "end": {to.UTC().Format(time.RFC3339)}}, zone, now)
	}
	if err != nil {
		return nil, err
	}
	return overlapping(pts, from, to), nil
}

func (e *ElectricityMaps) series(ctx context.Context, endpoint string, q url.Values, zone string, now time.Time) ([]Intensity, error) {
	var s emSeries
	if err := e.get(ctx, endpoint, q, &s); err != nil {
		return nil, err
	}
	raw := s.History
	if endpoint == emPastRange {
		raw = s.Data
	}
	out := make([]Intensity, 0, len(raw))
	for _, p := range raw {
		if p.CarbonIntensity == nil {
			continue // the API has no value for that hour
		}
		in, err := e.convert(p, zone, endpoint, now)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ValidFrom.Before(out[j].ValidFrom) })
	return out, nil
}

func (e *ElectricityMaps) convert(p emPoint, zone, endpoint string, now time.Time) (Intensity, error) {
	perr := func(format string, a ...any) error {
		return &ParseError{Provider: e.Name(), Endpoint: endpoint, Err: fmt.Errorf(format, a...)}
	}
	if p.CarbonIntensity == nil {
		return Intensity{}, fmt.Errorf("electricitymaps: %s: zone %s: carbonIntensity is null: %w", endpoint, zone, ErrNoData)
	}
	if p.Datetime == "" {
		return Intensity{}, perr("missing datetime")
	}
	t, err := parseTime(p.Datetime)
	if err != nil {
		return Intensity{}, perr("datetime: %v", err)
	}
	if *p.CarbonIntensity < 0 {
		return Intensity{}, perr("negative carbonIntensity %g", *p.CarbonIntensity)
	}
	ft := FactorType(p.EmissionFactorType)
	var notes []string
	switch {
	case ft == "":
		ft = e.eft
	case !ft.Valid():
		notes = append(notes, fmt.Sprintf("unknown emissionFactorType %q in response", p.EmissionFactorType))
		ft = FactorUnspecified
	}
	if ft != e.eft {
		notes = append(notes, fmt.Sprintf("requested emissionFactorType=%s but the response says %s", e.eft, ft))
	}
	method := "measured"
	if p.IsEstimated {
		method = "estimated"
		if p.EstimationMethod != nil && *p.EstimationMethod != "" {
			method += " (" + *p.EstimationMethod + ")"
		}
	}
	if p.UpdatedAt != "" {
		notes = append(notes, "source updatedAt "+p.UpdatedAt)
	}
	z := p.Zone
	if z == "" {
		z = zone
	}
	return Intensity{
		Zone:      z,
		Value:     GramsPerKWh(*p.CarbonIntensity),
		ValidFrom: t,
		ValidTo:   t.Add(time.Hour),
		Basis:     BasisLocation,
		Provider:  e.Name(),
		Provenance: Provenance{
			Source:     "Electricity Maps",
			Dataset:    fmt.Sprintf("API v3 %s emissionFactorType=%s", endpoint, e.eft),
			Licence:    "Electricity Maps API terms of use",
			FactorType: ft,
			Method:     method,
			Estimated:  p.IsEstimated,
			FetchedAt:  now,
			Notes:      notes,
		},
	}, nil
}

// pickAt returns the point whose window contains at; failing that, the
// newest point that started before at (a lagging source; the caller judges
// its age); failing that, ErrNoData. pts must be sorted by ValidFrom.
func pickAt(pts []Intensity, at time.Time, provider, zone string) (Intensity, error) {
	best := -1
	for i, p := range pts {
		if p.Contains(at) {
			return p, nil
		}
		if !p.ValidFrom.After(at) {
			best = i
		}
	}
	if best >= 0 {
		return pts[best], nil
	}
	return Intensity{}, fmt.Errorf("%s: zone %s at %s: %w", provider, zone, at.UTC().Format(time.RFC3339), ErrNoData)
}

// overlapping keeps the points whose windows overlap [from, to).
func overlapping(pts []Intensity, from, to time.Time) []Intensity {
	out := pts[:0:0]
	for _, p := range pts {
		if p.ValidTo.After(from) && p.ValidFrom.Before(to) {
			out = append(out, p)
		}
	}
	return out
}
