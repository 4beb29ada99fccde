package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/rapl"
	"github.com/inferensys/aiwatt/workload"
)

// DefaultZone is the carbon-intensity zone used when Options.Zone is empty:
// the world average of the embedded static table.
const DefaultZone = "WORLD"

// DefaultInterval is the sampling period of `aiwatt run`.
const DefaultInterval = time.Second

// Measurement methods of CPU and DRAM energy, as in the agent's source label.
const (
	// MethodRAPL is the RAPL energy counters (package and dram zones).
	MethodRAPL = "rapl"
	// MethodEstimate is the CPU power model from /proc/stat utilisation.
	MethodEstimate = "estimate"
)

// GPU attribution outcomes, reported per GPU.
const (
	// GPUAssigned is a GPU given to the run by Options.GPUDevices: all of its
	// energy, idle included, is the run's.
	GPUAssigned = "exclusive (assigned)"
	// GPUExclusive is a GPU whose compute processes all belong to the run:
	// all of its energy, idle included, is the run's.
	GPUExclusive = "exclusive (all processes in the run)"
	// GPUSharedSM is a GPU shared with other processes: the run gets its
	// SM-utilisation share of the active energy.
	GPUSharedSM = "shared (SM utilisation share of active energy)"
	// GPUSharedCount is a shared GPU whose per-process SM utilisation is
	// unknown: the run gets its share of the processes.
	GPUSharedCount = "shared (process count share of active energy; SM utilisation unknown)"
	// GPUMIG is a GPU in MIG mode: each GPU instance gets its slices' share
	// of the energy, attributed by the instance's processes.
	GPUMIG = "MIG (slice share of each instance, split by its processes)"
	// GPUNotUsed is a GPU on which no process of the run was seen.
	GPUNotUsed = "not used by the run"
)

// runKey is the one workload of a run in package attribution's terms.
var runKey = attribution.Key{WorkloadType: "aiwatt_run"}

// Options configure a Meter.
type Options struct {
	// SysfsRoot holds class/powercap (default /sys).
	SysfsRoot string
	// ProcfsRoot is the procfs mount (default /proc). Its stat is required.
	ProcfsRoot string
	// RAPLMaxPowerWatts is the plausibility ceiling per RAPL zone; 0 means
	// rapl.DefaultMaxPowerWatts.
	RAPLMaxPowerWatts float64
	// ClockTicks is USER_HZ for /proc/PID/stat; 0 reads it from the
	// auxiliary vector.
	ClockTicks int
	// GPU is the GPU backend; nil means no GPU energy. The Meter does not
	// close it.
	GPU dcgm.Backend
	// GPUDevices lists GPUs, by index or UUID (a "GPU-" UUID prefix is
	// enough), that belong to the run whatever their processes say: all of
	// their energy is the run's. Backends that report no processes
	// (dcgm-exporter) need it for any GPU energy to be attributed.
	GPUDevices []string
	// Zone is the carbon-intensity zone (default DefaultZone).
	Zone string
	// Intensity is the location-basis intensity provider; nil means the
	// embedded static table (carbon.NewStatic).
	Intensity carbon.Provider
	// Market, when set, adds market-based emissions.
	Market *carbon.Market
	// BudgetJoules is the run's energy budget; 0 means none.
	BudgetJoules float64
	// Now is the clock; nil means time.Now. Tests step a fake one.
	Now func() time.Time
	// Logger receives notes as they arise; nil discards them.
	Logger *slog.Logger
}

// Components holds joules by component.
type Components struct {
	// CPU is CPU package energy (RAPL package zones, or the CPU model).
	CPU float64 `json:"cpu"`
	// DRAM is memory energy (RAPL dram zones); 0 without them.
	DRAM float64 `json:"dram"`
	// GPU is GPU energy.
	GPU float64 `json:"gpu"`
	// Total is CPU + DRAM + GPU.
	Total float64 `json:"total"`
}

func (c *Components) add(comp attribution.Component, j float64) {
	switch comp {
	case attribution.CPU:
		c.CPU += j
	case attribution.DRAM:
		c.DRAM += j
	case attribution.GPU:
		c.GPU += j
	}
	c.Total = c.CPU + c.DRAM + c.GPU
}

