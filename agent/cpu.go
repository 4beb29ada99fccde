package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inferensys/aiwatt/rapl"
	"github.com/inferensys/aiwatt/source"
)

// raplRediscover is how many ticks apart the RAPL source checks for zones
// and sockets that appeared or vanished (one listing of class/powercap; the
// zones are re-read only when it changed or a zone is broken), and retries a
// machine where no zone was found.
const raplRediscover = 3

// zoneDetail is what the RAPL source saw of one zone in one sample.
type zoneDetail struct {
	device       string // "socket/zone"
	socket, zone string
	watts        float64
	ok           bool
}

// raplSource reads the RAPL zones; it keeps the meter (and its baselines)
// across reloads, and the agent keeps the totals.
type raplSource struct {
	sysfs string

	mu       sync.Mutex // guards maxW against a reload during a Sample
	maxW     float64
	meter    *rapl.Meter
	err      error // why there is no meter
	retryIn  int
	appliedW float64
	// wrap is the meter's WrapTime at the last sample (nanoseconds): the
	// longest the agent may go without reading the zones.
	wrap atomic.Int64
}

var _ source.Source = (*raplSource)(nil)

func newRAPLSource(sysfs string, maxW float64) *raplSource {
	return &raplSource{sysfs: sysfs, maxW: maxW}
}

// Name implements source.Source.
func (s *raplSource) Name() string { return SourceRAPL }

// reconfigure takes a new plausibility ceiling; baselines stay.
func (s *raplSource) reconfigure(maxW float64) {
	s.mu.Lock()
	s.maxW = maxW
	s.mu.Unlock()
}

// Sample implements source.Source: one delta per zone.
func (s *raplSource) Sample(_ context.Context, now time.Time) (source.Reading, error) {
	s.mu.Lock()
	maxW := s.maxW
	s.mu.Unlock()
	if s.meter == nil {
		if s.retryIn > 0 {
			s.retryIn--
			return source.Reading{}, s.err
		}
		s.retryIn = raplRediscover - 1
		m, err := rapl.NewMeter(s.sysfs, rapl.Options{MaxPowerWatts: maxW, Rediscover: raplRediscover})
		if err != nil {
			s.err = err
			if errors.Is(err, rapl.ErrNoData) {
				s.err = wrapAbsent(err)
			}
			return source.Reading{}, s.err
		}
		s.meter, s.appliedW = m, maxW
	}
	if maxW != s.appliedW {
		if err := s.meter.SetMaxPowerWatts(maxW); err != nil {
			return source.Reading{}, err
		}
		s.appliedW = maxW
	}
	smp := s.meter.Sample(now)
	s.wrap.Store(int64(s.meter.WrapTime()))
	r := source.Reading{Errors: source.Errors(smp.Errors), Energy: make([]source.Delta, 0, len(smp.Zones))}
	zones := make([]zoneDetail, 0, len(smp.Zones))
	for _, z := range smp.Zones {
		dev := z.ID
		r.Energy = append(r.Energy, source.Delta{Device: dev, Energy: z.Delta})
		w := z.Watts
		if !z.OK {
			w = 0
		}
		zones = append(zones, zoneDetail{device: dev, socket: z.Socket, zone: z.Name, watts: w, ok: z.OK})
	}
	r.Detail = zones
	return r, smp.Err
}

// modelDetail is what the CPU model saw in one sample.
type modelDetail struct {
	busy  float64 // node busy share; <0 unknown
	watts float64
	// stat is the sample's /proc/stat reading (busy and total clock ticks),
	// which the workload step uses too; nil when it read nothing.
	stat *[2]float64
}

// modelSource runs the CPU power model every tick, whatever the mode: its
// busy share splits idle from active energy for attribution, and it can take
// over with a warm baseline the moment RAPL stops.
type modelSource struct {
	mu   sync.Mutex
	opts rapl.ModelOptions
	est  *rapl.Estimator
	err  error   // why there is no estimator
	frac float64 // sub-microjoule remainder carried to the next sample
}

