package rapl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/inferensys/aiwatt/source"
)

// Error reasons, used as the value of the reason label of aiwatt_source_errors_total. They are
// the shared vocabulary of package source.
const (
	// ReasonPermissionDenied counts reads refused by file permissions (energy_uj is root-only).
	ReasonPermissionDenied = source.ReasonPermissionDenied
	// ReasonReadError counts any other failure to read energy_uj, and every sample of a zone
	// whose name or max_energy_range_uj cannot be read.
	ReasonReadError = source.ReasonReadError
	// ReasonParseError counts energy_uj contents that are not a decimal counter.
	ReasonParseError = source.ReasonParseError
	// ReasonImplausibleDelta counts deltas rejected by the plausibility check.
	ReasonImplausibleDelta = source.ReasonImplausibleDelta
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
	// Rediscover is the number of samples between two checks for zones that appeared or
	// vanished (a hot-plugged socket, a zone whose files became readable). A check lists
	// class/powercap once and re-reads the zones only when the listing changed or a zone is
	// broken. 0 never checks: the zones are those NewMeter found.
	Rediscover int
}

// ZoneEnergy is one zone's state after a sample.
type ZoneEnergy struct {
	Zone
	// Delta is the energy accepted in this sample: the wrap-safe difference since the previous
	// good read (0 for a baseline, a failure or a rejected jump). Exact: integer arithmetic.
	Delta source.Microjoules
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
	// that failed this time (OK false, Delta 0, baseline kept).
	Zones []ZoneEnergy
	// Errors counts this sample's errors by reason (Reason* constants); nil when there were none.
	Errors map[string]uint64
	// Err is non-nil only when no zone could be read. It wraps fs.ErrPermission when that was
	// the cause, so errors.Is works.
	Err error
}

// Meter reads the RAPL zones of one machine and hands out each zone's wrap-safe delta; it keeps
// baselines, not totals (the caller owns those). Its methods
// are safe for concurrent use; Sample is meant to be called from one sampling loop.
type Meter struct {
	powercap   string
	rediscover int

	mu            sync.Mutex
	maxPowerWatts float64
	zones         []zoneState
	listing       []string // entry names of class/powercap at the last discovery
	sinceCheck    int      // samples since the last re-discovery check
	buf           [64]byte // energy_uj is at most 20 digits and a newline

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
	watts    float64   // power over the last accepted interval
}

// NewMeter discovers the RAPL zones under sysfsRoot (the directory holding class/powercap,
// normally /sys) with github.com/prometheus/procfs/sysfs. It returns an error wrapping ErrNoData
// when class/powercap is missing or holds no RAPL zone, and another error when sysfsRoot itself
// is missing or the zones cannot be listed. No energy is read until the first Sample.
func NewMeter(sysfsRoot string, opts Options) (*Meter, error) {
	maxW, err := maxPower(opts.MaxPowerWatts)
	if err != nil {
		return nil, err
	}
	zones, err := discover(sysfsRoot)
	if err != nil {
		return nil, err
	}
	m := &Meter{
		powercap:      filepath.Join(sysfsRoot, "class", "powercap"),
		rediscover:    max(opts.Rediscover, 0),
		maxPowerWatts: maxW,
		readFile:      readSmallFile,
	}
	m.listing, _ = listNames(m.powercap)
	m.setZones(zones)
	return m, nil
}

// maxPower applies the default to a MaxPowerWatts option and checks it.
func maxPower(w float64) (float64, error) {
	switch {
	case w == 0:
		return DefaultMaxPowerWatts, nil
	case w < 0 || math.IsNaN(w) || math.IsInf(w, 0):
		return 0, fmt.Errorf("rapl: MaxPowerWatts must be a positive number, got %v", w)
	}
	return w, nil
}

// SetMaxPowerWatts changes the plausibility ceiling (0: the default) and keeps every baseline,
// so a configuration reload loses no energy.
func (m *Meter) SetMaxPowerWatts(w float64) error {
	maxW, err := maxPower(w)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.maxPowerWatts = maxW
	m.mu.Unlock()
	return nil
}