// Progress is the state of a run after a tick.
type Progress struct {
	// Time is the tick's time.
	Time time.Time
	// Elapsed is the time since Start.
	Elapsed time.Duration
	// Energy is the run's energy so far.
	Energy Components
	// Watts is the run's power over the last tick.
	Watts float64
	// CO2eGrams is the run's location-based CO2e so far.
	CO2eGrams float64
	// BudgetJoules is the budget (0 none).
	BudgetJoules float64
	// BudgetUsed is Energy.Total / BudgetJoules (0 without a budget).
	BudgetUsed float64
	// BudgetExceeded is set once Energy.Total is above the budget, and
	// stays set.
	BudgetExceeded bool
	// Processes is how many processes of the run were alive at the tick.
	Processes int
}

// gpuState is the run's account of one GPU.
type gpuState struct {
	report  GPUReport
	prevJ   float64
	methods map[string]bool
	rules   map[string]int // index in report.Rules
	rule    string         // the rule of the current tick
}

// Meter measures the energy of one command's process tree. Start it once
// with the command's PID, then call Tick every interval and once more after
// the command has exited (after RootExited). It is not safe for concurrent
// use.
type Meter struct {
	opts   Options
	now    func() time.Time
	logger *slog.Logger

	rapl      *rapl.Meter
	raplErr   error
	est       *rapl.Estimator
	scanner   *workload.Scanner
	tree      *tree
	intensity carbon.Provider
	acc       *carbon.Accumulator
	startInt  carbon.Intensity
	attr      attribution.Attributor
	gpuAssign []string

	started   bool
	start     time.Time
	last      time.Time
	cpuMethod string
	prevNode  workload.NodeCPU // for the busy share, steal excluded
	hasNode   bool
	prevUJ    []uint64
	prevEstJ  float64
	gpus      map[string]*gpuState
	gpuOrder  []string

	run, node, idle, unattributed Components
	peakW                         float64
	samples                       int
	exceeded                      bool
	co2eErr                       bool
	cpuSeconds, otherCPUSeconds   float64

	notes   []string
	noteSet map[string]bool
}

// New checks the options and builds the sources: RAPL (absent is fine: the
// CPU model is used), the CPU model over ProcfsRoot/stat (required: it gives
// the node's busy share) and the carbon calculator. Nothing is read until
// Start.
func New(opts Options) (*Meter, error) {
	if opts.SysfsRoot == "" {
		opts.SysfsRoot = "/sys"
	}
	if opts.ProcfsRoot == "" {
		opts.ProcfsRoot = "/proc"
	}
	if opts.Zone == "" {
		opts.Zone = DefaultZone
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if !(opts.BudgetJoules >= 0) || math.IsInf(opts.BudgetJoules, 0) {
		return nil, fmt.Errorf("runner: budget must be a finite energy, got %v J", opts.BudgetJoules)
	}
	if !(opts.RAPLMaxPowerWatts >= 0) || math.IsInf(opts.RAPLMaxPowerWatts, 0) {
		return nil, fmt.Errorf("runner: RAPL power ceiling must be a positive number, got %v W", opts.RAPLMaxPowerWatts)
	}
	m := &Meter{
		opts:      opts,
		now:       opts.Now,
		logger:    opts.Logger,
		gpus:      make(map[string]*gpuState),
		noteSet:   make(map[string]bool),
		gpuAssign: opts.GPUDevices,
	}
	// RAPL absent or unreadable is not an error: the CPU model steps in.
	if meter, err := rapl.NewMeter(opts.SysfsRoot, rapl.Options{MaxPowerWatts: opts.RAPLMaxPowerWatts}); err == nil {
		m.rapl = meter
	} else {
		m.raplErr = err
	}
	est, err := rapl.NewEstimator(opts.ProcfsRoot, rapl.ModelOptions{})
	if err != nil {
		return nil, fmt.Errorf("runner: the node's CPU utilisation is needed: %w", err)
	}
	m.est = est
	m.scanner = workload.NewScanner(opts.ProcfsRoot, workload.ScannerOptions{ClockTicks: opts.ClockTicks})
	m.intensity = opts.Intensity
	if m.intensity == nil {
		s, err := carbon.NewStatic(nil)
		if err != nil {
			return nil, fmt.Errorf("runner: static carbon table: %w", err)
		}
		m.intensity = s
	}
	calc, err := carbon.NewCalculator(m.intensity, opts.Zone, opts.Market)
	if err != nil {
		return nil, fmt.Errorf("runner: carbon: %w", err)
	}
	m.acc = carbon.NewAccumulator(calc)
	return m, nil
}

// note records a remark for the report, once, and logs it.
func (m *Meter) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if m.noteSet[s] {
		return
	}
	m.noteSet[s] = true
	m.notes = append(m.notes, s)
	m.logger.Info("note", "note", s) // the summary and the report repeat it
}

