package carbon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/internal/retry"
)

// Defaults for the HTTP providers.
const (
	// DefaultTimeout bounds one provider request when the caller's context
	// has no earlier deadline.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBodyBytes bounds a response body.
	DefaultMaxBodyBytes int64 = 4 << 20
	// UserAgent is sent with every request.
	UserAgent = "aiwatt"
)

// HTTPOptions are the transport settings shared by the HTTP providers.
type HTTPOptions struct {
	// BaseURL overrides the provider's public endpoint (tests point it at an
	// httptest server). Empty: the provider's default.
	BaseURL string
	// Client is the HTTP client; nil: a client with no timeout of its own
	// (timeouts come from the context).
	Client *http.Client
	// Timeout bounds each request in addition to the context's deadline;
	// zero: DefaultTimeout; negative: only the context bounds it.
	Timeout time.Duration
	// MaxBodyBytes bounds a response body; zero: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Clock tells the time (staleness, Retry-After dates, token expiry);
	// nil: SystemClock.
	Clock Clock
	// Logger receives debug lines about requests; nil: discard.
	Logger *slog.Logger
}

// apiClient does JSON GETs against one provider's API with uniform error
// classification.
type apiClient struct {
	provider string
	base     *url.URL
	client   *http.Client
	timeout  time.Duration
	maxBody  int64
	clock    Clock
	logger   *slog.Logger
}

func newAPIClient(provider, defaultBase string, o HTTPOptions) (*apiClient, error) {
	raw := o.BaseURL
	if raw == "" {
		raw = defaultBase
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: invalid base URL %q", provider, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: base URL must not contain credentials", provider)
	}
	c := &apiClient{provider: provider, base: u, client: o.Client, timeout: o.Timeout,
		maxBody: o.MaxBodyBytes, clock: o.Clock, logger: o.Logger}
	if c.client == nil {
		c.client = &http.Client{}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	if c.clock == nil {
		c.clock = SystemClock
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// getJSON GETs base+path?query, sets headers via prepare, and decodes a 2xx
// JSON body into out. endpoint is the path template used in errors.
func (c *apiClient) getJSON(ctx context.Context, endpoint, path string, query url.Values, prepare func(*http.Request) error, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%s: GET %s: %w", c.provider, endpoint, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if prepare != nil {
		if err := prepare(req); err != nil {
			return err
		}
	}
	start := c.clock.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		// *url.Error names the URL (no credentials: they travel in headers)
		// and wraps the cause, e.g. context.DeadlineExceeded.
		return fmt.Errorf("%s: GET %s: %w", c.provider, endpoint, err)
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, c.maxBody))
		resp.Body.Close()
	}()
	c.logger.Debug("carbon provider request", "provider", c.provider, "endpoint", endpoint,
		"status", resp.StatusCode, "duration", c.clock.Now().Sub(start))

	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == http.StatusTooManyRequests:
		return &APIError{Provider: c.provider, Endpoint: endpoint, StatusCode: resp.StatusCode,
			Err: &RateLimitError{RetryAfter: retry.ParseAfter(resp.Header.Get("Retry-After"), c.clock.Now())}}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return &APIError{Provider: c.provider, Endpoint: endpoint, StatusCode: resp.StatusCode, Err: ErrAuth}
	default:
		return &APIError{Provider: c.provider, Endpoint: endpoint, StatusCode: resp.StatusCode}
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fmt.Errorf("%s: GET %s: read body: %w", c.provider, endpoint, err)
	}
	if int64(len(body)) > c.maxBody {
		return &ParseError{Provider: c.provider, Endpoint: endpoint,
			Err: fmt.Errorf("response body larger than %d bytes", c.maxBody)}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return &ParseError{Provider: c.provider, Endpoint: endpoint, Err: describeJSONError(err)}
	}
	return nil
}

// describeJSONError keeps a JSON error's position and kind but never echoes
// response content.
func describeJSONError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d: %w", se.Offset, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: got JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	return err
}

// parseTime accepts the timestamp shapes the providers use: RFC 3339 with or
// without fractional seconds, and the UK API's "2006-01-02T15:04Z".
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}