var _ source.Source = (*modelSource)(nil)

func newModelSource(procfs string, opts rapl.ModelOptions) *modelSource {
	s := &modelSource{opts: opts}
	e, err := rapl.NewEstimator(procfs, opts)
	if err != nil {
		s.err = fmt.Errorf("CPU power model: %w", err)
	}
	s.est = e
	return s
}

// Name implements source.Source.
func (s *modelSource) Name() string { return SourceCPUModel }

// reconfigure takes new coefficients; the /proc/stat baseline stays.
func (s *modelSource) reconfigure(opts rapl.ModelOptions) {
	s.mu.Lock()
	s.opts = opts
	s.mu.Unlock()
}

// Sample implements source.Source: the modelled energy since the last sample.
func (s *modelSource) Sample(_ context.Context, now time.Time) (source.Reading, error) {
	if s.est == nil {
		return source.Reading{Errors: source.Errors{source.ReasonReadError: 1}, Detail: modelDetail{busy: -1}}, s.err
	}
	s.mu.Lock()
	opts := s.opts
	s.mu.Unlock()
	if err := s.est.SetOptions(opts); err != nil {
		return source.Reading{Detail: modelDetail{busy: -1}}, err
	}
	e, err := s.est.Sample(now)
	if err != nil {
		return source.Reading{Errors: source.Errors{source.ReasonReadError: 1}, Detail: modelDetail{busy: -1}}, err
	}
	uj := e.Delta*1e6 + s.frac
	whole := math.Floor(uj)
	s.frac = uj - whole
	return source.Reading{
		Energy: []source.Delta{{Device: "/" + rapl.ZonePackage, Energy: source.Microjoules(whole)}},
		Detail: modelDetail{busy: e.Utilisation, watts: e.Watts, stat: &[2]float64{e.StatBusy, e.StatTotal}},
	}, nil
}

// cpuCounters holds the agent's CPU totals, by series, across everything a
// reload or a re-discovery changes.
type cpuCounters struct {
	totals map[zoneKey]*cpuTotal
	order  []zoneKey // sorted like the meter: socket number, psys last, zone
}

type cpuTotal struct {
	uj    source.Microjoules
	watts float64
}

// zoneKey names one exported CPU energy series.
type zoneKey struct{ socket, zone, source string }

func (c *cpuCounters) add(k zoneKey, d source.Microjoules, watts float64) {
	if c.totals == nil {
		c.totals = map[zoneKey]*cpuTotal{}
	}
	t := c.totals[k]
	if t == nil {
		t = &cpuTotal{}
		c.totals[k] = t
		c.order = append(c.order, k)
		sortZoneKeys(c.order)
	}
	t.uj += d
	t.watts = watts
}

// counters returns every series, sorted.
func (c *cpuCounters) counters() []EnergyCounter {
	out := make([]EnergyCounter, 0, len(c.order))
	for _, k := range c.order {
		t := c.totals[k]
		out = append(out, EnergyCounter{Socket: k.socket, Zone: k.zone, Source: k.source, Joules: t.uj.Joules(), Watts: t.watts})
	}
	return out
}

// sortZoneKeys orders RAPL series by socket number (platform-wide last),
// then zone, and the estimate after them.
func sortZoneKeys(keys []zoneKey) {
	num := func(s string) int {
		if s == "" {
			return math.MaxInt
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return math.MaxInt - 1
		}
		return n
	}
	slices.SortFunc(keys, func(a, b zoneKey) int {
		est := func(k zoneKey) int {
			if k.source == MethodEstimate {
				return 1
			}
			return 0
		}
		return cmp.Or(cmp.Compare(est(a), est(b)),
			cmp.Compare(num(a.socket), num(b.socket)), cmp.Compare(a.zone, b.zone))
	})
}
