package retry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3": 3 * time.Second, " 120 ": 2 * time.Minute, "0": 0, "-5": 0, "": 0, "soon": 0, "1.5": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		"99999999999999999":                               0,
	} {
		if got := ParseAfter(v, now); got != want {
			t.Errorf("ParseAfter(%q) = %v, want %v", v, got, want)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", "3")
	if d := HeaderAfter(h, now); d != 3*time.Second {
		t.Errorf("Retry-After: %v", d)
	}
	h.Set("x-ms-retry-after-ms", "1500")
	if d := HeaderAfter(h, now); d != 1500*time.Millisecond {
		t.Errorf("x-ms-retry-after-ms wins: %v", d)
	}
	if d := HeaderAfter(http.Header{}, now); d != 0 {
		t.Errorf("no header: %v", d)
	}
}

// httpErr is a retryable (or not) error with a server-requested wait.
type httpErr struct {
	retry bool
	after time.Duration
}

func (e httpErr) Error() string             { return "http error" }
func (e httpErr) Retryable() bool           { return e.retry }
func (e httpErr) RetryAfter() time.Duration { return e.after }

func TestPolicyWaits(t *testing.T) {
	p := Policy{Base: time.Second, Max: 10 * time.Second}
	for _, tc := range []struct {
		n     int
		after time.Duration
		want  time.Duration
	}{
		{0, 0, time.Second}, {1, 0, 2 * time.Second}, {3, 0, 8 * time.Second}, {4, 0, 10 * time.Second}, {200, 0, 10 * time.Second},
		{0, 7 * time.Second, 7 * time.Second}, // Retry-After longer than the backoff wins
		{2, time.Second, 4 * time.Second},     // ... shorter does not shorten it
		{0, time.Hour, 10 * time.Second},      // capped
	} {
		if got := p.Wait(tc.n, tc.after); got != tc.want {
			t.Errorf("Wait(%d, %v) = %v, want %v", tc.n, tc.after, got, tc.want)
		}
	}
	p.Jitter = func() float64 { return 0.25 }
	if got := p.Wait(2, 0); got != time.Second {
		t.Errorf("full jitter: %v, want 1s", got)
	}
	if got := p.Wait(2, 3*time.Second); got != 3*time.Second {
		t.Errorf("jittered wait below Retry-After: %v", got)
	}
}

func TestPolicyDo(t *testing.T) {
	var waits []time.Duration
	p := Policy{Attempts: 4, Base: time.Second, Max: 10 * time.Second, Jitter: func() float64 { return 0.5 },
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	calls := 0
	n, err := p.Do(context.Background(), func(context.Context) error {
		calls++
		switch calls {
		case 1:
			return httpErr{retry: true}
		case 2:
			return httpErr{retry: true, after: 7 * time.Second}
		case 3:
			return httpErr{retry: true}
		}
		return nil
	})
	if err != nil || n != 4 || calls != 4 {
		t.Fatalf("n=%d err=%v calls=%d", n, err, calls)
	}
	if want := []time.Duration{500 * time.Millisecond, 7 * time.Second, 2 * time.Second}; len(waits) != 3 || waits[0] != want[0] || waits[1] != want[1] || waits[2] != want[2] {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	// Not retryable, or not an Error at all: returned at once.
	for _, e := range []error{httpErr{retry: false}, errors.New("plain")} {
		calls = 0
		if n, err := p.Do(context.Background(), func(context.Context) error { calls++; return e }); err != e || n != 1 || calls != 1 {
			t.Errorf("%v: n=%d err=%v calls=%d", e, n, err, calls)
		}
	}
	// Attempts run out: the last error.
	n, err = Policy{Attempts: 2, Sleep: p.Sleep}.Do(context.Background(), func(context.Context) error { return httpErr{retry: true} })
	if n != 2 || err == nil {
		t.Fatalf("out of attempts: n=%d err=%v", n, err)
	}
	// A wait cut short by the context ends the retries with both errors.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	n, err = Policy{Attempts: 3}.Do(ctx, func(context.Context) error {
		calls++
		return httpErr{retry: true}
	})
	if calls != 1 || n != 1 || err == nil {
		t.Fatalf("cancelled context: n=%d calls=%d err=%v", n, calls, err)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep: %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, err := Policy{Attempts: 3, Sleep: func(context.Context, time.Duration) error { return context.DeadlineExceeded }}.Do(context.Background(),
		func(context.Context) error { return httpErr{retry: true} })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "gave up waiting to retry") {
		t.Fatalf("cut-short wait: %v", err)
	}
}
