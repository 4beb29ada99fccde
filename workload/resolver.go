package workload

import (
	"slices"

	"github.com/inferensys/aiwatt/attribution"
)

// Resolver names the workload of each process: the container of a known
// pod when the process's cgroup names one, else the first matching rule,
// else none (the zero Key, whose activity is unattributed). It caches the
// outcome per ProcessInfo, which a [Scanner] makes once per process (PID and
// start time) and again after an exec, so regular expressions run once per
// process and a PID reused by another process, or a process that exec'd,
// is resolved afresh; a cached pod outcome is kept while the pod lookup
// returns the same pod. It is not safe for concurrent use.
type Resolver struct {
	matcher *Matcher
	pods    PodLookup
	cache   map[*ProcessInfo]*resolved
	gen     uint32
	touched int     // cache entries the current Resolve has used
	rules   []int32 // the rule of each process of the last Resolve, for Owners
	// last and prev are the outcomes of the current and the previous
	// Resolve by process, in the order of procs: a scan's processes come
	// in PID order, so the current call finds a process's outcome in prev
	// by walking it alongside (prevAt), without a map look-up.
	last, prev []lastOutcome
	prevAt     int
	owners     Owners // reused by Owners
}

// lastOutcome is one process's outcome in a Resolve.
type lastOutcome struct {
	pid  int
	info *ProcessInfo
	e    *resolved
}

type resolved struct {
	pod  *PodMeta // the pod the key was built from; nil for a rule or none
	key  attribution.Key
	rule int
	gen  uint32
}

// NewResolver returns a resolver by matcher m (nil means DefaultMatcher)
// and pods (nil outside Kubernetes).
func NewResolver(m *Matcher, pods PodLookup) *Resolver {
	if m == nil {
		m = DefaultMatcher()
	}
	return &Resolver{matcher: m, pods: pods, cache: map[*ProcessInfo]*resolved{}}
}

// Resolve returns the workload of each process, in the order of procs.
// Cached outcomes of processes absent from procs are dropped, so call it
// with every process of a scan.
func (r *Resolver) Resolve(procs []Process) []attribution.Key {
	return r.ResolveTo(nil, procs)
}

// ResolveTo is Resolve writing into dst's array when it is large enough
// (a sampling loop passes the previous tick's slice back), so that a tick
// does not allocate a key per process.
func (r *Resolver) ResolveTo(dst []attribution.Key, procs []Process) []attribution.Key {
	r.gen++
	r.touched = 0
	out := slices.Grow(dst[:0], len(procs))[:len(procs)]
	r.rules = slices.Grow(r.rules[:0], len(procs))[:len(procs)]
	r.prev, r.last, r.prevAt = r.last, r.prev[:0], 0
	for i := range procs {
		e := r.key(procs[i].PID, procs[i].Info)
		out[i], r.rules[i] = e.key, int32(e.rule)
		r.last = append(r.last, lastOutcome{procs[i].PID, procs[i].Info, e})
	}
	if len(r.cache) > r.touched {
		// Some process of the previous call is gone (or exec'd): forget it.
		for info, e := range r.cache {
			if e.gen != r.gen {
				delete(r.cache, info)
			}
		}
	}
	return out
}

// fromPrev returns the previous call's outcome for the process pid with
// info, if that call resolved it (it is then the cache's entry for info).
func (r *Resolver) fromPrev(pid int, info *ProcessInfo) *resolved {
	for r.prevAt < len(r.prev) && r.prev[r.prevAt].pid < pid {
		r.prevAt++
	}
	if r.prevAt < len(r.prev) && r.prev[r.prevAt].pid == pid && r.prev[r.prevAt].info == info {
		r.prevAt++
		return r.prev[r.prevAt-1].e
	}
	return nil
}

func (r *Resolver) key(pid int, info *ProcessInfo) *resolved {
	e := r.fromPrev(pid, info)
	if e == nil {
		e = r.cache[info]
	}
	var pod *PodMeta
	if uid := info.Cgroup.PodUID; uid != "" && r.pods != nil {
		pod, _ = r.pods.Pod(uid)
	}
	if e != nil && e.gen != r.gen {
		r.touched++
	}
	if e != nil && e.pod == pod {
		e.gen = r.gen
		return e
	}
	if e == nil {
		e = &resolved{}
		r.cache[info] = e
		r.touched++
	}
	e.gen, e.pod, e.rule = r.gen, pod, -1
	if pod != nil {
		name := ""
		if c, ok := pod.Container(info.Cgroup.ContainerID); ok {
			name = c.Name
		}
		e.key = r.matcher.PodKey(pod, name)
		return e
	}
	e.key, e.rule = r.matcher.Match(info)
	return e
}

// CPUAllocation returns the CPU requests of the regular containers of
// pods, in cores, as allocation weights for the idle policy "allocation".
func (m *Matcher) CPUAllocation(pods []*PodMeta) []attribution.Share {
	var out []attribution.Share
	for _, p := range pods {
		if !p.Deleted.IsZero() || p.Phase == "Succeeded" || p.Phase == "Failed" {
			continue
		}
		for _, c := range p.Containers {
			if !c.Init && !c.Ephemeral && c.CPURequestCores > 0 {
				out = append(out, attribution.Share{Key: m.PodKey(p, c.Name), Weight: c.CPURequestCores})
			}
		}
	}
	return out
}

