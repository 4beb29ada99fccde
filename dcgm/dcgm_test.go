package dcgm

import (
	"context"
	"testing"
	"time"
)

func mustSample(t testing.TB, b Backend, now time.Time) Result {
	t.Helper()
	r, err := b.Sample(context.Background(), now)
	if err != nil {
		t.Fatalf("Sample: %v", err)
	}
	return r
}

func wantNoErrors(t *testing.T, r Result) {
	t.Helper()
	if len(r.Errors) != 0 {
		t.Fatalf("errors %v, want none", r.Errors)
	}
}

// t0 is the fake clock's start.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
