package carbon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// WattTimeDefaultURL is the public WattTime API.
const WattTimeDefaultURL = "https://api.watttime.org"

// wattTimeTokenTTL is how long a WattTime login token is used before a new
// login (the API's tokens last 30 minutes).
const wattTimeTokenTTL = 25 * time.Minute

// WattTimeOptions configures a WattTime provider.
type WattTimeOptions struct {
	HTTPOptions
	// Username is the WattTime account name. Required.
	Username string
	// Password is the account password. Required.
	Password *Secret
	// TokenTTL overrides how long a login token is reused (default 25m).
	TokenTTL time.Duration
}

// WattTime is the Provider for the WattTime v3 API's co2_moer signal: the
// marginal operating emissions rate, converted from lbs/MWh to g/kWh. Its
// values have BasisMarginal and are refused by location/market totals.
//
// It logs in with HTTP basic auth on /login, reuses the bearer token until
// TokenTTL, logs in again on expiry, on a 401, and when the password file
// changes.
type WattTime struct {
	api      *apiClient
	username string
	password *Secret
	ttl      time.Duration

	mu       sync.Mutex
	token    string
	tokenExp time.Time
	tokenPw  [sha256.Size]byte // hash of the password the token was obtained with
}

var (
	_ HistoryProvider = (*WattTime)(nil)
	_ basisOf         = (*WattTime)(nil)
)

// NewWattTime returns a WattTime provider.
func NewWattTime(o WattTimeOptions) (*WattTime, error) {
	if o.Username == "" || o.Password == nil {
		return nil, errors.New("watttime: username and password (file or env) are required")
	}
	api, err := newAPIClient("watttime", WattTimeDefaultURL, o.HTTPOptions)
	if err != nil {
		return nil, err
	}
	ttl := o.TokenTTL
	if ttl <= 0 {
		ttl = wattTimeTokenTTL
	}
	return &WattTime{api: api, username: o.Username, password: o.Password, ttl: ttl}, nil
}

// Name returns "watttime".
func (w *WattTime) Name() string { return "watttime" }

// String returns the name, so that printing the provider never shows its
// token.
func (w *WattTime) String() string { return w.Name() }

// GoString is String.
func (w *WattTime) GoString() string { return w.String() }

// Basis returns BasisMarginal.
func (w *WattTime) Basis() Basis { return BasisMarginal }

const (
	wtLogin       = "/login"
	wtForecast    = "/v3/forecast"
	wtHistorical  = "/v3/historical"
	wtSignalIndex = "/v3/signal-index"
	wtSignal      = "co2_moer"
)

type wtPoint struct {
	PointTime       string   `json:"point_time"`
	Value           *float64 `json:"value"`
	ImputedDataUsed bool     `json:"imputed_data_used"`
}

