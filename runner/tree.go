package runner

import (
	"github.com/inferensys/aiwatt/workload"
)

// procKey names one process across PID reuse.
type procKey struct {
	pid   int
	start uint64 // start time after boot, clock ticks
}

// member is what the tree keeps of one process of the run between scans.
type member struct {
	ppid int
	// self and children are utime+stime and cutime+cstime at the last read, in
	// seconds: the process's own CPU time and that of the descendants it has
	// waited for.
	self, children float64
	// owed is CPU time of vanished descendants already counted through their
	// own reads, which this process's cutime+cstime will repeat once it has
	// reaped them; owedTicks is how many scans it has been outstanding.
	owed      float64
	owedTicks int
}

// owedScans is how many scans owed time waits for the reaper's cutime to
// grow before it is forgiven (the descendant was auto-reaped, or adopted
// elsewhere, and will never show up in its parent's cutime).
const owedScans = 2

// tree tracks the processes of one run: the root (the command) and its
// descendants by PPID, and keeps a process in the run once seen even when
// its parent dies and it is reparented (sticky membership).
type tree struct {
	root int

	rootStart uint64
	rootSeen  bool
	members   map[procKey]*member
	byPID     map[int]procKey // current members by PID

	// rootPending is the CPU time, already counted, of vanished members whose
	// reaping chain ends at the root's reaper (the caller, through wait4):
	// the root's final rusage repeats it.
	rootPending  float64
	rootFinal    float64
	rootFinalSet bool
	rootVanished bool
	rootPPID     int // the root's parent, which reaps it

	seen    int     // distinct processes that were ever part of the run
	maxLive int     // most processes alive at one scan
	cpu     float64 // CPU seconds credited to the run

	scan map[int]*workload.Process
	kids map[int][]int
}

func newTree(root int) *tree {
	return &tree{
		root:    root,
		members: make(map[procKey]*member),
		byPID:   make(map[int]procKey),
		scan:    make(map[int]*workload.Process),
		kids:    make(map[int][]int),
	}
}

// treeTick is the tree's activity over one scan interval.
type treeTick struct {
	// cpu is the CPU seconds the run's processes used since the previous
	// scan, including descendants that started and ended in between (through
	// their reaper's cutime+cstime).
	cpu float64
	// other is the CPU seconds of every other process in the scan.
	other float64
	// live holds the PIDs of the run's processes alive at this scan.
	live map[int]bool
}

// rootExited records the root's final CPU time (its own and that of every
// descendant it waited for), from the rusage of wait4. The next update
// credits what the scans had not seen yet.
func (t *tree) rootExited(seconds float64) {
	t.rootFinal, t.rootFinalSet = seconds, true
}

