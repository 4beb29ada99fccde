package dcgmtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/source"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestFakeStepsEnergy(t *testing.T) {
	f := NewWithGPUs(2)
	if f.Name() != dcgm.NameNVML {
		t.Fatalf("Name() = %q", f.Name())
	}
	if err := f.SetPower(0, 300); err != nil {
		t.Fatal(err)
	}
	f.SetPower(1, 100)
	f.Advance(10 * time.Second)
	f.AddEnergy(1, 0.5)
	f.SetProcesses(0, []dcgm.Process{{PID: 7, SMUtil: 80, MIGGPUInstanceID: -1}})
	f.SetPods(1, []dcgm.PodRef{{Namespace: "ml", Pod: "p", Container: "c"}})
	f.SetSMUtil(0, 80)
	f.SetPowerLimit(0, 700)

	r, err := f.Sample(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	// The first sample hands out everything added so far, exactly.
	if len(r.GPUs) != 2 || r.GPUs[0].Delta != 3_000_000 || r.GPUs[1].Delta != 1_000_500 || len(r.Errors) != 0 {
		t.Fatalf("result %+v", r)
	}
	g := r.GPUs[0]
	if g.UUID != "GPU-fake-0000" || g.Source != dcgm.SourceNVML || !g.OK || g.SMUtil != 80 || g.PowerLimitWatts != 700 ||
		len(g.Processes) != 1 || len(r.GPUs[1].Pods) != 1 {
		t.Fatalf("GPU 0 %+v", g)
	}
	// The result is a copy.
	r.GPUs[0].Processes[0].PID = 99
	r2, _ := f.Sample(context.Background(), t0.Add(time.Second))
	if r2.GPUs[0].Processes[0].PID != 7 || f.Samples() != 2 || !f.LastNow().Equal(t0.Add(time.Second)) {
		t.Fatalf("fake state leaked or not counted: %+v", r2.GPUs[0])
	}
	if err := f.AddEnergy(5, 1); err == nil {
		t.Fatal("AddEnergy on a missing GPU succeeded")
	}
	if err := f.AddEnergy(0, -1); err == nil {
		t.Fatal("negative energy accepted")
	}
}

func TestFakeFailures(t *testing.T) {
	f := NewWithGPUs(2)
	f.SetOK(1, false)
	f.AddErrors(dcgm.ReasonReadError, 2)
	r, err := f.Sample(context.Background(), t0)
	if err != nil || r.Errors[dcgm.ReasonGPULost] != 1 || r.Errors[dcgm.ReasonReadError] != 2 || r.GPUs[1].OK {
		t.Fatalf("err %v result %+v", err, r)
	}
	r, _ = f.Sample(context.Background(), t0)
	if r.Errors[dcgm.ReasonReadError] != 0 {
		t.Fatalf("queued errors repeated: %v", r.Errors)
	}
	boom := errors.New("boom")
	f.FailNext(boom)
	if _, err := f.Sample(context.Background(), t0); !errors.Is(err, boom) {
		t.Fatalf("FailNext: %v", err)
	}
	f.SetOK(0, false)
	if _, err := f.Sample(context.Background(), t0); err == nil {
		t.Fatal("no GPU OK but no error")
	}
	if _, err := New("").Sample(context.Background(), t0); !errors.Is(err, dcgm.ErrNoData) {
		t.Fatalf("no GPU: %v", err)
	}
	f.Close()
	if _, err := f.Sample(context.Background(), t0); !errors.Is(err, dcgm.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if closed, n := f.Closed(); !closed || n != 1 {
		t.Fatalf("Closed() = %v %d", closed, n)
	}
}

func TestFakeBlockHonoursContext(t *testing.T) {
	f := NewWithGPUs(1)
	release := make(chan struct{})
	f.BlockUntil(release)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Sample(ctx, t0); !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked Sample: %v", err)
	}
	close(release)
	if _, err := f.Sample(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
}

func TestFakeConcurrent(t *testing.T) {
	f := NewWithGPUs(4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 100 {
				f.AddEnergy(i, 1)
				f.SetPower(i, float64(i))
			}
		})
	}
	var sum [4]source.Millijoules // the deltas handed out, per GPU
	wg.Go(func() {
		for range 100 {
			r, err := f.Sample(context.Background(), t0)
			if err != nil {
				t.Error(err)
				return
			}
			for _, g := range r.GPUs {
				sum[g.Index] += g.Delta
			}
		}
	})
	wg.Wait()
	r, _ := f.Sample(context.Background(), t0)
	for _, g := range r.GPUs {
		if sum[g.Index]+g.Delta != 100_000 {
			t.Fatalf("GPU %d: deltas add up to %d mJ, want 100000", g.Index, sum[g.Index]+g.Delta)
		}
	}
}
