package scrape

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
)

// listenInodesProcfs is ListenInodes written over prometheus/procfs's
// NetTCP parser, kept for the comparison benchmark below.
func listenInodesProcfs(procRoot string, port int) ([]uint64, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, err
	}
	var inodes []uint64
	for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} { //nolint:staticcheck // measured on purpose
		lines, err := read()
		if err != nil {
			if len(inodes) > 0 || os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		for _, l := range lines {
			if l.St == 0x0A && l.LocalPort == uint64(port) && l.Inode != 0 {
				inodes = append(inodes, l.Inode)
			}
		}
	}
	return inodes, nil
}

// busyNetTCP writes a procfs root whose net/tcp has n sockets (a busy
// node: one listener on 8000, the rest established connections).
func busyNetTCP(b *testing.B, n int) string {
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i := range n {
		st, port := "01", 30000+i%30000
		if i == n/2 {
			st, port = "0A", 8000
		}
		fmt.Fprintf(&sb, "%4d: 0100007F:%04X 0100007F:%04X %s 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1\n",
			i, port, 40000+i%20000, st, 100000+i)
	}
	for _, name := range []string{"tcp", "tcp6"} {
		if err := os.WriteFile(filepath.Join(root, "net", name), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkListenInodes compares the hand-written /proc/net/tcp reader with
// prometheus/procfs's, on 5000 sockets per file (tcp and tcp6). Measured
// when the replacement was considered: procfs's took about 1.3-1.7 times as
// long, 1.7 times the bytes and 5.5 times the allocations (it parses every
// column of every line into a struct, addresses included), and its NetTCP
// is deprecated upstream, so the hand-written reader stays.
func BenchmarkListenInodes(b *testing.B) {
	root := busyNetTCP(b, 5000)
	for _, impl := range []struct {
		name string
		f    func(string, int) ([]uint64, error)
	}{{"handwritten", ListenInodes}, {"procfs", listenInodesProcfs}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				in, err := impl.f(root, 8000)
				if err != nil || len(in) == 0 {
					b.Fatalf("%v %v", in, err)
				}
			}
		})
	}
}
