package rapl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Error reasons, used as the value of the reason label of aiwatt_source_errors_total.
const (
	// ReasonPermissionDenied counts reads refused by file permissions (energy_uj is root-only).
	ReasonPermissionDenied = "permission_denied"
	// ReasonReadError counts any other failure to read energy_uj.
	ReasonReadError = "read_error"
	// ReasonParseError counts energy_uj contents that are not a decimal counter.
	ReasonParseError = "parse_error"
	// ReasonImplausibleDelta counts deltas rejected by the plausibility check.
	ReasonImplausibleDelta = "implausible_delta"
)

// DefaultMaxPowerWatts is the plausibility ceiling per zone when Options.MaxPowerWatts is 0. It
// is well above the package power of any current server CPU (about 500 W) and well below the
// delta a counter glitch produces (a near-full wrap of a 262 kJ range within seconds).
const DefaultMaxPowerWatts = 2000

// Options configures a Meter.
type Options struct {
	// MaxPowerWatts is the plausibility ceiling per zone: a delta implying more average power
	// than this over the elapsed time is rejected (not added) and counted as implausible_delta.
	// 0 means DefaultMaxPowerWatts.
	MaxPowerWatts float64
}

// ZoneEnergy is one zone's state after a sample.
type ZoneEnergy struct {
	Zone
	// Microjoules is the monotonic total since the meter's first successful read of this zone
	// (it starts at 0). It is exact: integer arithmetic only.
	Microjoules uint64
	// Watts is the average power over the last accepted interval (0 until one is accepted).
	Watts float64
	// OK is true when this zone was read successfully in this sample.
	OK bool
	// Err is why this zone could not be read in this sample (nil when OK). It names the file.
	Err error
}

// Sample is the result of one read of all zones.
type Sample struct {
	// Zones holds every zone in a stable order (by socket, then zone name), including zones
	// that failed this time (OK false, totals kept).
	Zones []ZoneEnergy
	// Errors counts this sample's errors by reason (Reason* constants); nil when there were none.
	Errors map[string]uint64
	// Err is non-nil only when no zone could be read. It wraps fs.ErrPermission when that was
	// the cause, so errors.Is works.
	Err error
}

// Meter reads the RAPL zones of one machine and keeps a wrap-safe total per zone. Its methods
// are safe for concurrent use; Sample is meant to be called from one sampling loop.
type Meter struct {
	maxPowerWatts float64

	mu    sync.Mutex
	zones []zoneState
	buf   [64]byte // energy_uj is at most 20 digits and a newline

	// readFile reads a whole small file into buf and returns the filled part. Tests replace it.
	readFile func(path string, buf []byte) ([]byte, error)
}

// zoneState is the accumulator of one zone.
type zoneState struct {
	zone       Zone
	energyPath string

	primed   bool      // a baseline exists
	prev     uint64    // last good reading of energy_uj (the baseline)
	prevTime time.Time // time of that baseline
	total    uint64    // accepted microjoules since the first good read
	watts    float64   // power over the last accepted interval
}

// NewMeter discovers the RAPL zones under sysfsRoot (the directory holding class/powercap,
// normally /sys) with github.com/prometheus/procfs/sysfs. It returns an error wrapping ErrNoData
// when class/powercap is missing or holds no RAPL zone, and another error when sysfsRoot itself
// is missing or the zones cannot be listed. No energy is read until the first Sample.
func NewMeter(sysfsRoot string, opts Options) (*Meter, error) {
	maxW := opts.MaxPowerWatts
	switch {
	case maxW == 0:
		maxW = DefaultMaxPowerWatts
	case maxW < 0 || math.IsNaN(maxW) || math.IsInf(maxW, 0):
		return nil, fmt.Errorf("rapl: MaxPowerWatts must be a positive number, got %v", opts.MaxPowerWatts)
	}
	zones, err := discover(sysfsRoot)
	if err != nil {
		return nil, err
	}
	m := &Meter{
		maxPowerWatts: maxW,
		zones:         make([]zoneState, len(zones)),
		readFile:      readSmallFile,
	}
	for i, z := range zones {
		m.zones[i] = zoneState{zone: z, energyPath: filepath.Join(z.Path, "energy_uj")}
	}
	return m, nil
}

