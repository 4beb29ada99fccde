package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/inferensys/aiwatt/agent/attribution"
	"github.com/inferensys/aiwatt/agent/workload"
	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dcgm"
)

// Source names of the attribution inputs.
const (
	SourceProcfs       = "procfs"
	SourceKubernetes   = "kubernetes"
	SourcePodResources = "pod_resources"
	SourceCarbon       = "carbon"
)

// WorkloadEnergy is one workload's totals in a snapshot.
type WorkloadEnergy struct {
	// Key is the workload label set.
	Key attribution.Key
	// Joules holds the energy per component (cpu, dram, gpu) since the
	// workload was first seen.
	Joules attribution.Totals
	// CO2eLocation is location-based grams CO2e since first seen.
	CO2eLocation float64
	// CO2eMarket is market-based grams CO2e; valid when HasMarket.
	CO2eMarket float64
	// HasMarket is true when market instruments are configured.
	HasMarket bool
}

// Intensity is the grid carbon intensity the agent used last.
type Intensity struct {
	// Zone, Provider and Basis identify the value.
	Zone, Provider, Basis string
	// GramsPerKWh is the intensity.
	GramsPerKWh float64
	// ValidFrom is the start of the value's validity window.
	ValidFrom time.Time
}

// Attribution is the workload part of a snapshot.
type Attribution struct {
	// Policy is the idle policy in force (node or allocation).
	Policy string
	// Workloads are the live workloads, sorted, the folded "other" last.
	Workloads []WorkloadEnergy
	// Idle is node idle energy per component.
	Idle attribution.Totals
	// Unattributed is active energy of processes in no workload, per component.
	Unattributed attribution.Totals
	// UnaccountedCPUSeconds is the node's busy CPU time (steal excluded)
	// that no process or cgroup seen by the scans accounts for, since the
	// agent started.
	UnaccountedCPUSeconds float64
	// FoldedKeys counts workloads folded into "other" by the cardinality cap.
	FoldedKeys uint64
	// FoldedJoules is the energy folded into "other", per component.
	FoldedJoules attribution.Totals
	// Intensity holds the grid intensities used for the last CO2e (location, and market when configured).
	Intensity []Intensity
}

// tickEnergy is what the device sources measured in one tick.
type tickEnergy struct {
	cpuJ, dramJ float64
	busy        float64 // node CPU busy share; <0 unknown
	gpus        []gpuTick
}

// gpuTick is one GPU's energy this tick and what runs on it.
type gpuTick struct {
	sample dcgm.GPUSample
	joules float64
}

// workloadSource attributes each tick's device energy to workloads and
// keeps their totals (energy and CO2e) across ticks.
type workloadSource struct {
	logger   *slog.Logger
	procRoot string
	policy   attribution.Policy

	scanner  *workload.Scanner
	cpuAcct  *workload.CPUAccount
	matcher  *workload.Matcher
	resolver *workload.Resolver
	pods     *workload.PodWatcher
	podRes   *workload.PodResources

	attributor attribution.Attributor
	energy     *attribution.Ledger
	co2Loc     *attribution.Ledger
	co2Mkt     *attribution.Ledger

	calc      *carbon.Calculator
	carbonErr error
	zone      string
	intensity []Intensity
	lastTick  time.Time

	attrCfg      AttributionConfig
	podResSocket string

	unaccountedCPU float64 // seconds since start

	pidKeys map[int]attribution.Key // this tick's processes, for GPUs
	owners  *workload.Owners        // this tick's processes, for inference targets
	pidIdx  map[int]int             // this tick's PID → index in the scan, reused across ticks
	scaled  []attribution.Result
}

