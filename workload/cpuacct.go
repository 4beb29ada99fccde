package workload

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/inferensys/aiwatt/attribution"
	"github.com/inferensys/aiwatt/internal/cpustat"
)

// CgroupIdleScans is how many scans a workload cgroup without any visible
// process is still read (its counter keeps the time of processes that lived
// between scans) before it is forgotten; it is forgotten at once when its
// directory is gone.
const CgroupIdleScans = 60

// CPUAccount turns process scans into the CPU time of each workload over
// one interval, counting processes that lived between two scans:
//
//   - A workload cgroup (a container, a pod, a Slurm job or step, a systemd
//     unit: a cgroup path that names one) whose processes all belong to one
//     workload is charged by the cgroup's own CPU counter, cgroup v2
//     cpu.stat usage_usec or v1 cpuacct.usage, which counts every process
//     that ever ran in it. A cgroup is read as long as it exists and for at
//     most CgroupIdleScans scans without a visible process, so a container
//     whose processes all exited between two scans is charged exactly.
//   - Every other process (rule-named process trees, processes of cgroups
//     shared by several workloads, or where the counter cannot be read)
//     counts its own CPU time plus the time of the children it reaped that
//     no scan saw ([Process.ReapedCPUSeconds]).
//
// It also reads the node's CPU time from procfs, for the busy share (steal
// excluded, see [NodeCPU]) and the CPU time that no process or cgroup
// accounts for. It is not safe for concurrent use.
type CPUAccount struct {
	procRoot   string
	cgroupRoot string
	hz         int
	layout     int // index in cgroupLayouts that worked; -1 unknown
	gen        uint32
	cgroups    map[string]*cgroupCPU
	// paths indexes aggs, this scan's workload cgroups in order of first
	// appearance; procAgg is each process's index in aggs, -1 for none.
	paths   map[string]int32
	byAddr  map[pathAddr]int32 // paths by the address of their bytes: see aggOf
	aggs    []pathAgg
	procAgg []int32
	idx     map[attribution.Key]int
	// noCounter remembers, per cgroup path, the scan at which no counter
	// could be read, so it is tried again only CgroupIdleScans later; and
	// rootMissing the scan at which the cgroup root was not there.
	noCounter   map[string]uint32
	rootMissing uint32
	abs         map[string]string // namespace-relative path → path under the root

	prevNode NodeCPU
	hasNode  bool
	shares   []attribution.Share // the array of every CPUTick.Shares
	buf      []byte              // a counter file's content, reused by every read
	found    counterFile         // the counter file the last usage lookup found
}

// cgroupCPU is the remembered state of one workload cgroup.
type cgroupCPU struct {
	key   attribution.Key
	usage uint64 // nanoseconds at the last read
	gen   uint32 // the last scan that saw one of its processes
	idle  int    // scans without a visible process
	// file is the counter's path, NUL-terminated, found at the first read
	// and read again directly; v2 says whether it is a cpu.stat.
	file []byte
	v2   bool
}

// pathAddr is a string's address and length: two strings with the same
// pathAddr are equal.
type pathAddr struct {
	p *byte
	n int
}

// aggOf returns the index in aggs of path, and whether it has one. The
// processes of one cgroup share one path string (the scanner reads each
// cgroup's path once), so the path is looked up by its address, hashing 16
// bytes instead of the path; a path not seen at this address yet is looked
// up by its bytes once.
func (a *CPUAccount) aggOf(path string) (int32, bool) {
	addr := pathAddr{unsafe.StringData(path), len(path)}
	if j, ok := a.byAddr[addr]; ok {
		return j, true
	}
	j, ok := a.paths[path]
	if ok {
		a.byAddr[addr] = j
	}
	return j, ok
}

// pathAgg is one scan's view of one workload cgroup.
type pathAgg struct {
	path    string
	key     attribution.Key
	mixed   bool    // processes of more than one workload (or of none)
	seconds float64 // their own and reaped-children CPU time this interval
	backed  bool    // charged by the cgroup's counter
}