// Zones returns the zones this meter reads, in the order of Sample.Zones.
func (m *Meter) Zones() []Zone {
	out := make([]Zone, len(m.zones))
	for i := range m.zones {
		out[i] = m.zones[i].zone // immutable after NewMeter
	}
	return out
}

// Sample reads energy_uj of every zone once and advances the totals. now is the time of the read,
// from the caller's clock; it must come from a monotonic clock (time.Now does) for the power
// check to be meaningful. A zone's first good read is only a baseline. A zone that fails keeps its
// total and baseline, and its next good read adds everything since the last good one.
func (m *Meter) Sample(now time.Time) Sample {
	m.mu.Lock()
	defer m.mu.Unlock()

	out := Sample{Zones: make([]ZoneEnergy, len(m.zones))}
	var good int
	var firstErr, permErr error
	for i := range m.zones {
		z := &m.zones[i]
		cur, reason, err := m.read(z.energyPath)
		if err == nil {
			good++
			if !z.advance(cur, now, m.maxPowerWatts) {
				reason = ReasonImplausibleDelta
			}
		} else {
			if firstErr == nil {
				firstErr = err
			}
			if permErr == nil && reason == ReasonPermissionDenied {
				permErr = err
			}
		}
		if reason != "" {
			if out.Errors == nil {
				out.Errors = make(map[string]uint64, 2)
			}
			out.Errors[reason]++
		}
		out.Zones[i] = ZoneEnergy{Zone: z.zone, Microjoules: z.total, Watts: z.watts, OK: err == nil, Err: err}
	}
	switch {
	case good > 0 || len(m.zones) == 0:
	case permErr != nil:
		out.Err = fmt.Errorf("rapl: no zone could be read: %w (energy_uj is readable only by root "+
			"since CVE-2020-8694: run the agent as root, or with CAP_DAC_READ_SEARCH, and mount the host "+
			"/sys read-only)", permErr)
	default:
		out.Err = fmt.Errorf("rapl: no zone could be read: %w", firstErr)
	}
	return out
}

// read reads and parses one energy_uj file. On failure it returns the error reason.
func (m *Meter) read(path string) (uint64, string, error) {
	b, err := m.readFile(path, m.buf[:])
	if err != nil {
		err = fmt.Errorf("read %s: %w", path, err)
		if errors.Is(err, fs.ErrPermission) {
			return 0, ReasonPermissionDenied, err
		}
		return 0, ReasonReadError, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, ReasonParseError, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, "", nil
}

// advance adds the energy between the baseline and cur, read at now. It reports false when the
// delta was rejected as implausible; the zone then re-baselines at cur.
func (z *zoneState) advance(cur uint64, now time.Time, maxWatts float64) bool {
	if !z.primed {
		z.primed, z.prev, z.prevTime = true, cur, now
		return true
	}
	var delta uint64
	switch top := z.zone.MaxEnergyRangeUJ; {
	case cur >= z.prev:
		delta = cur - z.prev
	case z.prev <= top:
		// A wrap. The counter runs 0..max_energy_range_uj inclusive, so it counts modulo
		// max_energy_range_uj+1: from prev it takes top-prev steps to reach top, one more to
		// reach 0, and cur more to reach cur. No overflow: cur < prev <= top, so the sum is at
		// most top.
		delta = (top - z.prev) + cur + 1
	default:
		// A reading above the advertised range: the wrap cannot be computed.
		z.prev, z.prevTime = cur, now
		return false
	}
	dt := now.Sub(z.prevTime).Seconds()
	if dt <= 0 || float64(delta) > maxWatts*dt*1e6 {
		z.prev, z.prevTime = cur, now
		return false
	}
	z.total += delta
	z.watts = float64(delta) / 1e6 / dt
	z.prev, z.prevTime = cur, now
	return true
}

// readSmallFile reads the file at path into buf with one open, as few reads as possible (sysfs
// returns an attribute in one read; a trailing newline ends it) and one close, and returns the
// filled part of buf. It avoids os.File, whose poller registration costs extra system calls on
// sysfs files, and allocates nothing but the path's C string. Content longer than buf is cut;
// the parser then rejects it.
func readSmallFile(path string, buf []byte) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	n := 0
	for n < len(buf) {
		k, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(fd)
			return nil, err
		}
		if k <= 0 {
			break
		}
		n += k
		if buf[n-1] == '\n' {
			break
		}
	}
	syscall.Close(fd)
	return buf[:n], nil
}
