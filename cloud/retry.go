package cloud

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// RetryableError is implemented by provider errors that know whether
// another attempt may succeed (throttling, 5xx, timeouts) and how long the
// server asked to wait (Retry-After; zero when it did not say).
type RetryableError interface {
	error
	Retryable() bool
	RetryAfter() time.Duration
}

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

// ParseRetryAfter reads a Retry-After header (seconds or an HTTP date,
// relative to now) and the x-ms-retry-after-ms variant Azure sends.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("x-ms-retry-after-ms"); v != "" {
		if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

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

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls fn until it succeeds, returns a non-retryable error, the attempts
// run out or ctx ends.
func (r *Retrier) Do(ctx context.Context, fn func(context.Context) error) error {
	attempts, base, maxd := r.Attempts, r.BaseDelay, r.MaxDelay
	if attempts <= 0 {
		attempts = 5
	}
	if base <= 0 {
		base = time.Second
	}
	if maxd <= 0 {
		maxd = time.Minute
	}
	sleep, jitter := r.Sleep, r.Jitter
	if sleep == nil {
		sleep = sleepCtx
	}
	if jitter == nil {
		jitter = rand.Float64
	}
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(ctx); err == nil {
			return nil
		}
		var re RetryableError
		if !errors.As(err, &re) || !re.Retryable() || i == attempts-1 || ctx.Err() != nil {
			return err
		}
		ceil := base << i
		if ceil > maxd || ceil <= 0 {
			ceil = maxd
		}
		d := time.Duration(jitter() * float64(ceil))
		if ra := re.RetryAfter(); ra > d {
			d = min(ra, maxd)
		}
		r.retries.Add(1)
		if serr := sleep(ctx, d); serr != nil {
			return errors.Join(err, serr)
		}
	}
	return err
}