func newWorkloadSource(opts Options, cfg *Config, logger *slog.Logger, prev *workloadSource) (*workloadSource, error) {
	matcher, err := cfg.Workloads.Compile(workload.CompileOptions{Root: opts.HostRoot})
	if err != nil {
		return nil, err
	}
	policy := attribution.Policy{Idle: attribution.IdlePolicy(cfg.Attribution.Idle)}
	lopts := attribution.LedgerOptions{Retention: cfg.Attribution.Retention, MaxKeys: cfg.Attribution.MaxWorkloads}
	w := &workloadSource{
		logger: logger, procRoot: opts.ProcfsRoot, policy: policy, matcher: matcher,
		scanner:    workload.NewScanner(opts.ProcfsRoot, workload.ScannerOptions{}),
		attributor: attribution.Attributor{Policy: policy},
	}
	w.attrCfg = cfg.Attribution
	if prev != nil && prev.attrCfg == cfg.Attribution {
		w.energy, w.co2Loc, w.co2Mkt = prev.energy, prev.co2Loc, prev.co2Mkt
	} else {
		for _, l := range []**attribution.Ledger{&w.energy, &w.co2Loc, &w.co2Mkt} {
			if *l, err = attribution.NewLedger(lopts); err != nil {
				return nil, err
			}
		}
	}
	if prev != nil {
		// Same procfs, same node: keep the scan baselines and the pod watcher.
		w.scanner, w.pods, w.lastTick = prev.scanner, prev.pods, prev.lastTick
		w.cpuAcct, w.unaccountedCPU = prev.cpuAcct, prev.unaccountedCPU
		if prev.podResSocket == cfg.Kubernetes.PodResourcesSocket {
			w.podRes, w.podResSocket = prev.podRes, prev.podResSocket
		}
	}
	if opts.NodeName != "" && prev == nil {
		rc, err := workload.RESTConfig(opts.Kubeconfig)
		if err != nil {
			logger.Warn("Kubernetes pod metadata unavailable; pods are named by their cgroups only", "err", err)
		} else if w.pods, err = workload.NewPodWatcher(rc, workload.PodWatcherOptions{NodeName: opts.NodeName}); err != nil {
			logger.Warn("Kubernetes pod watcher not started", "err", err)
		}
	}
	if opts.NodeName != "" && w.podRes == nil {
		if _, err := os.Stat(cfg.Kubernetes.PodResourcesSocket); err == nil {
			w.podRes = workload.NewPodResources(cfg.Kubernetes.PodResourcesSocket)
			w.podResSocket = cfg.Kubernetes.PodResourcesSocket
		} else {
			logger.Info("kubelet pod-resources socket not found; GPUs are attributed by their processes", "socket", cfg.Kubernetes.PodResourcesSocket)
		}
	}
	if w.cpuAcct == nil {
		w.cpuAcct = workload.NewCPUAccount(opts.ProcfsRoot, workload.CgroupRoot(opts.SysfsRoot), w.scanner.ClockTicks())
	}
	w.resolver = workload.NewResolver(matcher, w.podLookup())
	switch {
	case cfg.Carbon == nil || cfg.Carbon.Zone == "":
		w.carbonErr = fmt.Errorf("%w: no grid zone (carbon.zone), so CO2e is not computed", errNotConfigured)
	default:
		ccfg := *cfg.Carbon
		if ccfg.Zone == ZoneFromNode {
			zone, err := nodeZone(opts)
			if err != nil {
				w.carbonErr = fmt.Errorf("carbon.zone: node: %w", err)
				return w, nil
			}
			logger.Info("grid zone from the node's cloud region", "zone", zone)
			ccfg.Zone = zone
		}
		src, err := ccfg.Build(carbon.BuildOptions{Logger: logger})
		if err != nil {
			return nil, err
		}
		if w.calc, err = src.Calculator(); err != nil {
			return nil, err
		}
		w.zone = ccfg.Zone
	}
	return w, nil
}

// errNotConfigured marks a source that is off by configuration: absent,
// not failed (logged at info level, never counted as an error).
var errNotConfigured = errors.New("not configured")

// ZoneFromNode as carbon.zone takes the zone from this node's cloud
// provider and region (providerID and topology.kubernetes.io/region), as the
// static table names cloud regions: "aws:eu-west-1", "gcp:europe-west4",
// "azure:westeurope".
const ZoneFromNode = "node"

