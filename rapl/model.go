package rapl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"github.com/inferensys/aiwatt/internal/cpustat"
)

// Default CPU model coefficients: the average minimum (idle) and maximum (fully busy) power per
// vCPU over the CPU micro-architectures AWS uses, as published by Cloud Carbon Footprint
// (https://www.cloudcarbonfootprint.org/docs/methodology/, "Compute": AWS average min watts 0.74,
// average max watts 3.5, derived from the SPECpower database).
const (
	// DefaultMinWattsPerCPU is the power of one idle vCPU (Cloud Carbon Footprint, AWS average).
	DefaultMinWattsPerCPU = 0.74
	// DefaultMaxWattsPerCPU is the power of one fully busy vCPU (Cloud Carbon Footprint, AWS average).
	DefaultMaxWattsPerCPU = 3.5
)

// ModelOptions configures an Estimator.
type ModelOptions struct {
	// MinWattsPerCPU is the power of one idle CPU; 0 means DefaultMinWattsPerCPU (0.74 W, Cloud
	// Carbon Footprint's AWS average).
	MinWattsPerCPU float64
	// MaxWattsPerCPU is the power of one fully busy CPU; 0 means DefaultMaxWattsPerCPU (3.5 W,
	// Cloud Carbon Footprint's AWS average).
	MaxWattsPerCPU float64
	// CPUs is the number of CPUs the model covers; 0 means the count of cpuN lines in /proc/stat.
	CPUs int
}

// Estimate is the CPU model's state after a sample.
type Estimate struct {
	// Joules is the monotonic modelled energy since the first sample (which is 0).
	Joules float64
	// Delta is the modelled energy of this sample alone (0 for a baseline or a failed read).
	Delta float64
	// Watts is the modelled power over the last interval: CPUs * (min + u*(max-min)).
	Watts float64
	// Utilisation is u, the busy share (0..1) of all CPUs over the last interval: user + nice +
	// system + irq + softirq over that plus idle and iowait. Steal is in neither (internal/cpustat).
	Utilisation float64
	// CPUs is the number of CPUs the model covers.
	CPUs int
	// StatBusy and StatTotal are the busy and total CPU time since boot
	// (internal/cpustat's definition) of this sample's /proc/stat reading, in
	// USER_HZ clock ticks; both 0 when the sample read nothing. They let the
	// caller use the one reading for other purposes (the attribution's busy
	// share) instead of reading /proc/stat again.
	StatBusy, StatTotal float64
}

// Estimator models CPU power from /proc/stat utilisation, for machines without RAPL (most cloud
// VMs). Its methods are safe for concurrent use.
type Estimator struct {
	fs       procfs.FS
	statPath string
	minW     float64
	maxW     float64
	cpus     int

	mu        sync.Mutex
	buf       []byte // the head of /proc/stat, reused by every Sample
	primed    bool
	prevBusy  float64
	prevTotal float64
	prevTime  time.Time
	last      Estimate
	counted   int // CPUs counted from stat at NewEstimator
}

// NewEstimator builds a CPU power model reading procfsRoot/stat (procfsRoot is normally /proc)
// with github.com/prometheus/procfs. It reads stat once to check it and, when opts.CPUs is 0, to
// count the CPUs; it fails when stat is unreadable or lists no CPU, or when the options are
// inconsistent.
func NewEstimator(procfsRoot string, opts ModelOptions) (*Estimator, error) {
	minW, maxW, err := modelWatts(opts)
	if err != nil {
		return nil, err
	}
	pfs, err := procfs.NewFS(procfsRoot)
	if err != nil {
		return nil, fmt.Errorf("rapl: procfs root: %w", err)
	}
	e := &Estimator{fs: pfs, statPath: filepath.Join(procfsRoot, "stat"), minW: minW, maxW: maxW, cpus: opts.CPUs}
	st, err := pfs.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", e.statPath, err)
	}
	if e.cpus == 0 {
		e.cpus = len(st.CPU)
	}
	if e.cpus == 0 {
		return nil, fmt.Errorf("rapl: %s lists no cpuN line", e.statPath)
	}
	e.last = Estimate{CPUs: e.cpus}
	e.counted = e.cpus
	return e, nil
}

// modelWatts applies the defaults to the model's coefficients and checks the options.
func modelWatts(opts ModelOptions) (minW, maxW float64, err error) {
	minW, maxW = opts.MinWattsPerCPU, opts.MaxWattsPerCPU
	if minW == 0 {
		minW = DefaultMinWattsPerCPU
	}
	if maxW == 0 {
		maxW = DefaultMaxWattsPerCPU
	}
	if !(minW > 0) || !(maxW >= minW) || math.IsInf(maxW, 0) {
		return 0, 0, fmt.Errorf("rapl: need 0 < MinWattsPerCPU <= MaxWattsPerCPU, got %v and %v", minW, maxW)
	}
	if opts.CPUs < 0 {
		return 0, 0, fmt.Errorf("rapl: CPUs must not be negative, got %d", opts.CPUs)
	}
	return minW, maxW, nil
}

