package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseAfter reads a Retry-After value, delay-seconds or an HTTP date
// (relative to now). It returns zero when v is empty, unparseable, not
// positive or a date that has passed.
func ParseAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 || n > int64(maxAfter/time.Second) {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// maxAfter bounds a parsed delay (a year) so that it cannot overflow.
const maxAfter = 365 * 24 * time.Hour

// HeaderAfter reads the wait a response asks for: Azure's
// x-ms-retry-after-ms when present, else Retry-After; zero when neither.
func HeaderAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("x-ms-retry-after-ms"); v != "" {
		if ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && ms > 0 && ms < int64(maxAfter/time.Millisecond) {
			return time.Duration(ms) * time.Millisecond
		}
	}
	return ParseAfter(h.Get("Retry-After"), now)
}

// Sleep waits for d or until ctx ends, whichever is first; it returns
// ctx's error when ctx ended.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Error is an error that knows whether another attempt may succeed
// (throttling, 5xx, a network error) and how long the server asked to wait
// (zero when it did not say). An error that does not implement it is not
// retried.
type Error interface {
	error
	Retryable() bool
	RetryAfter() time.Duration
}

// Policy is how a call is retried: up to Attempts tries, the n-th retry
// waiting Base×2ⁿ (times a random factor in [0, 1) with Jitter: "full
// jitter"), at least the server's Retry-After, and at most Max.
type Policy struct {
	// Attempts is the total number of tries (default 5; 1: no retry).
	Attempts int
	// Base is the first retry's backoff (default 1s).
	Base time.Duration
	// Max caps one wait, Retry-After included (default 1m).
	Max time.Duration
	// Jitter returns a value in [0, 1) that scales the backoff; nil: none.
	Jitter func() float64
	// Sleep waits; nil: Sleep. Tests record the waits here.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (p Policy) defaults() Policy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = time.Minute
	}
	if p.Sleep == nil {
		p.Sleep = Sleep
	}
	return p
}

// Wait returns the wait before retry n (0: the first retry) when the server
// asked for after (zero: it did not say).
func (p Policy) Wait(n int, after time.Duration) time.Duration {
	p = p.defaults()
	ceil := p.Max
	if n < 62 {
		if c := p.Base << n; c > 0 && c < p.Max {
			ceil = c
		}
	}
	d := ceil
	if p.Jitter != nil {
		d = time.Duration(p.Jitter() * float64(ceil))
	}
	if after > d {
		d = after
	}
	return min(d, p.Max)
}

// Do calls fn until it succeeds, returns an error that is not a retryable
// Error, the attempts run out or ctx ends. It returns how many times fn was
// called and fn's last error (joined with ctx's error when a wait was cut
// short).
func (p Policy) Do(ctx context.Context, fn func(context.Context) error) (int, error) {
	p = p.defaults()
	var err error
	for i := 0; i < p.Attempts; i++ {
		if err = fn(ctx); err == nil {
			return i + 1, nil
		}
		var re Error
		if !errors.As(err, &re) || !re.Retryable() || i == p.Attempts-1 || ctx.Err() != nil {
			return i + 1, err
		}
		if serr := p.Sleep(ctx, p.Wait(i, re.RetryAfter())); serr != nil {
			return i + 1, fmt.Errorf("%w; gave up waiting to retry: %w", err, serr)
		}
	}
	return p.Attempts, err
}
