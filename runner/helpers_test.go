package runner

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

const intelFixture = "../rapl/testdata/intel-2socket.sysfs"

// fakeClock is a clock the test steps.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time       { return c.t }
func (c *fakeClock) step(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock                { return &fakeClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }
func near(a, b float64) bool              { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
func writeFile(t testing.TB, path, s string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(s), 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeProc is a procfs tree the test writes: /proc/stat, /proc/uptime and
// process directories with stat, cgroup, cmdline and status.
type fakeProc struct {
	t    testing.TB
	root string
	busy uint64 // /proc/stat user ticks
	idle uint64
	proc map[int]*fakePID
}

type fakePID struct {
	ppid                    int
	comm                    string
	self, children, started uint64
}

func newFakeProc(t testing.TB) *fakeProc {
	f := &fakeProc{t: t, root: filepath.Join(t.TempDir(), "proc"), busy: 10000, idle: 10000, proc: map[int]*fakePID{}}
	must(t, os.MkdirAll(f.root, 0o755))
	f.uptime(100)
	f.writeStat()
	return f
}

// cpu advances /proc/stat by busy and idle ticks (over 4 CPUs).
func (f *fakeProc) cpu(busy, idle uint64) {
	f.busy += busy
	f.idle += idle
	f.writeStat()
}

func (f *fakeProc) writeStat() {
	var b strings.Builder
	fmt.Fprintf(&b, "cpu  %d 0 0 %d 0 0 0 0 0 0\n", f.busy, f.idle)
	for i := range 4 {
		fmt.Fprintf(&b, "cpu%d %d 0 0 %d 0 0 0 0 0 0\n", i, f.busy/4, f.idle/4)
	}
	b.WriteString("intr 0\nctxt 0\nbtime 1795870722\nprocesses 10\nprocs_running 1\nprocs_blocked 0\n")
	writeFile(f.t, filepath.Join(f.root, "stat"), b.String())
}

func (f *fakeProc) uptime(sec float64) {
	writeFile(f.t, filepath.Join(f.root, "uptime"), strconv.FormatFloat(sec, 'f', 2, 64)+" 0.00\n")
}

// spawn creates a process that started at start ticks after boot.
func (f *fakeProc) spawn(pid, ppid int, comm string, self, children, start uint64) {
	f.t.Helper()
	p := &fakePID{ppid: ppid, comm: comm, self: self, children: children, started: start}
	f.proc[pid] = p
	dir := filepath.Join(f.root, strconv.Itoa(pid))
	must(f.t, os.MkdirAll(dir, 0o755))
	writeFile(f.t, filepath.Join(dir, "cgroup"), "0::/user.slice\n")
	writeFile(f.t, filepath.Join(dir, "cmdline"), comm+"\x00")
	writeFile(f.t, filepath.Join(dir, "status"), "Name:\t"+comm+"\nUid:\t0\t0\t0\t0\n")
	f.write(pid)
}

// run adds self and children ticks to a process.
func (f *fakeProc) run(pid int, self, children uint64) {
	f.t.Helper()
	p := f.proc[pid]
	p.self += self
	p.children += children
	f.write(pid)
}

// reparent changes a process's parent.
func (f *fakeProc) reparent(pid, ppid int) {
	f.proc[pid].ppid = ppid
	f.write(pid)
}

// exit removes a process.
func (f *fakeProc) exit(pid int) {
	f.t.Helper()
	delete(f.proc, pid)
	must(f.t, os.RemoveAll(filepath.Join(f.root, strconv.Itoa(pid))))
}

func (f *fakeProc) write(pid int) {
	p := f.proc[pid]
	// utime carries all of self; stime 0; cutime all of children.
	fields := []string{strconv.Itoa(pid), "(" + p.comm + ")", "S", strconv.Itoa(p.ppid), strconv.Itoa(pid), strconv.Itoa(pid),
		"0", "-1", "4194560", "0", "0", "0", "0", strconv.FormatUint(p.self, 10), "0", strconv.FormatUint(p.children, 10), "0",
		"20", "0", "1", "0", strconv.FormatUint(p.started, 10), "1000", "100", "18446744073709551615"}
	writeFile(f.t, filepath.Join(f.root, strconv.Itoa(pid), "stat"), strings.Join(fields, " ")+"\n")
}

// raplFixture is the Intel two-socket fixture with helpers to add energy.
type raplFixture struct {
	t    testing.TB
	root string
}

func newRAPL(t testing.TB) *raplFixture {
	return &raplFixture{t: t, root: sysfsfixture.Materialize(t, intelFixture)}
}

// add adds joules to a zone directory's energy_uj (wrapping at its range).
func (r *raplFixture) add(zone string, joules float64) {
	r.t.Helper()
	dir := filepath.Join(r.root, "class", "powercap", zone)
	read := func(name string) uint64 {
		b, err := os.ReadFile(filepath.Join(dir, name))
		must(r.t, err)
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		must(r.t, err)
		return v
	}
	cur, top := read("energy_uj"), read("max_energy_range_uj")
	writeFile(r.t, filepath.Join(dir, "energy_uj"), strconv.FormatUint((cur+uint64(math.Round(joules*1e6)))%(top+1), 10)+"\n")
}