// Start takes the baselines of every source for the command whose process
// (and process group leader) is pid. It fails when the zone has no carbon
// intensity or the process table cannot be read.
func (m *Meter) Start(ctx context.Context, pid int) error {
	if m.started {
		return errors.New("runner: already started")
	}
	if pid <= 0 {
		return fmt.Errorf("runner: bad PID %d", pid)
	}
	now := m.now()
	in, err := m.intensity.Intensity(ctx, m.opts.Zone, now)
	if err != nil {
		return fmt.Errorf("runner: carbon intensity of zone %q: %w", m.opts.Zone, err)
	}
	m.startInt = in

	m.cpuMethod = MethodEstimate
	if m.rapl != nil {
		s := m.rapl.Sample(now)
		m.prevUJ = make([]uint64, len(s.Zones))
		for i, z := range s.Zones {
			m.prevUJ[i] = z.Microjoules
			if z.OK && z.Name == rapl.ZonePackage {
				m.cpuMethod = MethodRAPL
			}
		}
		if m.cpuMethod != MethodRAPL {
			m.note("RAPL zones found but no package zone could be read (%v); CPU energy is the CPU model's estimate", s.Err)
		}
	} else {
		m.note("no RAPL (%v); CPU energy is the CPU model's estimate and DRAM energy is not measured", m.raplErr)
	}
	e, err := m.est.Sample(now)
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	m.prevEstJ = e.Joules
	m.prevNode, err = workload.ReadNodeCPU(m.opts.ProcfsRoot, m.scanner.ClockTicks())
	m.hasNode = err == nil

	m.tree = newTree(pid)
	res, err := m.scanner.Scan()
	if err != nil {
		return fmt.Errorf("runner: process scan: %w", err)
	}
	m.tree.update(res) // a baseline: what ran before it is not measured

	if m.opts.GPU != nil {
		r, err := m.opts.GPU.Sample(ctx, now)
		if err != nil {
			m.note("GPU backend %s: %v", m.opts.GPU.Name(), err)
		}
		for _, g := range r.GPUs {
			m.gpu(g).prevJ = g.Joules
		}
	}
	m.started, m.start, m.last = true, now, now
	return nil
}

// RootExited records the command's final CPU time, its own and that of the
// descendants it waited for (the rusage wait4 returned, e.g.
// os.ProcessState.UserTime + SystemTime). Call it after the command exits and
// before the last Tick, so the CPU time the command used after the last scan
// is not lost.
func (m *Meter) RootExited(cpu time.Duration) {
	if m.tree != nil {
		m.tree.rootExited(cpu.Seconds())
	}
}

// gpu returns the state of one GPU, creating it on first sight.
func (m *Meter) gpu(g dcgm.GPUSample) *gpuState {
	key := g.UUID
	if key == "" {
		key = fmt.Sprintf("index:%d", g.Index)
	}
	s := m.gpus[key]
	if s == nil {
		s = &gpuState{prevJ: g.Joules, methods: map[string]bool{}, rules: map[string]int{}}
		s.report = GPUReport{Index: g.Index, UUID: g.UUID, Model: g.Model}
		m.gpus[key] = s
		m.gpuOrder = append(m.gpuOrder, key)
	}
	return s
}

