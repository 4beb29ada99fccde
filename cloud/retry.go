package cloud

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/inferensys/aiwatt/internal/retry"
)

// RetryableError is implemented by provider errors that know whether
// another attempt may succeed (throttling, 5xx, timeouts) and how long the
// server asked to wait (Retry-After; zero when it did not say).
type RetryableError = retry.Error

// HTTPError is a provider error classified from an HTTP status and headers.
type HTTPError struct {
	Status int
	After  time.Duration
	Err    error
}

func (e *HTTPError) Error() string { return e.Err.Error() }
func (e *HTTPError) Unwrap() error { return e.Err }

// Retryable reports whether the status is 408, 429 or 5xx (except 501).
func (e *HTTPError) Retryable() bool {
	return e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests ||
		(e.Status >= 500 && e.Status != http.StatusNotImplemented)
}

// RetryAfter returns the server's requested wait.
func (e *HTTPError) RetryAfter() time.Duration { return e.After }

// Retrier runs calls with exponential backoff and full jitter, waiting at
// least as long as a Retry-After asks (capped at MaxDelay).
type Retrier struct {
	// Attempts is the total number of tries (default 5).
	Attempts int
	// BaseDelay is the first backoff ceiling (default 1s); each retry doubles it.
	BaseDelay time.Duration
	// MaxDelay caps one wait (default 1m).
	MaxDelay time.Duration
	// Sleep waits for d or until ctx ends; tests inject a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a value in [0, 1); nil uses math/rand/v2.
	Jitter func() float64

	retries atomic.Int64
}

// Retries returns how many retries the Retrier has made.
func (r *Retrier) Retries() int64 { return r.retries.Load() }

// Do calls fn until it succeeds, returns a non-retryable error, the attempts
// run out or ctx ends (internal/retry's Policy with full jitter).
func (r *Retrier) Do(ctx context.Context, fn func(context.Context) error) error {
	jitter := r.Jitter
	if jitter == nil {
		jitter = rand.Float64
	}
	p := retry.Policy{Attempts: r.Attempts, Base: r.BaseDelay, Max: r.MaxDelay, Jitter: jitter, Sleep: r.Sleep}
	n, err := p.Do(ctx, fn)
	if n > 1 {
		r.retries.Add(int64(n - 1))
	}
	return err
}
