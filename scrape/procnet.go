package scrape

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