// Tick reads every source once at the clock's time and attributes the
// energy since the previous tick. A source that fails is noted and counts
// nothing for the tick; the error is non-nil only before Start.
func (m *Meter) Tick(ctx context.Context) (Progress, error) {
	if !m.started {
		return Progress{}, errors.New("runner: Tick before Start")
	}
	now := m.now()
	dt := now.Sub(m.last).Seconds()
	if dt <= 0 {
		return m.progress(now, 0, 0), nil
	}

	var devices []attribution.Device
	cpuJ, dramJ := m.cpuEnergy(now)
	e, err := m.est.Sample(now)
	busy := e.Utilisation
	if err != nil {
		m.note("CPU utilisation unreadable (%v); CPU energy of that interval treated as all active", err)
		busy = 1
	}
	if m.cpuMethod == MethodEstimate && err == nil {
		cpuJ = max(e.Joules-m.prevEstJ, 0)
		m.prevEstJ = e.Joules
	}
	if node, err := workload.ReadNodeCPU(m.opts.ProcfsRoot, m.scanner.ClockTicks()); err == nil {
		if b := workload.BusyShare(m.prevNode, node); m.hasNode && b >= 0 {
			busy = b // the same busy share as the agent's: steal is neither busy nor idle
		}
		m.prevNode, m.hasNode = node, true
	}

	var tt treeTick
	res, err := m.scanner.Scan()
	if err != nil {
		m.note("process scan failed (%v); CPU energy of that interval is unattributed", err)
		tt = treeTick{live: map[int]bool{}}
	} else {
		tt = m.tree.update(res)
	}
	m.cpuSeconds += tt.cpu
	m.otherCPUSeconds += tt.other
	activity := []attribution.Share{{Key: runKey, Weight: tt.cpu}, {Weight: tt.other}}
	devices = append(devices,
		attribution.Device{ID: "cpu", Component: attribution.CPU, Joules: cpuJ, Busy: busy, Claims: attribution.Claims{Activity: activity}})
	if m.cpuMethod == MethodRAPL {
		devices = append(devices,
			attribution.Device{ID: "dram", Component: attribution.DRAM, Joules: dramJ, Busy: busy, Claims: attribution.Claims{Activity: activity}})
	}

	var gpuStates []*gpuState
	if m.opts.GPU != nil {
		r, err := m.opts.GPU.Sample(ctx, now)
		if err != nil {
			m.note("GPU backend %s: %v", m.opts.GPU.Name(), err)
		}
		for _, g := range r.GPUs {
			s := m.gpu(g)
			if !g.OK {
				continue
			}
			dE := max(g.Joules-s.prevJ, 0)
			s.prevJ = g.Joules
			s.methods[g.Source] = true
			d, how := m.gpuDevice(g, dE, tt.live)
			s.rule = how
			devices = append(devices, d)
			gpuStates = append(gpuStates, s)
		}
	}

	results := m.attr.Attribute(devices)
	var tickRun Components
	for i, r := range results {
		var runJ float64
		for _, p := range r.Workloads {
			if p.Key == runKey {
				runJ += p.Joules
			}
		}
		tickRun.add(r.Component, runJ)
		m.run.add(r.Component, runJ)
		m.node.add(r.Component, r.Joules)
		m.idle.add(r.Component, r.Idle)
		m.unattributed.add(r.Component, r.Unattributed)
		if r.Component == attribution.GPU {
			s := gpuStates[i-(len(results)-len(gpuStates))]
			s.report.NodeJoules += r.Joules
			s.report.RunJoules += runJ
			i, ok := s.rules[s.rule]
			if !ok {
				i = len(s.report.Rules)
				s.rules[s.rule] = i
				s.report.Rules = append(s.report.Rules, GPURule{Rule: s.rule})
			}
			s.report.Rules[i].NodeJoules += r.Joules
			s.report.Rules[i].RunJoules += runJ
		}
	}
	if _, err := m.acc.Add(ctx, carbon.Interval{Start: m.last, End: now, Energy: carbon.Joules(tickRun.Total)}); err != nil {
		m.co2eErr = true
		m.note("CO2e incomplete: %v", err)
	}
	watts := tickRun.Total / dt
	m.peakW = max(m.peakW, watts)
	m.samples++
	m.last = now
	if m.opts.BudgetJoules > 0 && m.run.Total > m.opts.BudgetJoules {
		m.exceeded = true
	}
	return m.progress(now, watts, len(tt.live)), nil
}

// cpuEnergy returns the RAPL package and dram energy since the previous
// read (0, 0 when the CPU model is the method).
func (m *Meter) cpuEnergy(now time.Time) (cpu, dram float64) {
	if m.cpuMethod != MethodRAPL {
		return 0, 0
	}
	s := m.rapl.Sample(now)
	var pkgUJ, dramUJ uint64
	for i, z := range s.Zones {
		d := z.Microjoules - m.prevUJ[i] // totals are monotonic
		m.prevUJ[i] = z.Microjoules
		switch z.Name {
		case rapl.ZonePackage:
			pkgUJ += d
		case rapl.ZoneDRAM:
			dramUJ += d
		}
	}
	if s.Err != nil {
		m.note("RAPL: %v (the energy of the gap is added at the next good read)", s.Err)
	}
	for reason, n := range s.Errors {
		if reason == rapl.ReasonImplausibleDelta && n > 0 {
			m.note("RAPL: an implausible counter jump was rejected (not counted)")
		}
	}
	return float64(pkgUJ) / 1e6, float64(dramUJ) / 1e6
}

