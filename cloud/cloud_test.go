package cloud

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func goodBatch() *Batch {
	m := func(mo time.Month) time.Time { return time.Date(2025, mo, 1, 0, 0, 0, 0, time.UTC) }
	rec := func(metric Metric, v float64, unit string) Record {
		return Record{Key: Key{Provider: "aws", Account: "1", Service: "AmazonEC2", Region: "us-east-1", Period: "2025-01", Metric: metric},
			PeriodStart: m(1), PeriodEnd: m(2), Value: v, Unit: unit}
	}
	return &Batch{Provider: "aws", Source: "t", FetchedAt: m(3), Granularity: Monthly, From: m(1), To: m(2),
		Records: []Record{rec(CO2eScope1, 1, UnitKgCO2e), rec(CO2eScope2Location, 2, UnitKgCO2e), rec(Cost, 3, "USD"), rec(Usage, 4, "Hrs")},
		Totals:  []Total{{Period: "2025-01", Metrics: []Metric{CO2eScope1, CO2eScope2Location}, Value: 3, What: "total"}},
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(b *Batch)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*Batch) {}, ""},
		{"negative", func(b *Batch) { b.Records[0].Value = -1; b.Totals = nil }, "negative value"},
		{"nan", func(b *Batch) { b.Records[3].Value = math.NaN() }, "not finite"},
		{"unit", func(b *Batch) { b.Records[0].Unit = "MTCO2e" }, "want kgCO2e"},
		{"currency", func(b *Batch) { b.Records[2].Unit = "dollars" }, "ISO 4217"},
		{"empty usage unit", func(b *Batch) { b.Records[3].Unit = "" }, "usage unit is empty"},
		{"unknown metric", func(b *Batch) { b.Records[3].Metric = "watts" }, "unknown metric"},
		{"duplicate", func(b *Batch) { b.Records = append(b.Records, b.Records[3]) }, "duplicate key"},
		{"missing account", func(b *Batch) { b.Records[3].Account = "" }, "account and period are required"},
		{"incomplete period", func(b *Batch) { b.FetchedAt = time.Date(2025, 1, 20, 0, 0, 0, 0, time.UTC) }, "not complete"},
		{"partial period", func(b *Batch) { b.Records[3].PeriodEnd = time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC) }, "not one whole monthly period"},
		{"outside range", func(b *Batch) {
			b.Records[3].PeriodStart, b.Records[3].PeriodEnd, b.Records[3].Period = time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "2024-12"
		}, "outside the requested range"},
		{"totals", func(b *Batch) { b.Totals[0].Value = 3.1 }, "line items sum to 3 but total reports 3.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := goodBatch()
			tc.mutate(b)
			err := Validate(b)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRetrierBackoffAndRetryAfter(t *testing.T) {
	var waits []time.Duration
	r := &Retrier{Attempts: 4, BaseDelay: time.Second, MaxDelay: 10 * time.Second,
		Jitter: func() float64 { return 0.5 },
		Sleep:  func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
	calls := 0
	err := r.Do(context.Background(), func(context.Context) error {
		calls++
		switch calls {
		case 1:
			return &HTTPError{Status: 500, Err: errors.New("boom")}
		case 2:
			return &HTTPError{Status: 429, After: 7 * time.Second, Err: errors.New("slow down")}
		case 3:
			return &HTTPError{Status: 503, Err: errors.New("again")}
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("err=%v calls=%d", err, calls)
	}
	want := []time.Duration{500 * time.Millisecond, 7 * time.Second, 2 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits = %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("wait %d = %v, want %v", i, waits[i], want[i])
		}
	}
	if r.Retries() != 3 {
		t.Errorf("retries = %d", r.Retries())
	}
	// Non-retryable errors are returned at once.
	calls = 0
	err = r.Do(context.Background(), func(context.Context) error { calls++; return &HTTPError{Status: 403, Err: errors.New("denied")} })
	if err == nil || calls != 1 {
		t.Fatalf("403: err=%v calls=%d", err, calls)
	}
}