// setZones installs zones, keeping the state (baseline, power) of every zone already known by
// its directory.
func (m *Meter) setZones(zones []Zone) {
	old := make(map[string]zoneState, len(m.zones))
	for _, z := range m.zones {
		old[z.zone.Path] = z
	}
	next := make([]zoneState, len(zones))
	for i, z := range zones {
		st, ok := old[z.Path]
		if !ok {
			st = zoneState{energyPath: filepath.Join(z.Path, "energy_uj")}
		}
		st.zone = z
		next[i] = st
	}
	m.zones = next
}

// listNames lists the entry names of the powercap directory, sorted.
func listNames(powercap string) ([]string, error) {
	f, err := os.Open(powercap)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// maybeRediscover re-reads the zones every m.rediscover samples when class/powercap lists
// other entries than at the last discovery, or some zone is broken. Called with m.mu held.
func (m *Meter) maybeRediscover() {
	if m.rediscover == 0 {
		return
	}
	if m.sinceCheck++; m.sinceCheck < m.rediscover {
		return
	}
	m.sinceCheck = 0
	names, err := listNames(m.powercap)
	if err != nil {
		return // The zones' own reads report the failure.
	}
	broken := slices.ContainsFunc(m.zones, func(z zoneState) bool { return z.zone.Err != nil })
	if !broken && slices.Equal(names, m.listing) {
		return
	}
	zones, err := discoverNames(m.powercap, names)
	if err != nil {
		if !errors.Is(err, ErrNoData) {
			return
		}
		zones = nil // Every zone vanished: keep none; the totals of their deltas stay with the caller.
	}
	m.listing = names
	m.setZones(zones)
}

// Zones returns the zones this meter reads now, in the order of Sample.Zones.
func (m *Meter) Zones() []Zone {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Zone, len(m.zones))
	for i := range m.zones {
		out[i] = m.zones[i].zone
	}
	return out
}

// WrapTime is the shortest time in which a zone's counter can wrap, at the
// plausibility ceiling (MaxPowerWatts): its max_energy_range_uj divided by
// that power. Reads further apart than that could miss a whole wrap, so a
// sampler that reads rarely must read at least this often. Zero when no zone
// has a known range.
func (m *Meter) WrapTime() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out time.Duration
	for _, z := range m.zones {
		if z.zone.Err != nil || z.zone.MaxEnergyRangeUJ == 0 {
			continue
		}
		// Microjoules / watts = microseconds.
		d := time.Duration(float64(z.zone.MaxEnergyRangeUJ)/m.maxPowerWatts) * time.Microsecond
		if out == 0 || d < out {
			out = d
		}
	}
	return out
}

// Sample reads energy_uj of every zone once and returns each zone's delta. now is the time of the
// read, from the caller's clock; it must come from a monotonic clock (time.Now does) for the power
// check to be meaningful. A zone's first good read is only a baseline. A zone that fails keeps its
// baseline, and its next good read's delta holds everything since the last good one.
func (m *Meter) Sample(now time.Time) Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maybeRediscover()

	out := Sample{Zones: make([]ZoneEnergy, len(m.zones))}
	var good int
	var firstErr, permErr error
	for i := range m.zones {
		z := &m.zones[i]
		var cur uint64
		var reason string
		err := z.zone.Err
		if err != nil {
			reason = ReasonReadError
		} else {
			cur, reason, err = m.read(z.energyPath)
		}
		var delta uint64
		if err == nil {
			good++
			var ok bool
			if delta, ok = z.advance(cur, now, m.maxPowerWatts); !ok {
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
		out.Zones[i] = ZoneEnergy{Zone: z.zone, Delta: source.Microjoules(delta), Watts: z.watts, OK: err == nil, Err: err}
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

// advance adds the energy between the baseline and cur, read at now, and returns it. It reports
// false when the delta was rejected as implausible; the zone then re-baselines at cur.
func (z *zoneState) advance(cur uint64, now time.Time, maxWatts float64) (uint64, bool) {
	if !z.primed {
		z.primed, z.prev, z.prevTime = true, cur, now
		return 0, true
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
		return 0, false
	}
	dt := now.Sub(z.prevTime).Seconds()
	if dt <= 0 || float64(delta) > maxWatts*dt*1e6 {
		z.prev, z.prevTime = cur, now
		return 0, false
	}
	z.watts = float64(delta) / 1e6 / dt
	z.prev, z.prevTime = cur, now
	return delta, true
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
