// Package dcgmtest provides a pure-Go fake dcgm.Backend for the tests of
// packages that consume GPU energy (the agent, the exporter). It needs no
// cgo and no GPU: a test adds GPUs, advances their energy and sets their
// power, utilisation, processes and pods; each Sample returns a deep copy
// of that state.
package dcgmtest

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/source"
)

// Fake is a dcgm.Backend whose GPUs a test sets and advances. The zero
// value is not usable; call New. All methods are safe for concurrent use.
type Fake struct {
	mu         sync.Mutex
	name       string
	gpus       map[int]*dcgm.GPUSample
	totalMJ    map[int]uint64 // exact energy per GPU, millijoules
	reported   map[int]uint64 // part of totalMJ already handed out as deltas
	errs       map[string]uint64
	failNext   []error
	block      <-chan struct{}
	samples    int
	closed     bool
	closeCount int
	lastNow    time.Time
}

var _ dcgm.Backend = (*Fake)(nil)

// New returns a Fake named name (the value of Name: dcgm.NameNVML or
// dcgm.NameDCGMExporter; empty means dcgm.NameNVML) with no GPU.
func New(name string) *Fake {
	if name == "" {
		name = dcgm.NameNVML
	}
	return &Fake{name: name, gpus: make(map[int]*dcgm.GPUSample), errs: make(map[string]uint64),
		totalMJ: make(map[int]uint64), reported: make(map[int]uint64)}
}

// NewWithGPUs returns a Fake named dcgm.NameNVML with n GPUs indexed 0..n-1,
// UUIDs GPU-fake-0000.., model "NVIDIA Fake GPU", MIG disabled, source
// dcgm.SourceNVML, 0 J, 0 W, utilisation 0, all read OK.
func NewWithGPUs(n int) *Fake {
	f := New(dcgm.NameNVML)
	for i := range n {
		f.AddGPU(dcgm.GPU{
			Index:   i,
			UUID:    fmt.Sprintf("GPU-fake-%04d", i),
			Model:   "NVIDIA Fake GPU",
			Driver:  "000.00.00",
			MIGMode: dcgm.MIGModeDisabled,
		}, dcgm.SourceNVML)
	}
	return f
}

// AddGPU adds (or replaces the identity of) the GPU at g.Index, reporting
// source (dcgm.SourceNVML, dcgm.SourceNVMLPower or dcgm.SourceDCGMExporter).
// A new GPU starts at 0 J, OK, with unknown utilisation (-1). Replacing
// keeps the energy total and the other readings.
func (f *Fake) AddGPU(g dcgm.GPU, source string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.gpus[g.Index]
	if s == nil {
		s = &dcgm.GPUSample{SMUtil: -1, OK: true}
		f.gpus[g.Index] = s
	}
	s.GPU = cloneGPU(g)
	s.Source = source
	s.Method = dcgm.MethodEnergyCounter
	if source == dcgm.SourceNVMLPower {
		s.Method = dcgm.MethodPowerIntegration
	}
}

// gpu returns the GPU at index, or an error naming it.
func (f *Fake) gpu(index int) (*dcgm.GPUSample, error) {
	s := f.gpus[index]
	if s == nil {
		return nil, fmt.Errorf("dcgmtest: no GPU with index %d", index)
	}
	return s, nil
}

// AddEnergy advances the energy total of the GPU at index by joules
// (negative values are refused: totals are monotonic), rounded to the
// millijoule for the deltas the next good Sample reports.
func (f *Fake) AddEnergy(index int, joules float64) error {
	if joules < 0 {
		return fmt.Errorf("dcgmtest: negative energy %v for GPU %d", joules, index)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.gpu(index)
	if err != nil {
		return err
	}
	f.addEnergy(index, s, joules)
	return nil
}

// addEnergy adds joules to the GPU's float total and its exact one.
func (f *Fake) addEnergy(index int, s *dcgm.GPUSample, joules float64) {
	s.Joules += joules
	f.totalMJ[index] += uint64(math.Round(joules * 1000))
}

// SetPower sets the instantaneous power of the GPU at index. It does not
// change the energy total; use AddEnergy (or Advance) for that.
func (f *Fake) SetPower(index int, watts float64) error {
	return f.update(index, func(s *dcgm.GPUSample) { s.PowerWatts = watts })
}

// SetPowerLimit sets the enforced power limit of the GPU at index.
func (f *Fake) SetPowerLimit(index int, watts float64) error {
	return f.update(index, func(s *dcgm.GPUSample) { s.PowerLimitWatts = watts })
}

// SetSMUtil sets the device utilisation (0..100, -1 unknown) of the GPU at
// index.
func (f *Fake) SetSMUtil(index int, util float64) error {
	return f.update(index, func(s *dcgm.GPUSample) { s.SMUtil = util })
}

// SetProcesses replaces the processes of the GPU at index.
func (f *Fake) SetProcesses(index int, procs []dcgm.Process) error {
	return f.update(index, func(s *dcgm.GPUSample) { s.Processes = append([]dcgm.Process(nil), procs...) })
}

// SetPods replaces the dcgm-exporter pods of the GPU at index.
func (f *Fake) SetPods(index int, pods []dcgm.PodRef) error {
	return f.update(index, func(s *dcgm.GPUSample) { s.Pods = append([]dcgm.PodRef(nil), pods...) })
}

// SetOK sets whether the GPU at index reads successfully. ok=false
// simulates a lost GPU: it stays in the result, total kept, and each sample
// counts dcgm.ReasonGPULost.
func (f *Fake) SetOK(index int, ok bool) error {
	return f.update(index, func(s *dcgm.GPUSample) { s.OK = ok })
}

// Advance adds, for every GPU that is OK, its current power times d to its
// energy total: a simple way to step a fake clock and keep energy and power
// consistent.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.gpus {
		if s.OK {
			f.addEnergy(i, s, s.PowerWatts*d.Seconds())
		}
	}
}