// CPUTick is the CPU account of one interval.
type CPUTick struct {
	// Shares is the CPU seconds of each workload, the zero Key for
	// processes in no workload, in order of first appearance. It is valid
	// until the next [CPUAccount.Tick], which reuses its array.
	Shares []attribution.Share
	// Seconds is Σ Shares: all CPU time placed this interval.
	Seconds float64
	// CgroupSeconds is the part of Seconds read from cgroup counters.
	CgroupSeconds float64
	// ReapedSeconds is the part of Seconds from reaped children no scan saw.
	ReapedSeconds float64
	// Busy is the node's busy share over the interval (steal excluded);
	// -1 when unknown (the first tick, or procfs stat unreadable).
	Busy float64
	// NodeBusySeconds is the node's busy CPU time over the interval (all
	// CPUs, steal excluded); 0 when unknown.
	NodeBusySeconds float64
	// UnaccountedSeconds is NodeBusySeconds less Seconds, at least 0: busy
	// CPU time that no process or cgroup seen accounts for (interrupts,
	// processes that lived and were reaped outside every scanned tree).
	UnaccountedSeconds float64
}

// NewCPUAccount returns an account over the procfs at procRoot and the
// cgroup file system mounted at cgroupRoot (normally /sys/fs/cgroup; empty
// means none: every process counts by its own time). clockTicks is USER_HZ
// ([Scanner.ClockTicks]).
func NewCPUAccount(procRoot, cgroupRoot string, clockTicks int) *CPUAccount {
	if clockTicks <= 0 {
		clockTicks = DefaultClockTicks
	}
	return &CPUAccount{
		procRoot: procRoot, cgroupRoot: cgroupRoot, layout: -1, hz: clockTicks,
		cgroups: map[string]*cgroupCPU{}, paths: map[string]int32{}, byAddr: map[pathAddr]int32{}, idx: map[attribution.Key]int{}, noCounter: map[string]uint32{},
		abs: map[string]string{},
	}
}

// CgroupRoot is the cgroup file system under a sysfs root (--path.sysfs):
// <sysfs>/fs/cgroup, where the v2 hierarchy or the v1 controllers are
// mounted.
func CgroupRoot(sysfsRoot string) string {
	if sysfsRoot == "" {
		sysfsRoot = "/sys"
	}
	return filepath.Join(sysfsRoot, "fs", "cgroup")
}

// Cgroups returns how many workload cgroups the account remembers.
func (a *CPUAccount) Cgroups() int { return len(a.cgroups) }

// workloadCgroup reports whether a cgroup path names a workload whose
// counter can stand for it. A Slurm job read from the environment says
// nothing of the cgroup. A path seen from inside a private cgroup namespace
// ("/../../kubepods-…-pod<uid>.slice/…", relative to the reader's own
// cgroup) qualifies only for a container or pod, whose path under the
// cgroup root [CPUAccount] can find again (see hostPath).
func workloadCgroup(info *ProcessInfo) bool {
	c := &info.Cgroup
	if c.Path == "" || c.Path == "/" {
		return false
	}
	if strings.HasPrefix(c.Path, "/..") {
		return c.ContainerID != "" || c.PodUID != ""
	}
	return c.ContainerID != "" || c.PodUID != "" || (c.SlurmJob != "" && !info.SlurmFromEnviron) || c.SystemdUnit != ""
}