func (m *Meter) progress(now time.Time, watts float64, procs int) Progress {
	p := Progress{
		Time:           now,
		Elapsed:        now.Sub(m.start),
		Energy:         m.run,
		Watts:          watts,
		CO2eGrams:      float64(m.acc.Totals().Location),
		BudgetJoules:   m.opts.BudgetJoules,
		BudgetExceeded: m.exceeded,
		Processes:      procs,
	}
	if m.opts.BudgetJoules > 0 {
		p.BudgetUsed = m.run.Total / m.opts.BudgetJoules
	}
	return p
}

// gpuDevice builds the attribution input of one GPU for one tick with the
// claim rules the agent uses (workload.GPUClaimer), the run's processes
// being the run's workload and every other process none, and says which
// rule applied.
func (m *Meter) gpuDevice(g dcgm.GPUSample, dE float64, live map[int]bool) (attribution.Device, string) {
	c := workload.GPUClaimer{
		KeyOf: func(pid int) attribution.Key {
			if live[pid] {
				return runKey
			}
			return attribution.Key{}
		},
		Assigned: func(g *dcgm.GPUSample) (attribution.Key, bool) { return runKey, m.assigned(*g) },
	}
	d, how := c.Claim(&g, nil)
	d.Joules = dE
	inRun := 0
	for _, p := range g.Processes {
		if live[int(p.PID)] {
			inRun++
		}
	}
	if how.BusyGuessed && inRun > 0 {
		m.note("GPU %d (%s): neither device nor process SM utilisation is known; all of its energy is treated as active", g.Index, g.UUID)
	}
	switch {
	case how.Rule == workload.ClaimAssigned:
		return d, GPUAssigned
	case inRun == 0:
		return d, GPUNotUsed
	case how.Rule == workload.ClaimSoleUser:
		return d, GPUExclusive
	case how.Rule == workload.ClaimMIG:
		return d, GPUMIG
	case how.Rule == workload.ClaimSharedCount:
		m.note("GPU %d (%s) is shared and per-process SM utilisation is unknown; the run gets its share of the processes (%d of %d)",
			g.Index, g.UUID, inRun, len(g.Processes))
		return d, GPUSharedCount
	}
	return d, GPUSharedSM
}

// mainRule is the rule that gave the run the most energy, or, when the run
// got none, the one that covered the most of the GPU's energy.
func mainRule(rules []GPURule) string {
	best := -1
	for i, r := range rules {
		if best < 0 || r.RunJoules > rules[best].RunJoules ||
			(r.RunJoules == rules[best].RunJoules && r.NodeJoules > rules[best].NodeJoules) {
			best = i
		}
	}
	if best < 0 {
		return GPUNotUsed
	}
	return rules[best].Rule
}

// assigned reports whether g is listed in Options.GPUDevices.
func (m *Meter) assigned(g dcgm.GPUSample) bool {
	for _, want := range m.gpuAssign {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		if want == fmt.Sprint(g.Index) && g.Index >= 0 {
			return true
		}
		if g.UUID != "" && strings.HasPrefix(strings.ToUpper(want), "GPU-") &&
			strings.HasPrefix(strings.ToUpper(g.UUID), strings.ToUpper(want)) {
			return true
		}
	}
	return false
}

