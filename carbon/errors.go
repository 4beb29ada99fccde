package carbon

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Providers wrap them (test with errors.Is); the wrapping
// error names the provider and endpoint but never a secret.
var (
	// ErrUnknownZone means the provider does not know the zone.
	ErrUnknownZone = errors.New("unknown zone")
	// ErrAuth means the provider refused the credentials (HTTP 401/403) or
	// the credentials could not be used.
	ErrAuth = errors.New("authentication failed")
	// ErrRateLimited means the provider asked us to slow down (HTTP 429).
	// The concrete error is a *RateLimitError carrying the Retry-After delay.
	ErrRateLimited = errors.New("rate limited")
	// ErrStale means the freshest value available is older than allowed.
	ErrStale = errors.New("intensity is stale")
	// ErrNoData means the provider answered but had no value for the time
	// asked.
	ErrNoData = errors.New("no intensity for the requested time")
	// ErrBasis means an intensity of the wrong basis was offered, e.g. a
	// marginal value where a location value is required.
	ErrBasis = errors.New("basis mismatch")
)

// RateLimitError is returned (wrapped) when a provider answers HTTP 429.
// errors.Is(err, ErrRateLimited) is true for it; use errors.As to read
// RetryAfter.
type RateLimitError struct {
	// RetryAfter is the delay the server asked for (Retry-After header); zero
	// when it gave none.
	RetryAfter time.Duration
}

// Error formats the error, e.g. "rate limited (retry after 30s)".
func (e *RateLimitError) Error() string {
	if e.RetryAfter <= 0 {
		return "rate limited"
	}
	return fmt.Sprintf("rate limited (retry after %s)", e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// APIError is a non-success HTTP status from a provider. It unwraps to
// ErrAuth (401/403), *RateLimitError (429) or nothing (other statuses).
type APIError struct {
	Provider   string // provider name, e.g. "electricitymaps"
	Endpoint   string // request path, e.g. "/v3/carbon-intensity/latest"
	StatusCode int    // HTTP status code
	Err        error  // ErrAuth, *RateLimitError or nil
}

// Error formats the error without response bodies or headers (which could
// echo credentials).
func (e *APIError) Error() string {
	s := fmt.Sprintf("%s: GET %s: HTTP %d", e.Provider, e.Endpoint, e.StatusCode)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the classified cause.
func (e *APIError) Unwrap() error { return e.Err }

// ParseError means a provider's response could not be decoded or did not
// have the expected shape.
type ParseError struct {
	Provider string // provider name
	Endpoint string // request path
	Err      error  // the decoding error
}

// Error names the provider and endpoint.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s: parse response of %s: %v", e.Provider, e.Endpoint, e.Err)
}

// Unwrap returns the decoding error.
func (e *ParseError) Unwrap() error { return e.Err }

// ChainError is returned by Chain.Intensity when no link produced a usable
// value. It unwraps to the errors of the links that failed.
type ChainError struct {
	Zone    string // the zone asked for
	Skipped []Skip // every link, in order, with the reason it was skipped
}

// Error lists every link and why it was skipped.
func (e *ChainError) Error() string {
	s := fmt.Sprintf("carbon: no provider has a usable intensity for zone %q", e.Zone)
	for _, sk := range e.Skipped {
		s += "; " + sk.String()
	}
	return s
}

// Unwrap returns the underlying link errors, so errors.Is(err, ErrAuth) and
// friends work on a chain failure.
func (e *ChainError) Unwrap() []error {
	var errs []error
	for _, sk := range e.Skipped {
		if sk.Err != nil {
			errs = append(errs, sk.Err)
		}
	}
	return errs
}
