package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/gpu"
	"github.com/inferensys/aiwatt/source"
	"github.com/inferensys/aiwatt/workload"
)

// Source names of the attribution inputs.
const (
	SourceProcfs       = "procfs"
	SourceKubernetes   = "kubernetes"
	SourcePodResources = "pod_resources"
	SourceCarbon       = "carbon"
)

// tickEnergy is what the device sources measured in one tick.
type tickEnergy struct {
	cpuJ, dramJ float64
	busy        float64 // node CPU busy share; <0 unknown
	// stat is this tick's /proc/stat reading by the CPU model (busy and
	// total clock ticks), shared with the workload step; nil when none.
	stat *[2]float64
	gpus []gpuTick
}

// gpuTick is one GPU's energy this tick and what runs on it.
type gpuTick struct {
	sample gpu.GPUSample
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
	co2Marg    *attribution.Ledger // marginal grams: a steering view, never summed with the two above

	carbon    *carbonSource
	intensity []Intensity // location, and market when configured
	marginal  *Intensity  // the last marginal intensity; nil until one answered
	lastTick  time.Time
	procs     []workload.Process   // the latest scan's processes, used again while a scan is late
	lastScan  *workload.ScanResult // the scan procs come from, handed back to the scanner when the next arrives
	keys      []attribution.Key    // their workloads

	attrCfg      AttributionConfig
	podResSocket string

	// scan is whether the process scan runs: only when something can name
	// a workload from processes (rules, Kubernetes, inference targets).
	// Otherwise no workload can receive energy and the tick does not list
	// /proc at all (docs/performance.md).
	scan bool

	unaccountedCPU float64             // seconds since start
	cpuShares      []attribution.Share // the latest scan's CPU time per workload
	cpuBusy        float64             // the latest scan's busy share without steal; -1 unknown

	owners  *workload.Owners     // this tick's processes, for GPUs and inference targets
	claimer *workload.GPUClaimer // names each GPU's workloads, kept for its scratch index
	pidIdx  map[int]int          // this tick's PID → index in the scan when a process needs its ancestors, reused across ticks
	results []attribution.Result // the latest tick's attribution, its arrays reused by the next
	// co2ByKey holds snapshot's per-workload CO2e of each ledger (location,
	// market, marginal), cleared and reused every tick.
	co2ByKey [3]map[attribution.Key]float64
	// snaps backs the Workloads of the ledger snapshots snapshot reads:
	// energy, location, market, marginal.
	snaps [4][]attribution.WorkloadTotal
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
		cpuBusy:    -1,
	}
	w.attrCfg = cfg.Attribution
	w.scan = len(cfg.Workloads.Rules) > 0 || opts.NodeName != "" || len(cfg.Inference.Targets) > 0
	if prev != nil && prev.attrCfg == cfg.Attribution {
		w.energy, w.co2Loc, w.co2Mkt, w.co2Marg = prev.energy, prev.co2Loc, prev.co2Mkt, prev.co2Marg
	} else {
		for _, l := range []**attribution.Ledger{&w.energy, &w.co2Loc, &w.co2Mkt, &w.co2Marg} {
			if *l, err = attribution.NewLedger(lopts); err != nil {
				return nil, err
			}
		}
	}
	if prev != nil {
		// Same procfs, same node: keep the scan baselines and the pod watcher.
		w.pods, w.lastTick, w.unaccountedCPU = prev.pods, prev.lastTick, prev.unaccountedCPU
		if w.scan && prev.scan {
			// Baselines of a scan that did not run meanwhile would span the
			// gap: a scan that starts again starts from a fresh baseline.
			w.scanner, w.cpuAcct = prev.scanner, prev.cpuAcct
			w.procs, w.keys, w.cpuShares, w.cpuBusy = prev.procs, prev.keys, prev.cpuShares, prev.cpuBusy
		}
		if prev.podResSocket == cfg.Kubernetes.PodResourcesSocket {
			w.podRes, w.podResSocket = prev.podRes, prev.podResSocket
		}
	}
	if opts.NodeName != "" && prev == nil {
		rc, err := workload.RESTConfig(opts.Kubeconfig)
		if err != nil {
			logger.Warn("Kubernetes pod metadata unavailable; pods are named by their cgroups only", "err", err)
		} else if w.pods, err = workload.NewPodWatcher(rc, workload.PodWatcherOptions{
			NodeName: opts.NodeName, Logger: logger.With("component", "kubernetes-client"),
		}); err != nil {
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
	if prev != nil && reflect.DeepEqual(prev.carbon.cfg, cfg.Carbon) {
		// Same carbon settings: keep the chain (its cache and backoff), the
		// interval's start and the intensities last applied, so a reload
		// leaves no CO2e gap and no CO2e series vanishes for a tick.
		w.carbon = prev.carbon
		w.intensity, w.marginal = append(w.intensity, prev.intensity...), prev.marginal
		return w, nil
	}
	w.carbon, err = newCarbonSource(opts, cfg, logger)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		w.carbon.continueFrom(prev.carbon)
	}
	return w, nil
}

