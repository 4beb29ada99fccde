package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Pull is handed to a task's Run: the task emits validated-later batches
// and notes what it skipped.
type Pull struct {
	// Now is the run's clock reading; tasks choose their periods from it.
	Now time.Time
	// Retrier wraps every provider call.
	Retrier *Retrier

	emit func(*Batch) error
	mu   sync.Mutex
	skip []string
}

// Emit stamps b with the fetch time (the runner's clock) unless set,
// validates it and, if it passes, applies it to the ledger. A batch
// that fails validation is reported and Emit returns nil so the task goes
// on; an error from the ledger is returned and should end the task.
func (p *Pull) Emit(b *Batch) error { return p.emit(b) }

// Skip records something the task deliberately did not fetch or keep, with
// the reason (e.g. "subscription X: access denied", "2025-03-04: estimated").
func (p *Pull) Skip(reason string) {
	p.mu.Lock()
	p.skip = append(p.skip, reason)
	p.mu.Unlock()
}

// Task pulls one provider.
type Task interface {
	// Name is the provider name, e.g. "aws".
	Name() string
	// Run pulls and emits batches. It must return when ctx is canceled.
	Run(ctx context.Context, p *Pull) error
}

// ApplyStats counts what the ledger did with one batch.
type ApplyStats struct {
	Inserted, Revised, Unchanged int
}

// Sink receives validated batches: all of a batch or none of it.
type Sink interface {
	Apply(ctx context.Context, b *Batch) (ApplyStats, error)
}

// TaskSummary is what one task did in one run.
type TaskSummary struct {
	Task     string
	Disabled string // why the provider is disabled; empty when it ran
	Batches  int    // batches accepted
	Records  int    // records in accepted batches
	ApplyStats
	Skipped  []string
	Refused  []string // batches that failed validation, with the reason
	Err      string   // the error that ended the task, if any
	Retries  int64
	Duration time.Duration
}

// Failed reports whether the task failed or refused a batch.
func (s TaskSummary) Failed() bool { return s.Err != "" || len(s.Refused) > 0 }

// Summary is one run's outcome, tasks sorted by name.
type Summary struct {
	Started time.Time
	Tasks   []TaskSummary
}

// Failed reports whether any task failed.
func (s Summary) Failed() bool {
	for _, t := range s.Tasks {
		if t.Failed() {
			return true
		}
	}
	return false
}

// Write prints the summary, one block per task.
func (s Summary) Write(w io.Writer) {
	for _, t := range s.Tasks {
		if t.Disabled != "" {
			fmt.Fprintf(w, "%s: disabled: %s\n", t.Task, t.Disabled)
			continue
		}
		status := "ok"
		if t.Failed() {
			status = "FAILED"
		}
		fmt.Fprintf(w, "%s: %s: %d batches, %d records fetched (%d new, %d revised, %d unchanged), %d skipped, %d refused, %d retries, %s\n",
			t.Task, status, t.Batches, t.Records, t.Inserted, t.Revised, t.Unchanged, len(t.Skipped), len(t.Refused), t.Retries, t.Duration.Round(time.Millisecond))
		for _, r := range t.Skipped {
			fmt.Fprintf(w, "  skipped: %s\n", r)
		}
		for _, r := range t.Refused {
			fmt.Fprintf(w, "  refused: %s\n", r)
		}
		if t.Err != "" {
			fmt.Fprintf(w, "  error: %s\n", t.Err)
		}
	}
}

// Runner runs every task once per run, in parallel, under one deadline.
type Runner struct {
	Tasks []Task
	// Disabled maps a provider name to why it does not run (e.g. no credentials).
	Disabled map[string]string
	Sink     Sink
	// Deadline bounds one run (default 30m).
	Deadline time.Duration
	// NewRetrier returns the retry policy for one task (default: a zero Retrier).
	NewRetrier func() *Retrier
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// RunOnce runs all tasks and returns the summary.
func (r *Runner) RunOnce(ctx context.Context) Summary {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	logger := r.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	deadline := r.Deadline
	if deadline <= 0 {
		deadline = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	sum := Summary{Started: now()}
	for name, why := range r.Disabled {
		sum.Tasks = append(sum.Tasks, TaskSummary{Task: name, Disabled: why})
	}
	results := make([]TaskSummary, len(r.Tasks))
	var wg sync.WaitGroup
	for i, t := range r.Tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.runTask(ctx, t, sum.Started, now, logger)
		}()
	}
	wg.Wait()
	sum.Tasks = append(sum.Tasks, results...)
	sort.Slice(sum.Tasks, func(i, j int) bool { return sum.Tasks[i].Task < sum.Tasks[j].Task })
	return sum
}

func (r *Runner) runTask(ctx context.Context, t Task, started time.Time, now func() time.Time, logger *slog.Logger) TaskSummary {
	ts := TaskSummary{Task: t.Name()}
	retrier := &Retrier{}
	if r.NewRetrier != nil {
		retrier = r.NewRetrier()
	}
	p := &Pull{Now: started, Retrier: retrier}
	p.emit = func(b *Batch) error {
		if b.FetchedAt.IsZero() {
			b.FetchedAt = now().UTC()
		}
		if err := Validate(b); err != nil {
			ts.Refused = append(ts.Refused, err.Error())
			logger.Warn("batch refused; ledger unchanged", "provider", t.Name(), "source", b.Source, "err", err)
			return nil
		}
		st, err := r.Sink.Apply(ctx, b)
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		ts.Batches++
		ts.Records += len(b.Records)
		ts.Inserted += st.Inserted
		ts.Revised += st.Revised
		ts.Unchanged += st.Unchanged
		return nil
	}
	begin := now()
	err := t.Run(ctx, p)
	ts.Duration = now().Sub(begin)
	ts.Retries = retrier.Retries()
	ts.Skipped = p.skip
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("run deadline exceeded: %w", err)
		}
		ts.Err = err.Error()
		logger.Error("cloud pull failed", "provider", t.Name(), "err", err)
	} else {
		logger.Info("cloud pull done", "provider", t.Name(), "batches", ts.Batches, "records", ts.Records,
			"revised", ts.Revised, "skipped", len(ts.Skipped), "refused", len(ts.Refused))
	}
	return ts
}
