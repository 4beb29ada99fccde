package carbon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// UKCarbonIntensityDefaultURL is the public NESO Carbon Intensity API (free,
// no key, CC BY 4.0).
const UKCarbonIntensityDefaultURL = "https://api.carbonintensity.org.uk"

// UKCarbonIntensity is the Provider for the GB Carbon Intensity API
// (half-hourly, location-based). Zones:
//
//	GB                  national (/intensity)
//	GB-1 ... GB-17      a region by id (/regional/regionid/{id}); 1-14 are DNO
//	                    regions, 15 England, 16 Scotland, 17 Wales
//	GB-ENG, GB-SCT, GB-WLS   aliases of 15, 16, 17
//
// The value is the "actual" intensity where the API has one, else the
// "forecast" (regional data is forecast only); provenance says which.
type UKCarbonIntensity struct {
	api *apiClient
}

var (
	_ HistoryProvider = (*UKCarbonIntensity)(nil)
	_ basisOf         = (*UKCarbonIntensity)(nil)
)

// NewUKCarbonIntensity returns a UK Carbon Intensity provider.
func NewUKCarbonIntensity(o HTTPOptions) (*UKCarbonIntensity, error) {
	api, err := newAPIClient("ukci", UKCarbonIntensityDefaultURL, o)
	if err != nil {
		return nil, err
	}
	return &UKCarbonIntensity{api: api}, nil
}

// Name returns "ukci".
func (u *UKCarbonIntensity) Name() string { return "ukci" }

// Basis returns BasisLocation.
func (u *UKCarbonIntensity) Basis() Basis { return BasisLocation }

// ukPeriod is one half-hour in the API's responses.
type ukPeriod struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Intensity struct {
		Forecast *float64 `json:"forecast"`
		Actual   *float64 `json:"actual"`
		Index    string   `json:"index"`
	} `json:"intensity"`
}

type ukNational struct {
	Data []ukPeriod `json:"data"`
}

type ukRegional struct {
	Data ukRegions `json:"data"`
}

// ukRegion is one region's periods.
type ukRegion struct {
	RegionID  int        `json:"regionid"`
	DNORegion string     `json:"dnoregion"`
	ShortName string     `json:"shortname"`
	Data      []ukPeriod `json:"data"`
}

// ukRegions is the "data" of a regional answer: an array of regions (the
// current-period endpoint, and the range endpoint in the published
// examples) or one region object (what the live range endpoint
// /regional/intensity/{from}/{to}/regionid/{id} answers). Both are read.
type ukRegions []ukRegion

// UnmarshalJSON accepts an array of regions or a single region object.
func (r *ukRegions) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var one ukRegion
		if err := json.Unmarshal(t, &one); err != nil {
			return err
		}
		*r = ukRegions{one}
		return nil
	}
	var many []ukRegion
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*r = many
	return nil
}

// ukTimeLayout is the API's path timestamp format (UTC).
const ukTimeLayout = "2006-01-02T15:04Z"

// ukMaxRange is the longest range one /intensity/{from}/{to} call accepts.
const ukMaxRange = 14 * 24 * time.Hour

// parseUKZone returns the region id, 0 for national.
func parseUKZone(zone string) (int, error) {
	z := strings.ToUpper(strings.TrimSpace(zone))
	switch z {
	case "GB":
		return 0, nil
	case "GB-ENG":
		return 15, nil
	case "GB-SCT":
		return 16, nil
	case "GB-WLS":
		return 17, nil
	}
	if rest, ok := strings.CutPrefix(z, "GB-"); ok {
		if id, err := strconv.Atoi(rest); err == nil && id >= 1 && id <= 17 {
			return id, nil
		}
	}
	return 0, fmt.Errorf("ukci: zone %q (want GB, GB-1..GB-17, GB-ENG, GB-SCT or GB-WLS): %w", zone, ErrUnknownZone)
}

// Intensity implements Provider: the current-period endpoint for the current
// half hour, the from/to endpoint for other times.
func (u *UKCarbonIntensity) Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error) {
	region, err := parseUKZone(zone)
	if err != nil {
		return Intensity{}, err
	}
	at = at.UTC()
	now := u.api.clock.Now().UTC()
	slot := at.Truncate(30 * time.Minute)
	var pts []Intensity
	if !slot.Before(now.Truncate(30 * time.Minute)) {
		pts, err = u.fetch(ctx, region, zone, time.Time{}, time.Time{}, now)
		if err == nil && len(pts) > 0 && !pts[0].ValidFrom.After(at) {
			return pickAt(pts, at, u.Name(), zone)
		}
		if err != nil {
			return Intensity{}, err
		}
	}
	pts, err = u.fetch(ctx, region, zone, slot, slot.Add(30*time.Minute), now)
	if err != nil {
		return Intensity{}, err
	}
	return pickAt(pts, at, u.Name(), zone)
}

