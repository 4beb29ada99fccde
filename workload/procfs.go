package workload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reasons a process is skipped, the keys of ScanResult.Skipped.
const (
	// ReasonPermissionDenied: a file of the process could not be read
	// (EACCES, EPERM), as in hardened containers or with hidepid.
	ReasonPermissionDenied = "permission_denied"
	// ReasonVanished: the process exited between listing and reading
	// (ENOENT, ESRCH).
	ReasonVanished = "vanished"
	// ReasonReadError: any other read error.
	ReasonReadError = "read_error"
	// ReasonParseError: /proc/PID/stat could not be parsed.
	ReasonParseError = "parse_error"
)

// DefaultClockTicks is USER_HZ on every Linux architecture aiwatt runs on,
// used when the auxiliary vector does not say (AT_CLKTCK).
const DefaultClockTicks = 100

// MaxCmdline is how many bytes of a command line are kept; longer command
// lines (Java class paths) are cut.
const MaxCmdline = 16 << 10

// ErrNoProcfs means the procfs root does not exist: there are no processes
// to scan, which is not a failure of one process. Test it with errors.Is.
var ErrNoProcfs = errors.New("workload: procfs root not found")

// Process is one process as seen by one scan.
type Process struct {
	// PID is the process ID (the thread group leader's).
	PID int
	// PPID is the parent's process ID (field 4 of /proc/PID/stat) at this
	// scan; 0 for the kernel's own tasks. An orphan's parent is whoever
	// adopted it (init or the nearest subreaper).
	PPID int
	// StartTicks is the process start time after boot, in clock ticks
	// (field 22 of /proc/PID/stat).
	StartTicks uint64
	// CPUSeconds is the process's user + system CPU time since it started.
	CPUSeconds float64
	// DeltaCPUSeconds is the CPU time since the previous scan. On the first
	// scan it is 0 for every process. A process seen for the first time
	// later gets its whole CPU time if it started after the previous scan
	// (all of it fell in this interval), and 0 otherwise (it was older but
	// missed, for example unreadable: its past cannot be placed).
	DeltaCPUSeconds float64
	// ChildCPUSeconds is the CPU time of the descendants this process has
	// waited for (cutime + cstime of /proc/PID/stat), since it started.
	ChildCPUSeconds float64
	// ReapedCPUSeconds is the CPU time of descendants reaped by this process
	// since the previous scan that no scan saw while they lived: the growth
	// of ChildCPUSeconds less what earlier scans already counted of the
	// children that vanished (see the package documentation). It is how a
	// process that lived between two scans is counted.
	ReapedCPUSeconds float64
	// Info is what was read once for this process; never nil.
	Info *ProcessInfo
}

// ProcessInfo is what a Scanner reads once per process (per PID and start
// time), and again only when the process's comm changes (an exec). It is
// immutable and shared by the scans that see the process.
type ProcessInfo struct {
	// Comm is the command name from /proc/PID/stat.
	Comm string
	// Cmdline is /proc/PID/cmdline with its NUL separators turned into
	// spaces, at most MaxCmdline bytes; empty for kernel threads and zombies.
	Cmdline string
	// UID is the effective user ID from /proc/PID/status; -1 when unknown.
	UID int
	// Cgroup is what /proc/PID/cgroup says. When the path names no Slurm
	// job and no container, SlurmJob and SlurmStep come from the process's
	// environment instead (SLURM_JOB_ID, SLURM_STEP_ID), for nodes without
	// Slurm's cgroup plugins; SlurmFromEnviron says so.
	Cgroup Cgroup
	// SlurmUser is the Slurm job's user (SLURM_JOB_USER) when the job came
	// from the environment.
	SlurmUser string
	// SlurmFromEnviron is set when the Slurm job was read from
	// /proc/PID/environ.
	SlurmFromEnviron bool
}

// ScanResult is the outcome of one scan.
type ScanResult struct {
	// Processes holds every process that could be read, sorted by PID.
	Processes []Process
	// Skipped counts the processes skipped by this scan, by reason (the
	// Reason* constants); nil when none was.
	Skipped map[string]uint64
	// New is the number of processes read for the first time by this scan.
	New int
	// Execs is the number of processes whose command line was read again by
	// this scan because they exec'd.
	Execs int
	// Uptime is the seconds since boot when the scan started, from
	// <root>/uptime; 0 when unknown.
	Uptime float64
	// Err is the first error that made this scan skip a process, with its
	// path, for a log line; nil when none was skipped.
	Err error
}