// nodeZone reads this node's cloud region from the API server.
func nodeZone(opts Options) (string, error) {
	if opts.NodeName == "" {
		return "", errors.New("the node is unknown (set --kubernetes.node-name or NODE_NAME)")
	}
	rc, err := workload.RESTConfig(opts.Kubeconfig)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	provider, region, err := workload.NodeRegion(ctx, rc, opts.NodeName)
	if err != nil {
		return "", err
	}
	return provider + ":" + region, nil
}

// podLookup returns the pod watcher as a lookup, or nil outside Kubernetes.
func (w *workloadSource) podLookup() workload.PodLookup {
	if w.pods == nil {
		return nil
	}
	return w.pods
}

// podSyncTimeout bounds how long the agent waits for the first pod list
// before its first sample.
const podSyncTimeout = 30 * time.Second

// run starts the background parts (the pod watcher) until ctx ends, and
// waits (at most podSyncTimeout) for the first pod list, so that the first
// samples do not name pods without their labels.
func (w *workloadSource) run(ctx context.Context) {
	if w.pods == nil {
		return
	}
	go func() { _ = w.pods.Run(ctx) }()
	sctx, cancel := context.WithTimeout(ctx, podSyncTimeout)
	defer cancel()
	if err := w.pods.WaitForSync(sctx); err != nil {
		w.logger.Warn("sampling before the first pod list; pods are named without their labels until it arrives", "err", err)
	}
}

func (w *workloadSource) close() {
	if w.podRes != nil {
		_ = w.podRes.Close()
	}
}

// sample attributes one tick and returns the totals.
func (w *workloadSource) sample(ctx context.Context, now time.Time, e tickEnergy, record recordFunc) Attribution {
	start := time.Now()
	scan, err := w.scanner.Scan()
	var procs []workload.Process
	var keys []attribution.Key
	if err == nil {
		procs = scan.Processes
		if w.pidIdx == nil {
			w.pidIdx = make(map[int]int, len(procs))
		}
		clear(w.pidIdx)
		for i := range procs {
			w.pidIdx[procs[i].PID] = i
		}
		keys = inheritKeys(procs, w.resolver.Resolve(procs), w.pidIdx)
		var skipErr error
		if scan.Err != nil && len(procs) == 0 {
			skipErr = scan.Err
		}
		record(SourceProcfs, skipErr, scan.Skipped, time.Since(start))
	} else {
		record(SourceProcfs, fmt.Errorf("scan processes: %w", err), map[string]uint64{"read_error": 1}, time.Since(start))
	}
	clear(w.pidKeys)
	if w.pidKeys == nil {
		w.pidKeys = make(map[int]attribution.Key, len(procs))
	}
	for i := range procs {
		w.pidKeys[procs[i].PID] = keys[i]
	}
	w.owners = w.resolver.Owners(procs, keys)
	if w.pods != nil {
		var perr error
		if !w.pods.Synced() {
			perr = errors.New("pods not listed yet")
		}
		record(SourceKubernetes, perr, nil, 0)
	}

	ct := w.cpuAcct.Tick(procs, keys)
	w.unaccountedCPU += ct.UnaccountedSeconds
	cpuShares := ct.Shares
	busy := ct.Busy // steal excluded
	if busy < 0 {
		busy = e.busy
	}
	if busy < 0 {
		busy = 1 // Unknown: treat all energy as active, split by CPU time.
	}
	var cpuAlloc []attribution.Share
	if w.pods != nil && w.policy.Idle == attribution.IdleAllocation {
		cpuAlloc = w.matcher.CPUAllocation(w.pods.Pods())
	}
	devices := []attribution.Device{
		{ID: "cpu", Component: attribution.CPU, Joules: e.cpuJ, Busy: busy, Claims: attribution.Claims{Activity: cpuShares, Allocation: cpuAlloc}},
		{ID: "dram", Component: attribution.DRAM, Joules: e.dramJ, Busy: busy, Claims: attribution.Claims{Activity: cpuShares, Allocation: cpuAlloc}},
	}
	devices = append(devices, w.gpuDevices(ctx, e.gpus, record)...)
	results := w.attributor.Attribute(devices)
	w.energy.Add(now, results)
	w.addCO2e(ctx, now, results, record)
	w.lastTick = now
	return w.snapshot()
}

