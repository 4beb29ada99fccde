package carbon

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestChainHungProviderFallsThroughInTime: a provider that accepts the
// connection and never answers (its own timeout is the default 10 s) must
// not take the caller's whole deadline: the chain gives it half the time
// left, counts the timeout, backs it off, and the static table answers the
// same call.
func TestChainHungProviderFallsThroughInTime(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	tok, _ := secretFile(t, "tok")
	clock := newClock("2024-03-06T19:20:00Z")
	chain, err := NewChain(ChainOptions{Clock: clock}, Link{Provider: newEM(t, srv.URL, clock, tok)}, Link{Provider: newStaticT(t)})
	if err != nil {
		t.Fatal(err)
	}
	const deadline = 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	in, err := chain.Intensity(ctx, "DE", clock.Now())
	if took := time.Since(start); err != nil || took >= deadline {
		t.Fatalf("Intensity = %+v, %v after %s; want the static answer within %s", in, err, took, deadline)
	}
	if in.Provider != "static" || len(in.Provenance.Skipped) != 1 || !strings.Contains(in.Provenance.Skipped[0].Reason, "timed out") {
		t.Fatalf("answer %s, skipped %+v", in.Provider, in.Provenance.Skipped)
	}
	st := linkStatus(t, chain, "electricitymaps")
	if st.Up || st.Errors[ReasonTimeout] != 1 || !st.Until.After(clock.Now()) {
		t.Fatalf("status %+v", st)
	}
	// Backing off: the next call does not wait on it at all.
	start = time.Now()
	if in, err := chain.Intensity(context.Background(), "DE", clock.Now()); err != nil || in.Provider != "static" || time.Since(start) > deadline/2 {
		t.Fatalf("second call: %s, %v after %s", in.Provider, err, time.Since(start))
	}
}

// TestChainBackoffDoubles: each consecutive failure doubles how long the
// provider is left alone, up to MaxRetryInterval; a success resets it.
func TestChainBackoffDoubles(t *testing.T) {
	clock := newClock("2024-03-06T19:20:00Z")
	bad := &fixedProvider{name: "flaky", err: errors.New("connection reset")}
	chain, err := NewChain(ChainOptions{Clock: clock, RetryInterval: time.Minute, MaxRetryInterval: 5 * time.Minute},
		Link{Provider: bad}, Link{Provider: newStaticT(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute} {
		if _, err := chain.Intensity(context.Background(), "DE", clock.Now()); err != nil {
			t.Fatal(err)
		}
		if got := linkStatus(t, chain, "flaky").Until.Sub(clock.Now()); got != want {
			t.Fatalf("failure %d: left alone %s, want %s", i+1, got, want)
		}
		if n := bad.hits.Load(); n != int64(i+1) {
			t.Fatalf("failure %d: %d calls", i+1, n)
		}
		clock.Advance(want)
	}
	// A success resets the streak: the next failure waits RetryInterval again.
	good, err := newStaticT(t).Intensity(context.Background(), "DE", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	good.ValidFrom, good.ValidTo = clock.Now().Add(-time.Minute), clock.Now().Add(time.Hour)
	bad.err, bad.in = nil, good
	if in, err := chain.Intensity(context.Background(), "DE", clock.Now()); err != nil || len(in.Provenance.Skipped) != 0 {
		t.Fatalf("recovered: %+v, %v", in.Provenance.Skipped, err)
	}
	bad.err = errors.New("connection reset")
	clock.Advance(2 * time.Hour) // past the cached value's window
	if _, err := chain.Intensity(context.Background(), "DE", clock.Now()); err != nil {
		t.Fatal(err)
	}
	if got := linkStatus(t, chain, "flaky").Until.Sub(clock.Now()); got != time.Minute {
		t.Fatalf("after a success and a failure: left alone %s, want 1m", got)
	}
}

func linkStatus(t *testing.T, c *Chain, provider string) LinkStatus {
	t.Helper()
	for _, s := range c.Status() {
		if s.Provider == provider {
			return s
		}
	}
	t.Fatalf("no status for %s in %+v", provider, c.Status())
	return LinkStatus{}
}