// ScannerOptions configure a Scanner.
type ScannerOptions struct {
	// ClockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat.
	// 0 reads it from the auxiliary vector (AT_CLKTCK), or uses
	// DefaultClockTicks.
	ClockTicks int
	// CmdlineRecheckScans bounds how late an exec under the same comm is
	// seen where /proc/PID/stat hides the code and stack addresses: every
	// process's command line is re-read once per this many scans (spread
	// over the scans). 0 means DefaultCmdlineRecheckScans; negative never.
	CmdlineRecheckScans int
}

// DefaultCmdlineRecheckScans is ScannerOptions.CmdlineRecheckScans when 0:
// one minute at the default 5 s interval.
const DefaultCmdlineRecheckScans = 12

// Scanner lists the processes under a procfs root and keeps, per process,
// what it read once. It is not safe for concurrent use: one sampling loop
// calls Scan.
type Scanner struct {
	root  string
	hz    float64
	gen   uint32
	first bool // no scan yet

	prevUptime float64 // seconds since boot at the previous scan; 0 unknown
	cache      map[int]*procEntry

	dirBuf  []byte // getdents buffer
	statBuf []byte
	bigBuf  []byte // cgroup, cmdline, status
	pathBuf []byte // "<pid>/<file>\x00", relative to the root fd
	pids    []int
	pidTmp  []int // sortPIDs' scratch
	// spare is the Processes array of a result handed back by Recycle,
	// which the next Scan fills.
	spare atomic.Pointer[[]Process]
	// cgroups holds each cgroup read, by path, so the processes of one
	// cgroup share its strings: less memory, and a path compared by its
	// address ([CPUAccount] indexes paths so) is found at once.
	cgroups map[string]Cgroup
	ents    []*procEntry // the cache entry of each process of the current scan
	entPIDs []int        // their PIDs
	// prevEnts and prevPIDs are ents and entPIDs of the previous scan, in
	// PID order: the current scan, in PID order too, finds a process's entry
	// there by walking both lists side by side (prevAt), without a map
	// look-up.
	prevEnts []*procEntry
	prevPIDs []int
	prevAt   int
	seen     int         // cache entries the current scan has seen
	dchild   []uint64    // growth of cutime+cstime per process of the current scan
	gone     []procEntry // entries of PIDs reused in the current scan
	recheck  int         // scans between command-line rechecks; <= 0 never

	// readAt reads the file at path (NUL-terminated, relative to dirfd) into
	// buf. untilEOF reads past a newline. Tests replace it.
	readAt func(dirfd int, path []byte, buf []byte, untilEOF bool) ([]byte, error)
	// afterList, when set, runs between listing the root and reading the
	// processes. Tests use it to make a process exit mid-scan.
	afterList func(pids []int)
}

// procEntry is the cached state of one process.
type procEntry struct {
	start    uint64
	ticks    uint64 // utime + stime at the last scan
	children uint64 // cutime + cstime at the last scan
	ppid     int
	// startCode and startStack are fields 26 and 28 of stat at the last
	// scan (0 when hidden): an exec moves them.
	startCode, startStack uint64
	info                  *ProcessInfo
	gen                   uint32
	// comm is info.Comm when it fits (commLen >= 0), compared without
	// following info; commLen is -1 when it does not.
	comm    [16]byte
	commLen int8
	// owed is the CPU time, in ticks, of vanished descendants that scans
	// already counted and that this process's cutime+cstime will repeat once
	// it has reaped them; owedScans is how many scans it has been waiting.
	owed      uint64
	owedScans int
	// foreign is set when, since the previous scan, this process reaped a
	// process of another cgroup (a container's first process reaped by its
	// runtime shim, a service's main process by systemd).
	foreign bool
}

// setComm keeps comm in the entry when it fits.
func (e *procEntry) setComm(comm string) {
	if len(comm) > len(e.comm) {
		e.commLen = -1
		return
	}
	e.commLen = int8(copy(e.comm[:], comm))
}

// sameComm reports whether comm is the entry's.
func (e *procEntry) sameComm(comm []byte) bool {
	if e.commLen >= 0 {
		return string(e.comm[:e.commLen]) == string(comm)
	}
	return e.info.Comm == string(comm) // the compare does not allocate
}