// gpuDevices builds the attribution input of every GPU: an exclusive holder
// from the kubelet's allocations (or a single dcgm-exporter pod), else the
// SM-utilisation shares of its processes.
func (w *workloadSource) gpuDevices(ctx context.Context, gpus []gpuTick, record recordFunc) []attribution.Device {
	if len(gpus) == 0 {
		return nil
	}
	var allocs []workload.DeviceAllocation
	if w.podRes != nil {
		start := time.Now()
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		allocs, err = w.podRes.List(lctx, "nvidia.com/")
		cancel()
		var reasons map[string]uint64
		if err != nil {
			reasons = map[string]uint64{"read_error": 1}
		}
		record(SourcePodResources, err, reasons, time.Since(start))
	}
	ix := workload.IndexGPUAllocations(allocs)
	claimer := workload.GPUClaimer{
		KeyOf:    func(pid int) attribution.Key { return w.pidKeys[pid] }, // A PID not in the scan belongs to no workload.
		AllocKey: w.allocKey,
		PodKey:   w.podRefKey,
	}
	out := make([]attribution.Device, 0, len(gpus))
	for _, g := range gpus {
		d, _ := claimer.Claim(&g.sample, &ix)
		d.Joules = g.joules
		out = append(out, d)
	}
	return out
}

func (w *workloadSource) allocKey(a workload.DeviceAllocation) attribution.Key {
	var pod *workload.PodMeta
	if w.pods != nil {
		pod, _ = w.pods.PodByName(a.Namespace, a.Pod)
	}
	return w.matcher.AllocationKey(a, pod)
}

func (w *workloadSource) podRefKey(p dcgm.PodRef) attribution.Key {
	if w.pods != nil {
		if pod, ok := w.pods.PodByName(p.Namespace, p.Pod); ok {
			return w.matcher.PodKey(pod, p.Container)
		}
	}
	return attribution.Key{Namespace: p.Namespace, Pod: p.Pod, Container: p.Container}
}

// addCO2e turns this tick's attributed energy into grams with the grid
// intensity valid over the tick, and adds them to the CO2e ledgers, which
// see the same workloads at the same times as the energy ledger and so fold
// and expire them identically.
func (w *workloadSource) addCO2e(ctx context.Context, now time.Time, results []attribution.Result, record recordFunc) {
	if w.calc == nil {
		record(SourceCarbon, w.carbonErr, nil, 0)
		return
	}
	// Both CO2e ledgers see every tick, with zero grams when the intensity is
	// unknown, so that they admit, fold and expire exactly the workloads the
	// energy ledger does.
	var loc, mkt float64
	if !w.lastTick.IsZero() && now.After(w.lastTick) {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		em, err := w.calc.Emissions(cctx, carbon.Interval{Start: w.lastTick, End: now, Energy: 3.6e6})
		cancel()
		var reasons map[string]uint64
		if err != nil {
			reasons = map[string]uint64{"lookup_error": 1}
		}
		record(SourceCarbon, err, reasons, time.Since(start))
		if err == nil { // On error this tick is a gap: nothing is invented.
			loc = float64(em.Location) / 3.6e6
			if em.HasMarket {
				mkt = float64(em.Market) / 3.6e6
			}
			w.setIntensity(em)
		}
	}
	w.co2Loc.Add(now, w.scale(results, loc))
	w.co2Mkt.Add(now, w.scale(results, mkt))
}

