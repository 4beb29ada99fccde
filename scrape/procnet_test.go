package scrape

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const tcpHeader = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

// writeProc builds a fixture procfs tree: net/tcp, net/tcp6 and fd links.
func writeProc(t *testing.T, tcp, tcp6 string, fds map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if tcp != "" {
		if err := os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(tcpHeader+tcp), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if tcp6 != "" {
		if err := os.WriteFile(filepath.Join(root, "net", "tcp6"), []byte(tcpHeader+tcp6), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range fds { // link is "PID/fd/N"
		path := filepath.Join(root, link)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestListeningPIDsFixture(t *testing.T) {
	// Port 8080 is 1F90. Rows: IPv4 LISTEN (inode 12345), an ESTABLISHED
	// connection on the same port (inode 999, not a listener), a listener
	// on another port (inode 555).
	tcp := "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n" +
		"   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 20 4 30 10 -1\n" +
		"   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0\n"
	tcp6 := "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 23456 1 0000000000000000 100 0 0 10 0\n"
	root := writeProc(t, tcp, tcp6, map[string]string{
		"100/fd/3":  "socket:[12345]",
		"100/fd/4":  "/dev/null",
		"200/fd/5":  "socket:[23456]",
		"200/fd/6":  "socket:[12345]", // a forked worker sharing the socket
		"300/fd/1":  "socket:[999]",
		"400/fd/7":  "socket:[555]",
		"self/fd/3": "socket:[12345]", // not a PID directory
	})
	if err := os.MkdirAll(filepath.Join(root, "500"), 0o755); err != nil { // no fd dir
		t.Fatal(err)
	}

	inodes, err := ListenInodes(root, 8080)
	if err != nil || !slices.Equal(inodes, []uint64{12345, 23456}) {
		t.Fatalf("inodes %v %v", inodes, err)
	}
	pids, err := ListeningPIDs(root, 8080)
	if err != nil || !slices.Equal(pids, []int{100, 200}) {
		t.Fatalf("pids %v %v", pids, err)
	}
	if pids, err := ListeningPIDs(root, 80); err != nil || !slices.Equal(pids, []int{400}) {
		t.Fatalf("port 80: %v %v", pids, err)
	}
	if pids, err := ListeningPIDs(root, 9999); err != nil || len(pids) != 0 {
		t.Fatalf("unused port: %v %v", pids, err)
	}
	if _, err := ListeningPIDs(root, 0); err == nil {
		t.Fatal("port 0 accepted")
	}

	// No tcp6 (IPv6 disabled) is fine; no tcp is an error.
	v4only := writeProc(t, tcp, "", map[string]string{"100/fd/3": "socket:[12345]"})
	if pids, err := ListeningPIDs(v4only, 8080); err != nil || !slices.Equal(pids, []int{100}) {
		t.Fatalf("v4 only: %v %v", pids, err)
	}
	if _, err := ListeningPIDs(t.TempDir(), 8080); err == nil {
		t.Fatal("missing net/tcp accepted")
	}
}

// The test's own listener on 127.0.0.1 is found in the real /proc.
func TestListeningPIDsRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Fatalf("no /proc/net/tcp on this Linux machine: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pids, err := ListeningPIDs("/proc", port)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, os.Getpid()) {
		t.Fatalf("port %d: pids %v do not include ours (%d)", port, pids, os.Getpid())
	}
}