// hostPaths returns where a cgroup path may be under the cgroup root. A
// path relative to a private cgroup namespace ("/../../<rest>") climbs out
// of the agent's own container to a common ancestor that the path does not
// name; for Kubernetes that ancestor follows from the kubelet's layout,
// read from the first segment of <rest>: "kubepods-<qos>-pod<uid>.slice"
// lies in /kubepods.slice/kubepods-<qos>.slice, "kubepods-pod<uid>.slice"
// and "kubepods-<qos>.slice" in /kubepods.slice (systemd driver);
// "pod<uid>" in /kubepods/burstable, /kubepods/besteffort or /kubepods,
// "burstable" and "besteffort" in /kubepods (cgroupfs driver). Pod UIDs and
// container IDs are unique, so the candidate whose counter exists is the
// one. Any other path is taken as it is.
func hostPaths(path string) []string {
	if !strings.HasPrefix(path, "/..") {
		return []string{path}
	}
	rest := path
	for strings.HasPrefix(rest, "/../") || rest == "/.." {
		rest = rest[3:]
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	switch {
	case strings.HasPrefix(first, "kubepods-") && strings.Contains(first, "-pod"):
		if qos, _, ok := strings.Cut(strings.TrimPrefix(first, "kubepods-"), "-pod"); ok && qos != "" && !strings.HasPrefix(first, "kubepods-pod") {
			return []string{"/kubepods.slice/kubepods-" + qos + ".slice" + rest}
		}
		return []string{"/kubepods.slice" + rest}
	case strings.HasPrefix(first, "kubepods-") && strings.HasSuffix(first, ".slice"):
		return []string{"/kubepods.slice" + rest}
	case strings.HasPrefix(first, "pod"):
		return []string{"/kubepods/burstable" + rest, "/kubepods/besteffort" + rest, "/kubepods" + rest}
	case first == "burstable" || first == "besteffort":
		return []string{"/kubepods" + rest}
	}
	return nil
}

// Tick accounts one scan. keys[i] is the workload of procs[i] (zero for
// none), as from [Resolver.Resolve] and ancestor inheritance. node is the
// node's CPU time read this tick by the caller (the agent's CPU model reads
// procfs stat every tick anyway, so the tick reads it once); nil means the
// caller has none and Tick reads procfs stat itself.
func (a *CPUAccount) Tick(procs []Process, keys []attribution.Key, node *NodeCPU) CPUTick {
	a.gen++
	t := CPUTick{Shares: a.shares[:0]}
	clear(a.paths)
	clear(a.byAddr)
	clear(a.idx)
	a.aggs = a.aggs[:0]
	a.procAgg = slices.Grow(a.procAgg[:0], len(procs))[:len(procs)]
	for i := range a.procAgg {
		a.procAgg[i] = -1
	}
	if a.cgroupsReadable() {
		for i := range procs {
			c := &procs[i].Info.Cgroup
			if !workloadCgroup(procs[i].Info) {
				continue
			}
			j, ok := a.aggOf(c.Path)
			if !ok {
				j = int32(len(a.aggs))
				a.paths[c.Path] = j
				a.byAddr[pathAddr{unsafe.StringData(c.Path), len(c.Path)}] = j
				a.aggs = append(a.aggs, pathAgg{path: c.Path, key: keys[i], mixed: keys[i].IsZero()})
			} else if a.aggs[j].key != keys[i] {
				a.aggs[j].mixed = true
			}
			a.aggs[j].seconds += procs[i].DeltaCPUSeconds + procs[i].ReapedCPUSeconds
			a.procAgg[i] = j
		}
	}
	for j := range a.aggs {
		g := &a.aggs[j]
		path := g.path
		st := a.cgroups[path]
		if g.mixed {
			delete(a.cgroups, path)
			continue
		}
		if failed, ok := a.noCounter[path]; ok && a.gen-failed < CgroupIdleScans {
			continue
		}
		usage, err := a.usage(path, st)
		if err != nil {
			delete(a.cgroups, path)
			a.noCounter[path] = a.gen
			continue
		}
		delete(a.noCounter, path)
		g.backed = true
		secs := g.seconds // first sight, or a recreated cgroup: what the processes say
		if st != nil && usage >= st.usage {
			secs = float64(usage-st.usage) / 1e9
		}
		if st == nil {
			st = &cgroupCPU{}
			a.cgroups[path] = st
		}
		if st.file == nil {
			st.file, st.v2 = a.found.file, a.found.v2
		}
		st.key, st.usage, st.gen, st.idle = g.key, usage, a.gen, 0
		a.add(&t, g.key, secs)
		t.CgroupSeconds += secs
	}
	for path, failed := range a.noCounter {
		if a.gen-failed >= CgroupIdleScans {
			delete(a.noCounter, path) // bounded: tried again, or gone
		}
	}
	for path, st := range a.cgroups {
		if st.gen == a.gen {
			continue
		}
		st.idle++
		usage, err := a.usage(path, st)
		if err != nil || st.idle > CgroupIdleScans {
			delete(a.cgroups, path)
			continue
		}
		if usage >= st.usage {
			secs := float64(usage-st.usage) / 1e9
			a.add(&t, st.key, secs)
			t.CgroupSeconds += secs
		}
		st.usage = usage
	}
	for i := range procs {
		if j := a.procAgg[i]; j >= 0 && a.aggs[j].backed {
			continue
		}
		a.add(&t, keys[i], procs[i].DeltaCPUSeconds+procs[i].ReapedCPUSeconds)
		t.ReapedSeconds += procs[i].ReapedCPUSeconds
	}
	t.Busy = -1
	if node == nil {
		if n, err := ReadNodeCPU(a.procRoot, a.hz); err == nil {
			node = &n
		}
	}
	if node != nil {
		if a.hasNode {
			t.Busy = BusyShare(a.prevNode, *node)
			t.NodeBusySeconds = max(node.Busy-a.prevNode.Busy, 0)
			t.UnaccountedSeconds = max(t.NodeBusySeconds-t.Seconds, 0)
		}
		a.prevNode, a.hasNode = *node, true
	}
	a.shares = t.Shares
	return t
}

func (a *CPUAccount) add(t *CPUTick, k attribution.Key, secs float64) {
	j, ok := a.idx[k]
	if !ok {
		j = len(t.Shares)
		a.idx[k] = j
		t.Shares = append(t.Shares, attribution.Share{Key: k})
	}
	t.Shares[j].Weight += secs
	t.Seconds += secs
}

// cgroupLayouts are where a cgroup's CPU counter lives under the cgroup
// root: the v2 unified hierarchy, then the v1 cpuacct controller under its
// usual mount names.
var cgroupLayouts = []struct {
	dir, file string
	v2        bool
}{
	{"", "cpu.stat", true},
	{"cpuacct", "cpuacct.usage", false},
	{"cpu,cpuacct", "cpuacct.usage", false},
	{"cpuacct,cpu", "cpuacct.usage", false},
}

// errNoCounter means no layout holds the cgroup's counter.
var errNoCounter = errors.New("no cgroup CPU counter")

// cgroupsReadable reports whether the cgroup root exists, checking again
// every CgroupIdleScans scans after it was found missing.
func (a *CPUAccount) cgroupsReadable() bool {
	if a.cgroupRoot == "" {
		return false
	}
	if a.rootMissing != 0 && a.gen-a.rootMissing < CgroupIdleScans {
		return false
	}
	if _, err := os.Stat(a.cgroupRoot); err != nil {
		a.rootMissing = a.gen
		return false
	}
	a.rootMissing = 0
	return true
}

// usage returns a cgroup's CPU time in nanoseconds. A cgroup already read
// (st with its counter file) is read directly; otherwise its counter is
// looked for in every candidate path and layout, and the file that answered
// is left in a.found for the caller to keep.
func (a *CPUAccount) usage(path string, st *cgroupCPU) (uint64, error) {
	if a.buf == nil {
		a.buf = make([]byte, 1<<10)
	}
	if st != nil && st.file != nil {
		return readCounter(st.file, st.v2, a.buf)
	}
	a.found = counterFile{}
	try := func(abs string, layout int) (uint64, error) {
		file := counterFileName(a.cgroupRoot, abs, layout)
		v, err := readCounter(file, cgroupLayouts[layout].v2, a.buf)
		if err == nil {
			a.found = counterFile{file: file, v2: cgroupLayouts[layout].v2}
		}
		return v, err
	}
	if abs, ok := a.abs[path]; ok {
		return try(abs, a.layout)
	}
	for _, abs := range hostPaths(path) {
		for i := range cgroupLayouts {
			if a.layout >= 0 && i != a.layout {
				continue
			}
			if v, err := try(abs, i); err == nil {
				a.layout = i
				if abs != path {
					if len(a.abs) >= maxResolved {
						clear(a.abs)
					}
					a.abs[path] = abs
				}
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("cgroup %s under %s: %w", path, a.cgroupRoot, errNoCounter)
}

// counterFile is a cgroup's CPU counter file, NUL-terminated, and whether
// it is a v2 cpu.stat.
type counterFile struct {
	file []byte
	v2   bool
}

// maxResolved bounds the cache of namespace-relative paths found again.
const maxResolved = 10000

// counterFileName is where one cgroup's counter is in one layout, as a
// NUL-terminated path for readAt.
func counterFileName(root, path string, layout int) []byte {
	l := cgroupLayouts[layout]
	return append([]byte(filepath.Join(root, l.dir, filepath.Clean("/"+path), l.file)), 0)
}

// atFDCWD is Linux's AT_FDCWD: readAt then takes file as an absolute path.
const atFDCWD = -100

// readCounter reads a cgroup's CPU counter file (from counterFileName) with
// one open, one read (the counter is on the first line; cgroupfs returns
// the file in one read) and one close, into buf, without allocating.
func readCounter(file []byte, v2 bool, buf []byte) (uint64, error) {
	b, err := readAt(atFDCWD, file, buf, false)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", file[:len(file)-1], err)
	}
	if !v2 {
		line, _, _ := bytes.Cut(b, []byte{'\n'})
		v, ok := parseUint(bytes.TrimSpace(line))
		if !ok {
			return 0, fmt.Errorf("parse %s: %w", file[:len(file)-1], errNoCounter)
		}
		return v, nil
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if v, ok := bytes.CutPrefix(line, []byte("usage_usec ")); ok {
			n, ok := parseUint(bytes.TrimSpace(v))
			if !ok {
				break
			}
			return n * 1000, nil
		}
	}
	return 0, fmt.Errorf("parse %s: no usage_usec: %w", file[:len(file)-1], errNoCounter)
}

// NodeCPU is the node's CPU time since boot from the aggregate "cpu" line
// of procfs stat, in seconds over all CPUs. Steal (time the hypervisor gave
// to another guest) is in neither: the guest's CPUs were not running
// anything of this node, so it is neither busy nor idle here. Guest time is
// already in user and nice.
type NodeCPU struct {
	// Busy is user + nice + system + irq + softirq.
	Busy float64
	// Total is Busy + idle + iowait.
	Total float64
}

// NodeCPUFromTicks is the node's CPU time from busy and total times in
// USER_HZ ticks as [cpustat.BusyTotal] defines them (clockTicks; 0 means
// DefaultClockTicks).
func NodeCPUFromTicks(busy, total float64, clockTicks int) NodeCPU {
	if clockTicks <= 0 {
		clockTicks = DefaultClockTicks
	}
	hz := float64(clockTicks)
	return NodeCPU{Busy: busy / hz, Total: total / hz}
}

// ErrNoNodeCPU means procfs stat has no aggregate cpu line.
var ErrNoNodeCPU = errors.New("workload: no cpu line in procfs stat")

// ReadNodeCPU reads <procRoot>/stat, whose times are in USER_HZ
// (clockTicks; 0 means DefaultClockTicks).
func ReadNodeCPU(procRoot string, clockTicks int) (NodeCPU, error) {
	if clockTicks <= 0 {
		clockTicks = DefaultClockTicks
	}
	name := filepath.Join(procRoot, "stat")
	f, err := os.Open(name)
	if err != nil {
		return NodeCPU{}, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	var buf [512]byte
	n, err := f.Read(buf[:])
	if err != nil && n == 0 {
		return NodeCPU{}, fmt.Errorf("read %s: %w", name, err)
	}
	line, _, _ := bytes.Cut(buf[:n], []byte{'\n'})
	c, err := parseNodeCPU(line, float64(clockTicks))
	if err != nil {
		return NodeCPU{}, fmt.Errorf("parse %s: %w", name, err)
	}
	return c, nil
}

// parseNodeCPU parses "cpu  user nice system idle iowait irq softirq steal
// guest guest_nice" (fields after idle are optional on old kernels).
func parseNodeCPU(line []byte, hz float64) (NodeCPU, error) {
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return NodeCPU{}, ErrNoNodeCPU
	}
	var v [7]float64 // user nice system idle iowait irq softirq
	for i := range v {
		if i+1 >= len(f) {
			break
		}
		n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
		if err != nil {
			return NodeCPU{}, fmt.Errorf("field %d: %w", i+2, err)
		}
		v[i] = float64(n) / hz
	}
	busy, total := cpustat.BusyTotal(v[0], v[1], v[2], v[3], v[4], v[5], v[6])
	return NodeCPU{Busy: busy, Total: total}, nil
}

// BusyShare is the busy share between two readings, clamped to [0, 1]; -1
// when no time passed (or the counters went back).
func BusyShare(prev, cur NodeCPU) float64 {
	dt := cur.Total - prev.Total
	if !(dt > 0) {
		return -1
	}
	return min(max((cur.Busy-prev.Busy)/dt, 0), 1)
}