// SetOptions changes the model's coefficients and CPU count and keeps its /proc/stat baseline,
// so a configuration reload loses no modelled energy. CPUs 0 goes back to the count from stat.
func (e *Estimator) SetOptions(opts ModelOptions) error {
	minW, maxW, err := modelWatts(opts)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.minW, e.maxW, e.cpus = minW, maxW, opts.CPUs
	if e.cpus == 0 {
		e.cpus = e.counted
	}
	return nil
}

// Sample reads /proc/stat at time now (from the caller's clock) and advances the model. The first
// successful sample is a baseline (Joules 0, Watts 0). After that it adds Watts * (now - previous
// sample); when now is not after the previous sample nothing is added and the baseline moves to
// now. On a read error it returns the previous estimate and the error, and keeps the baseline.
func (e *Estimator) Sample(now time.Time) (Estimate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()

	busy, total, err := e.readCPUTotal()
	if err != nil {
		l := e.last
		l.Delta, l.StatBusy, l.StatTotal = 0, 0, 0
		return l, fmt.Errorf("read %s: %w", e.statPath, err)
	}
	e.last.Delta = 0
	e.last.StatBusy, e.last.StatTotal = busy, total
	if !e.primed {
		e.primed = true
		e.prevBusy, e.prevTotal, e.prevTime = busy, total, now
		return e.last, nil
	}
	dt := now.Sub(e.prevTime).Seconds()
	dBusy, dTotal := busy-e.prevBusy, total-e.prevTotal
	e.prevBusy, e.prevTotal, e.prevTime = busy, total, now
	if dt <= 0 {
		return e.last, nil
	}
	u := 0.0 // no tick counted: treat the interval as idle
	if dTotal > 0 {
		// Clamped: iowait, for one, is known to go backwards on some kernels.
		u = min(max(dBusy/dTotal, 0), 1)
	}
	w := float64(e.cpus) * (e.minW + u*(e.maxW-e.minW))
	e.last = Estimate{Joules: e.last.Joules + w*dt, Delta: w * dt, Watts: w, Utilisation: u, CPUs: e.cpus, StatBusy: busy, StatTotal: total}
	return e.last, nil
}

// readCPUTotal reads the aggregate "cpu" line, the first of /proc/stat, with
// one open, one read of the file's head into a reused buffer, and one close,
// and returns its busy and total time in clock ticks. It parses nothing
// else: the per-CPU lines, interrupts and the rest are not needed per sample
// (NewEstimator counts the CPUs once), and on a host with many CPUs they are
// most of the file.
func (e *Estimator) readCPUTotal() (busy, total float64, err error) {
	if e.buf == nil {
		e.buf = make([]byte, 4096)
	}
	f, err := os.Open(e.statPath)
	if err != nil {
		return 0, 0, err
	}
	n, err := f.Read(e.buf)
	_ = f.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, err
	}
	return parseCPULine(e.buf[:n])
}

// parseCPULine parses the first line of b, "cpu  user nice system idle
// iowait irq softirq steal guest guest_nice" in clock ticks, into busy and
// total time with the definition the attribution's busy share uses
// (internal/cpustat): steal, time the hypervisor gave another guest, is
// neither busy nor idle, so a VM whose host is oversubscribed is not
// modelled as drawing power for work it did not do; guest and guest_nice
// are already in user and nice. Fields a kernel does not print count as 0;
// at least user, nice, system and idle must be there.
func parseCPULine(b []byte) (busy, total float64, err error) {
	line, _, found := bytes.Cut(b, []byte{'\n'})
	if !found {
		return 0, 0, errors.New("no complete first line")
	}
	rest, ok := bytes.CutPrefix(line, []byte("cpu "))
	if !ok {
		return 0, 0, fmt.Errorf("first line %.20q is not the cpu line", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	n := 0
	for n < len(v) {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		x, err := strconv.ParseUint(string(rest[:end]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("cpu line field %d: %w", n+1, err)
		}
		v[n], rest, n = x, rest[end:], n+1
	}
	if n < 4 {
		return 0, 0, fmt.Errorf("cpu line has %d fields, want at least 4", n)
	}
	busy, total = cpustat.BusyTotal(float64(v[0]), float64(v[1]), float64(v[2]), float64(v[3]), float64(v[4]), float64(v[5]), float64(v[6]))
	return busy, total, nil
}
