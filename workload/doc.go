// Package workload discovers the workloads running on a node and names them
// with the workload label set of package attribution.
//
// # What it owns
//
//   - [Scanner]: a cheap procfs scan (--path.procfs) giving each process's
//     CPU time and its change since the previous scan, the CPU time of the
//     children it reaped that no scan saw, and, read once per process (again
//     after an exec), its command line, effective UID, cgroup and, where the
//     cgroup names no Slurm job, the job from its environment.
//   - [CPUAccount]: each workload's CPU time per interval, from cgroup CPU
//     counters where a cgroup stands for one workload and from process
//     times otherwise; the node's busy share without steal ([NodeCPU]) and
//     the busy CPU time nothing accounts for.
//   - [GPUClaimer]: who holds or uses each GPU in a tick, the one set of
//     claim rules of the agent and `aiwatt run`.
//   - [Owners]: a scan's processes by PID, naming rule and systemd unit,
//     for tying inference targets to workloads.
//   - [ParseCgroupFile], [ParseCgroupPath]: container ID and runtime
//     (containerd, CRI-O, Docker, Podman), pod UID, Slurm job and step,
//     systemd unit, from cgroup v1 and v2 paths.
//   - [PodWatcher]: metadata of the pods on this node from the API server.
//   - [PodResources]: which container holds which GPU, from the kubelet's
//     pod-resources gRPC API (a small client over net/http, no grpc-go),
//     device plugins (device IDs normalised by
//     [ParseDeviceID]) and dynamic resource allocation ([ParseDRADevice]).
//   - [Rules] and [Matcher]: the configuration that names workloads, from
//     pod labels and annotations in Kubernetes and from process rules
//     outside it; [Resolver] applies it to every process of a scan.
//
// It must not import agent, exporter or any Prometheus package; it imports
// attribution for the Key, Share and Device types, and dcgm for the GPU
// sample that claims are made from.
//
// # Process scan
//
// Scan lists the procfs root once and reads /proc/PID/stat of every
// process, reusing its buffers; cgroup, cmdline and status are read only for
// a process not seen before, identified by PID and start time (so a reused
// PID is read again), and again after an exec. A process that changes
// cgroup without an exec keeps its first one (and the [Resolver], whose
// cache follows the scanner's per-process info, its first workload). The
// processes come back in PID order, as procfs lists them, without a sort;
// a sampling loop hands a result it is done with back ([Scanner.Recycle])
// so the next scan fills the same array. CPU time is utime + stime in
// clock ticks, converted with AT_CLKTCK from the auxiliary vector (100 when
// absent). The first scan is a baseline: every delta is 0. Later, a process
// seen for the first time gets its whole CPU time as its delta if it
// started after the previous scan, and 0 otherwise (its past cannot be
// placed in time).
//
// Processes that start and exit between two scans are counted through
// their reaper: when a parent waits for a child, the child's CPU time (and
// that of the children it waited for) moves into the parent's cutime +
// cstime. A process's ReapedCPUSeconds is the growth of its cutime + cstime
// less what the scans already counted of the children that vanished since
// the previous scan: a vanished process's last utime + stime + cutime +
// cstime is owed to its nearest living ancestor and subtracted from that
// ancestor's growth, for at most two scans (after which a child reaped
// elsewhere, or auto-reaped under SIGCHLD ignored, is forgiven). What stays
// unseen is the time of an orphan reaped by a process outside the scan,
// and of a child whose parent ignores SIGCHLD.
//
// An exec is detected at no extra cost: the start addresses of the code
// segment and of the stack (fields 26 and 28 of stat) move on every exec,
// the stack's with the length of the new command line even without
// address-space randomisation, so the next scan re-reads the process.
// Where the kernel hides these fields (a reader without ptrace-read access
// to the process, shown as 0), every process's command line is re-read once
// every [DefaultCmdlineRecheckScans] scans (one minute at 5 s; spread over
// the scans by PID), which bounds how long an exec under the same comm
// keeps its old workload. A changed comm is always seen at the next scan.
//
// Where a process's cgroup names neither a Slurm job nor a container or
// pod, its environment is read once (/proc/PID/environ, readable by its
// owner and root): SLURM_JOB_ID, SLURM_STEP_ID and SLURM_JOB_USER name the
// job on nodes without Slurm's cgroup plugins ({{slurm_user}} in rule
// labels).
//
// A process whose files cannot be read is skipped and counted by reason,
// permission_denied (EACCES, EPERM: hardened containers, hidepid) or
// vanished (ENOENT, ESRCH: it exited mid-scan), and the scan returns every
// other process; only a root that cannot be listed fails the scan.
//
// # Pod metadata: a watch of the API server, not the kubelet's /pods
//
// PodWatcher lists and watches pods through the API server with the field
// selector spec.nodeName=<NODE_NAME>, through internal/kubeapi, aiwatt's own
// small client (client-go's scheme and types cost the agent megabytes of
// memory for these two requests). The full object is needed for container
// statuses and requests; the list and the watch stream are decoded one pod at
// a time into APIPod, which holds only the fields PodFromAPI reads, so a
// pod's managedFields and last-applied-configuration are never kept. A watch
// resumes from the last resource version seen (bookmarks keep it current);
// 410 Gone means a new list, which replaces the set. The kubelet's /pods
// endpoint would spare the API server, but reading it needs the nodes/proxy
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
// not failed). The client is a unary gRPC call written over net/http's
// HTTP/2 without TLS, not grpc-go: one connection, reused; the context's
// deadline sent as grpc-timeout; the status from grpc-status and the
// percent-decoded grpc-message as a [StatusError] (DeadlineExceeded counts
// as a timeout, PermissionDenied as a permission error); responses over
// 16 MiB and compressed ones refused; a call that could not be delivered
// on the pooled connection (the kubelet restarted) made once more on a new
// one. The response is decoded with protowire, reading only the fields
// below (field numbers of the kubelet's api.proto), skipping the others;
// malformed protobuf is an error. Neither grpc-go nor the kubelet's
// generated types are linked into the agent (the tests serve the real
// kubelet API with them). Device IDs of the NVIDIA device plugin are normalised:
// "GPU-<uuid>" a whole GPU, "MIG-<uuid>" a MIG device (its parent comes
// from NVML), "<id>::<n>" a time-slicing replica (Shared: the same physical
// GPU is shared), "nvidia<N>" a GPU by index. Devices allocated through
// dynamic resource allocation (the kubelet's DynamicResources; drivers
// under the resource prefix, such as gpu.nvidia.com) map by a GPU UUID in
// the device or CDI name, else by the NVIDIA DRA driver's "gpu-<N>" names
// (by index); its MIG devices ("gpu-<N>-mig-…") and shared devices (with a
// share ID) make the GPU shared among their holders, since the instance is
// not named.
//
// # CPU time per workload
//
// [CPUAccount] decides, per interval, which counter backs which workload:
//
//   - containers, pods, Slurm jobs and steps, systemd units: a cgroup whose
//     path names one and whose visible processes all belong to one workload
//     is charged by the cgroup's own counter, cgroup v2 cpu.stat usage_usec
//     or v1 cpuacct.usage (under --path.sysfs/fs/cgroup), which counts every
//     process that ever ran in it. The cgroup is read for as long as it
//     exists and for CgroupIdleScans scans without a visible process, so a
//     container whose processes all exit between two scans is charged its
//     time exactly; what it used after the last read before its cgroup was
//     removed is lost. A path seen from inside a private cgroup namespace
//     ("/../…", relative to the agent's own container) is found again under
//     the root from the kubelet's layout for pods and containers; any other
//     such path counts as below, and so does a Slurm job read from the
//     environment (the path is not the job's).
//   - rule-named process trees, cgroups shared by several workloads (or
//     with processes of none), and any cgroup whose counter cannot be read:
//     each process's own time plus its reaped children's.
//
// A process reaped by a parent in another cgroup (a container's first
// process reaped by its runtime shim, a service's main process by systemd)
// leaves what it used after the last scan to its own cgroup: the reaper is
// credited with no reaped time for that interval, since that part cannot
// be told apart from its other reaped children's. Where that cgroup has no
// counter, the part is not placed and shows as unaccounted CPU time.
//
// The node's busy CPU time (user + nice + system + irq + softirq from
// procfs stat; steal is neither busy nor idle, since the guest's CPUs were
// not running anything of this node) less all the CPU time placed is the
// unaccounted CPU time, exported by the agent as
// aiwatt_node_unaccounted_cpu_seconds_total: interrupts not charged to any
// task, and what the rules above could not see. The busy share (busy over
// busy + idle + iowait) splits CPU and DRAM energy into active and idle.
//
// # GPU claims
//
// [GPUClaimer.Claim] turns one GPU's sample into its claims, first match
// wins: assigned by the caller (aiwatt run --gpu.devices); MIG instances,
// held by their allocation or shared by their processes; one allocation of
// the whole GPU; one dcgm-exporter pod and no process; every process in one
// workload (sole user); otherwise shared by SM utilisation, or by process
// count when any process's is unknown. A GPU's busy share is its SM
// utilisation; when unknown, its processes' sum when all are known, else 1
// while anything runs on it.
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
