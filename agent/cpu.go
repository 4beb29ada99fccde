package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/inferensys/aiwatt/rapl"
)

// zoneKey names one exported CPU energy series.
type zoneKey struct{ socket, zone, source string }

// cpuSource turns RAPL zones (or, without them, the CPU power model) into the
// agent's own monotonic totals. The totals live here, not in the meter, so a
// reload that rebuilds the meter keeps every exported counter continuous.
type cpuSource struct {
	raplCfg  RAPLConfig
	modelCfg CPUModelConfig

	meter    *rapl.Meter
	meterErr error // why there is no meter (absent, disabled)
	prevUJ   map[zoneKey]uint64
	totals   map[zoneKey]uint64 // microjoules, exact

	estimate  string
	est       *rapl.Estimator
	estErr    error
	prevEstJ  float64
	estimateJ float64
}

var errRAPLDisabled = errors.New("disabled by configuration (rapl.enabled: false)")

func newCPUSource(opts Options, cfg *Config, logger *slog.Logger) *cpuSource {
	s := &cpuSource{
		prevUJ:   map[zoneKey]uint64{},
		totals:   map[zoneKey]uint64{},
		estimate: cfg.CPUModel.Estimate,
		raplCfg:  cfg.RAPL,
		modelCfg: cfg.CPUModel,
	}
	if cfg.RAPLEnabled() {
		m, err := rapl.NewMeter(opts.SysfsRoot, rapl.Options{MaxPowerWatts: cfg.RAPL.MaxPowerWatts})
		if err != nil {
			s.meterErr = err
		} else {
			s.meter = m
			logger.Info("RAPL zones found", "zones", len(m.Zones()), "sysfs", opts.SysfsRoot)
		}
	} else {
		s.meterErr = errRAPLDisabled
	}
	{ // Built whatever the mode: its busy share is an attribution input.
		e, err := rapl.NewEstimator(opts.ProcfsRoot, rapl.ModelOptions{
			MinWattsPerCPU: *cfg.CPUModel.MinWattsPerCPU,
			MaxWattsPerCPU: *cfg.CPUModel.MaxWattsPerCPU,
			CPUs:           cfg.CPUModel.CPUs,
		})
		if err != nil {
			s.estErr = fmt.Errorf("CPU power model: %w", err)
		}
		s.est = e
	}
	return s
}

// sample reads RAPL, runs the model when needed, and returns every CPU
// counter, sorted, with this tick's CPU (package) and DRAM energy for
// attribution (measured when RAPL serves, else the estimate) and the node's
// busy share (-1 when unknown). record reports each source's health.
func (s *cpuSource) sample(now time.Time, record recordFunc) (out []EnergyCounter, cpuJ, dramJ, busy float64) {
	busy = -1
	raplOK := false
	if s.meter != nil {
		start := time.Now()
		smp := s.meter.Sample(now)
		for _, z := range smp.Zones {
			k := zoneKey{socket: z.Socket, zone: z.Name, source: MethodRAPL}
			if prev, ok := s.prevUJ[k]; ok && z.Microjoules >= prev {
				d := z.Microjoules - prev
				s.totals[k] += d
				switch z.Name {
				case rapl.ZonePackage:
					cpuJ += float64(d) / 1e6
				case rapl.ZoneDRAM:
					dramJ += float64(d) / 1e6
				}
			}
			s.prevUJ[k] = z.Microjoules
			if _, ok := s.totals[k]; !ok {
				s.totals[k] = 0
			}
			raplOK = raplOK || z.OK
			watts := z.Watts
			if !z.OK {
				watts = 0
			}
			out = append(out, EnergyCounter{
				Socket: z.Socket, Zone: z.Name, Source: MethodRAPL,
				Joules: float64(s.totals[k]) / 1e6, Watts: watts,
			})
		}
		record(SourceRAPL, smp.Err, smp.Errors, time.Since(start))
	} else if !errors.Is(s.meterErr, errRAPLDisabled) {
		record(SourceRAPL, s.meterErr, nil, 0)
	}

	active := s.estimate == EstimateAlways || (s.estimate == EstimateAuto && !raplOK)
	if s.est == nil {
		if active {
			record(SourceCPUModel, s.estErr, map[string]uint64{"read_error": 1}, 0)
		}
		return out, cpuJ, dramJ, busy
	}
	// The model samples /proc/stat every tick, even while RAPL serves: the
	// busy share splits idle from active energy for attribution, and the
	// model can take over with a fresh baseline the moment RAPL stops.
	start := time.Now()
	e, err := s.est.Sample(now)
	delta := e.Joules - s.prevEstJ
	s.prevEstJ = e.Joules
	if err == nil {
		busy = e.Utilisation
	}
	if !active {
		return out, cpuJ, dramJ, busy
	}
	var reasons map[string]uint64
	if err != nil {
		reasons = map[string]uint64{"read_error": 1}
	} else if delta > 0 {
		s.estimateJ += delta
		if !raplOK {
			cpuJ += delta
		}
	}
	record(SourceCPUModel, err, reasons, time.Since(start))
	watts := e.Watts
	if err != nil {
		watts = 0
	}
	out = append(out, EnergyCounter{Zone: rapl.ZonePackage, Source: MethodEstimate, Joules: s.estimateJ, Watts: watts})
	return out, cpuJ, dramJ, busy
}

// sameConfig reports whether cfg would build the same source.
func (s *cpuSource) sameConfig(cfg *Config) bool {
	o, n := s.modelCfg, cfg.CPUModel
	return cfg.RAPLEnabled() == (s.raplCfg.Enabled == nil || *s.raplCfg.Enabled) &&
		cfg.RAPL.MaxPowerWatts == s.raplCfg.MaxPowerWatts &&
		o.Estimate == n.Estimate && o.CPUs == n.CPUs &&
		*o.MinWattsPerCPU == *n.MinWattsPerCPU && *o.MaxWattsPerCPU == *n.MaxWattsPerCPU
}