func (f *Fake) update(index int, fn func(*dcgm.GPUSample)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.gpu(index)
	if err != nil {
		return err
	}
	fn(s)
	return nil
}

// AddErrors makes the next Sample report n more errors of reason (a
// dcgm.Reason* constant), on top of the gpu_lost it counts itself.
func (f *Fake) AddErrors(reason string, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[reason] += n
}

// FailNext makes the next Sample return err (with the result it would have
// returned). Calls queue: each Sample consumes one.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append(f.failNext, err)
}

// BlockUntil makes every Sample wait until ch is closed or its context
// ends (then it returns the context's error), to test callers' timeouts.
// A nil ch stops blocking.
func (f *Fake) BlockUntil(ch <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block = ch
}

// Samples returns how many times Sample ran to completion.
func (f *Fake) Samples() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.samples
}

// LastNow returns the now argument of the latest completed Sample.
func (f *Fake) LastNow() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastNow
}

// Closed reports whether Close was called, and how many times.
func (f *Fake) Closed() (bool, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed, f.closeCount
}

// Name returns the name given to New.
func (f *Fake) Name() string { return f.name }

// Sample returns a deep copy of the GPUs sorted by index, the queued errors
// and gpu_lost for each GPU not OK. Like a real backend it returns an
// error when no GPU is OK (or none exists), and dcgm.ErrClosed after Close.
func (f *Fake) Sample(ctx context.Context, now time.Time) (dcgm.Result, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return dcgm.Result{Errors: map[string]uint64{}}, fmt.Errorf("dcgmtest sample: %w", ctx.Err())
		}
	}
	if err := ctx.Err(); err != nil {
		return dcgm.Result{Errors: map[string]uint64{}}, fmt.Errorf("dcgmtest sample: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return dcgm.Result{Errors: map[string]uint64{}}, dcgm.ErrClosed
	}
	f.samples++
	f.lastNow = now
	r := dcgm.Result{GPUs: make([]dcgm.GPUSample, 0, len(f.gpus)), Errors: f.errs}
	f.errs = make(map[string]uint64)
	ok := 0
	failing := len(f.failNext) > 0
	for i, s := range f.gpus {
		c := *s
		c.Delta = 0
		if c.OK && !failing { // A failed read hands out nothing; the next good one carries it.
			c.Delta = source.Millijoules(f.totalMJ[i] - f.reported[i])
			f.reported[i] = f.totalMJ[i]
		}
		c.GPU = cloneGPU(s.GPU)
		c.Processes = append([]dcgm.Process(nil), s.Processes...)
		c.Pods = append([]dcgm.PodRef(nil), s.Pods...)
		if c.OK {
			ok++
		} else {
			r.Errors[dcgm.ReasonGPULost]++
		}
		r.GPUs = append(r.GPUs, c)
	}
	sort.Slice(r.GPUs, func(i, j int) bool { return r.GPUs[i].Index < r.GPUs[j].Index })
	if len(f.failNext) > 0 {
		err := f.failNext[0]
		f.failNext = f.failNext[1:]
		return r, err
	}
	if len(f.gpus) == 0 {
		return r, fmt.Errorf("dcgmtest: %w", dcgm.ErrNoData)
	}
	if ok == 0 {
		return r, fmt.Errorf("dcgmtest: none of %d GPUs could be read", len(f.gpus))
	}
	return r, nil
}

// Close marks the fake closed; later Samples return dcgm.ErrClosed.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.closeCount++
	return nil
}

func cloneGPU(g dcgm.GPU) dcgm.GPU {
	g.MIG = append([]dcgm.MIGInstance(nil), g.MIG...)
	return g
}
