package carbon

import (
	"context"
	"time"
)

// Provider is a source of grid carbon intensity.
//
// Contract:
//   - Intensity returns the value valid at at: ValidFrom <= at < ValidTo.
//     Where the source lags (its newest value ended before at), it may return
//     that newest value with its true window, so that the caller (a Chain)
//     judges its age; it never returns a value whose window starts after at.
//     When it has nothing usable it returns an error wrapping ErrNoData.
//   - It honours ctx: it returns promptly once ctx is done, with an error
//     that wraps ctx.Err() (context.DeadlineExceeded for a slow server).
//   - Errors are classified: ErrUnknownZone, ErrAuth, *RateLimitError
//     (errors.Is ErrRateLimited, with RetryAfter), ErrNoData, *ParseError for
//     malformed responses, *APIError for other HTTP statuses. Errors name the
//     provider and endpoint and never contain credentials.
//   - The returned Intensity carries Basis, Provider and Provenance
//     (source, dataset or API, licence, factor type, fetched-at).
//   - It is safe for concurrent use.
type Provider interface {
	// Name is a short stable identifier, e.g. "electricitymaps", used in
	// provenance, logs and metrics labels.
	Name() string
	// Intensity returns the intensity of zone valid at at.
	Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error)
}

// HistoryProvider is a Provider that can return a series.
type HistoryProvider interface {
	Provider
	// History returns the values whose windows overlap [from, to), oldest
	// first. The same error contract as Intensity applies.
	History(ctx context.Context, zone string, from, to time.Time) ([]Intensity, error)
}

// Clock tells the time. Inject a fake in tests.
type Clock interface {
	Now() time.Time
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// SystemClock is the wall clock.
var SystemClock Clock = ClockFunc(time.Now)

// basisOf is implemented by providers whose basis is fixed; NewCalculator and
// NewChain use it to refuse a mismatched provider before any data flows.
type basisOf interface {
	Basis() Basis
}