// Report returns the run's account so far: energy by component, power,
// CO2e with provenance, the measurement method of every component and the
// notes. The caller fills in the command's outcome (Command, ExitCode, ...).
func (m *Meter) Report() Report {
	r := Report{
		Schema:          ReportSchema,
		Start:           m.start,
		End:             m.last,
		DurationSeconds: m.last.Sub(m.start).Seconds(),
		Samples:         m.samples,
		Energy:          m.run,
		EnergyKWh:       m.run.Total / carbon.JoulesPerKWh,
		Node:            NodeEnergy{Total: m.node, Idle: m.idle, Unattributed: m.unattributed},
		BudgetJoules:    m.opts.BudgetJoules,
		BudgetExceeded:  m.exceeded,
		Tree: TreeReport{
			RootPID:         0,
			ProcessesSeen:   0,
			CPUSeconds:      m.cpuSeconds,
			OtherCPUSeconds: m.otherCPUSeconds,
		},
		Attribution: AttributionPolicy,
		Notes:       append([]string{}, m.notes...),
	}
	r.Measurement.GPUs = []GPUReport{}
	if m.tree != nil {
		r.Tree.RootPID, r.Tree.ProcessesSeen, r.Tree.MaxProcesses = m.tree.root, m.tree.seen, m.tree.maxLive
	}
	if m.opts.BudgetJoules > 0 {
		r.BudgetUsed = m.run.Total / m.opts.BudgetJoules
	}
	if d := r.DurationSeconds; d > 0 {
		r.Power.AvgWatts = m.run.Total / d
	}
	r.Power.PeakWatts = m.peakW

	cpu := ComponentMethod{Method: m.cpuMethod}
	if m.cpuMethod == MethodRAPL {
		cpu.Detail = "RAPL package zones (powercap energy_uj), all sockets"
	} else {
		cpu.Detail = "CPU power model from /proc/stat utilisation (Cloud Carbon Footprint coefficients)"
	}
	r.Measurement.CPU = cpu
	if m.cpuMethod == MethodRAPL {
		r.Measurement.DRAM = ComponentMethod{Method: MethodRAPL, Detail: "RAPL dram zones"}
	} else {
		r.Measurement.DRAM = ComponentMethod{Method: "none", Detail: "not measured without RAPL"}
	}
	var gpuSources []string
	for _, k := range m.gpuOrder {
		s := m.gpus[k]
		g := s.report
		g.Rules = slices.Clone(g.Rules)
		g.Attribution = mainRule(g.Rules)
		g.Sources = []string{}
		for src := range s.methods {
			g.Sources = append(g.Sources, src)
			if !slices.Contains(gpuSources, src) {
				gpuSources = append(gpuSources, src)
			}
		}
		sort.Strings(g.Sources)
		r.Measurement.GPUs = append(r.Measurement.GPUs, g)
	}
	sort.Strings(gpuSources)
	switch {
	case m.opts.GPU == nil:
		r.Measurement.GPU = ComponentMethod{Method: "none", Detail: "no GPU backend"}
	case len(gpuSources) == 0:
		r.Measurement.GPU = ComponentMethod{Method: "none", Detail: "GPU backend " + m.opts.GPU.Name() + " read no GPU"}
	default:
		r.Measurement.GPU = ComponentMethod{Method: strings.Join(gpuSources, "+"), Detail: "GPU backend " + m.opts.GPU.Name()}
	}

	t := m.acc.Totals()
	r.CO2e.LocationGrams = float64(t.Location)
	if t.HasMarket {
		v := float64(t.Market)
		r.CO2e.MarketGrams = &v
	}
	r.CO2e.Complete = !m.co2eErr
	r.Carbon = CarbonReport{
		Zone:      m.opts.Zone,
		Provider:  m.intensity.Name(),
		Intensity: m.startInt,
		Sources:   []SourceReport{},
	}
	for _, u := range t.Sources {
		su := SourceReport{
			Provider: u.Provider, Zone: u.Zone, Source: u.Source, Dataset: u.Dataset, Licence: u.Licence,
			FactorType: string(u.FactorType), From: u.From, To: u.To, EnergyJoules: float64(u.Energy),
			LocationGrams: float64(u.Location), Estimated: u.Estimated, Fallback: u.Fallback,
			MarketFactorSources: u.MarketFactorSources,
		}
		r.Carbon.Sources = append(r.Carbon.Sources, su)
	}
	if mk := m.opts.Market; mk != nil {
		mr := &MarketReport{CoveredShare: mk.CoveredShare, CoveredSource: mk.CoveredSource}
		if mk.SupplierFactor != nil {
			v := float64(*mk.SupplierFactor)
			mr.SupplierFactor, mr.SupplierSource = &v, mk.SupplierSource
		}
		if mk.ResidualFactor != nil {
			v := float64(*mk.ResidualFactor)
			mr.ResidualFactor, mr.ResidualSource = &v, mk.ResidualSource
		}
		r.Carbon.Market = mr
	}
	return r
}