// owedScans is how many scans owed time waits for the reaper's cutime to
// grow before it is forgiven (the descendant was reaped elsewhere, or its
// parent ignores SIGCHLD and it was auto-reaped).
const owedScans = 2

// NewScanner returns a scanner of the procfs mounted at root (normally
// /proc; /host/proc in a container). Nothing is read until Scan.
func NewScanner(root string, opts ScannerOptions) *Scanner {
	hz := opts.ClockTicks
	if hz <= 0 {
		hz = clockTicks()
	}
	recheck := opts.CmdlineRecheckScans
	if recheck == 0 {
		recheck = DefaultCmdlineRecheckScans
	}
	return &Scanner{
		recheck: recheck,
		root:    root,
		hz:      float64(hz),
		first:   true,
		cache:   make(map[int]*procEntry),
		dirBuf:  make([]byte, 32<<10),
		statBuf: make([]byte, 4<<10),
		bigBuf:  make([]byte, MaxCmdline),
		pathBuf: make([]byte, 0, 64),
		readAt:  readAt,
	}
}

// clockTicks returns AT_CLKTCK from the auxiliary vector, or DefaultClockTicks.
func clockTicks() int {
	const atClktck = 17
	auxv, err := unix.Auxv()
	if err == nil {
		for _, kv := range auxv {
			if kv[0] == atClktck && kv[1] > 0 && kv[1] < 100000 {
				return int(kv[1])
			}
		}
	}
	return DefaultClockTicks
}

// ClockTicks returns the USER_HZ the scanner converts CPU times with.
func (s *Scanner) ClockTicks() int { return int(s.hz) }

// Scan reads every process once. Processes that cannot be read are skipped
// and counted by reason; the rest is returned. Its error is non-nil only
// when the root cannot be listed (wrapping ErrNoProcfs when it does not
// exist).
func (s *Scanner) Scan() (*ScanResult, error) {
	rootfd, err := openDir(s.root)
	if err != nil {
		err = fmt.Errorf("open %s: %w", s.root, err)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNoProcfs, err)
		}
		return nil, err
	}
	defer syscall.Close(rootfd)
	// Uptime first: a process that starts after this read but before the
	// listing is listed now, so the next scan cannot count it twice.
	uptime := s.uptime(rootfd)
	if err := s.list(rootfd); err != nil {
		return nil, fmt.Errorf("list %s: %w", s.root, err)
	}
	// procfs lists PIDs in ascending order, so this is normally a check;
	// reading in PID order returns the processes sorted without sorting them.
	s.sortPIDs()
	if s.afterList != nil {
		s.afterList(s.pids)
	}

	s.gen++
	res := &ScanResult{Uptime: uptime}
	if p := s.spare.Swap(nil); p != nil && cap(*p) >= len(s.pids) {
		res.Processes = (*p)[:0]
	} else {
		res.Processes = make([]Process, 0, len(s.pids))
	}
	s.dchild = s.dchild[:0]
	s.prevEnts, s.ents = s.ents, s.prevEnts[:0]
	s.prevPIDs, s.entPIDs = s.entPIDs, s.prevPIDs[:0]
	s.prevAt = 0
	s.gone = s.gone[:0]
	s.seen = 0
	for _, pid := range s.pids {
		p, e, dchild, reason, err := s.process(rootfd, pid, uptime, res)
		if reason != "" {
			if res.Skipped == nil {
				res.Skipped = make(map[string]uint64, 2)
			}
			res.Skipped[reason]++
			if res.Err == nil && err != nil {
				res.Err = fmt.Errorf("read %s/%s: %w", s.root, bytes.TrimRight(s.pathBuf, "\x00"), err)
			}
			continue
		}
		res.Processes = append(res.Processes, p)
		s.dchild = append(s.dchild, dchild)
		s.ents = append(s.ents, e)
		s.entPIDs = append(s.entPIDs, pid)
	}
	s.reap(res)
	if s.vanished() {
		for pid, e := range s.cache {
			if e.gen != s.gen {
				delete(s.cache, pid)
			}
		}
	}
	s.first = false
	s.prevUptime = uptime
	return res, nil
}

// Recycle hands back a result of Scan whose Processes the caller will not
// read again (nor anything holding them): the next Scan writes its
// processes into that array instead of allocating one. A sampling loop
// calls it with the previous scan once it has taken in a new one. It may
// be called while a Scan runs.
func (s *Scanner) Recycle(res *ScanResult) {
	if res != nil && cap(res.Processes) > 0 {
		p := res.Processes[:0]
		s.spare.Store(&p)
	}
}