// errNotConfigured marks a source that is off by configuration: absent,
// not failed (logged at info level, never counted as an error).
var errNotConfigured = fmt.Errorf("%w: not configured", source.ErrAbsent)

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

// tickInputs are the readings of the attribution sources in one tick; nil
// fields were not read in time (the previous scan is used again).
type tickInputs struct {
	scan     *workload.ScanResult
	allocs   []workload.DeviceAllocation
	em       *carbon.Emissions // 1 kWh over the tick at the location (and market) intensity
	marginal *carbon.Emissions // 1 kWh over the tick at the marginal intensity
}

// attribute splits one tick's device energy between workloads and returns
// the totals.
func (w *workloadSource) attribute(now time.Time, e tickEnergy, in tickInputs) Attribution {
	if in.scan != nil {
		procs := in.scan.Processes
		// The previous tick's keys are consumed (the CPU account and the
		// owners index copy them): their array is reused.
		w.procs, w.keys = procs, w.inheritKeys(procs, w.resolver.ResolveTo(w.keys, procs))
		w.owners = w.resolver.Owners(procs, w.keys)
		// Nothing refers to the previous scan's processes any more (the
		// owners index is this scan's): the next scan reuses their array.
		if w.lastScan != nil && w.lastScan != in.scan {
			w.scanner.Recycle(w.lastScan)
		}
		w.lastScan = in.scan
		// CPU time per workload from cgroup counters where they stand for one
		// workload, else from the processes (reaped children included).
		// The node's CPU time comes from the CPU model's reading of this
		// tick, so /proc/stat is read once; without one the account reads it.
		var node *workload.NodeCPU
		if e.stat != nil {
			n := workload.NodeCPUFromTicks(e.stat[0], e.stat[1], w.scanner.ClockTicks())
			node = &n
		}
		ct := w.cpuAcct.Tick(procs, w.keys, node)
		w.unaccountedCPU += ct.UnaccountedSeconds
		w.cpuShares, w.cpuBusy = ct.Shares, ct.Busy
	}
	// While a scan is late the previous tick's shares are used again.
	cpuShares := w.cpuShares
	busy := w.cpuBusy // steal excluded; -1 when unknown
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
	devices = append(devices, w.gpuDevices(e.gpus, in.allocs)...)
	// The previous tick's results are consumed (the ledgers have added
	// them): their arrays are reused.
	results := w.attributor.AttributeTo(w.results, devices)
	w.results = results
	w.energy.Add(now, results)
	w.addCO2e(now, results, in.em, in.marginal)
	w.lastTick = now
	return w.snapshot()
}