// History implements HistoryProvider, splitting the range into calls of at
// most 14 days.
func (u *UKCarbonIntensity) History(ctx context.Context, zone string, from, to time.Time) ([]Intensity, error) {
	region, err := parseUKZone(zone)
	if err != nil {
		return nil, err
	}
	now := u.api.clock.Now().UTC()
	var all []Intensity
	for start := from.UTC().Truncate(30 * time.Minute); start.Before(to); start = start.Add(ukMaxRange) {
		end := start.Add(ukMaxRange)
		if end.After(to) {
			end = to
		}
		pts, err := u.fetch(ctx, region, zone, start, end, now)
		if err != nil {
			return nil, err
		}
		all = append(all, pts...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ValidFrom.Before(all[j].ValidFrom) })
	// Adjacent calls may both return the boundary period.
	dedup := all[:0]
	for _, p := range all {
		if n := len(dedup); n > 0 && dedup[n-1].ValidFrom.Equal(p.ValidFrom) {
			continue
		}
		dedup = append(dedup, p)
	}
	return overlapping(dedup, from, to), nil
}

// fetch calls the national or regional endpoint, current period when from
// is zero.
func (u *UKCarbonIntensity) fetch(ctx context.Context, region int, zone string, from, to, now time.Time) ([]Intensity, error) {
	var endpoint, path string
	rng := ""
	if !from.IsZero() {
		rng = "/" + from.Format(ukTimeLayout) + "/" + to.Format(ukTimeLayout)
	}
	var periods []ukPeriod
	if region == 0 {
		endpoint = "/intensity"
		if rng != "" {
			endpoint = "/intensity/{from}/{to}"
		}
		path = "/intensity" + rng
		var r ukNational
		if err := u.api.getJSON(ctx, endpoint, path, nil, nil, &r); err != nil {
			return nil, err
		}
		periods = r.Data
	} else {
		if rng == "" {
			endpoint = "/regional/regionid/{id}"
			path = "/regional/regionid/" + strconv.Itoa(region)
		} else {
			endpoint = "/regional/intensity/{from}/{to}/regionid/{id}"
			path = "/regional/intensity" + rng + "/regionid/" + strconv.Itoa(region)
		}
		var r ukRegional
		if err := u.api.getJSON(ctx, endpoint, path, nil, nil, &r); err != nil {
			return nil, err
		}
		for _, reg := range r.Data {
			if reg.RegionID != 0 && reg.RegionID != region {
				return nil, &ParseError{Provider: u.Name(), Endpoint: endpoint, Err: fmt.Errorf("asked for region %d, got %d", region, reg.RegionID)}
			}
			periods = append(periods, reg.Data...)
		}
	}
	out := make([]Intensity, 0, len(periods))
	for _, p := range periods {
		in, ok, err := u.convert(p, zone, endpoint, now)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ValidFrom.Before(out[j].ValidFrom) })
	return out, nil
}

func (u *UKCarbonIntensity) convert(p ukPeriod, zone, endpoint string, now time.Time) (Intensity, bool, error) {
	perr := func(format string, a ...any) error {
		return &ParseError{Provider: u.Name(), Endpoint: endpoint, Err: fmt.Errorf(format, a...)}
	}
	from, err := parseTime(p.From)
	if err != nil {
		return Intensity{}, false, perr("from: %v", err)
	}
	to, err := parseTime(p.To)
	if err != nil {
		return Intensity{}, false, perr("to: %v", err)
	}
	if !to.After(from) {
		return Intensity{}, false, perr("period %s..%s is empty", p.From, p.To)
	}
	var v float64
	method := "actual"
	switch {
	case p.Intensity.Actual != nil:
		v = *p.Intensity.Actual
	case p.Intensity.Forecast != nil:
		v, method = *p.Intensity.Forecast, "forecast"
	default:
		return Intensity{}, false, nil // neither yet: skip the period
	}
	if v < 0 {
		return Intensity{}, false, perr("negative intensity %g", v)
	}
	var notes []string
	if p.Intensity.Index != "" {
		notes = append(notes, "index "+p.Intensity.Index)
	}
	return Intensity{
		Zone:      strings.ToUpper(zone),
		Value:     GramsPerKWh(v),
		ValidFrom: from,
		ValidTo:   to,
		Basis:     BasisLocation,
		Provider:  u.Name(),
		Provenance: Provenance{
			Source:     "NESO Carbon Intensity API",
			Dataset:    "api.carbonintensity.org.uk " + endpoint,
			Licence:    "CC-BY-4.0",
			FactorType: FactorUnspecified,
			Method:     method,
			Estimated:  method == "forecast",
			FetchedAt:  now,
			Notes:      notes,
		},
	}, true, nil
}
