// Package workload discovers the workloads running on a node and names them
// with the workload label set of package attribution.
//
// # What it owns
//
//   - [Scanner]: a cheap procfs scan (--path.procfs) giving each process's
//     CPU time and its change since the previous scan, and, read once per
//     process, its command line, effective UID and cgroup.
//   - [ParseCgroupFile], [ParseCgroupPath]: container ID and runtime
//     (containerd, CRI-O, Docker, Podman), pod UID, Slurm job and step,
//     systemd unit, from cgroup v1 and v2 paths.
//   - [PodWatcher]: metadata of the pods on this node from the API server.
//   - [PodResources]: which container holds which GPU, from the kubelet's
//     pod-resources gRPC API, with device IDs normalised by [ParseDeviceID].
//   - [Rules] and [Matcher]: the configuration that names workloads, from
//     pod labels and annotations in Kubernetes and from process rules
//     outside it; [Resolver] applies it to every process of a scan.
//
// It must not import agent, exporter or any Prometheus package; it imports
// attribution only for the Key and Share types.
//
// # Process scan
//
// Scan lists the procfs root once and reads /proc/PID/stat of every
// process, reusing its buffers; cgroup, cmdline and status are read only for
// a process not seen before, identified by PID and start time (so a reused
// PID is read again), and again when its comm changes (an exec). A process
// that changes cgroup without an exec keeps its first one. CPU time is utime
// + stime in clock ticks, converted with AT_CLKTCK from the auxiliary vector
// (100 when absent). The first scan is a baseline: every delta is 0. Later,
// a process seen for the first time gets its whole CPU time as its delta if
// it started after the previous scan, and 0 otherwise (its past cannot be
// placed in time). CPU time of a process that starts and exits between two
// scans is not seen.
//
// A process whose files cannot be read is skipped and counted by reason,
// permission_denied (EACCES, EPERM: hardened containers, hidepid) or
// vanished (ENOENT, ESRCH: it exited mid-scan), and the scan returns every
// other process; only a root that cannot be listed fails the scan.
//
// # Pod metadata: an API server informer, not the kubelet's /pods
//
// PodWatcher lists and watches pods through the API server with the field
// selector spec.nodeName=<NODE_NAME> (a client-go informer of pods; the
// full object is needed for container statuses and requests, and a
// transform keeps only those fields in memory). The kubelet's /pods endpoint
// would spare the API server, but reading it needs the nodes/proxy
// permission, which also allows exec into every pod of the node: far too
// much for an energy agent. A watch with a field selector costs the API
// server one watch per node, independent of cluster size, and needs only
// list and watch on pods. The watcher keeps a deleted pod resolvable
// for a minute, so the last tick of its processes is still attributed.
//
// # GPU allocations
//
// PodResources calls List on the kubelet's pod-resources socket
// (default /var/lib/kubelet/pod-resources/kubelet.sock) with the caller's
// context as its timeout. A missing socket is ErrNoPodResources (absent,
// not failed). Device IDs of the NVIDIA device plugin are normalised:
// "GPU-<uuid>" a whole GPU, "MIG-<uuid>" a MIG device (its parent comes
// from NVML), "<id>::<n>" a time-slicing replica (Shared: the same physical
// GPU is shared), "nvidia<N>" a GPU by index.
//
// # Naming workloads
//
// A process whose cgroup names a pod known to the PodWatcher belongs to
// that pod's container (found by container ID), labelled project, model_id
// and workload_type from the pod's annotations and labels: by default
// aiwatt.io/project, aiwatt.io/model-id and aiwatt.io/workload-type; any
// label or annotation can be mapped instead ([LabelMapping]), and for one
// key an annotation wins over a label. Any other process is named by the
// first matching [Rule] (command line regex, cgroup path regex, user, Slurm
// job, systemd unit), whose label values may use $1-style capture groups of
// the command line regex and the placeholders {{slurm_job}},
// {{slurm_step}}, {{systemd_unit}}, {{comm}}, {{uid}} and
// {{container_id}}; see [RuleLabels]. A process that matches nothing
// belongs to no workload: its activity is unattributed.
package workload
