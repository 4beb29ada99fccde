package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/rapl"
	"github.com/inferensys/aiwatt/source"
)

// The tick waits for its sources until budgetNum/budgetDen of the interval
// has passed, so that folding the readings and publishing the snapshot fit
// in the rest: a tick never runs past its interval.
const budgetNum, budgetDen = 4, 5

// budget is the deadline of one tick's sources, counted from its start.
func budget(interval time.Duration) time.Duration { return interval * budgetNum / budgetDen }

// slot runs one source on its own long-lived goroutine (which keeps the
// stack its Sample grew, tick after tick): at most one Sample in flight,
// whose outcome, when it misses its tick's deadline, is picked up by a later
// tick so that the energy it carries is counted then.
type slot struct {
	src  source.Source
	busy bool
	req  chan request
	done chan outcome // buffered: a late Sample never blocks
}

// request asks a slot's goroutine for one Sample.
type request struct {
	ctx       context.Context
	now       time.Time
	name      string
	remaining *atomic.Int32 // Samples of this tick still running
	all       chan struct{} // closed by the last of them
}

func newSlot(src source.Source) *slot {
	sl := &slot{src: src, req: make(chan request, 1), done: make(chan outcome, 1)}
	go sl.work()
	return sl
}

// work samples the source on request until stop.
func (sl *slot) work() {
	for r := range sl.req {
		t := time.Now()
		rd, err := sl.src.Sample(r.ctx, r.now)
		sl.done <- outcome{src: sl.src, name: r.name, reading: rd, err: err, took: time.Since(t)}
		if r.remaining.Add(-1) == 0 {
			close(r.all)
		}
	}
}

// stop ends the slot's goroutine once its Sample in flight, if any, returns.
func (sl *slot) stop() { close(sl.req) }

// outcome is what one Sample of one source returned, or that it missed the
// deadline.
type outcome struct {
	src     source.Source
	name    string
	reading source.Reading
	err     error
	took    time.Duration
	// late marks the outcome of a Sample that missed an earlier tick's
	// deadline: its energy counts now, its health was recorded then.
	late bool
	// timeout marks a source that missed this tick's deadline (or is still
	// running from an earlier tick): no reading.
	timeout bool
}

// errMissedDeadline is the health of a source that missed the tick's deadline.
var errMissedDeadline = errors.New("sample missed the tick's deadline; its energy is counted when it returns")

// runSources samples every slot concurrently and waits until they all
// returned or ctx's deadline passed. Outcomes come back in slot order, a
// late outcome before its source's fresh one. The tick goroutine is woken
// once, by the last source to return (or the deadline), not once a source.
func runSources(ctx context.Context, now time.Time, slots []*slot) []outcome {
	out := make([]outcome, 0, len(slots)+2)
	start := make([]*slot, 0, len(slots))
	for _, sl := range slots {
		if sl.busy {
			select {
			case o := <-sl.done:
				sl.busy = false
				o.late = true
				out = append(out, o)
			default:
				out = append(out, outcome{src: sl.src, name: sl.src.Name(), timeout: true, err: errMissedDeadline})
				continue
			}
		}
		if q, ok := sl.src.(quick); ok && q.quick() {
			// Nothing to wait for (absent, unconfigured, no targets, a flag):
			// not worth a goroutine.
			t := time.Now()
			r, err := sl.src.Sample(ctx, now)
			out = append(out, outcome{src: sl.src, name: sl.src.Name(), reading: r, err: err, took: time.Since(t)})
			continue
		}
		start = append(start, sl)
	}
	if len(start) == 0 {
		return out
	}
	remaining := new(atomic.Int32)
	remaining.Store(int32(len(start)))
	all := make(chan struct{})
	for _, sl := range start {
		sl.busy = true
		sl.req <- request{ctx: ctx, now: now, name: sl.src.Name(), remaining: remaining, all: all}
	}
	select {
	case <-all:
	case <-ctx.Done():
	}
	for _, sl := range start {
		select {
		case o := <-sl.done:
			sl.busy = false
			out = append(out, o)
		default:
			out = append(out, outcome{src: sl.src, name: sl.src.Name(), timeout: true, err: errMissedDeadline})
		}
	}
	return out
}

// quick is a source that can tell, before a Sample, that this Sample does
// no I/O and returns at once; the tick then runs it in place.
type quick interface{ quick() bool }