// gpuDevices builds the attribution input of every GPU: an exclusive holder
// from the kubelet's allocations (or a single dcgm-exporter pod), else the
// SM-utilisation shares of its processes. A MIG GPU is split by the slice
// count its backend reports.
func (w *workloadSource) gpuDevices(gpus []gpuTick, allocs []workload.DeviceAllocation) []attribution.Device {
	if len(gpus) == 0 {
		return nil
	}
	ix := workload.IndexGPUAllocations(allocs)
	if w.claimer == nil {
		w.claimer = &workload.GPUClaimer{
			KeyOf:    func(pid int) attribution.Key { k, _ := w.owners.PID(pid); return k }, // A PID not in the scan belongs to no workload.
			AllocKey: w.allocKey,
			PodKey:   w.podRefKey,
		}
	}
	w.claimer.Recycle() // the previous tick's devices are attributed
	out := make([]attribution.Device, 0, len(gpus))
	for _, g := range gpus {
		d, _ := w.claimer.Claim(&g.sample, &ix)
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

func (w *workloadSource) podRefKey(p gpu.PodRef) attribution.Key {
	if w.pods != nil {
		if pod, ok := w.pods.PodByName(p.Namespace, p.Pod); ok {
			return w.matcher.PodKey(pod, p.Container)
		}
	}
	return attribution.Key{Namespace: p.Namespace, Pod: p.Pod, Container: p.Container}
}

// addCO2e turns this tick's attributed energy into grams with the grid
// intensity valid over the tick (em, the emissions of 1 kWh over it; nil
// when the lookup failed or was late: this tick is a gap, nothing is
// invented), and adds them to the CO2e ledgers, which see the same workloads
// at the same times as the energy ledger and so fold and expire them
// identically. With a marginal provider, marginal grams (marg, likewise)
// go to a ledger of their own, which no inventory total reads.
func (w *workloadSource) addCO2e(now time.Time, results []attribution.Result, em, marg *carbon.Emissions) {
	if w.carbon.calc == nil {
		return
	}
	var loc, mkt float64
	if em != nil {
		loc = float64(em.Location) / 3.6e6
		if em.HasMarket {
			mkt = float64(em.Market) / 3.6e6
		}
		w.setIntensity(*em)
	}
	w.co2Loc.AddScaled(now, results, loc)
	w.co2Mkt.AddScaled(now, results, mkt)
	if w.carbon.mcalc == nil {
		return
	}
	var m float64
	if marg != nil && len(marg.Segments) > 0 {
		m = float64(marg.Marginal) / 3.6e6
		seg := marg.Segments[len(marg.Segments)-1]
		w.marginal = &Intensity{Zone: seg.Intensity.Zone, Provider: seg.Intensity.Provider,
			Basis: string(carbon.BasisMarginal), GramsPerKWh: float64(marg.Marginal), ValidFrom: seg.Intensity.ValidFrom}
	}
	w.co2Marg.AddScaled(now, results, m)
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

func (w *workloadSource) snapshot() Attribution {
	// The ledger snapshots are read here only: their arrays are reused.
	es := w.energy.SnapshotTo(w.snaps[0])
	loc := w.co2Loc.SnapshotTo(w.snaps[1])
	mkt := w.co2Mkt.SnapshotTo(w.snaps[2])
	w.snaps[0], w.snaps[1], w.snaps[2] = es.Workloads, loc.Workloads, mkt.Workloads
	// The CO2e ledgers see the same workloads at the same times as the
	// energy ledger, so their snapshots list them in the same order: the
	// grams of es.Workloads[j] are normally at index j. A map by key is
	// built only for a snapshot where that does not hold.
	var built [3]bool
	co2 := func(i int, s *attribution.LedgerSnapshot, j int, k attribution.Key) float64 {
		if j < len(s.Workloads) && s.Workloads[j].Key == k {
			return s.Workloads[j].Joules.Sum()
		}
		m := w.co2ByKey[i]
		if !built[i] {
			if m == nil {
				m = make(map[attribution.Key]float64, len(s.Workloads))
				w.co2ByKey[i] = m
			}
			clear(m)
			for _, wt := range s.Workloads {
				m[wt.Key] = wt.Joules.Sum()
			}
			built[i] = true
		}
		return m[k]
	}
	hasMarket := len(w.intensity) > 0 && w.intensity[len(w.intensity)-1].Basis == string(carbon.BasisMarket)
	hasMarginal := w.carbon.mcalc != nil && w.marginal != nil
	var marg attribution.LedgerSnapshot
	if hasMarginal {
		marg = w.co2Marg.SnapshotTo(w.snaps[3])
		w.snaps[3] = marg.Workloads
	}
	out := Attribution{
		Policy: string(w.policy.Idle), Idle: Joules(es.Idle), Unattributed: Joules(es.Unattributed),
		FoldedKeys: es.FoldedKeys, FoldedJoules: Joules(es.FoldedJoules), UnaccountedCPUSeconds: w.unaccountedCPU,
		Intensity: append([]Intensity(nil), w.intensity...),
	}
	if n := len(es.Workloads); n > 0 {
		out.Workloads = make([]WorkloadEnergy, 0, n)
	}
	if hasMarginal {
		out.Intensity = append(out.Intensity, *w.marginal)
	}
	if out.Policy == "" {
		out.Policy = string(attribution.IdleNode)
	}
	for j, wt := range es.Workloads {
		we := WorkloadEnergy{Key: Workload(wt.Key), Joules: Joules(wt.Joules)}
		if w.carbon.calc != nil {
			we.CO2eLocation = co2(0, &loc, j, wt.Key)
			we.CO2eMarket, we.HasMarket = co2(1, &mkt, j, wt.Key), hasMarket
			if hasMarginal {
				we.CO2eMarginal, we.HasMarginal = co2(2, &marg, j, wt.Key), true
			}
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
// The index of PIDs it needs is built only when a process has no workload
// of its own.
func (w *workloadSource) inheritKeys(procs []workload.Process, keys []attribution.Key) []attribution.Key {
	if !slices.ContainsFunc(keys, attribution.Key.IsZero) {
		return keys
	}
	if w.pidIdx == nil {
		w.pidIdx = make(map[int]int, len(procs))
	}
	clear(w.pidIdx)
	for i := range procs {
		w.pidIdx[procs[i].PID] = i
	}
	idx := w.pidIdx
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
