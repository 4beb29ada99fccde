package scrape

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tcpListen is the st column of a LISTEN socket in /proc/net/tcp{,6}.
const tcpListen = "0A"

// ListenInodes returns the inodes of the TCP sockets listening on port,
// IPv4 and IPv6, from procRoot/net/tcp and procRoot/net/tcp6 (procRoot is
// /proc, or the host's /proc mounted into a container). Those files show
// the network namespace of the process reading them: on bare metal (and
// with hostNetwork) that is the host's; a server inside another network
// namespace is not seen. A missing tcp6 file (IPv6 disabled) is not an
// error; a missing tcp file is.
func ListenInodes(procRoot string, port int) ([]uint64, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("listen inodes: port %d is not 1-65535", port)
	}
	var inodes []uint64
	for _, name := range []string{"tcp", "tcp6"} {
		path := filepath.Join(procRoot, "net", name)
		found, err := listenInodesFile(path, port)
		if err != nil {
			if name == "tcp6" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		inodes = append(inodes, found...)
	}
	slices.Sort(inodes)
	return slices.Compact(inodes), nil
}

// listenInodesFile scans one /proc/net/tcp-format file. Columns:
// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
// local_address is HEXIP:HEXPORT.
func listenInodesFile(path string, port int) ([]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("listen inodes: %w", err)
	}
	defer f.Close()
	var inodes []uint64
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil || inode == 0 {
			continue
		}
		inodes = append(inodes, inode)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("listen inodes: read %s: %w", path, err)
	}
	return inodes, nil
}

// PIDsForInodes returns the PIDs, sorted, of the processes that hold one of
// the socket inodes open: a link procRoot/PID/fd/N -> socket:[INODE].
// Processes whose fd directory cannot be read (another user's, without
// CAP_SYS_PTRACE or root; or gone meanwhile) are skipped.
func PIDsForInodes(procRoot string, inodes []uint64) ([]int, error) {
	if len(inodes) == 0 {
		return nil, nil
	}
	want := make(map[string]bool, len(inodes))
	for _, ino := range inodes {
		want["socket:["+strconv.FormatUint(ino, 10)+"]"] = true
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("pids for inodes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err == nil && want[target] {
				pids = append(pids, pid)
				break
			}
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// ListeningPIDs returns the PIDs of the processes holding a TCP socket that
// listens on port (see [ListenInodes] for the network-namespace caveat).
// Several PIDs are normal: a pre-forked server shares one socket, and
// SO_REUSEPORT gives each worker its own. None found is an empty slice,
// not an error.
func ListeningPIDs(procRoot string, port int) ([]int, error) {
	inodes, err := ListenInodes(procRoot, port)
	if err != nil {
		return nil, err
	}
	return PIDsForInodes(procRoot, inodes)
}

// PortOwners finds the processes listening on local ports, for targets
// named by port or by a loopback URL, and follows them: a port's owners are
// looked up again as soon as none of the cached owners is alive (the server
// restarted as a new process) or none was ever found (the server starts
// after the agent), and at least every Refresh otherwise. Looking a port up
// reads /proc/net/tcp{,6} and, only when something listens on the port,
// every process's fd directory. It is not safe for concurrent use.
type PortOwners struct {
	procRoot string
	// Refresh is the longest a found owner is trusted without a look-up
	// (default one minute).
	Refresh time.Duration
	ports   map[int]portOwners
	lookups int
	// lookup finds the PIDs listening on a port; tests replace it.
	lookup func(procRoot string, port int) ([]int, error)
}

type portOwners struct {
	pids []int
	at   time.Time
	seen time.Time // last asked for
}

// NewPortOwners returns a finder of port owners under procRoot.
func NewPortOwners(procRoot string) *PortOwners {
	return &PortOwners{procRoot: procRoot, Refresh: time.Minute, ports: map[int]portOwners{}, lookup: ListeningPIDs}
}

// Lookups counts the look-ups made, for tests and benchmarks.
func (o *PortOwners) Lookups() int { return o.lookups }

// Owners returns the PIDs listening on port at now; alive reports whether
// a PID is a running process (the tick's process scan). Ports not asked for
// during Refresh are forgotten.
func (o *PortOwners) Owners(now time.Time, port int, alive func(pid int) bool) []int {
	p, ok := o.ports[port]
	stale := !ok || now.Sub(p.at) > o.Refresh || !slices.ContainsFunc(p.pids, alive)
	if stale {
		pids, _ := o.lookup(o.procRoot, port) // unreadable is as good as not found: retried next tick
		o.lookups++
		p = portOwners{pids: pids, at: now}
	}
	p.seen = now
	o.ports[port] = p
	for k, v := range o.ports {
		if now.Sub(v.seen) > o.Refresh {
			delete(o.ports, k)
		}
	}
	return p.pids
}

// LocalPort returns the TCP port of a metrics URL whose host is this
// machine: loopback, "localhost", or an address of one of its interfaces
// (a server on the node's own IP, as with hostNetwork). A URL without a
// port gets its scheme's (80, 443). 0 means the URL is not local.
func LocalPort(rawURL string) int {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	local := host == "localhost" || (ip != nil && ip.IsLoopback())
	if !local && ip != nil {
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				local = true
				break
			}
		}
	}
	if !local {
		return 0
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return 0
		}
		return n
	}
	switch u.Scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}
