package gpukit

import (
	"context"
	"errors"

	"github.com/inferensys/aiwatt/gpu"
)

// Lock is a mutex whose acquisition gives up when a context ends.
type Lock chan struct{}

// NewLock returns an unlocked Lock.
func NewLock() Lock { return make(Lock, 1) }

// Acquire takes the lock, or returns ctx.Err() when ctx ends first.
func (l Lock) Acquire(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release gives the lock back.
func (l Lock) Release() { <-l }

// CtxResult is the result of a sample cut short by its context.
func CtxResult(err error) gpu.Result {
	r := gpu.NewResult(0)
	if errors.Is(err, context.DeadlineExceeded) {
		r.Errors[gpu.ReasonTimeout]++
	}
	return r
}

// ClampUtil bounds a utilisation to 0..100.
func ClampUtil(u float64) float64 {
	switch {
	case u < 0:
		return 0
	case u > 100:
		return 100
	}
	return u
}
