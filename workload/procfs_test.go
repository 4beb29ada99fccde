package workload

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	c812  = "3f0e1d2c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
	c913  = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9"
	c1024 = "0b5e6f7a8b9c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	c1100 = "d41d8cd98f00b204e9800998ecf8427ed41d8cd98f00b204e9800998ecf8427e"
	c1200 = "77c6ef5b1a3d2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
)

func byPID(t *testing.T, res *ScanResult) map[int]Process {
	t.Helper()
	out := map[int]Process{}
	for i, p := range res.Processes {
		if i > 0 && res.Processes[i-1].PID >= p.PID {
			t.Fatalf("processes not sorted by PID: %d then %d", res.Processes[i-1].PID, p.PID)
		}
		if p.Info == nil {
			t.Fatalf("PID %d without Info", p.PID)
		}
		out[p.PID] = p
	}
	return out
}

func TestScanFixture(t *testing.T) {
	root := copyTree(t, "proc")
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	res, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != nil || res.Err != nil || res.New != 13 || res.Uptime != 354012.51 {
		t.Fatalf("skipped %v, err %v, new %d, uptime %v", res.Skipped, res.Err, res.New, res.Uptime)
	}
	got := byPID(t, res)
	tests := []struct {
		pid     int
		comm    string
		cpu     float64
		uid     int
		cmdline string
		cg      Cgroup
	}{
		{1, "systemd", 50, 0, "/sbin/init splash", Cgroup{Path: "/init.scope"}},
		{2, "kthreadd", 0.95, 0, "", Cgroup{Path: "/"}},
		{812, "python3", 9523.11, 1000,
			"python3 -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-8B-Instruct --port 8000",
			Cgroup{
				Path:        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f1c2a7e_8d3b_4c1a_9f0e_2b6d7c8e9a01.slice/cri-containerd-" + c812 + ".scope",
				ContainerID: c812, Runtime: RuntimeContainerd, PodUID: "5f1c2a7e-8d3b-4c1a-9f0e-2b6d7c8e9a01",
			}},
		{913, "torchrun", 4520, 0, "/usr/bin/python3 /usr/local/bin/torchrun --nproc-per-node 8 train.py --config llama-70b.yaml",
			Cgroup{Path: "/kubepods/besteffort/pod0e7c4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b/" + c913, ContainerID: c913,
				PodUID: "0e7c4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b"}},
		{1024, "text-generation", 128, 0, "text-generation-launcher --model-id mistralai/Mistral-7B-Instruct-v0.3",
			Cgroup{Path: "/kubepods.slice/kubepods-pod7d6c5b4a_3f2e_4d1c_8b9a_0f1e2d3c4b5a.slice/crio-" + c1024 + ".scope/container",
				ContainerID: c1024, Runtime: RuntimeCRIO, PodUID: "7d6c5b4a-3f2e-4d1c-8b9a-0f1e2d3c4b5a"}},
		{1100, "ollama", 31, 0, "/bin/ollama serve", Cgroup{Path: "/docker/" + c1100, ContainerID: c1100, Runtime: RuntimeDocker}},
		{1200, "llama-server", 5.2, 0, "/app/llama-server -m /models/qwen2.5-7b-q4.gguf",
			Cgroup{Path: "/system.slice/docker-" + c1200 + ".scope", ContainerID: c1200, Runtime: RuntimeDocker}},
		{2001, "python", 709, 1000, "python finetune.py --model bert-large",
			Cgroup{Path: "/slurm/uid_1000/job_4211/step_0/task_0", SlurmJob: "4211", SlurmStep: "0"}},
		{2002, "bash", 0.15, 1001, "/bin/bash /var/spool/slurmd/job04212/slurm_script",
			Cgroup{Path: "/system.slice/slurmstepd.scope/job_4212/step_batch/user/task_0", SlurmJob: "4212", SlurmStep: "batch"}},
		{3000, "vllm", 260, 998,
			"/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen2.5-72B-Instruct --served-model-name qwen72b",
			Cgroup{Path: "/system.slice/vllm.service", SystemdUnit: "vllm.service"}},
		{3001, "my (weird) proc", 0.1, 1000, "./my (weird) proc", Cgroup{Path: "/user.slice/user-1000.slice/session-3.scope"}},
		{4000, "sealed", 2, 0, "/usr/bin/sealed", Cgroup{Path: "/system.slice/sealed.service", SystemdUnit: "sealed.service"}},
		{4100, "shortlived", 0.02, 0, "/bin/true", Cgroup{Path: "/system.slice/cron.service", SystemdUnit: "cron.service"}},
	}
	if len(got) != len(tests) {
		t.Errorf("found %d processes, want %d", len(got), len(tests))
	}
	for _, tc := range tests {
		p, ok := got[tc.pid]
		if !ok {
			t.Errorf("PID %d not found", tc.pid)
			continue
		}
		if p.Info.Comm != tc.comm || p.Info.UID != tc.uid || p.Info.Cmdline != tc.cmdline {
			t.Errorf("PID %d: comm %q uid %d cmdline %q", tc.pid, p.Info.Comm, p.Info.UID, p.Info.Cmdline)
		}
		if !near(p.CPUSeconds, tc.cpu) || p.DeltaCPUSeconds != 0 {
			t.Errorf("PID %d: CPU %v s (Δ %v), want %v (Δ 0 on the first scan)", tc.pid, p.CPUSeconds, p.DeltaCPUSeconds, tc.cpu)
		}
		if p.Info.Cgroup != tc.cg {
			t.Errorf("PID %d: cgroup\n got %+v\nwant %+v", tc.pid, p.Info.Cgroup, tc.cg)
		}
	}
	if got[812].StartTicks != 51230 {
		t.Errorf("start ticks %d", got[812].StartTicks)
	}
	// PPID is field 4 of stat, read after the last ')' (3001's comm holds one).
	for pid, want := range map[int]int{1: 0, 2: 0, 812: 790, 913: 900, 2002: 1995, 3000: 1, 3001: 1} {
		if got[pid].PPID != want {
			t.Errorf("PID %d: PPID %d, want %d", pid, got[pid].PPID, want)
		}
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// countingReads wraps a scanner's reader and counts the reads per file name.
func countingReads(s *Scanner) map[string]int {
	counts := map[string]int{}
	next := s.readAt
	s.readAt = func(dirfd int, path, buf []byte, untilEOF bool) ([]byte, error) {
		p := strings.TrimRight(string(path), "\x00")
		counts[filepath.Base(p)]++
		return next(dirfd, path, buf, untilEOF)
	}
	return counts
}

func TestScanDeltasAndCache(t *testing.T) {
	root := copyTree(t, "proc")
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	reads := countingReads(s)
	if _, err := s.Scan(); err != nil {
		t.Fatal(err)
	}
	if reads["cgroup"] != 13 || reads["cmdline"] != 13 || reads["status"] != 13 || reads["stat"] != 13 {
		t.Fatalf("first scan reads %v", reads)
	}
	clear(reads)

	setUptime(t, root, 354017.51) // 5 s later
	// 812 used 5 CPU seconds (400 user ticks, 100 system).
	writeStat(t, root, 812, "python3", 912400, 40411, 51230)
	// 3000 exec'd: new comm, new command line.
	writeStat(t, root, 3000, "vllm-worker", 25100, 1000, 200000)
	writeFile(t, filepath.Join(root, "3000", "cmdline"), "vllm-worker\x00--rank\x001\x00")
	// 913 exited and its PID was reused by a process that started after the
	// previous scan (start 35401300 ticks > 354012.51 s): all of its time counts.
	writeStat(t, root, 913, "sh", 70, 30, 35401300)
	writeFile(t, filepath.Join(root, "913", "cgroup"), "0::/system.slice/cron.service\n")
	// 5000 is new and started after the previous scan; 5001 is new but old.
	writeProc(t, root, 5000, "new", 250, 35401400, "0::/user.slice")
	writeProc(t, root, 5001, "old", 9999, 100, "0::/user.slice")
	// 4100 exited.
	if err := os.RemoveAll(filepath.Join(root, "4100")); err != nil {
		t.Fatal(err)
	}

	res, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	got := byPID(t, res)
	for pid, want := range map[int]float64{812: 5, 3000: 1, 913: 1, 5000: 2.5, 5001: 0, 1: 0, 2001: 0} {
		if d := got[pid].DeltaCPUSeconds; !near(d, want) {
			t.Errorf("PID %d: Δ CPU %v s, want %v", pid, d, want)
		}
	}
	if _, ok := got[4100]; ok || len(got) != 14 || res.New != 3 || res.Skipped != nil {
		t.Errorf("processes %d, new %d, skipped %v", len(got), res.New, res.Skipped)
	}
	if p := got[3000].Info; p.Comm != "vllm-worker" || p.Cmdline != "vllm-worker --rank 1" {
		t.Errorf("exec not noticed: %+v", p)
	}
	if p := got[913].Info; p.Comm != "sh" || p.Cgroup.SystemdUnit != "cron.service" || p.Cgroup.ContainerID != "" {
		t.Errorf("reused PID kept the old identity: %+v", p)
	}
	// Only the new processes (5000, 5001, 913) and the exec'd one (3000)
	// were read beyond stat.
	if reads["cgroup"] != 4 || reads["cmdline"] != 4 || reads["status"] != 4 || reads["stat"] != 14 || reads["uptime"] != 1 {
		t.Errorf("second scan reads %v", reads)
	}
	// Unchanged processes share their Info between scans.
	clear(reads)
	res2, _ := s.Scan()
	if reads["cgroup"] != 0 || byPID(t, res2)[812].Info != got[812].Info {
		t.Errorf("third scan re-read: %v", reads)
	}
}

// The scan keeps going when processes cannot be read: through the read seam
// (EACCES as in a hardened container, ESRCH from a process that exits while
// its files are read) and through a hook that removes a process between
// listing and reading.
func TestScanSkipsUnreadableAndVanished(t *testing.T) {
	root := copyTree(t, "proc")
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	next := s.readAt
	s.readAt = func(dirfd int, path, buf []byte, untilEOF bool) ([]byte, error) {
		p := strings.TrimRight(string(path), "\x00")
		switch {
		case strings.HasPrefix(p, "4000/"):
			return nil, syscall.EACCES
		case p == "1200/cmdline":
			return nil, syscall.ESRCH
		case p == "1100/status":
			return nil, syscall.EPERM
		case p == "2/stat":
			return []byte("2 (kthreadd) S 0 0\n"), nil // truncated: parse error
		case p == "1/stat":
			return nil, syscall.EIO
		}
		return next(dirfd, path, buf, untilEOF)
	}
	s.afterList = func(pids []int) {
		if err := os.RemoveAll(filepath.Join(root, "4100")); err != nil {
			t.Error(err)
		}
	}
	res, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{ReasonPermissionDenied: 2, ReasonVanished: 2, ReasonParseError: 1, ReasonReadError: 1}
	if len(res.Skipped) != len(want) {
		t.Errorf("skipped %v, want %v", res.Skipped, want)
	}
	for r, n := range want {
		if res.Skipped[r] != n {
			t.Errorf("skipped[%s] = %d, want %d (all: %v)", r, res.Skipped[r], n, res.Skipped)
		}
	}
	got := byPID(t, res)
	if len(got) != 7 {
		t.Errorf("kept %d processes, want the 7 readable ones", len(got))
	}
	for _, pid := range []int{812, 913, 1024, 2001, 2002, 3000, 3001} {
		if _, ok := got[pid]; !ok {
			t.Errorf("PID %d missing", pid)
		}
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), root+"/") {
		t.Errorf("Err = %v, want the first failing path", res.Err)
	}
	// Skipped processes are not cached: a later scan tries them again.
	s.afterList = nil
	s.readAt = next
	res, _ = s.Scan()
	if res.Skipped != nil || len(res.Processes) != 12 || res.New != 5 {
		t.Errorf("rescan: skipped %v, %d processes, %d new", res.Skipped, len(res.Processes), res.New)
	}
}

// With real file permissions: a non-root agent cannot read a process's files
// (as with a hardened container), and skips and counts it. Root reads
// through mode 000, so as root the process is found.
func TestScanUnreadableRealFiles(t *testing.T) {
	root := copyTree(t, "proc")
	dir := filepath.Join(root, "4000")
	for _, f := range []string{"stat", "cgroup", "cmdline", "status"} {
		if err := os.Chmod(filepath.Join(dir, f), 0); err != nil {
			t.Fatal(err)
		}
	}
	res, err := NewScanner(root, ScannerOptions{}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	got := byPID(t, res)
	if os.Geteuid() != 0 {
		if _, ok := got[4000]; ok || res.Skipped[ReasonPermissionDenied] != 1 || len(got) != 12 {
			t.Errorf("non-root: got PID 4000 %v, skipped %v, %d processes", ok, res.Skipped, len(got))
		}
		if !errors.Is(res.Err, os.ErrPermission) {
			t.Errorf("Err = %v", res.Err)
		}
		return
	}
	if _, ok := got[4000]; !ok || res.Skipped != nil || len(got) != 13 {
		t.Errorf("root: got PID 4000 %v, skipped %v, %d processes", ok, res.Skipped, len(got))
	}
}

func TestScanMissingRoot(t *testing.T) {
	_, err := NewScanner(filepath.Join(t.TempDir(), "nope"), ScannerOptions{}).Scan()
	if !errors.Is(err, ErrNoProcfs) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

// TestScanRealProc scans the machine's /proc and finds this test process
// with a positive CPU time, burning CPU until the kernel has counted a tick.
func TestScanRealProc(t *testing.T) {
	s := NewScanner("/proc", ScannerOptions{})
	if hz := s.ClockTicks(); hz <= 0 || hz > 10000 {
		t.Fatalf("clock ticks %d", hz)
	}
	deadline := time.Now().Add(20 * time.Second)
	x := 1.0
	for {
		res, err := s.Scan()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := byPID(t, res)[os.Getpid()]
		if !ok {
			t.Fatalf("own PID %d not found among %d processes (skipped %v)", os.Getpid(), len(res.Processes), res.Skipped)
		}
		if p.Info.Cmdline == "" || p.Info.UID != os.Geteuid() {
			t.Fatalf("own process: %+v", p.Info)
		}
		if p.CPUSeconds > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("own CPU time still 0 after burning CPU: %+v", p)
		}
		for i := range 5_000_000 { // about 10 ms of work
			x = x*1.0000001 + float64(i&1)
		}
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		ok    bool
		comm  string
		ppid  int
		ticks uint64
		start uint64
	}{
		{"42 (a b) R 1 42 42 0 -1 4194304 1 0 0 0 7 3 0 0 20 0 1 0 999 0 0\n", true, "a b", 1, 10, 999},
		{"42 (x) (y)) S 4711 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 0", true, "x) (y)", 4711, 2, 5},
		{"42 ()) S 1 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5\n", true, ")", 1, 2, 5},
		{"2 (kthreadd) S 0 0 0 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5\n", true, "kthreadd", 0, 2, 5},
		{"42 (short) S 1 42\n", false, "", 0, 0, 0},
		{"42 short S 1 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5\n", false, "", 0, 0, 0},
		{"42 (x) S 1 42 42 0 -1 0 0 0 0 0 -1 1 0 0 20 0 1 0 5\n", false, "", 0, 0, 0},
		{"42 (x) S -1 42 42 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5\n", false, "", 0, 0, 0},
		{"", false, "", 0, 0, 0},
	}
	for _, tc := range tests {
		st, ok := parseStat([]byte(tc.in))
		if ok != tc.ok || (ok && (string(st.comm) != tc.comm || st.ppid != tc.ppid || st.ticks != tc.ticks || st.start != tc.start)) {
			t.Errorf("parseStat(%q) = %q ppid %d %d %d %v", tc.in, st.comm, st.ppid, st.ticks, st.start, ok)
		}
	}
}

func TestStatusUID(t *testing.T) {
	for in, want := range map[string]int{
		"Name:\tx\nUid:\t1000\t1001\t1000\t1000\nGid:\t0\n": 1001,
		"Name:\tx\nUid:\t0\t0\t0\t0":                        0,
		"Name:\tx\nGid:\t0\n":                               -1,
		"Name:\tx\nUid:\t5\n":                               -1,
	} {
		if got := statusUID([]byte(in)); got != want {
			t.Errorf("statusUID(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParsePID(t *testing.T) {
	for in, want := range map[string]int{"1\x00": 1, "4194304\x00\x00": 4194304, "12": 12} {
		if got, ok := parsePID([]byte(in)); !ok || got != want {
			t.Errorf("parsePID(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"\x00", "self\x00", "1a\x00", "", "99999999999999\x00"} {
		if _, ok := parsePID([]byte(in)); ok {
			t.Errorf("parsePID(%q) accepted", in)
		}
	}
}

func TestClockTicks(t *testing.T) {
	if hz := clockTicks(); hz != 100 && hz != 250 && hz != 1000 && hz != 1024 {
		t.Errorf("AT_CLKTCK %d is not a known USER_HZ", hz)
	}
	if got := NewScanner("/proc", ScannerOptions{ClockTicks: 250}).ClockTicks(); got != 250 {
		t.Errorf("override ignored: %d", got)
	}
}

// statByFields is a plain reading of /proc/PID/stat with strings.FieldsFunc,
// the specification parseStat's single pass must agree with.
func statByFields(line string) (stat, bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return stat{}, false
	}
	f := strings.FieldsFunc(strings.TrimRight(line[end+1:], "\n"), func(r rune) bool { return r == ' ' })
	if len(f) < 20 { // fields 3 … 22
		return stat{}, false
	}
	num := func(field int) (uint64, bool) {
		if field-3 >= len(f) {
			return 0, true
		}
		v, err := strconv.ParseUint(f[field-3], 10, 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	st := stat{comm: []byte(line[open+1 : end])}
	ppid, ok1 := num(4)
	ut, ok2 := num(14)
	stt, ok3 := num(15)
	start, ok4 := num(22)
	if !ok1 || !ok2 || !ok3 || !ok4 || ppid > 1<<30 {
		return stat{}, false
	}
	cut, _ := num(16)
	cst, _ := num(17)
	st.ppid, st.ticks, st.children, st.start = int(ppid), ut+stt, cut+cst, start
	st.startCode, _ = num(26)
	st.startStack, _ = num(28)
	return st, true
}

// TestParseStatAgreesWithFields checks the allocation-free single pass
// against statByFields over generated lines: odd comms, negative child
// times, runs of spaces, lines cut after any field, hidden addresses.
func TestParseStatAgreesWithFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2000))
	comms := []string{"python3", "a b", "x) (y", ")", "", "kworker/0:1-events"}
	tokens := []string{"0", "1", "42", "-1", "9223372036854775807", "99999999999999999999", "S", "x1"}
	fast := 0
	for n := range 20000 {
		var b strings.Builder
		fmt.Fprintf(&b, "%d (%s)", n, comms[rng.IntN(len(comms))])
		fields := 3 + rng.IntN(50)
		// Half the lines are in the kernel's format (single spaces, digits
		// but for a rare odd token), parseStatFields' fast path.
		clean := n%2 == 0
		for range fields {
			if clean {
				b.WriteString(" ")
			} else {
				b.WriteString(strings.Repeat(" ", 1+rng.IntN(2)*rng.IntN(3)))
			}
			if (!clean && rng.IntN(3) == 0) || (clean && rng.IntN(40) == 0) {
				b.WriteString(tokens[rng.IntN(len(tokens))])
			} else {
				b.WriteString(strconv.Itoa(rng.IntN(1 << 20)))
			}
		}
		if rng.IntN(2) == 0 {
			b.WriteString("\n")
		}
		line := b.String()
		if _, end, _ := strings.Cut(line, ")"); parseStatFields([]byte(strings.TrimRight(end, "\n")), &stat{}) {
			fast++
		}
		got, gok := parseStat([]byte(line))
		want, wok := statByFields(line)
		if gok != wok || (gok && (string(got.comm) != string(want.comm) || got.ppid != want.ppid || got.ticks != want.ticks ||
			got.children != want.children || got.start != want.start || got.startCode != want.startCode || got.startStack != want.startStack)) {
			t.Fatalf("parseStat(%q) = %+v %v, want %+v %v", line, got, gok, want, wok)
		}
	}
	// A kernel line with one space doubled, anywhere (the fast path must see
	// a double space that straddles its eight-byte words too), or cut after
	// any field.
	base := "1234 (python3) S 1 1234 1234 0 -1 4194560 15032 0 12 0 1334 1284 7 9 20 0 4 0 2234 12619776 1843 18446744073709551615 94245358534656 94245361130245 140727452436000 0 0 0 17 3 0 0"
	for i := strings.IndexByte(base, ')') + 1; i < len(base); i++ {
		var lines []string
		if base[i] == ' ' {
			lines = append(lines, base[:i]+" "+base[i:]+"\n", base[:i]+"\n", base[:i])
		}
		for _, line := range lines {
			got, gok := parseStat([]byte(line))
			want, wok := statByFields(line)
			if gok != wok || (gok && fmt.Sprint(got) != fmt.Sprint(want)) {
				t.Fatalf("parseStat(%q) = %+v %v, want %+v %v", line, got, gok, want, wok)
			}
		}
	}
	if fast < 5000 {
		t.Errorf("only %d of the lines took the fast path", fast)
	}
	if a := testing.AllocsPerRun(100, func() {
		parseStat([]byte("1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 0 0 0 4194304 4200000 140730000000000\n"))
	}); a != 0 {
		t.Errorf("parseStat allocates %v times", a)
	}
}

// sortPIDs sorts any listing, of few or many PIDs, small or up to the
// largest parsePID accepts, as slices.Sort does.
func TestSortPIDs(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	s := NewScanner(t.TempDir(), ScannerOptions{})
	for _, tc := range []struct{ n, max int }{{0, 1}, {1, 1}, {100, 50}, {300, 1 << 11}, {2000, 1 << 22}, {5000, 1 << 30}, {4096, 1 << 22}} {
		s.pids = s.pids[:0]
		for range tc.n {
			s.pids = append(s.pids, rng.IntN(tc.max))
		}
		want := slices.Sorted(slices.Values(s.pids))
		s.sortPIDs()
		if !slices.Equal(s.pids, want) {
			t.Fatalf("%d PIDs below %d: not sorted", tc.n, tc.max)
		}
		s.sortPIDs() // sorted already: unchanged
		if !slices.Equal(s.pids, want) {
			t.Fatalf("%d PIDs below %d: a sorted listing changed", tc.n, tc.max)
		}
	}
}

// A comm change is an exec whether the comm fits in the scanner's entry
// (up to 16 bytes) or not (workqueue workers' longer names, up to 63), and
// a PID listed twice is read as one process.
func TestScanCommChangeAndRepeatedPID(t *testing.T) {
	root := t.TempDir()
	setUptime(t, root, 1000)
	s := NewScanner(root, ScannerOptions{ClockTicks: 100, CmdlineRecheckScans: -1})
	short := statFields{pid: 40, ppid: 1, comm: "python3", start: 100, startStack: fixtureStack}
	long := statFields{pid: 41, ppid: 1, comm: "kworker/u256:1-events_unbound", start: 100, startStack: fixtureStack}
	churnProc(t, root, short, "0::/user.slice", "python3")
	churnProc(t, root, long, "0::/", "")
	scan := func() *ScanResult {
		t.Helper()
		res, err := s.Scan()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := scan(); res.New != 2 {
		t.Fatalf("first scan: %d new", res.New)
	}
	if res := scan(); res.New != 0 || res.Execs != 0 {
		t.Fatalf("unchanged: %d new, %d execs", res.New, res.Execs)
	}
	short.comm, long.comm = "python4", "kworker/u256:1-events_unbounD"
	writeStatFull(t, root, short)
	writeStatFull(t, root, long)
	res := scan()
	if res.Execs != 2 {
		t.Fatalf("comm changes: %d execs, want 2", res.Execs)
	}
	if got := byPID(t, res); got[40].Info.Comm != "python4" || got[41].Info.Comm != long.comm {
		t.Fatalf("comms %q %q", got[40].Info.Comm, got[41].Info.Comm)
	}
	// A listing that names PID 40 twice (the hook runs after the listing).
	s.afterList = func(pids []int) { s.pids = append(s.pids[:1], pids...) }
	res = scan()
	s.afterList = nil
	if res.New != 0 || res.Execs != 0 || len(res.Processes) != 3 {
		t.Fatalf("repeated PID: %d new, %d execs, %d processes", res.New, res.Execs, len(res.Processes))
	}
	if res := scan(); res.New != 0 || res.Execs != 0 || len(res.Processes) != 2 {
		t.Fatalf("after the repeated PID: %d new, %d execs, %d processes", res.New, res.Execs, len(res.Processes))
	}
}

// A result handed back by Recycle lends its array to the next Scan, whose
// processes are what a scan without it returns; Recycle may run while a
// Scan does.
func TestScanRecycle(t *testing.T) {
	root := copyTree(t, "proc")
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	ref := NewScanner(root, ScannerOptions{ClockTicks: 100})
	scan := func(s *Scanner) *ScanResult {
		t.Helper()
		res, err := s.Scan()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := scan(s)
	scan(ref)
	if len(first.Processes) == 0 {
		t.Fatal("no processes in the fixture")
	}
	s.Recycle(first)
	second, want := scan(s), scan(ref)
	if &second.Processes[0] != &first.Processes[:1][0] {
		t.Error("the recycled array was not reused")
	}
	show := func(ps []Process) string {
		var b strings.Builder
		for _, p := range ps {
			info := *p.Info
			p.Info = nil
			fmt.Fprintf(&b, "%+v %+v\n", p, info)
		}
		return b.String()
	}
	if got, want := show(second.Processes), show(want.Processes); got != want {
		t.Fatalf("after Recycle:\n%s\nwant\n%s", got, want)
	}
	third := scan(s) // nothing handed back: a new array
	if &third.Processes[0] == &second.Processes[0] {
		t.Error("an array not handed back was reused")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			s.Recycle(third)
		}
	}()
	for range 20 {
		scan(s)
	}
	<-done
}