// process reads one process and returns it with its cache entry; a
// non-empty reason means it was skipped, and err is then the read error of
// the file named by s.pathBuf, if any.
func (s *Scanner) process(rootfd, pid int, uptime float64, res *ScanResult) (Process, *procEntry, uint64, string, error) {
	b, err := s.readAt(rootfd, s.path(pid, "stat"), s.statBuf, false)
	if err != nil {
		return Process{}, nil, 0, reason(err), err
	}
	st, ok := parseStat(b)
	if !ok {
		return Process{}, nil, 0, ReasonParseError, errors.New("cannot parse")
	}
	e := s.prevEntry(pid)
	if e != nil && e.start != st.start {
		// The PID was reused: the old process vanished.
		s.gone = append(s.gone, *e)
		delete(s.cache, pid)
		e = nil
	}
	var delta, dchild uint64
	switch {
	case e != nil:
		if st.ticks >= e.ticks {
			delta = st.ticks - e.ticks
		}
		if st.children >= e.children {
			dchild = st.children - e.children
		}
	case !s.first && s.prevUptime > 0 && float64(st.start)/s.hz >= s.prevUptime:
		// Started after the previous scan: all of its time, and of the
		// children it reaped, fell in this interval.
		delta, dchild = st.ticks, st.children
	}
	if e == nil || !e.sameComm(st.comm) || s.execed(rootfd, pid, e, &st) {
		info, err := s.readInfo(rootfd, pid, st.comm)
		if err != nil {
			return Process{}, nil, 0, reason(err), err
		}
		if e == nil {
			e = &procEntry{start: st.start}
			s.cache[pid] = e
			res.New++
		} else {
			res.Execs++
		}
		e.info = info
		e.setComm(info.Comm)
	}
	if e.gen != s.gen {
		s.seen++
	}
	e.ticks, e.children, e.ppid, e.gen = st.ticks, st.children, st.ppid, s.gen
	e.startCode, e.startStack = st.startCode, st.startStack
	return Process{
		PID:             pid,
		PPID:            st.ppid,
		StartTicks:      st.start,
		CPUSeconds:      float64(st.ticks) / s.hz,
		DeltaCPUSeconds: float64(delta) / s.hz,
		ChildCPUSeconds: float64(st.children) / s.hz,
		Info:            e.info,
	}, e, dchild, "", nil
}

