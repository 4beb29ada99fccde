package workload

import (
	"bytes"
	"strings"
)

// Container runtimes named by a cgroup path.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
	RuntimePodman     = "podman"
)

// Cgroup is what a process's cgroup says about the workload it belongs to.
// Empty fields are unknown.
type Cgroup struct {
	// Path is the cgroup path that the other fields were read from: the
	// unified (v2) path, or the v1 hierarchy's path that says the most.
	Path string
	// ContainerID is the container's 64-hex-digit ID.
	ContainerID string
	// Runtime is the container runtime when the path names it
	// (RuntimeContainerd, RuntimeCRIO, RuntimeDocker, RuntimePodman).
	Runtime string
	// PodUID is the Kubernetes pod UID, with dashes (static pods have a
	// 32-hex-digit UID without dashes).
	PodUID string
	// SlurmJob is the Slurm job ID, such as "4211".
	SlurmJob string
	// SlurmStep is the Slurm step, such as "0", "batch" or "extern".
	SlurmStep string
	// SystemdUnit is the deepest systemd service in the path, such as
	// "vllm.service".
	SystemdUnit string
}

// score ranks how much a cgroup says: a container beats a pod beats a
// Slurm job beats a systemd unit.
func (c *Cgroup) score() int {
	s := 0
	if c.ContainerID != "" {
		s += 8
	}
	if c.PodUID != "" {
		s += 4
	}
	if c.SlurmJob != "" {
		s += 2
	}
	if c.SystemdUnit != "" {
		s++
	}
	return s
}

// ParseCgroupFile parses the content of /proc/PID/cgroup, with cgroup v1
// lines ("ID:controllers:path"), the v2 line ("0::path") or both (hybrid).
// The line whose path says the most wins (see Cgroup); on a tie the v2
// line, then the earlier line. A file without any line gives a zero Cgroup.
func ParseCgroupFile(data []byte) Cgroup {
	var best Cgroup
	bestScore, bestV2 := -1, false
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		_, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		controllers, path, ok := bytes.Cut(rest, []byte{':'})
		if !ok || len(path) == 0 {
			continue
		}
		v2 := len(controllers) == 0 && bytes.HasPrefix(line, []byte("0:"))
		c := ParseCgroupPath(string(path))
		s := c.score()
		if s > bestScore || (s == bestScore && v2 && !bestV2) {
			best, bestScore, bestV2 = c, s, v2
		}
	}
	return best
}

// ParseCgroupPath reads one cgroup path. It knows:
//
//   - containers: containerd "cri-containerd-<id>.scope" and
//     "…:cri-containerd:<id>", CRI-O "crio-<id>.scope", Docker
//     "docker-<id>.scope" and "/docker/<id>", Podman "libpod-<id>.scope",
//     and a bare "<id>" segment (the cgroupfs driver,
//     "/kubepods/burstable/pod<uid>/<id>"); conmon scopes are not containers;
//   - pods: "kubepods-<qos>-pod<uid with _>.slice" (systemd driver) and
//     "pod<uid>" (cgroupfs driver);
//   - Slurm: "job_<id>" below a segment naming slurm ("/slurm/uid_<uid>/
//     job_<id>/step_<n>", "/system.slice/slurmstepd.scope/job_<id>/step_<n>");
//   - systemd: the deepest "<name>.service" segment.
func ParseCgroupPath(path string) Cgroup {
	c := Cgroup{Path: path}
	slurm := false
	var seg string
	for rest := path; rest != ""; {
		seg, rest, _ = strings.Cut(rest, "/")
		switch {
		case seg == "":
			continue
		case strings.HasSuffix(seg, ".service"):
			c.SystemdUnit = seg
		case strings.Contains(seg, "slurm"):
			slurm = true
		case slurm && strings.HasPrefix(seg, "job_") && isDigits(seg[4:]):
			c.SlurmJob = seg[4:]
		case c.SlurmJob != "" && strings.HasPrefix(seg, "step_") && len(seg) > 5:
			c.SlurmStep = seg[5:]
		}
		if uid := podUID(seg); uid != "" {
			c.PodUID = uid
		}
		if id, rt := containerID(seg); id != "" {
			c.ContainerID, c.Runtime = id, rt
		}
	}
	if c.Runtime == "" && c.ContainerID != "" && strings.Contains(path, "/docker/"+c.ContainerID) {
		c.Runtime = RuntimeDocker
	}
	return c
}

// containerPrefixes map scope-name prefixes to runtimes.
var containerPrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
	{"libpod-", RuntimePodman},
}

// containerID returns the container ID named by one path segment, and the
// runtime when the segment says it.
func containerID(seg string) (string, string) {
	if is64Hex(seg) {
		return seg, ""
	}
	// containerd's systemd form under cgroup v1: "<slice>:cri-containerd:<id>".
	if i := strings.LastIndexByte(seg, ':'); i >= 0 {
		if id := seg[i+1:]; is64Hex(id) {
			rt := ""
			if strings.Contains(seg[:i], "containerd") {
				rt = RuntimeContainerd
			} else if strings.Contains(seg[:i], "crio") {
				rt = RuntimeCRIO
			}
			return id, rt
		}
		return "", ""
	}
	name, ok := strings.CutSuffix(seg, ".scope")
	if !ok {
		return "", ""
	}
	for _, p := range containerPrefixes {
		if id, ok := strings.CutPrefix(name, p.prefix); ok && is64Hex(id) {
			return id, p.runtime // "crio-conmon-<id>" fails is64Hex: not a container
		}
	}
	return "", ""
}

// podUID returns the pod UID named by one path segment.
func podUID(seg string) string {
	seg, _, _ = strings.Cut(seg, ":") // "<pod slice>:cri-containerd:<id>"
	if s, ok := strings.CutSuffix(seg, ".slice"); ok {
		// kubepods-burstable-pod<uid>.slice, kubelet-kubepods-pod<uid>.slice
		i := strings.LastIndex(s, "-pod")
		if i < 0 || !strings.Contains(s[:i], "kubepods") {
			return ""
		}
		uid := strings.ReplaceAll(s[i+4:], "_", "-")
		if isUID(uid) {
			return uid
		}
		return ""
	}
	if uid, ok := strings.CutPrefix(seg, "pod"); ok && isUID(uid) {
		return uid
	}
	return ""
}

// isUID reports whether s is a pod UID: a UUID (8-4-4-4-12 hex digits) or
// the 32 hex digits of a static pod's config hash.
func isUID(s string) bool {
	switch len(s) {
	case 32:
		return isHex(s)
	case 36:
		for i := 0; i < len(s); i++ {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if s[i] != '-' {
					return false
				}
			} else if !isHexByte(s[i]) {
				return false
			}
		}
		return true
	}
	return false
}

func is64Hex(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return s != ""
}

func isHexByte(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') }

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