// update folds one scan into the tree and returns the interval's activity.
func (t *tree) update(res *workload.ScanResult) treeTick {
	clear(t.scan)
	clear(t.kids)
	for i := range res.Processes {
		p := &res.Processes[i]
		t.scan[p.PID] = p
		t.kids[p.PPID] = append(t.kids[p.PPID], p.PID)
	}

	// Members alive at this scan, parents before children (breadth-first
	// from the seeds), so a parent's cutime is read before its children
	// vanish from under it.
	var order []procKey
	visited := make(map[int]bool, len(t.members)+1)
	var queue []int
	if p := t.scan[t.root]; p != nil && (!t.rootSeen || p.StartTicks == t.rootStart) {
		t.rootSeen, t.rootStart = true, p.StartTicks
		queue = append(queue, t.root)
	}
	for k := range t.members {
		if p := t.scan[k.pid]; p != nil && p.StartTicks == k.start {
			queue = append(queue, k.pid)
		}
	}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if visited[pid] {
			continue
		}
		visited[pid] = true
		order = append(order, procKey{pid: pid, start: t.scan[pid].StartTicks})
		queue = append(queue, t.kids[pid]...)
	}

	tick := treeTick{live: make(map[int]bool, len(order))}
	if p := t.scan[t.root]; p != nil && t.rootSeen && p.StartTicks == t.rootStart {
		t.rootPPID = p.PPID
	}
	for i := range res.Processes {
		p := &res.Processes[i]
		if visited[p.PID] {
			continue
		}
		tick.other += p.DeltaCPUSeconds
		// Children reaped by other processes are their CPU time too; the
		// root's reaper (the caller) is credited through rootExited instead.
		if p.PID != t.rootPPID {
			tick.other += p.ReapedCPUSeconds
		}
	}

	// Every live member's own and reaped-children CPU time, as the scan read
	// them.
	type reading struct {
		key            procKey
		ppid           int
		self, children float64
		alive          bool
	}
	reads := make([]reading, 0, len(order))
	for _, k := range order {
		p := t.scan[k.pid]
		reads = append(reads, reading{key: k, alive: true, ppid: p.PPID, self: p.CPUSeconds, children: p.ChildCPUSeconds})
	}
	alive := make(map[procKey]bool, len(reads))
	for _, r := range reads {
		if r.alive {
			alive[r.key] = true
		}
	}

	// Vanished members: their reaper's cutime will repeat what was counted.
	for k, m := range t.members {
		if alive[k] {
			continue
		}
		// Its reaper's cutime will repeat its last reading and whatever of
		// its own reaped children it still owed.
		counted := m.self + m.children + m.owed
		if k.pid == t.root && k.start == t.rootStart {
			t.rootVanished = true
			t.rootPending += counted
		} else if a, ok := t.liveAncestor(m.ppid, alive); ok {
			t.members[a].owed += counted
		} else if t.chainReachesRoot(m.ppid, alive) {
			t.rootPending += counted
		}
		// Otherwise it was orphaned and reaped outside the run: what it used
		// after its last read is lost, as with any procfs sampling.
	}
	for k := range t.members {
		if !alive[k] {
			delete(t.members, k)
			if t.byPID[k.pid] == k {
				delete(t.byPID, k.pid)
			}
		}
	}

	for _, r := range reads {
		if !r.alive {
			continue
		}
		tick.live[r.key.pid] = true
		m := t.members[r.key]
		if m == nil {
			// New to the run, so it started after the command did: all of its
			// CPU time, and its reaped children's, belongs to this interval.
			t.members[r.key] = &member{ppid: r.ppid, self: r.self, children: r.children}
			t.byPID[r.key.pid] = r.key
			t.seen++
			tick.cpu += r.self + r.children
			continue
		}
		dSelf := max(r.self-m.self, 0)
		dChildren := max(r.children-m.children, 0)
		if m.owed > 0 {
			used := min(m.owed, dChildren)
			dChildren -= used
			m.owed -= used
			m.owedTicks++
			if m.owed <= 0 || m.owedTicks > owedScans {
				m.owed, m.owedTicks = 0, 0
			}
		}
		tick.cpu += dSelf + dChildren
		m.ppid, m.self, m.children = r.ppid, r.self, r.children
	}

	if t.rootVanished && t.rootFinalSet {
		tick.cpu += max(t.rootFinal-t.rootPending, 0)
		t.rootPending, t.rootFinalSet = 0, false
	}
	t.maxLive = max(t.maxLive, len(tick.live))
	t.cpu += tick.cpu
	return tick
}

// liveAncestor returns the nearest member alive at this scan on the parent
// chain starting at pid, through members that vanished in this interval
// (whose reaping moved their time up to their own parent).
func (t *tree) liveAncestor(pid int, alive map[procKey]bool) (procKey, bool) {
	for range 64 {
		k, ok := t.byPID[pid]
		if !ok {
			return procKey{}, false
		}
		if alive[k] {
			return k, true
		}
		if pid == t.root && k.start == t.rootStart {
			return procKey{}, false
		}
		pid = t.members[k].ppid
	}
	return procKey{}, false
}

// chainReachesRoot reports whether the parent chain from pid runs through
// the vanished root, whose reaper is the caller.
func (t *tree) chainReachesRoot(pid int, alive map[procKey]bool) bool {
	for range 64 {
		k, ok := t.byPID[pid]
		if !ok || alive[k] {
			return false
		}
		if pid == t.root && k.start == t.rootStart {
			return true
		}
		pid = t.members[k].ppid
	}
	return false
}
