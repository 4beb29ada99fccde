package workload

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// copyTree copies the fixture tree testdata/<name> into a fresh temporary
// directory, which the test may change, and returns its path.
func copyTree(t testing.TB, name string) string {
	t.Helper()
	src := filepath.Join("testdata", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy fixture %s: %v", name, err)
	}
	return dst
}

// writeStat rewrites /proc/<pid>/stat with new CPU ticks, start time and comm.
func writeStat(t testing.TB, root string, pid int, comm string, utime, stime, start uint64) {
	t.Helper()
	writeStatFull(t, root, statFields{pid: pid, ppid: 1, comm: comm, utime: utime, stime: stime, start: start, startStack: fixtureStack})
}

// fixtureStack is the start of the stack in the fixture's stat files.
const fixtureStack = 140727452436000

// statFields are the fields of a /proc/PID/stat line that tests vary.
type statFields struct {
	pid, ppid                           int
	comm                                string
	utime, stime, cutime, cstime, start uint64
	startStack                          uint64 // field 28; 0 as a kernel hides it
}

// writeStatFull writes /proc/<pid>/stat from f (the start of the code
// segment is the fixture's, or 0 when the stack is hidden).
func writeStatFull(t testing.TB, root string, f statFields) {
	t.Helper()
	code := uint64(94245358534656)
	if f.startStack == 0 {
		code = 0
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	fs := []string{strconv.Itoa(f.pid), "(" + f.comm + ")", "S", strconv.Itoa(f.ppid), strconv.Itoa(f.pid), strconv.Itoa(f.pid), "0", "-1",
		"4194560", "15032", "0", "12", "0", u(f.utime), u(f.stime), u(f.cutime), u(f.cstime),
		"20", "0", "1", "0", u(f.start), "12619776", "1843", "18446744073709551615", u(code), u(code + 2695589), u(f.startStack),
		"0", "0", "0", "0", "0", "0", "0", "0", "0", "17", "3", "0", "0", "0", "0", "0"}
	writeFile(t, filepath.Join(root, strconv.Itoa(f.pid), "stat"), strings.Join(fs, " ")+"\n")
}

// writeProc creates a whole process directory.
func writeProc(t testing.TB, root string, pid int, comm string, utime, start uint64, cgroup string, args ...string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeStat(t, root, pid, comm, utime, 0, start)
	writeFile(t, filepath.Join(dir, "cgroup"), cgroup+"\n")
	writeFile(t, filepath.Join(dir, "cmdline"), strings.Join(args, "\x00")+"\x00")
	writeFile(t, filepath.Join(dir, "status"), "Name:\t"+comm+"\nState:\tS (sleeping)\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n")
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// setUptime writes <root>/uptime.
func setUptime(t testing.TB, root string, seconds float64) {
	t.Helper()
	writeFile(t, filepath.Join(root, "uptime"), strconv.FormatFloat(seconds, 'f', 2, 64)+" 0.00\n")
}
