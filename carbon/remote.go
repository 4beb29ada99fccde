package carbon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// IntensityAPIPath is where an `aiwatt carbon` service answers intensity
// queries: GET IntensityAPIPath?zone=Z[&at=RFC3339][&basis=B].
const IntensityAPIPath = "/api/v1/intensity"

// IntensityResponse is the JSON body of a successful GET IntensityAPIPath.
// The `aiwatt carbon` service writes it and Remote reads it, so the two
// cannot drift apart.
type IntensityResponse struct {
	// Zone is the zone asked for, as the service names it.
	Zone string `json:"zone"`
	// At is the time asked for; the time of the request when the query had
	// no at.
	At time.Time `json:"at"`
	// AgeSeconds is At − Intensity.ValidFrom in seconds, the same age as the
	// service's aiwatt_grid_carbon_intensity_age_seconds metric.
	AgeSeconds float64 `json:"age_seconds"`
	// Cached is true when the value is the service's periodically refreshed
	// one rather than the answer of a chain walk made for this request.
	Cached bool `json:"cached"`
	// RefreshedAt is when a cached value was refreshed; zero otherwise.
	RefreshedAt time.Time `json:"refreshed_at,omitzero"`
	// Intensity is the value with its full provenance.
	Intensity Intensity `json:"intensity"`
}

// IntensityErrorResponse is the JSON body of a failed GET IntensityAPIPath
// (HTTP 400 bad input, 404 unknown zone or basis, 503 no usable value).
type IntensityErrorResponse struct {
	// Error says what went wrong; it never contains a secret.
	Error string `json:"error"`
	// Zone is the zone asked for, when there was one.
	Zone string `json:"zone,omitempty"`
	// Skipped lists every provider tried and why it gave no usable value.
	Skipped []Skip `json:"skipped,omitempty"`
}

// RemoteName is the Name of a Remote provider.
const RemoteName = "aiwatt"

// RemoteOptions configures a Remote provider.
type RemoteOptions struct {
	// HTTPOptions.BaseURL is the service's base URL, e.g.
	// "http://aiwatt-carbon.monitoring.svc:28291". Required.
	HTTPOptions
	// Basis is asked of the service and required of its answers; default
	// BasisLocation.
	Basis Basis
	// Username enables HTTP basic auth (for a service behind
	// --web.config.file basic_auth_users); empty: none.
	Username string
	// Password is the basic-auth password; required with Username.
	Password *Secret
}

// Remote is the Provider that reads another aiwatt process: the `aiwatt
// carbon` service that runs the real providers once for a whole cluster, so
// that node agents do not each call (and each hold a key for) the external
// API. Answers keep the service's Provider (e.g. "electricitymaps"), basis
// and provenance, skipped links included; the provenance gains the note
// "via aiwatt carbon at URL".
//
// HTTP 404 (zone or basis not served) maps to ErrUnknownZone and 503 (no
// usable value upstream) to ErrNoData; other statuses, timeouts and body
// limits behave as for every HTTP provider.
type Remote struct {
	api      *apiClient
	basis    Basis
	username string
	password *Secret
	via      string
}

var (
	_ Provider = (*Remote)(nil)
	_ basisOf  = (*Remote)(nil)
)

// NewRemote returns a Remote provider.
func NewRemote(o RemoteOptions) (*Remote, error) {
	if o.BaseURL == "" {
		return nil, errors.New("aiwatt: base_url (the aiwatt carbon service) is required")
	}
	if o.Basis == "" {
		o.Basis = BasisLocation
	}
	if !o.Basis.Valid() {
		return nil, fmt.Errorf("aiwatt: basis %q", o.Basis)
	}
	if (o.Username == "") != (o.Password == nil) {
		return nil, errors.New("aiwatt: basic auth needs both username and password")
	}
	api, err := newAPIClient(RemoteName, "", o.HTTPOptions)
	if err != nil {
		return nil, err
	}
	return &Remote{api: api, basis: o.Basis, username: o.Username, password: o.Password, via: api.base.String()}, nil
}

// Name returns "aiwatt".
func (r *Remote) Name() string { return RemoteName }

// String returns the name and the service URL, never the password.
func (r *Remote) String() string { return r.Name() + "(" + r.via + ")" }

// GoString is String.
func (r *Remote) GoString() string { return r.String() }

// Basis returns the basis asked of the service.
func (r *Remote) Basis() Basis { return r.basis }

// Intensity implements Provider.
func (r *Remote) Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error) {
	if zone == "" {
		return Intensity{}, fmt.Errorf("aiwatt: empty zone: %w", ErrUnknownZone)
	}
	q := url.Values{"zone": {zone}, "at": {at.UTC().Format(time.RFC3339Nano)}, "basis": {string(r.basis)}}
	var resp IntensityResponse
	err := r.api.getJSON(ctx, IntensityAPIPath, IntensityAPIPath, q, func(req *http.Request) error {
		if r.username == "" {
			return nil
		}
		pw, err := r.password.Value()
		if err != nil {
			return fmt.Errorf("aiwatt: password: %w: %w", ErrAuth, err)
		}
		req.SetBasicAuth(r.username, pw)
		return nil
	}, &resp)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			switch ae.StatusCode {
			case http.StatusNotFound:
				return Intensity{}, fmt.Errorf("%w: zone %s, basis %s: %w", err, zone, r.basis, ErrUnknownZone)
			case http.StatusServiceUnavailable:
				return Intensity{}, fmt.Errorf("%w: zone %s: %w", err, zone, ErrNoData)
			}
		}
		return Intensity{}, err
	}
	in := resp.Intensity
	if err := in.Validate(); err != nil {
		return Intensity{}, &ParseError{Provider: r.Name(), Endpoint: IntensityAPIPath, Err: fmt.Errorf("intensity: %w", err)}
	}
	if in.Basis != r.basis {
		return Intensity{}, fmt.Errorf("aiwatt: %s answered with %s basis, asked for %s: %w", IntensityAPIPath, in.Basis, r.basis, ErrBasis)
	}
	if in.Provider == "" {
		in.Provider = r.Name()
	}
	if in.Zone == "" {
		in.Zone = zone
	}
	in.Provenance.Notes = append(append([]string(nil), in.Provenance.Notes...), "via aiwatt carbon at "+r.via)
	return in, nil
}