// sortPIDs sorts s.pids unless they are sorted already (procfs lists them
// in order; another file system, a test's tree, may not): by their digits,
// 11 bits a pass, which for PIDs (below 2^22 on Linux: two passes) is
// cheaper than comparing them.
func (s *Scanner) sortPIDs() {
	p := s.pids
	if slices.IsSorted(p) {
		return
	}
	if len(p) < 256 {
		slices.Sort(p)
		return
	}
	const bits = 11
	s.pidTmp = slices.Grow(s.pidTmp[:0], len(p))[:len(p)]
	src, dst := p, s.pidTmp
	top := slices.Max(p)
	var count [1 << bits]int
	for shift := 0; shift == 0 || top>>shift > 0; shift += bits {
		clear(count[:])
		for _, v := range src {
			count[v>>shift&(1<<bits-1)]++
		}
		at := 0
		for d, n := range count {
			count[d] = at
			at += n
		}
		for _, v := range src {
			d := v >> shift & (1<<bits - 1)
			dst[count[d]] = v
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &p[0] {
		copy(p, src)
	}
}

// prevEntry returns the cached entry of pid: from the previous scan's
// list, which the scan walks in step since both are in PID order, else
// (a process the previous scan did not return) from the cache.
func (s *Scanner) prevEntry(pid int) *procEntry {
	for s.prevAt < len(s.prevPIDs) && s.prevPIDs[s.prevAt] < pid {
		s.prevAt++
	}
	if s.prevAt < len(s.prevPIDs) && s.prevPIDs[s.prevAt] == pid {
		// It is the cache's entry: at the end of a scan the cache holds the
		// entries of the processes it returned and no other. Taken once, so
		// a PID listed twice finds the cache's entry the second time.
		s.prevAt++
		return s.prevEnts[s.prevAt-1]
	}
	return s.cache[pid]
}

// vanished reports whether the cache holds entries the current scan did not
// see (processes that exited or could not be read), which reap and Scan
// then look for; in a steady state none did and the cache is not walked.
func (s *Scanner) vanished() bool { return len(s.cache) > s.seen }

// execed reports whether the process behind a cached entry has exec'd
// under the same comm since the previous scan. The signal is free: the
// start of the code segment and of the stack (fields 26 and 28 of
// /proc/PID/stat, shown to the process's owner and to a reader allowed to
// ptrace-read it, CAP_SYS_PTRACE) move on every exec, the stack's with the
// length of the new command line and environment even without
// address-space randomisation.
// Where the kernel hides them (0), the command line is re-read instead
// every recheck scans per process, spread over the scans by PID, so an exec
// is seen within that many scans.
func (s *Scanner) execed(rootfd, pid int, e *procEntry, st *stat) bool {
	if st.startStack != 0 && e.startStack != 0 {
		return st.startStack != e.startStack || st.startCode != e.startCode
	}
	if s.recheck <= 0 || (uint32(pid)+s.gen)%uint32(s.recheck) != 0 {
		return false
	}
	b, err := s.readAt(rootfd, s.path(pid, "cmdline"), s.bigBuf, true)
	if err != nil {
		return false // the next full read reports it
	}
	return string(cmdlineText(b)) != e.info.Cmdline
}

// reap turns the growth of each process's reaped-children time into
// ReapedCPUSeconds: a process that vanished since the previous scan had its
// CPU time counted by the scans that saw it, and its nearest living ancestor
// (its reaper) will add that time again to its cutime+cstime, so it is owed
// there and subtracted from the ancestor's growth. What remains is the time
// of descendants no scan saw, unless the reaper reaped a process of another
// cgroup in the interval: then it is that cgroup's and none is credited.
func (s *Scanner) reap(res *ScanResult) {
	if !s.first {
		if s.vanished() {
			for _, e := range s.cache {
				if e.gen != s.gen {
					s.owe(e)
				}
			}
		}
		for i := range s.gone {
			s.owe(&s.gone[i])
		}
	}
	for i := range res.Processes {
		p := &res.Processes[i]
		e := s.ents[i]
		d := s.dchild[i]
		if e.owed > 0 {
			used := min(e.owed, d)
			d -= used
			e.owed -= used
			e.owedScans++
			if e.owed == 0 || e.owedScans > owedScans {
				e.owed, e.owedScans = 0, 0
			}
		}
		if e.foreign {
			// What the reaped process of another cgroup used after the last
			// scan is that cgroup's (its counter has it); it cannot be told
			// apart from this interval's other reaped time, so none is
			// credited here.
			d, e.foreign = 0, false
		}
		p.ReapedCPUSeconds = float64(d) / s.hz
	}
}

// owe adds what the scans counted of a vanished process to its nearest
// living ancestor, walking up through ancestors that vanished too (their
// own reapers repeat their children's time).
func (s *Scanner) owe(gone *procEntry) {
	counted := gone.ticks + gone.children + gone.owed
	ppid, start := gone.ppid, gone.start
	for range 64 {
		a := s.cache[ppid]
		if a == nil || a.start > start || ppid <= 0 {
			return // reaped by a process no scan knows: nothing to repeat
		}
		if a.gen == s.gen {
			a.owed += counted
			if gone.info != nil && a.info != nil && gone.info.Cgroup.Path != a.info.Cgroup.Path {
				a.foreign = true
			}
			return
		}
		ppid, start = a.ppid, a.start
	}
}

// readInfo reads what is read once per process: cgroup, cmdline, status.
func (s *Scanner) readInfo(rootfd, pid int, comm []byte) (*ProcessInfo, error) {
	info := &ProcessInfo{Comm: string(comm), UID: -1}
	b, err := s.readAt(rootfd, s.path(pid, "cgroup"), s.bigBuf, true)
	if err != nil {
		return nil, err
	}
	info.Cgroup = s.internCgroup(ParseCgroupFile(b))
	b, err = s.readAt(rootfd, s.path(pid, "cmdline"), s.bigBuf, true)
	if err != nil {
		return nil, err
	}
	info.Cmdline = string(cmdlineText(b))
	b, err = s.readAt(rootfd, s.path(pid, "status"), s.bigBuf, true)
	if err != nil {
		return nil, err
	}
	info.UID = statusUID(b)
	if info.Cgroup.SlurmJob == "" && info.Cgroup.ContainerID == "" && info.Cgroup.PodUID == "" && info.Cmdline != "" {
		// Readable by the process's owner and root only; an error leaves
		// the job unknown.
		if b, err := s.readAt(rootfd, s.path(pid, "environ"), s.bigBuf, true); err == nil {
			job, step, user := slurmEnviron(b)
			if job != "" {
				info.Cgroup.SlurmJob, info.Cgroup.SlurmStep, info.SlurmUser, info.SlurmFromEnviron = job, step, user, true
			}
		}
	}
	return info, nil
}

// maxInterned bounds Scanner.cgroups; past it the table starts again
// (sharing is an economy, never needed for correctness).
const maxInterned = 8192

// internCgroup returns the cgroup read before with c's path (a Cgroup is a
// function of its path), or keeps c as that.
func (s *Scanner) internCgroup(c Cgroup) Cgroup {
	if old, ok := s.cgroups[c.Path]; ok {
		return old
	}
	if s.cgroups == nil || len(s.cgroups) >= maxInterned {
		s.cgroups = make(map[string]Cgroup)
	}
	s.cgroups[c.Path] = c
	return c
}

// slurmEnviron returns SLURM_JOB_ID (digits only), SLURM_STEP_ID and
// SLURM_JOB_USER from the NUL-separated /proc/PID/environ.
func slurmEnviron(b []byte) (job, step, user string) {
	for len(b) > 0 {
		var kv []byte
		kv, b, _ = bytes.Cut(b, []byte{0})
		if !bytes.HasPrefix(kv, []byte("SLURM_")) {
			continue
		}
		k, v, _ := bytes.Cut(kv, []byte{'='})
		switch string(k) {
		case "SLURM_JOB_ID":
			if isDigits(string(v)) {
				job = string(v)
			}
		case "SLURM_STEP_ID":
			step = string(v)
		case "SLURM_JOB_USER":
			user = string(v)
		}
	}
	if job == "" {
		return "", "", ""
	}
	return job, step, user
}

// cmdlineText turns /proc/PID/cmdline into a command line in place: NUL
// separators become spaces, trailing NULs are cut.
func cmdlineText(b []byte) []byte {
	b = bytes.TrimRight(b, "\x00")
	for i, c := range b {
		if c == 0 {
			b[i] = ' '
		}
	}
	return b
}

// uptime returns the seconds since boot from <root>/uptime, or 0.
func (s *Scanner) uptime(rootfd int) float64 {
	s.pathBuf = append(s.pathBuf[:0], "uptime\x00"...)
	b, err := s.readAt(rootfd, s.pathBuf, s.statBuf, false)
	if err != nil {
		return 0
	}
	f, _, _ := bytes.Cut(b, []byte{' '})
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(f)), 64)
	if err != nil {
		return 0
	}
	return v
}

