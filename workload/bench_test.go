package workload

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// procTree2000 writes a procfs tree of 2000 processes in 200 pods.
func procTree2000(b *testing.B) string {
	b.Helper()
	root := filepath.Join(b.TempDir(), "proc")
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	setUptime(b, root, 100000)
	for i := range 2000 {
		pid := 1000 + i*7
		pod := i % 200
		cg := fmt.Sprintf("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%08x_8d3b_4c1a_9f0e_2b6d7c8e9a01.slice/cri-containerd-%064x.scope", pod, pod)
		writeProc(b, root, pid, "python3", uint64(1000+i), uint64(100+i), cg, "python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m"+strconv.Itoa(pod))
	}
	return root
}

// BenchmarkScan2000 is a steady-state scan: every process already known,
// so only /proc/PID/stat is read, parsed and compared. Compare it with
// BenchmarkBareStat2000; the goal is at most 1.5 times its time.
func BenchmarkScan2000(b *testing.B) {
	root := procTree2000(b)
	s := NewScanner(root, ScannerOptions{ClockTicks: 100})
	if res, err := s.Scan(); err != nil || len(res.Processes) != 2000 {
		b.Fatalf("scan: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Scan()
		if err != nil || len(res.Processes) != 2000 || res.New != 0 {
			b.Fatalf("scan: %v", err)
		}
	}
}

// BenchmarkScan2000Cold is the first scan of a new scanner: every process
// is read whole (stat, cgroup, cmdline, status).
func BenchmarkScan2000Cold(b *testing.B) {
	root := procTree2000(b)
	b.ReportAllocs()
	for b.Loop() {
		res, err := NewScanner(root, ScannerOptions{ClockTicks: 100}).Scan()
		if err != nil || len(res.Processes) != 2000 {
			b.Fatalf("scan: %v", err)
		}
	}
}

// BenchmarkBareStat2000 is the floor: open the root, read uptime, list the
// root, then read every /proc/PID/stat with the same system calls as Scan
// (openat relative to the root, read, close), and do nothing else: no
// parsing, no cache, no result. An strace of both shows the same calls per
// iteration: 2002 openat, 2001 read, 2002 close, 3 getdents64.
func BenchmarkBareStat2000(b *testing.B) {
	root := procTree2000(b)
	buf := make([]byte, 4<<10)
	dirBuf := make([]byte, 32<<10)
	var arena []byte // the names, NUL-separated: the dirent buffer is reused
	var path []byte
	uptime := []byte("uptime\x00")
	b.ReportAllocs()
	for b.Loop() {
		fd, err := openDir(root)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := readAt(fd, uptime, buf, false); err != nil {
			b.Fatal(err)
		}
		arena = arena[:0]
		n := 0
		for {
			k, err := syscall.ReadDirent(fd, dirBuf)
			if err != nil || k <= 0 {
				break
			}
			for d := dirBuf[:k]; len(d) >= 19; {
				reclen := int(d[16]) | int(d[17])<<8
				name := d[19:reclen]
				d = d[reclen:]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				if name[0] >= '0' && name[0] <= '9' {
					arena = append(append(arena, name...), 0)
					n++
				}
			}
		}
		for rest := arena; len(rest) > 0; {
			i := bytes.IndexByte(rest, 0)
			path = append(append(path[:0], rest[:i]...), "/stat\x00"...)
			rest = rest[i+1:]
			if _, err := readAt(fd, path, buf, false); err != nil {
				b.Fatal(err)
			}
		}
		syscall.Close(fd)
		if n != 2000 {
			b.Fatalf("read %d stat files", n)
		}
	}
}

// BenchmarkNaiveStat2000 is the same loop written with package os
// (os.ReadDir, os.ReadFile), for scale.
func BenchmarkNaiveStat2000(b *testing.B) {
	root := procTree2000(b)
	b.ReportAllocs()
	for b.Loop() {
		ents, err := os.ReadDir(root)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			if _, err := os.ReadFile(filepath.Join(root, e.Name(), "stat")); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 2000 {
			b.Fatalf("read %d stat files", n)
		}
	}
}
