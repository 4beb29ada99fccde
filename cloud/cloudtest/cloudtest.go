// Package cloudtest holds what the provider tests share: a ledger in a
// temporary directory, a row-by-row dump for comparing ledgers, and a runner
// whose retries record their waits instead of sleeping.
package cloudtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/cloud/ledger"
)

// OpenLedger opens a ledger in a temporary directory, closed when the test ends.
func OpenLedger(t testing.TB) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(filepath.Join(t.TempDir(), "aiwatt-cloud.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Dump writes every row and revision of a ledger, one per line, so two
// ledgers compare row by row as strings.
func Dump(t testing.TB, l *ledger.Ledger) string {
	t.Helper()
	rows, err := l.Rows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	revs, _ := l.Revisions(context.Background())
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%+v\n", r)
	}
	for _, r := range revs {
		fmt.Fprintf(&b, "rev %+v\n", r)
	}
	return b.String()
}

// SummaryText is a run summary as the binary prints it.
func SummaryText(s cloud.Summary) string {
	var b strings.Builder
	s.Write(&b)
	return b.String()
}

// RunOnce runs one task into l at the fixed time now, with attempts retries
// whose waits are recorded (no jitter, no sleeping), and returns the summary
// and the waits.
func RunOnce(task cloud.Task, l *ledger.Ledger, now time.Time, attempts int, deadline time.Duration) (cloud.Summary, []time.Duration) {
	var mu sync.Mutex
	var waits []time.Duration
	r := &cloud.Runner{Tasks: []cloud.Task{task}, Sink: l, Now: func() time.Time { return now }, Deadline: deadline,
		NewRetrier: func() *cloud.Retrier {
			return &cloud.Retrier{Attempts: attempts, Jitter: func() float64 { return 0 },
				Sleep: func(_ context.Context, d time.Duration) error {
					mu.Lock()
					waits = append(waits, d)
					mu.Unlock()
					return nil
				}}
		}}
	return r.RunOnce(context.Background()), waits
}