type wtMeta struct {
	DataPointPeriodSeconds int    `json:"data_point_period_seconds"`
	Region                 string `json:"region"`
	SignalType             string `json:"signal_type"`
	Units                  string `json:"units"`
	GeneratedAt            string `json:"generated_at"`
	Model                  struct {
		Date string `json:"date"`
		Type string `json:"type"`
	} `json:"model"`
	Warnings []struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"warnings"`
}

type wtResponse struct {
	Data []wtPoint `json:"data"`
	Meta wtMeta    `json:"meta"`
}

// login returns a valid token, logging in when there is none, it expired,
// force is set, or the password changed.
func (w *WattTime) login(ctx context.Context, force bool) (string, error) {
	pw, err := w.password.Value()
	if err != nil {
		return "", fmt.Errorf("watttime: password: %w", err)
	}
	pwHash := sha256.Sum256([]byte(pw))
	now := w.api.clock.Now()
	w.mu.Lock()
	if !force && w.token != "" && now.Before(w.tokenExp) && w.tokenPw == pwHash {
		tok := w.token
		w.mu.Unlock()
		return tok, nil
	}
	w.mu.Unlock()

	var resp struct {
		Token string `json:"token"`
	}
	err = w.api.getJSON(ctx, wtLogin, wtLogin, nil, func(r *http.Request) error {
		r.SetBasicAuth(w.username, pw)
		return nil
	}, &resp)
	if err != nil {
		return "", err
	}
	if resp.Token == "" {
		return "", &ParseError{Provider: w.Name(), Endpoint: wtLogin, Err: errors.New("no token in login response")}
	}
	w.mu.Lock()
	w.token, w.tokenExp, w.tokenPw = resp.Token, now.Add(w.ttl), pwHash
	w.mu.Unlock()
	return resp.Token, nil
}

// get calls an API endpoint with the bearer token, logging in again once on
// a 401.
func (w *WattTime) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	for attempt := 0; ; attempt++ {
		tok, err := w.login(ctx, attempt > 0)
		if err != nil {
			return err
		}
		err = w.api.getJSON(ctx, endpoint, endpoint, q, func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+tok)
			return nil
		}, out)
		var ae *APIError
		if attempt == 0 && errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized {
			w.mu.Lock()
			w.token = ""
			w.mu.Unlock()
			continue
		}
		return err
	}
}

// Intensity implements Provider: /v3/forecast when at is current or later
// (its first point is the current value), /v3/historical before that.
func (w *WattTime) Intensity(ctx context.Context, region string, at time.Time) (Intensity, error) {
	if region == "" {
		return Intensity{}, fmt.Errorf("watttime: empty region: %w", ErrUnknownZone)
	}
	at = at.UTC()
	now := w.api.clock.Now().UTC()
	if !at.Before(now.Add(-5 * time.Minute)) {
		pts, err := w.series(ctx, wtForecast, url.Values{"region": {region}, "signal_type": {wtSignal}, "horizon_hours": {"1"}}, region, now)
		if err != nil {
			return Intensity{}, err
		}
		if len(pts) > 0 && !pts[0].ValidFrom.After(at) {
			return pickAt(pts, at, w.Name(), region)
		}
	}
	pts, err := w.series(ctx, wtHistorical, url.Values{"region": {region}, "signal_type": {wtSignal},
		"start": {at.Add(-10 * time.Minute).Format(time.RFC3339)}, "end": {at.Add(10 * time.Minute).Format(time.RFC3339)}}, region, now)
	if err != nil {
		return Intensity{}, err
	}
	return pickAt(pts, at, w.Name(), region)
}

// History implements HistoryProvider using /v3/historical.
func (w *WattTime) History(ctx context.Context, region string, from, to time.Time) ([]Intensity, error) {
	if region == "" {
		return nil, fmt.Errorf("watttime: empty region: %w", ErrUnknownZone)
	}
	pts, err := w.series(ctx, wtHistorical, url.Values{"region": {region}, "signal_type": {wtSignal},
		"start": {from.UTC().Format(time.RFC3339)}, "end": {to.UTC().Format(time.RFC3339)}}, region, w.api.clock.Now())
	if err != nil {
		return nil, err
	}
	return overlapping(pts, from, to), nil
}

// SignalIndex returns the current co2_moer percentile (0 = cleanest, 100 =
// dirtiest of the recent past) for region, and the time it applies to. It is
// a scheduling hint, not an intensity.
func (w *WattTime) SignalIndex(ctx context.Context, region string) (percentile float64, at time.Time, err error) {
	var r wtResponse
	if err := w.get(ctx, wtSignalIndex, url.Values{"region": {region}, "signal_type": {wtSignal}}, &r); err != nil {
		return 0, time.Time{}, err
	}
	if len(r.Data) == 0 || r.Data[0].Value == nil {
		return 0, time.Time{}, fmt.Errorf("watttime: %s: region %s: %w", wtSignalIndex, region, ErrNoData)
	}
	if r.Meta.Units != "" && r.Meta.Units != "percentile" {
		return 0, time.Time{}, &ParseError{Provider: w.Name(), Endpoint: wtSignalIndex, Err: fmt.Errorf("units %q, want percentile", r.Meta.Units)}
	}
	t, err := parseTime(r.Data[0].PointTime)
	if err != nil {
		return 0, time.Time{}, &ParseError{Provider: w.Name(), Endpoint: wtSignalIndex, Err: err}
	}
	return *r.Data[0].Value, t, nil
}

func (w *WattTime) series(ctx context.Context, endpoint string, q url.Values, region string, now time.Time) ([]Intensity, error) {
	var r wtResponse
	if err := w.get(ctx, endpoint, q, &r); err != nil {
		return nil, err
	}
	perr := func(format string, a ...any) error {
		return &ParseError{Provider: w.Name(), Endpoint: endpoint, Err: fmt.Errorf(format, a...)}
	}
	if r.Meta.Units != "lbs_co2_per_mwh" {
		return nil, perr("units %q, want lbs_co2_per_mwh", r.Meta.Units)
	}
	if r.Meta.SignalType != "" && r.Meta.SignalType != wtSignal {
		return nil, perr("signal_type %q, want %s", r.Meta.SignalType, wtSignal)
	}
	period := time.Duration(r.Meta.DataPointPeriodSeconds) * time.Second
	if period <= 0 {
		return nil, perr("data_point_period_seconds %d", r.Meta.DataPointPeriodSeconds)
	}
	dataset := fmt.Sprintf("API v3 %s signal_type=%s", endpoint, wtSignal)
	if r.Meta.Model.Type != "" || r.Meta.Model.Date != "" {
		dataset += fmt.Sprintf(" model=%s/%s", r.Meta.Model.Type, r.Meta.Model.Date)
	}
	var baseNotes []string
	if r.Meta.GeneratedAt != "" {
		baseNotes = append(baseNotes, "forecast generated at "+r.Meta.GeneratedAt)
	}
	for _, wn := range r.Meta.Warnings {
		baseNotes = append(baseNotes, "source warning "+wn.Type+": "+wn.Message)
	}
	out := make([]Intensity, 0, len(r.Data))
	for _, p := range r.Data {
		if p.Value == nil {
			continue
		}
		t, err := parseTime(p.PointTime)
		if err != nil {
			return nil, perr("point_time: %v", err)
		}
		if *p.Value < 0 {
			return nil, perr("negative value %g", *p.Value)
		}
		method := "marginal operating emissions rate (MOER)"
		estimated := p.ImputedDataUsed || endpoint == wtForecast
		if endpoint == wtForecast {
			method += ", forecast"
		}
		if p.ImputedDataUsed {
			method += ", imputed data used"
		}
		z := r.Meta.Region
		if z == "" {
			z = region
		}
		out = append(out, Intensity{
			Zone:      z,
			Value:     LbsPerMWh(*p.Value),
			ValidFrom: t,
			ValidTo:   t.Add(period),
			Basis:     BasisMarginal,
			Provider:  w.Name(),
			Provenance: Provenance{
				Source:     "WattTime",
				Dataset:    dataset,
				Licence:    "WattTime API terms of use",
				FactorType: FactorUnspecified,
				Method:     method,
				Estimated:  estimated,
				FetchedAt:  now,
				Notes:      append([]string{fmt.Sprintf("converted from %g lbs/MWh", *p.Value)}, baseNotes...),
			},
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ValidFrom.Before(out[j].ValidFrom) })
	return out, nil
}