// path returns "<pid>/<file>\x00" in the scanner's path buffer.
func (s *Scanner) path(pid int, file string) []byte {
	// The digits by hand: strconv.AppendInt costs several times as much,
	// and every process's path is built every scan.
	var d [20]byte
	i := len(d)
	for v := uint64(max(pid, 0)); ; v /= 10 {
		i--
		d[i] = byte('0' + v%10)
		if v < 10 {
			break
		}
	}
	b := append(s.pathBuf[:0], d[i:]...)
	b = append(b, '/')
	b = append(b, file...)
	s.pathBuf = append(b, 0)
	return s.pathBuf
}

// list fills s.pids with the numeric entries of the root directory.
func (s *Scanner) list(fd int) error {
	s.pids = s.pids[:0]
	for {
		n, err := syscall.ReadDirent(fd, s.dirBuf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		buf := s.dirBuf[:n]
		for len(buf) >= 19 {
			// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[16])))
			if reclen < 19 || reclen > len(buf) {
				break
			}
			typ, name := buf[18], buf[19:reclen]
			buf = buf[reclen:]
			if typ != syscall.DT_DIR && typ != syscall.DT_UNKNOWN {
				continue
			}
			pid, ok := parsePID(name)
			if ok {
				s.pids = append(s.pids, pid)
			}
		}
	}
}

// parsePID parses a NUL-terminated decimal directory name.
func parsePID(name []byte) (int, bool) {
	pid := 0
	for i, c := range name {
		if c == 0 {
			return pid, i > 0
		}
		if c < '0' || c > '9' || pid > 1<<30 {
			return 0, false
		}
		pid = pid*10 + int(c-'0')
	}
	return pid, len(name) > 0
}

// stat is what a scan needs from /proc/PID/stat.
type stat struct {
	comm       []byte // aliases the read buffer
	ppid       int
	ticks      uint64 // utime + stime
	children   uint64 // cutime + cstime
	start      uint64
	startCode  uint64 // 0 when hidden or absent
	startStack uint64
}

// maxStatComm bounds comm as /proc/PID/stat shows it: the kernel formats
// it into a 64-byte buffer (proc_task_name), workqueue workers' longer
// names included.
const maxStatComm = 63

// statReadFields are the fields of /proc/PID/stat that parseStat reads, as a
// bit set by field number.
const statReadFields = 1<<4 | 1<<14 | 1<<15 | 1<<16 | 1<<17 | 1<<22 | 1<<26 | 1<<28

// parseStat parses /proc/PID/stat: "pid (comm) state ppid(4) … utime(14)
// stime(15) cutime(16) cstime(17) … starttime(22) … startcode(26)
// endcode(27) startstack(28) …". comm may hold spaces and parentheses, so
// the fields start after the last ')' (looked for within the longest comm
// the kernel writes: no later field holds one). Fields after 22 are
// optional. It makes one pass over fields 3 to 28, accumulating the digits
// of the fields it reads and skipping the others, and does not allocate: a
// scan parses every process's stat every tick.
func parseStat(b []byte) (stat, bool) {
	open := bytes.IndexByte(b, '(')
	if open < 0 {
		return stat{}, false
	}
	// The last ')' within the window, found forwards: IndexByte is
	// vectorised, LastIndexByte is not.
	end := -1
	for win, at := b[:min(len(b), open+maxStatComm+2)], open+1; ; {
		k := bytes.IndexByte(win[at:], ')')
		if k < 0 {
			break
		}
		end = at + k
		at = end + 1
	}
	if end < 0 {
		end = bytes.LastIndexByte(b, ')')
		if end < 0 {
			return stat{}, false
		}
	}
	st := stat{comm: b[open+1 : end]}
	rest := b[end+1:]
	for len(rest) > 0 && rest[len(rest)-1] == '\n' {
		rest = rest[:len(rest)-1]
	}
	if ok := parseStatFields(rest, &st); ok {
		return st, true
	}
	var f [29]uint64 // by field number; only those of statReadFields are set
	i, n := 0, len(rest)
	// Field 3 (state) is the first after ')'; utime is field 14.
	for field := 3; field <= 28; field++ {
		for i < n && rest[i] == ' ' {
			i++
		}
		start := i
		if statReadFields&(1<<field) == 0 {
			for i < n && rest[i] != ' ' {
				i++
			}
		} else {
			// The digits accumulate on the way, by parseUint's rule: a
			// non-empty decimal below 2^63.
			var v uint64
			ok := true
			for ; i < n && rest[i] != ' '; i++ {
				if d := rest[i] - '0'; d <= 9 && v <= (1<<63)/10 {
					v = v*10 + uint64(d)
				} else {
					ok = false
				}
			}
			if !ok {
				switch field {
				case 4, 14, 15, 22:
					return stat{}, false
				}
				v = 0 // cutime and cstime are signed in the kernel: a negative value counts as 0
			}
			f[field] = v
		}
		if i == start {
			if field > 22 {
				break
			}
			return stat{}, false
		}
	}
	if f[4] > 1<<30 {
		return stat{}, false
	}
	st.ppid, st.start = int(f[4]), f[22]
	st.startCode, st.startStack = f[26], f[28]
	st.ticks = f[14] + f[15]
	st.children = f[16] + f[17]
	return st, true
}

// parseStatFields is parseStat's fast path over the fields after comm,
// for the kernel's own format: fields 3 to 22 or more, one space before
// each, no space after the last, and the fields parseStat reads in decimal
// below 2^63. It skips the fields in between eight bytes at a time. It
// reports false, leaving the line to the general loop, for anything else.
func parseStatFields(rest []byte, st *stat) bool {
	n := len(rest)
	if n < 2 || rest[0] != ' ' || rest[n-1] == ' ' {
		return false
	}
	// num parses the field after the space at i; it returns the value and
	// the index of the space (or end) after it.
	num := func(i int) (uint64, int, bool) {
		var v uint64
		j := i + 1
		for ; j < n && rest[j] != ' '; j++ {
			d := rest[j] - '0'
			if d > 9 || v > (1<<63)/10 {
				return 0, 0, false
			}
			v = v*10 + uint64(d)
		}
		return v, j, j > i+1
	}
	var ok bool
	var v uint64
	// i is always the index of the space before the next field wanted.
	i, found := skipFields(rest, 0, 1) // past state: the space before ppid
	if !found {
		return false
	}
	if v, i, ok = num(i); !ok || v > 1<<30 {
		return false
	}
	st.ppid = int(v)
	if i, found = skipFields(rest, i, 9); !found { // fields 5 to 13
		return false
	}
	var t [4]uint64 // utime stime cutime cstime
	for k := range t {
		if t[k], i, ok = num(i); !ok || i == n {
			return false
		}
	}
	st.ticks, st.children = t[0]+t[1], t[2]+t[3]
	if i, found = skipFields(rest, i, 4); !found { // fields 18 to 21
		return false
	}
	if st.start, i, ok = num(i); !ok {
		return false
	}
	st.startCode, st.startStack = 0, 0
	if i == n {
		return true
	}
	// A line may end before field 26 or 28 (they are then 0): skipFields
	// says so by reaching the end, having checked the spaces on the way.
	if i, found = skipFields(rest, i, 3); !found { // fields 23 to 25
		return i == n
	}
	if st.startCode, i, ok = num(i); !ok {
		return false
	}
	if i == n {
		return true
	}
	if i, found = skipFields(rest, i, 1); !found { // field 27
		return i == n
	}
	if st.startStack, _, ok = num(i); !ok {
		return false
	}
	return true
}

// skipFields returns the index of the k-th space after index i of rest,
// every space single (a double space reports false, as does an end of rest
// reached first, with the index len(rest) when the spaces were single).
// It looks at eight bytes at a time.
func skipFields(rest []byte, i, k int) (int, bool) {
	const ones, highs, lows = 0x0101010101010101, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	j := i + 1
	prevSpace := true // rest[i] is a space
	for j+8 <= len(rest) {
		x := binary.LittleEndian.Uint64(rest[j:]) ^ (' ' * ones)
		// The high bit of each byte that was a space, exactly.
		m := ^(((x & lows) + lows) | x | lows) & highs
		if m != 0 {
			if m&(m<<8) != 0 || (prevSpace && m&0x80 != 0) {
				return 0, false // two spaces in a row
			}
			if c := bits.OnesCount64(m); c < k {
				k -= c
			} else {
				for ; k > 1; k-- {
					m &= m - 1
				}
				return j + bits.TrailingZeros64(m)/8, true
			}
		}
		prevSpace = m>>63 != 0
		j += 8
	}
	for ; j < len(rest); j++ {
		if rest[j] != ' ' {
			prevSpace = false
			continue
		}
		if prevSpace {
			return 0, false
		}
		prevSpace = true
		if k--; k == 0 {
			return j, true
		}
	}
	return len(rest), false
}

func parseUint(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' || v > (1<<63)/10 {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, len(b) > 0
}

// statusUID returns the effective UID from /proc/PID/status
// ("Uid:\treal\teffective\tsaved\tfs"), or -1.
func statusUID(b []byte) int {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return -1
	}
	line := b[i+5:]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) < 2 {
		return -1
	}
	v, ok := parseUint(f[1])
	if !ok || v > 1<<31 {
		return -1
	}
	return int(v)
}

// reason classifies a read error.
func reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return ReasonPermissionDenied
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ESRCH):
		return ReasonVanished
	}
	return ReasonReadError
}

// openDir opens a directory for ReadDirent and openat.
func openDir(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// readAt reads the file at path (NUL-terminated, relative to dirfd) into
// buf with one openat, as few reads as needed and one close, without
// allocating. Unless untilEOF, it stops after a read that ends in a newline
// (single-line files such as stat). Content longer than buf is cut.
func readAt(dirfd int, path []byte, buf []byte, untilEOF bool) ([]byte, error) {
	var fd int
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
			uintptr(syscall.O_RDONLY|syscall.O_CLOEXEC), 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		fd = int(r)
		break
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
		if !untilEOF && buf[n-1] == '\n' {
			break
		}
	}
	syscall.Close(fd)
	return buf[:n], nil
}
