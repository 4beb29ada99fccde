package carbon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// emLatestServer answers /latest with a value for the given hour, or with
// the status set in fail.
type emLatestServer struct {
	*server
	hour       atomic.Value // string RFC3339
	fail       atomic.Int64 // HTTP status to answer with, 0 = OK
	retryAfter atomic.Value // string
}

func newEMLatestServer(t *testing.T) *emLatestServer {
	s := &emLatestServer{}
	s.retryAfter.Store("")
	s.server = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if code := int(s.fail.Load()); code != 0 {
			if ra := s.retryAfter.Load().(string); ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(code)
			return
		}
		writeJSON(w, []byte(`{"zone":"DE","carbonIntensity":450,"datetime":"`+s.hour.Load().(string)+`","emissionFactorType":"direct","isEstimated":false}`))
	})
	return s
}

func newStaticT(t testing.TB) *Static {
	s, err := NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestChainFallsBackOnRateLimitAndHonoursRetryAfter(t *testing.T) {
	srv := newEMLatestServer(t)
	srv.fail.Store(http.StatusTooManyRequests)
	srv.retryAfter.Store("30")
	clock := newClock("2024-03-06T19:20:00Z")
	tok, _ := secretFile(t, "tok")
	em := newEM(t, srv.URL, clock, tok)
	buf := &lockedBuffer{}
	chain, err := NewChain(ChainOptions{Clock: clock, Logger: debugLogger(buf)},
		Link{Provider: em, MaxAge: 2 * time.Hour}, Link{Provider: newStaticT(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	in, err := chain.Intensity(ctx, "DE", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if in.Provider != "static" || in.Value != 336.38 {
		t.Fatalf("answer %s", in)
	}
	if len(in.Provenance.Skipped) != 1 || in.Provenance.Skipped[0].String() != "electricitymaps: rate limited (retry after 30s)" {
		t.Fatalf("skipped %v", in.Provenance.Skipped)
	}
	if !errors.Is(in.Provenance.Skipped[0].Err, ErrRateLimited) {
		t.Fatalf("skip error %v", in.Provenance.Skipped[0].Err)
	}
	if !strings.Contains(in.String(), "skipped=\"electricitymaps: rate limited (retry after 30s)\"") {
		t.Fatalf("String() does not say why: %s", in)
	}

	// Within Retry-After the provider is not called again.
	clock.Advance(10 * time.Second)
	in, err = chain.Intensity(ctx, "DE", clock.Now())
	if err != nil || in.Provider != "static" {
		t.Fatalf("%v %s", err, in)
	}
	if got := in.Provenance.Skipped[0].String(); got != "electricitymaps: rate limited (retry after 20s)" {
		t.Fatalf("skip %q", got)
	}
	if n := srv.count("/v3/carbon-intensity/latest"); n != 1 {
		t.Fatalf("rate-limited provider called %d times", n)
	}

	// After Retry-After it is tried again, and answers.
	srv.fail.Store(0)
	srv.hour.Store("2024-03-06T19:00:00.000Z")
	clock.Advance(21 * time.Second)
	in, err = chain.Intensity(ctx, "DE", clock.Now())
	if err != nil || in.Provider != "electricitymaps" || in.Value != 450 || len(in.Provenance.Skipped) != 0 {
		t.Fatalf("%v %s", err, in)
	}
	if n := srv.count("/v3/carbon-intensity/latest"); n != 2 {
		t.Fatalf("calls %d", n)
	}
	// The cached hour is reused: no call until the hour ends.
	for range 10 {
		clock.Advance(time.Minute)
		if in, err := chain.Intensity(ctx, "DE", clock.Now()); err != nil || in.Provider != "electricitymaps" {
			t.Fatalf("%v %s", err, in)
		}
	}
	if n := srv.count("/v3/carbon-intensity/latest"); n != 2 {
		t.Fatalf("cached value not reused: %d calls", n)
	}
	if !strings.Contains(buf.String(), "falling back") || !strings.Contains(buf.String(), "recovered") {
		t.Fatalf("log:\n%s", buf)
	}

	// Next hour: the provider is rate limited again, but the cached value is
	// within MaxAge, so it is served (and says so) rather than hammering.
	srv.fail.Store(http.StatusTooManyRequests)
	clock.Set("2024-03-06T20:05:00Z")
	in, err = chain.Intensity(ctx, "DE", clock.Now())
	if err != nil || in.Provider != "electricitymaps" || !hasNote(in, "served from cache; refresh failed: rate limited (retry after 30s)") {
		t.Fatalf("%v %s %v", err, in, in.Provenance.Notes)
	}
	clock.Advance(5 * time.Second)
	in, err = chain.Intensity(ctx, "DE", clock.Now())
	if err != nil || in.Provider != "electricitymaps" || !hasNote(in, "refresh deferred") {
		t.Fatalf("%v %s %v", err, in, in.Provenance.Notes)
	}
	if n := srv.count("/v3/carbon-intensity/latest"); n != 3 {
		t.Fatalf("calls %d", n)
	}
	st := chain.Status()
	if len(st) != 2 || st[0].Provider != "electricitymaps" || st[0].Up || st[0].Reason != "rate limited" || st[1].Provider != "static" || !st[1].Up {
		t.Fatalf("status %+v", st)
	}
	// Two calls were refused with 429; the deferred refreshes made no call
	// and are not counted.
	if len(st[0].Errors) != 1 || st[0].Errors[ReasonRateLimited] != 2 || st[1].Errors != nil {
		t.Fatalf("error counts %v %v", st[0].Errors, st[1].Errors)
	}
}

func TestErrorReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&APIError{Provider: "p", StatusCode: 429, Err: &RateLimitError{RetryAfter: time.Second}}, ReasonRateLimited},
		{&APIError{Provider: "p", StatusCode: 401, Err: ErrAuth}, ReasonAuth},
		{fmt.Errorf("electricitymaps: token: %w", errors.New("secret file:/x is empty")), ReasonOther},
		{fmt.Errorf("static: zone %q: %w", "XX", ErrUnknownZone), ReasonUnknownZone},
		{fmt.Errorf("p: GET /x: %w", context.DeadlineExceeded), ReasonTimeout},
		{fmt.Errorf("p: %w", ErrStale), ReasonStale},
		{fmt.Errorf("p: %w", ErrNoData), ReasonNoData},
		{&ParseError{Provider: "p", Endpoint: "/x", Err: errors.New("bad")}, ReasonParse},
		{&APIError{Provider: "p", StatusCode: 500}, ReasonHTTP},
		{fmt.Errorf("p: GET /x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), ReasonUnreachable},
		{fmt.Errorf("p: GET /x: %w", &net.DNSError{Err: "no such host", Name: "api.example", IsNotFound: true}), ReasonUnreachable},
		{errors.New("something else"), ReasonOther},
	} {
		if got := ErrorReason(tc.err); got != tc.want {
			t.Errorf("ErrorReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestChainSkipsStaleValue(t *testing.T) {
	srv := newEMLatestServer(t)
	srv.hour.Store("2024-03-06T16:00:00.000Z") // the feed lags: newest hour ended 3h20m ago
	clock := newClock("2024-03-06T20:20:00Z")
	tok, _ := secretFile(t, "tok")
	chain, err := NewChain(ChainOptions{Clock: clock},
		Link{Provider: newEM(t, srv.URL, clock, tok), MaxAge: 2 * time.Hour}, Link{Provider: newStaticT(t)})
	if err != nil {
		t.Fatal(err)
	}
	in, err := chain.Intensity(context.Background(), "DE", clock.Now())
	if err != nil || in.Provider != "static" {
		t.Fatalf("%v %s", err, in)
	}
	sk := in.Provenance.Skipped
	if len(sk) != 1 || !strings.HasPrefix(sk[0].String(), "electricitymaps: stale: newest value ends 2024-03-06T17:00:00Z, 3h20m0s before") ||
		!strings.Contains(sk[0].Reason, "limit 2h0m0s") || !errors.Is(sk[0].Err, ErrStale) {
		t.Fatalf("skipped %v", sk)
	}
	// With a looser limit the same lagging value is accepted.
	chain2, _ := NewChain(ChainOptions{Clock: clock},
		Link{Provider: newEM(t, srv.URL, clock, tok), MaxAge: 4 * time.Hour}, Link{Provider: newStaticT(t)})
	in, err = chain2.Intensity(context.Background(), "DE", clock.Now())
	if err != nil || in.Provider != "electricitymaps" || in.Value != 450 {
		t.Fatalf("%v %s", err, in)
	}
}

func TestChainPerLinkZones(t *testing.T) {
	clock := newClock("2024-06-01T00:00:00Z")
	failing := &fixedProvider{name: "down", err: errors.New("connection refused")}
	chain, err := NewChain(ChainOptions{Clock: clock},
		Link{Provider: failing, Zone: "GB-13"}, Link{Provider: newStaticT(t), Zone: "aws:eu-west-2"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := chain.Intensity(context.Background(), "GB", clock.Now())
	if err != nil || in.Value != 225 || in.Zone != "aws:eu-west-2" {
		t.Fatalf("%v %s", err, in)
	}
	if got := in.Provenance.Skipped[0].String(); got != "down: connection refused (retry after 1m0s)" {
		t.Fatalf("skip %q", got)
	}
}

func TestChainAllFail(t *testing.T) {
	tok, _ := secretFile(t, "tok")
	srv := newEMLatestServer(t)
	srv.fail.Store(http.StatusUnauthorized)
	clock := newClock("2024-03-06T19:20:00Z")
	chain, _ := NewChain(ChainOptions{Clock: clock},
		Link{Provider: newEM(t, srv.URL, clock, tok)}, Link{Provider: newStaticT(t)})
	_, err := chain.Intensity(context.Background(), "XX", clock.Now())
	var ce *ChainError
	if !errors.As(err, &ce) || len(ce.Skipped) != 2 {
		t.Fatalf("err %v", err)
	}
	if !errors.Is(err, ErrAuth) || !errors.Is(err, ErrUnknownZone) {
		t.Fatalf("chain error does not unwrap to the link errors: %v", err)
	}
	if !strings.Contains(err.Error(), "electricitymaps: authentication failed") || !strings.Contains(err.Error(), "static: unknown zone") {
		t.Fatalf("message %q", err)
	}
}

func TestChainBasis(t *testing.T) {
	pw, _ := secretFile(t, "pw")
	wt, _ := NewWattTime(WattTimeOptions{Username: "u", Password: pw})
	if _, err := NewChain(ChainOptions{}, Link{Provider: wt}); !errors.Is(err, ErrBasis) {
		t.Fatalf("watttime accepted in a location chain: %v", err)
	}
	if _, err := NewChain(ChainOptions{Basis: BasisMarginal}, Link{Provider: wt}); err != nil {
		t.Fatalf("watttime refused in a marginal chain: %v", err)
	}
	if _, err := NewChain(ChainOptions{Basis: BasisMarginal}, Link{Provider: newStaticT(t)}); !errors.Is(err, ErrBasis) {
		t.Fatalf("static accepted in a marginal chain: %v", err)
	}
	// A provider without a fixed basis that answers marginal is skipped.
	at := mustTime("2024-06-01T00:00:00Z")
	marg := &fixedProvider{name: "mystery", in: Intensity{Zone: "DE", Value: 500, ValidFrom: at, ValidTo: at.Add(time.Hour), Basis: BasisMarginal, Provider: "mystery"}}
	chain, _ := NewChain(ChainOptions{Clock: newClock("2024-06-01T00:00:00Z")}, Link{Provider: marg}, Link{Provider: newStaticT(t)})
	in, err := chain.Intensity(context.Background(), "DE", at)
	if err != nil || in.Provider != "static" || in.Provenance.Skipped[0].String() != "mystery: basis marginal, want location" {
		t.Fatalf("%v %s", err, in)
	}
}

func TestChainCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	chain, _ := NewChain(ChainOptions{}, Link{Provider: newStaticT(t)})
	if _, err := chain.Intensity(ctx, "DE", time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func BenchmarkChainCached(b *testing.B) {
	clock := newClock("2024-06-01T00:00:00Z")
	chain, _ := NewChain(ChainOptions{Clock: clock}, Link{Provider: newStaticT(b)})
	ctx := context.Background()
	at := clock.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := chain.Intensity(ctx, "DE", at); err != nil {
			b.Fatal(err)
		}
	}
}
