package sysfsfixture

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The floors below make the same system calls as the code they bound and
// nothing else: no parsing beyond what proves the read happened, no
// allocation in the loop. A benchmark is compared with a floor only when an
// strace of both shows the same calls per iteration (docs/performance.md
// says how to check).

// ReadRaw reads the file at path into buf with the system calls of
// rapl.Meter's reader: one open, reads until a newline, end of file or a
// full buffer, one close. It avoids os.File (no fcntl, epoll_ctl or fstat).
func ReadRaw(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return readFD(fd, buf)
}

// readFD reads fd until a newline, end of file or a full buffer, then closes it.
func readFD(fd int, buf []byte) ([]byte, error) {
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		k, err := syscall.Read(fd, buf[n:])
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		if k <= 0 {
			break
		}
		n += k
		if buf[n-1] == '\n' {
			break
		}
	}
	return buf[:n], nil
}

// BenchReadRaw is the floor of a RAPL read: ReadRaw and strconv.ParseUint
// over files, in order, every iteration.
func BenchReadRaw(b *testing.B, files []string) {
	b.Helper()
	buf := make([]byte, 64)
	var sum uint64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sum += ReadRawFiles(b, files, buf)
	}
	if sum == 0 {
		b.Fatal("read nothing")
	}
}

// ReadRawFiles reads every file with ReadRaw and returns the sum of their
// values (energy_uj counters).
func ReadRawFiles(b *testing.B, files []string, buf []byte) uint64 {
	var sum uint64
	for _, f := range files {
		raw, err := ReadRaw(f, buf)
		if err != nil {
			b.Fatal(err)
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(raw)), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		sum += v
	}
	return sum
}

// ListDir lists dir as the RAPL meter's hot-plug check does: open through
// os.File, read every name, close.
func ListDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer f.Close()
	if _, err := f.Readdirnames(-1); err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	return nil
}

// ProcFloor is the floor of one pass over a procfs root with the system
// calls of the agent's CPU model and process scanner: the head of
// /proc/stat read through os.File (open, one read, close), then the root
// opened as a directory, uptime
// opened relative to it (and read when present), the entries listed, and
// every PID/stat opened relative to the root, read and closed.
type ProcFloor struct {
	root    string
	statBuf []byte
	buf     []byte
	dirBuf  []byte
	names   []byte // NUL-separated PID names: the dirent buffer is reused
	path    []byte
}

// NewProcFloor returns a floor over the procfs root.
func NewProcFloor(root string) *ProcFloor {
	return &ProcFloor{root: root, statBuf: make([]byte, 4<<10), buf: make([]byte, 4<<10), dirBuf: make([]byte, 32<<10)}
}

// ReadStat reads the head of root/stat as the CPU model does (open through
// os.File, one read of 4 KiB, close) and returns its length.
func (p *ProcFloor) ReadStat() (int, error) {
	f, err := os.Open(p.root + "/stat")
	if err != nil {
		return 0, fmt.Errorf("open stat: %w", err)
	}
	defer f.Close()
	n, err := f.Read(p.statBuf)
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	return n, nil
}

// Scan lists the root and reads every PID/stat, as the process scanner's
// steady state does; it returns the number of stat files read.
func (p *ProcFloor) Scan() (int, error) {
	fd, err := syscall.Open(p.root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", p.root, err)
	}
	defer syscall.Close(fd)
	if ufd, err := openat(fd, append(p.path[:0], "uptime\x00"...)); err == nil {
		if _, err := readFD(ufd, p.buf); err != nil {
			return 0, err
		}
	}
	p.names = p.names[:0]
	for {
		k, err := syscall.ReadDirent(fd, p.dirBuf)
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", p.root, err)
		}
		if k <= 0 {
			break
		}
		for d := p.dirBuf[:k]; len(d) >= 19; {
			reclen := int(d[16]) | int(d[17])<<8
			name := d[19:reclen]
			d = d[reclen:]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if len(name) > 0 && name[0] >= '0' && name[0] <= '9' {
				p.names = append(append(p.names, name...), 0)
			}
		}
	}
	n := 0
	for rest := p.names; len(rest) > 0; {
		i := bytes.IndexByte(rest, 0)
		p.path = append(append(p.path[:0], rest[:i]...), "/stat\x00"...)
		rest = rest[i+1:]
		sfd, err := openat(fd, p.path)
		if err != nil {
			return 0, fmt.Errorf("open %s/%s: %w", p.root, p.path[:len(p.path)-1], err)
		}
		if _, err := readFD(sfd, p.buf); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// openat opens the NUL-terminated path relative to dirfd without allocating.
func openat(dirfd int, path []byte) (int, error) {
	r, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
		uintptr(syscall.O_RDONLY|syscall.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// CgroupFloor is the floor of the workload CPU account's cgroup counter
// reads, with its system calls: the cgroup root checked with one stat, then
// every workload cgroup's counter (cpu.stat or cpuacct.usage) read with one
// openat, reads until a newline, and one close, without allocating.
type CgroupFloor struct {
	root  string
	files [][]byte // NUL-terminated counter paths
	buf   []byte
}

// NewCgroupFloor returns the floor of reading the counter files (one per
// workload cgroup) under the cgroup root.
func NewCgroupFloor(root string, files []string) *CgroupFloor {
	c := &CgroupFloor{root: root, buf: make([]byte, 1<<10)}
	for _, f := range files {
		c.files = append(c.files, append([]byte(f), 0))
	}
	return c
}

// Len is the number of counter files.
func (c *CgroupFloor) Len() int { return len(c.files) }

// Read makes one pass and returns the bytes read.
func (c *CgroupFloor) Read() (int, error) {
	if _, err := os.Stat(c.root); err != nil {
		return 0, fmt.Errorf("cgroup root: %w", err)
	}
	n := 0
	for _, f := range c.files {
		fd, err := openat(atFDCWD, f)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", f[:len(f)-1], err)
		}
		b, err := readFD(fd, c.buf)
		if err != nil {
			return 0, err
		}
		n += len(b)
	}
	return n, nil
}

// atFDCWD is Linux's AT_FDCWD: openat then takes an absolute path.
const atFDCWD = -100

// CPUClock measures the CPU time (user and system, every thread of the
// process: the benchmark's goroutines, the garbage collector) a benchmark
// spends, which a machine shared with other work inflates far less than
// wall time. Start it after the set-up and call Report after the loop.
type CPUClock struct{ start time.Duration }

// StartCPU returns a clock started now.
func StartCPU() CPUClock { return CPUClock{start: processCPU()} }

// Report adds the metric cpu-ns/op: the CPU time since StartCPU divided by
// b.N.
func (c CPUClock) Report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