// setIntensity keeps, for export, the intensities of the tick just
// attributed (em is the emissions of 1 kWh over the tick, so its grams are
// the time-weighted g/kWh), named by the latest segment's provider.
func (w *workloadSource) setIntensity(em carbon.Emissions) {
	n := len(em.Segments)
	if n == 0 {
		return
	}
	seg := em.Segments[n-1]
	w.intensity = w.intensity[:0]
	w.intensity = append(w.intensity, Intensity{Zone: seg.Intensity.Zone, Provider: seg.Intensity.Provider,
		Basis: string(carbon.BasisLocation), GramsPerKWh: float64(em.Location), ValidFrom: seg.Intensity.ValidFrom})
	if em.HasMarket {
		w.intensity = append(w.intensity, Intensity{Zone: seg.Intensity.Zone, Provider: "market",
			Basis: string(carbon.BasisMarket), GramsPerKWh: float64(em.Market), ValidFrom: seg.Intensity.ValidFrom})
	}
}

// scale copies results with every energy multiplied by f (grams per joule).
func (w *workloadSource) scale(results []attribution.Result, f float64) []attribution.Result {
	w.scaled = w.scaled[:0]
	for _, r := range results {
		c := r
		c.Joules *= f
		c.Idle *= f
		c.Unattributed *= f
		c.Workloads = make([]attribution.Part, len(r.Workloads))
		for i, p := range r.Workloads {
			c.Workloads[i] = attribution.Part{Key: p.Key, Joules: p.Joules * f}
		}
		w.scaled = append(w.scaled, c)
	}
	return w.scaled
}

func (w *workloadSource) snapshot() Attribution {
	es := w.energy.Snapshot()
	loc := w.co2Loc.Snapshot()
	mkt := w.co2Mkt.Snapshot()
	co2 := func(s attribution.LedgerSnapshot) map[attribution.Key]float64 {
		m := make(map[attribution.Key]float64, len(s.Workloads))
		for _, wt := range s.Workloads {
			m[wt.Key] = wt.Joules.Sum()
		}
		return m
	}
	locByKey, mktByKey := co2(loc), co2(mkt)
	out := Attribution{
		Policy: string(w.policy.Idle), Idle: es.Idle, Unattributed: es.Unattributed,
		FoldedKeys: es.FoldedKeys, FoldedJoules: es.FoldedJoules, UnaccountedCPUSeconds: w.unaccountedCPU,
		Intensity: append([]Intensity(nil), w.intensity...),
	}
	if out.Policy == "" {
		out.Policy = string(attribution.IdleNode)
	}
	for _, wt := range es.Workloads {
		we := WorkloadEnergy{Key: wt.Key, Joules: wt.Joules}
		if w.calc != nil {
			we.CO2eLocation = locByKey[wt.Key]
			we.CO2eMarket, we.HasMarket = mktByKey[wt.Key], len(w.intensity) > 1
		}
		out.Workloads = append(out.Workloads, we)
	}
	return out
}

// applyWorkloads builds the attribution and inference sources for cfg,
// keeping the process scanner, the pod watcher, the scraper and, while the
// attribution settings are unchanged, the workload totals.
func (a *Agent) applyWorkloads(cfg *Config) error {
	prev := a.work
	w, err := newWorkloadSource(a.opts, cfg, a.logger, prev)
	if err != nil {
		return err
	}
	if prev != nil && prev.podRes != nil && prev.podRes != w.podRes {
		prev.close()
	}
	a.work = w
	a.infer = newInferenceSource(a.opts, cfg, a.infer, a.logger)
	return nil
}

// inheritKeys gives a process that matched no workload the workload of its
// nearest named ancestor, so a rule that names a server or a training
// launcher covers the whole process tree it forks (an engine core, data
// loader workers, a torchrun's ranks). Pods are named by their cgroups and
// need no inheritance.
// idx maps each PID to its index in procs.
func inheritKeys(procs []workload.Process, keys []attribution.Key, idx map[int]int) []attribution.Key {
	for i := range procs {
		if !keys[i].IsZero() {
			continue
		}
		ppid := procs[i].PPID
		for depth := 0; depth < 64 && ppid > 1; depth++ {
			j, ok := idx[ppid]
			if !ok {
				break
			}
			if !keys[j].IsZero() && procs[j].Info.Cgroup.PodUID == procs[i].Info.Cgroup.PodUID {
				keys[i] = keys[j]
				break
			}
			ppid = procs[j].PPID
		}
	}
	return keys
}