// sourceState is the health the agent keeps for one source or target.
type sourceState struct {
	up       bool
	seen     bool
	errors   map[string]uint64
	duration time.Duration
	lastErr  string
	touched  bool
}

// statusKey names one source, or one target of a source.
type statusKey struct{ source, target string }

// recordOutcome records the health of one outcome: the one place where
// aiwatt_source_up, aiwatt_source_errors_total and
// aiwatt_sample_duration_seconds are decided.
func (a *Agent) recordOutcome(o outcome, budget time.Duration) {
	perTarget, targetsOnly := o.src.(targetLister)
	switch {
	case o.timeout && targetsOnly:
		for _, t := range perTarget.targetNames() {
			a.recordTarget(o.name, t, o.err, map[string]uint64{source.ReasonTimeout: 1}, budget)
		}
	case o.timeout:
		a.recordTarget(o.name, "", o.err, map[string]uint64{source.ReasonTimeout: 1}, budget)
	case o.late:
		// Its timeout was counted when it was missed; count what else it saw.
		errs := o.reading.Errors.Clone()
		delete(errs, source.ReasonTimeout)
		a.addErrors(o.name, "", errs)
		for _, t := range o.reading.Targets {
			te := t.Errors.Clone()
			delete(te, source.ReasonTimeout)
			a.addErrors(o.name, t.Name, te)
		}
	default:
		if !targetsOnly {
			a.recordTarget(o.name, "", o.err, o.reading.Errors, o.took)
		}
		for _, t := range o.reading.Targets {
			a.recordTarget(o.name, t.Name, t.Err, t.Errors, t.Duration)
		}
	}
}

// targetLister is a source whose health is per target only (inference
// servers): it names the targets a missed deadline is recorded against.
type targetLister interface{ targetNames() []string }

// addErrors counts errors of a source without changing its health.
func (a *Agent) addErrors(src, target string, errs map[string]uint64) {
	if len(errs) == 0 {
		return
	}
	st := a.state(src, target)
	for r, n := range errs {
		st.errors[r] += n
	}
}

func (a *Agent) state(src, target string) *sourceState {
	k := statusKey{src, target}
	st := a.status[k]
	if st == nil {
		st = &sourceState{errors: map[string]uint64{}}
		a.status[k] = st
	}
	return st
}

// recordTarget updates the health of a source's target: up or not, errors
// by reason from this sample, and how long the sample took. It logs
// transitions only, so a source that stays down does not flood the log.
func (a *Agent) recordTarget(src, target string, err error, reasons map[string]uint64, took time.Duration) {
	st := a.state(src, target)
	for r, n := range reasons {
		st.errors[r] += n
	}
	st.duration = took
	st.touched = true
	up := err == nil
	switch {
	case !up && (st.up || !st.seen || err.Error() != st.lastErr):
		level := slog.LevelWarn
		if absent(err) {
			level = slog.LevelInfo
		}
		a.logger.Log(context.Background(), level, "source down", "source_name", src, "target", target, "err", err)
	case up && !st.up && st.seen:
		a.logger.Info("source up", "source_name", src, "target", target)
	}
	st.up, st.seen = up, true
	if err != nil {
		st.lastErr = err.Error()
	} else {
		st.lastErr = ""
	}
}

// absent reports an error that means "nothing to read here", not a failure.
func absent(err error) bool {
	return errors.Is(err, source.ErrAbsent) || errors.Is(err, rapl.ErrNoData) || errors.Is(err, gpu.ErrNoData)
}

// statuses returns the health of every source touched this tick, sorted,
// and forgets the others (a reload, a target gone).
func (a *Agent) statuses() []SourceStatus {
	keys := slices.SortedFunc(maps.Keys(a.status), func(x, y statusKey) int {
		return strings.Compare(x.source+"\x00"+x.target, y.source+"\x00"+y.target)
	})
	out := make([]SourceStatus, 0, len(keys))
	for _, k := range keys {
		st := a.status[k]
		if !st.touched {
			delete(a.status, k)
			continue
		}
		out = append(out, SourceStatus{
			Name: k.source, Target: k.target, Up: st.up, Errors: maps.Clone(st.errors), Duration: st.duration,
		})
		st.touched = false
	}
	return out
}

// wrapAbsent marks err as an absent source.
func wrapAbsent(err error) error { return fmt.Errorf("%w: %w", source.ErrAbsent, err) }