// AllocationKey returns the workload holding a device from the
// pod-resources API. pod is the pod a.Namespace/a.Pod (PodWatcher.PodByName);
// when nil, the key has no project, model_id or workload_type.
func (m *Matcher) AllocationKey(a DeviceAllocation, pod *PodMeta) attribution.Key {
	if pod == nil {
		return attribution.Key{Namespace: a.Namespace, Pod: a.Pod, Container: a.Container}
	}
	return m.PodKey(pod, a.Container)
}

// Owners indexes the processes of one scan by what an inference target can
// be tied to: a PID, the rule that named the process (by the rule's name),
// or the systemd unit it runs in. A rule or unit with several processes
// gives the workload of the one with the lowest PID.
type Owners struct {
	// procs and keys are the scan's processes and their workloads; sorted
	// by PID (as a Scanner returns them), a PID is found by binary search,
	// else through byPID.
	procs  []Process
	keys   []attribution.Key
	pids   []int // procs' PIDs, searched by PID (8 bytes apart, not 64)
	sorted bool
	byPID  map[int]attribution.Key
	// r and rules (each process's rule from the Resolve before Owners;
	// nil when that was another call's) serve name, which fills byRule and
	// byUnit when first asked (named).
	r      *Resolver
	rules  []int32
	named  bool
	byRule map[string]attribution.Key
	byUnit map[string]attribution.Key
}

// Owners builds the index of one scan; keys[i] is the workload of procs[i]
// after inheritance. Call it after Resolve with the same processes. The
// index refers to procs, keys and that Resolve's outcomes: it is valid
// until the next Resolve or Owners call (which reuses it), while the caller
// leaves procs and keys as they are.
func (r *Resolver) Owners(procs []Process, keys []attribution.Key) *Owners {
	o := &r.owners
	o.procs, o.keys, o.r, o.rules, o.named = procs, keys, r, nil, false
	if len(r.rules) == len(procs) {
		o.rules = r.rules
	}
	clear(o.byPID)
	o.pids = o.pids[:0]
	for i := range procs {
		o.pids = append(o.pids, procs[i].PID)
	}
	o.sorted = slices.IsSorted(o.pids)
	if !o.sorted {
		if o.byPID == nil {
			o.byPID = make(map[int]attribution.Key, len(procs))
		}
		for i := range procs {
			o.byPID[procs[i].PID] = keys[i]
		}
	}
	return o
}

// name indexes the processes by rule name and systemd unit, at the first
// Rule or Unit call after Owners: most ticks ask neither.
func (o *Owners) name() {
	if o.named {
		return
	}
	o.named = true
	if o.byRule == nil {
		o.byRule, o.byUnit = map[string]attribution.Key{}, map[string]attribution.Key{}
	}
	clear(o.byRule)
	clear(o.byUnit)
	for i := range o.procs {
		p, k := &o.procs[i], o.keys[i]
		if k.IsZero() {
			continue
		}
		rule := -1
		if o.rules != nil {
			rule = int(o.rules[i])
		} else if e := o.r.cache[p.Info]; e != nil {
			rule = e.rule
		}
		if rule >= 0 && rule < len(o.r.matcher.rules) {
			if name := o.r.matcher.rules[rule].name; name != "" {
				if _, ok := o.byRule[name]; !ok {
					o.byRule[name] = k
				}
			}
		}
		if u := p.Info.Cgroup.SystemdUnit; u != "" {
			if _, ok := o.byUnit[u]; !ok {
				o.byUnit[u] = k
			}
		}
	}
}

// PID returns the workload of a running process; ok is false when the PID
// is not in the scan.
func (o *Owners) PID(pid int) (attribution.Key, bool) {
	if o == nil {
		return attribution.Key{}, false
	}
	if !o.sorted {
		k, ok := o.byPID[pid]
		return k, ok
	}
	i, ok := slices.BinarySearch(o.pids, pid)
	if !ok {
		return attribution.Key{}, false
	}
	return o.keys[i], true
}

// Alive reports whether a PID is in the scan.
func (o *Owners) Alive(pid int) bool { _, ok := o.PID(pid); return ok }

// Rule returns the workload of the processes named by the rule called
// name, if one runs.
func (o *Owners) Rule(name string) (attribution.Key, bool) {
	if o == nil {
		return attribution.Key{}, false
	}
	o.name()
	k, ok := o.byRule[name]
	return k, ok
}

// Unit returns the workload of the processes of a systemd unit, if one
// runs and belongs to a workload.
func (o *Owners) Unit(unit string) (attribution.Key, bool) {
	if o == nil {
		return attribution.Key{}, false
	}
	o.name()
	k, ok := o.byUnit[unit]
	return k, ok
}
