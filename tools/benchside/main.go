// Command benchside runs aiwatt and its peers side by side over the same
// fixture powercap tree and the same number of processes, and prints what
// each costs per second of operation at a 15 s and a 30 s scrape interval.
//
// For every process count (-procs, default 80 and 570) it starts every
// exporter (rows below) in its own PID namespace with a fresh /proc holding
// the exporter and procs-1 idle sleep processes, each exporter pinned to one
// core (taskset -cpu), all serving the same sysfs tree on 127.0.0.1. Then:
//
//  1. idle: it leaves them all alone for -idle and reads each one's CPU time
//     (the sum of its threads' /proc/PID/task/TID/schedstat run time, in
//     nanoseconds, cross-checked against utime+stime of /proc/PID/stat) before
//     and after: idle CPU per second, the exporter's own background work
//     (aiwatt's 5 s sampling tick, Kepler's 5 s monitor, the Go runtime);
//  2. scrapes: it scrapes each exporter -scrapes times in turn, back to back
//     from one client (Prometheus's Accept header, gzip), and reads its CPU
//     time before and after: CPU per scrape = (block CPU − idle rate × block
//     duration) / scrapes;
//  3. paced: for each scrape interval I (-intervals), it scrapes every
//     exporter once every I, -paced times (each exporter at its own offset
//     within I, so that no two are scraped at once), and reads its CPU time
//     before and after: CPU per second of operation at I = CPU over the
//     window / its length. This is what a Prometheus scraping every I costs,
//     whatever the exporter does between scrapes or on a scrape (aiwatt
//     samples on a scrape when nothing needs a steady rate; see
//     agent.Agent.Fresh), so it is the figure the ratio column compares.
//     The back-to-back block above cannot show that: only its first scrape
//     in an interval would sample.
//
// RSS is VmRSS after the idle window and after the scrapes, with its
// anonymous part (RssAnon: heap, stacks) beside it; series are the sample
// lines of one uncompressed text scrape at the end.
//
// Rows: node_exporter with only the rapl collector, the same with
// --web.disable-exporter-metrics, Kepler (when -kepler names a binary; its
// row says "not measured" otherwise), aiwatt with no configuration, aiwatt
// with a rule that names the sleep processes (10 workloads), and aiwatt
// watching the pods of its node (-pods, default 110): a fake API server in
// this process (internal/kubetest) serves that many realistic pods, 11 to
// 14 KB of JSON each with managedFields and a last-applied-configuration,
// and the agent runs with --kubernetes.node-name and
// --kubernetes.kubeconfig pointing at it. With -baseline the baseline
// binary gets a pod-watch row too.
//
// Usage (from the repository root, after make build):
//
//	go run ./tools/benchside -aiwatt bin/aiwatt -node-exporter PATH [-kepler PATH]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/inferensys/aiwatt/internal/kubetest"
	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// scrapeAccept is the Accept header of a Prometheus scrape.
const scrapeAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," +
	"text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// rulesConfig is the configuration of the "aiwatt, rules" row: the sleep
// processes benchside spawns (sleep 1000000 … sleep 1000009) become ten
// workloads.
const rulesConfig = `workloads:
  rules:
    - name: bench-sleepers
      match: {cmdline: '^sleep 100000(\d)$'}
      labels: {project: bench, model_id: 'idle-$1', workload_type: batch}
`

// config holds the command-line flags.
type config struct {
	aiwatt         string
	nodeExporter   string
	kepler         string
	keplerLabel    string
	baseline       string
	pods           int
	fixture        string
	procs          []int
	idle           time.Duration
	paced          int
	scrapes        int
	warmup         int
	cpu            string
	pidns          bool
	intervals      []time.Duration
	aiwattInterval time.Duration
	startTimeout   time.Duration
	keep           bool
}

func main() {
	var c config
	procs := "80,570"
	intervals := "15s,30s"
	flag.StringVar(&c.aiwatt, "aiwatt", "bin/aiwatt", "aiwatt binary (make build writes bin/aiwatt)")
	flag.StringVar(&c.nodeExporter, "node-exporter", envOr("NODE_EXPORTER", "node_exporter"), "node_exporter binary, name in PATH or path (default $NODE_EXPORTER)")
	flag.StringVar(&c.kepler, "kepler", os.Getenv("KEPLER"), "Kepler binary (default $KEPLER); empty: Kepler's row says not measured")
	flag.StringVar(&c.keplerLabel, "kepler-label", "Kepler v0.11.4", "Kepler's row name: the version the -kepler binary was built from (its build information cannot say)")
	flag.StringVar(&c.baseline, "baseline", "", "a second aiwatt binary (e.g. the previous commit's): adds its nothing-configured row, measured in the same windows")
	flag.IntVar(&c.pods, "pods", 110, "pods on the agent's node in the pod-watch rows (0: no pod-watch rows)")
	flag.StringVar(&c.fixture, "fixture", "rapl/testdata/intel-2socket.sysfs", "sysfs fixture tree every exporter serves")
	flag.StringVar(&procs, "procs", procs, "comma-separated process counts, one scenario each (the exporter plus count-1 sleep processes)")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle window over which background CPU is measured")
	flag.IntVar(&c.paced, "paced", 4, "scrapes of each exporter per -intervals value in the paced windows (a window lasts paced × interval)")
	flag.IntVar(&c.scrapes, "scrapes", 1000, "measured scrapes of each exporter per scenario")
	flag.IntVar(&c.warmup, "warmup", 20, "unmeasured scrapes of each exporter before its idle window")
	flag.StringVar(&c.cpu, "cpu", "1", "CPU list every exporter is pinned to (taskset -c); empty: no pinning")
	flag.BoolVar(&c.pidns, "pidns", true, "run each exporter in its own PID namespace with its own /proc (unshare); false: the host's /proc, plus the sleep processes")
	flag.StringVar(&intervals, "intervals", intervals, "comma-separated scrape intervals for the per-second figures")
	flag.DurationVar(&c.aiwattInterval, "aiwatt-interval", 5*time.Second, "aiwatt's --agent.interval (its default)")
	flag.DurationVar(&c.startTimeout, "start-timeout", 60*time.Second, "how long each exporter may take to answer its first scrape")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (fixture tree, configs and exporter logs)")
	flag.Parse()
	var err error
	if c.procs, err = parseInts(procs); err == nil {
		c.intervals, err = parseDurations(intervals)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchside:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, c, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchside:", err)
		os.Exit(1)
	}
}

// envOr returns the environment variable key, or def when it is empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// row is one exporter configuration of the table.
type row struct {
	name  string
	bin   string // empty: not measured
	why   string // why it is not measured
	args  func(sysfs, addr, dir string) ([]string, error)
	ready string // a metric name prefix that must appear before measuring
}

// run checks the binaries, materialises the tree and runs every scenario.
func run(ctx context.Context, c config, w io.Writer) error {
	if c.scrapes <= 0 || c.warmup < 0 || c.idle <= 0 || c.paced <= 0 || len(c.procs) == 0 || len(c.intervals) == 0 {
		return errors.New("need -scrapes > 0, -warmup >= 0, -idle > 0, -paced > 0, at least one -procs count and one -intervals value")
	}
	for _, n := range c.procs {
		if n < 1 || n > 5000 {
			return fmt.Errorf("-procs %d: want 1..5000 (the exporter counts as one)", n)
		}
	}
	aiwattBin, err := filepath.Abs(c.aiwatt)
	if err != nil {
		return fmt.Errorf("aiwatt binary %s: %w", c.aiwatt, err)
	}
	if _, err := os.Stat(aiwattBin); err != nil {
		return fmt.Errorf("aiwatt binary (run make build first): %w", err)
	}
	neBin, err := exec.LookPath(c.nodeExporter)
	if err != nil {
		return fmt.Errorf("node_exporter binary (go install github.com/prometheus/node_exporter@v1.12.1, then -node-exporter or $NODE_EXPORTER): %w", err)
	}
	keplerBin, keplerWhy := "", "not measured: no -kepler / $KEPLER (build Kepler v0.11.4 from source)"
	if c.kepler != "" {
		if keplerBin, err = exec.LookPath(c.kepler); err != nil {
			return fmt.Errorf("kepler binary %s: %w", c.kepler, err)
		}
	}
	tmp, err := os.MkdirTemp("", "aiwatt-benchside-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if c.keep {
		fmt.Fprintln(w, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	data, err := os.ReadFile(c.fixture)
	if err != nil {
		return fmt.Errorf("read fixture: %w", err)
	}
	entries, err := sysfsfixture.Parse(data)
	if err != nil {
		return fmt.Errorf("parse fixture %s: %w", c.fixture, err)
	}
	sysfs := filepath.Join(tmp, "sys")
	if err := sysfsfixture.Write(sysfs, entries); err != nil {
		return fmt.Errorf("write tree: %w", err)
	}
	zones := countZones(entries)

	neVersion := modVersion(ctx, neBin)
	fmt.Fprintf(w, "node_exporter: %s (%s, Go build info)\n", neVersion, neBin)
	if keplerBin != "" {
		fmt.Fprintf(w, "kepler:        %s (%s; Go build info says %s, a build from a source checkout)\n", c.keplerLabel, keplerBin, modVersion(ctx, keplerBin))
	} else {
		fmt.Fprintf(w, "kepler:        %s\n", keplerWhy)
	}
	fmt.Fprintf(w, "aiwatt:        %s (%s), --agent.interval=%s\n", firstLine(exec.CommandContext(ctx, aiwattBin, "--version")), aiwattBin, c.aiwattInterval)
	pin := "not pinned"
	if c.cpu != "" {
		pin = "each exporter pinned to CPU " + c.cpu + " (taskset)"
	}
	ns := "each exporter in its own PID namespace with its own /proc"
	if !c.pidns {
		ns = "host PID namespace: exporters that scan /proc also see every other process on the machine"
	}
	fmt.Fprintf(w, "fixture:       %s (%d zones); %s; %s\n", c.fixture, zones, pin, ns)
	fmt.Fprintf(w, "method:        idle window %s; paced windows of %d scrapes each at every interval %v (CPU ms/s columns); then %d scrapes each back to back (after %d unmeasured), one client, gzip\n", c.idle, c.paced, c.intervals, c.scrapes, c.warmup)

	rows := []row{
		{name: "node_exporter " + neVersion + ", rapl only", bin: neBin, ready: "node_rapl_", args: func(sysfs, addr, _ string) ([]string, error) {
			return []string{"--collector.disable-defaults", "--collector.rapl", "--path.sysfs=" + sysfs, "--web.listen-address=" + addr}, nil
		}},
		{name: "node_exporter " + neVersion + ", rapl, --web.disable-exporter-metrics", bin: neBin, ready: "node_rapl_", args: func(sysfs, addr, _ string) ([]string, error) {
			return []string{"--collector.disable-defaults", "--collector.rapl", "--web.disable-exporter-metrics", "--path.sysfs=" + sysfs, "--web.listen-address=" + addr}, nil
		}},
		{name: c.keplerLabel, bin: keplerBin, why: keplerWhy, ready: "kepler_node_cpu_joules_total", args: keplerArgs},
		{name: "aiwatt, nothing configured", bin: aiwattBin, ready: "aiwatt_cpu_energy_joules_total", args: func(sysfs, addr, _ string) ([]string, error) {
			return []string{"agent", "--path.sysfs=" + sysfs, "--web.listen-address=" + addr, "--agent.interval=" + c.aiwattInterval.String()}, nil
		}},
		{name: "aiwatt, rules configured", bin: aiwattBin, ready: "aiwatt_workload_energy_joules_total", args: func(sysfs, addr, dir string) ([]string, error) {
			file := filepath.Join(dir, "aiwatt-rules.yml")
			if err := os.WriteFile(file, []byte(rulesConfig), 0o644); err != nil {
				return nil, fmt.Errorf("write %s: %w", file, err)
			}
			return []string{"agent", "--path.sysfs=" + sysfs, "--web.listen-address=" + addr, "--agent.interval=" + c.aiwattInterval.String(), "--config.file=" + file}, nil
		}},
	}
	var base string
	if c.baseline != "" {
		base, err = filepath.Abs(c.baseline)
		if err != nil {
			return fmt.Errorf("baseline binary %s: %w", c.baseline, err)
		}
		if _, err := os.Stat(base); err != nil {
			return fmt.Errorf("baseline binary: %w", err)
		}
		fmt.Fprintf(w, "baseline:      %s (%s)\n", firstLine(exec.CommandContext(ctx, base, "--version")), base)
		rows = append(rows, row{name: "aiwatt baseline, nothing configured", bin: base, ready: "aiwatt_cpu_energy_joules_total", args: func(sysfs, addr, _ string) ([]string, error) {
			return []string{"agent", "--path.sysfs=" + sysfs, "--web.listen-address=" + addr, "--agent.interval=" + c.aiwattInterval.String()}, nil
		}})
	}
	if c.pods > 0 {
		podRows, stop, err := podWatchRows(c, w, tmp, aiwattBin, base)
		if err != nil {
			return err
		}
		defer stop()
		rows = append(rows, podRows...)
	}
	for i, n := range c.procs {
		dir := filepath.Join(tmp, fmt.Sprintf("s%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("scenario directory: %w", err)
		}
		start := time.Now()
		res, err := runScenario(ctx, c, rows, sysfs, dir, n)
		if err != nil {
			return fmt.Errorf("scenario %d processes: %w", n, err)
		}
		printTable(w, c, n, res, time.Since(start))
	}
	return nil
}

// benchNode is the node name of the pod-watch rows.
const benchNode = "bench-node-1"

// podWatchRows starts the fake API server with c.pods realistic pods on
// benchNode and returns the pod-watch rows of the aiwatt binary (and of the
// baseline, when given) and a function that stops the server.
func podWatchRows(c config, w io.Writer, tmp, aiwattBin, baseBin string) ([]row, func(), error) {
	pods := kubetest.RealisticPods(benchNode, c.pods)
	var size int
	for _, p := range pods {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, nil, fmt.Errorf("pod JSON: %w", err)
		}
		size += len(b)
	}
	api := kubetest.Start(benchNode, pods, 100000, func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "benchside: fake API server: "+format+"\n", args...)
	})
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(api.Kubeconfig()), 0o600); err != nil {
		api.Close()
		return nil, nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	fmt.Fprintf(w, "kubernetes:    fake API server (internal/kubetest) on %s: %d pods on %s, %.1f KB of JSON each on average\n",
		api.URL, c.pods, benchNode, float64(size)/float64(c.pods)/1000)
	args := func(sysfs, addr, _ string) ([]string, error) {
		return []string{"agent", "--path.sysfs=" + sysfs, "--web.listen-address=" + addr, "--agent.interval=" + c.aiwattInterval.String(),
			"--kubernetes.node-name=" + benchNode, "--kubernetes.kubeconfig=" + kubeconfig}, nil
	}
	rows := []row{{name: fmt.Sprintf("aiwatt, pod watch, %d pods", c.pods), bin: aiwattBin, ready: "aiwatt_cpu_energy_joules_total", args: args}}
	if baseBin != "" {
		rows = append(rows, row{name: fmt.Sprintf("aiwatt baseline, pod watch, %d pods", c.pods), bin: baseBin, ready: "aiwatt_cpu_energy_joules_total", args: args})
	}
	stop := func() {
		fmt.Fprintf(w, "kubernetes:    the fake API server answered %d lists and %d watches (refused %d watch-lists, which falls back to list and watch)\n",
			api.Count("list"), api.Count("watch"), api.Count("refused"))
		api.Close()
	}
	return rows, stop, nil
}

// keplerArgs points Kepler at the fixture tree and /proc (its namespace's),
// listens on 127.0.0.1, and turns off Kubernetes, pprof and the stdout
// exporter; everything else is Kepler's default (all metric levels).
func keplerArgs(sysfs, addr, _ string) ([]string, error) {
	return []string{"--host.sysfs=" + sysfs, "--host.procfs=/proc", "--web.listen-address=" + addr,
		"--no-kube.enable", "--no-debug.pprof", "--no-exporter.stdout", "--exporter.prometheus"}, nil
}

// modVersion returns the main module's version from the build information
// Go embeds in bin ("v1.12.1"; "(devel)" for a build from a source checkout),
// or "version unknown".
func modVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err == nil {
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
				return f[2]
			}
		}
	}
	return "version unknown"
}

// result is what one exporter cost in one scenario.
type result struct {
	row       row
	procs     int           // processes in the exporter's /proc at the end
	idleCPU   time.Duration // CPU over the idle window
	idleWall  time.Duration
	blockCPU  time.Duration // CPU over the block of scrapes
	blockWall time.Duration
	ticksCPU  time.Duration // the same block from utime+stime, for the cross-check
	scrapes   int
	p50, p99  time.Duration
	rssIdle   int64
	rssAfter  int64
	anonIdle  int64 // RssAnon: the part of RSS that is not file-backed (heap, stacks)
	anonAfter int64
	series    int
	gzipBytes int
	// pacedCPU and pacedWall are the paced windows' CPU and length, one per
	// -intervals value.
	pacedCPU  []time.Duration
	pacedWall []time.Duration
}

// idlePerSecond is the background CPU per second of wall time.
func (r result) idlePerSecond() float64 {
	return r.idleCPU.Seconds() / r.idleWall.Seconds()
}

// perScrape is the CPU of one scrape, the background share of the block
// taken out (never below zero: a block shorter than one tick can show less
// than the idle rate predicts).
func (r result) perScrape() float64 {
	v := (r.blockCPU.Seconds() - r.idlePerSecond()*r.blockWall.Seconds()) / float64(r.scrapes)
	return max(v, 0)
}

// perSecondAt is the CPU per second of operation when scraped every
// c.intervals[i], as measured in the paced window.
func (r result) perSecondAt(i int) float64 {
	if i >= len(r.pacedWall) || r.pacedWall[i] <= 0 {
		return 0
	}
	return r.pacedCPU[i].Seconds() / r.pacedWall[i].Seconds()
}

// pace scrapes every running exporter once per interval, n times, exporter k
// at offset k/len of the interval, and returns each one's CPU over the
// window and the window's length.
func pace(ctx context.Context, client *http.Client, procs []*exporterProc, interval time.Duration, n int) ([]time.Duration, time.Duration, error) {
	var live []int
	for i, p := range procs {
		if p.cmd != nil {
			live = append(live, i)
		}
	}
	before := make([]cpuSample, len(procs))
	for _, i := range live {
		var err error
		if before[i], err = procs[i].cpu(); err != nil {
			return nil, 0, err
		}
	}
	start := time.Now()
	for j := range n {
		for k, i := range live {
			at := start.Add(time.Duration(j)*interval + interval*time.Duration(k)/time.Duration(len(live)))
			select {
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			case <-time.After(time.Until(at)):
			}
			if _, err := get(ctx, client, procs[i].url, true); err != nil {
				return nil, 0, fmt.Errorf("%s paced scrape: %w", procs[i].row.name, err)
			}
		}
	}
	select {
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	case <-time.After(time.Until(start.Add(time.Duration(n) * interval))):
	}
	out := make([]time.Duration, len(procs))
	var wall time.Duration
	for _, i := range live {
		after, err := procs[i].cpu()
		if err != nil {
			return nil, 0, err
		}
		out[i] = after.cpu - before[i].cpu
		wall = after.at.Sub(start)
	}
	return out, wall, nil
}

// runScenario starts every row with n processes in its view, waits until all
// answer, runs the common idle window, then each row's block of scrapes.
// Every process is killed on return.
func runScenario(ctx context.Context, c config, rows []row, sysfs, dir string, n int) ([]result, error) {
	var procs []*exporterProc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DisableCompression: true, MaxIdleConnsPerHost: 1,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	defer client.CloseIdleConnections()
	// Every binary starts from the same page-cache state: out of the cache,
	// read from disk as an installed binary is after a reboot. A binary just
	// written by the linker sits in the cache in large folios, which the
	// kernel maps whole, and shows several MiB more file-backed RSS than the
	// same binary read back (measured: 52 against 37 MiB for aiwatt).
	for _, r := range rows {
		if r.bin != "" {
			if err := dropCache(r.bin); err != nil {
				return nil, err
			}
		}
	}
	for i, r := range rows {
		if r.bin == "" {
			procs = append(procs, &exporterProc{row: r})
			continue
		}
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		args, err := r.args(sysfs, addr, dir)
		if err != nil {
			return nil, err
		}
		p := &exporterProc{row: r, url: "http://" + addr + "/metrics", log: filepath.Join(dir, fmt.Sprintf("row%d.log", i))}
		procs = append(procs, p)
		if err := p.start(c, args, n); err != nil {
			return nil, err
		}
	}
	for _, p := range procs {
		if p.cmd == nil {
			continue
		}
		if err := p.waitReady(ctx, client, c.startTimeout); err != nil {
			return nil, err
		}
		for range c.warmup {
			if _, err := get(ctx, client, p.url, true); err != nil {
				return nil, fmt.Errorf("%s warm-up: %w", p.row.name, err)
			}
		}
	}
	out := make([]result, len(procs))
	before := make([]cpuSample, len(procs))
	for i, p := range procs {
		out[i].row = p.row
		if p.cmd == nil {
			continue
		}
		var err error
		if before[i], err = p.cpu(); err != nil {
			return nil, err
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(c.idle): // The idle window itself: what is measured is what the exporters do meanwhile.
	}
	for i, p := range procs {
		if p.cmd == nil {
			continue
		}
		after, err := p.cpu()
		if err != nil {
			return nil, err
		}
		out[i].idleCPU, out[i].idleWall = after.cpu-before[i].cpu, after.at.Sub(before[i].at)
		if out[i].rssIdle, out[i].anonIdle, err = rss(p.pid); err != nil {
			return nil, err
		}
	}
	for _, iv := range c.intervals {
		cpu, wall, err := pace(ctx, client, procs, iv, c.paced)
		if err != nil {
			return nil, err
		}
		for i := range out {
			out[i].pacedCPU = append(out[i].pacedCPU, cpu[i])
			out[i].pacedWall = append(out[i].pacedWall, wall)
		}
	}
	for i, p := range procs {
		if p.cmd == nil {
			continue
		}
		err := p.measure(ctx, client, c.scrapes, &out[i])
		if err != nil {
			return nil, err
		}
		if out[i].procs, err = countProcs(p.pid); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dropCache writes a binary's dirty pages back and drops it from the page
// cache (pages a running process maps stay).
func dropCache(bin string) error {
	path, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("find %s: %w", bin, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("drop %s from the page cache: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop %s from the page cache: %w", path, err)
	}
	return nil
}

// exporterProc is a started exporter.
type exporterProc struct {
	row row
	url string
	log string
	cmd *exec.Cmd // unshare (or the exporter itself without -pidns)
	pid int       // the exporter's PID as this process sees it

	sleepers []*exec.Cmd // without -pidns: the sleep processes
	done     chan struct{}
	waitErr  error
}

// start runs the exporter. With -pidns it runs, pinned, as
//
//	taskset -c CPU unshare --pid --fork --mount-proc --kill-child \
//	  sh -c 'spawn n-1 sleeps; exec exporter args'
//
// so the exporter is PID 1 of a namespace whose /proc holds it and its
// sleepers, and the kernel kills the sleepers when it dies.
func (p *exporterProc) start(c config, args []string, n int) error {
	f, err := os.Create(p.log)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.row.name, err)
	}
	defer f.Close()
	var argv []string
	if c.cpu != "" {
		argv = append(argv, "taskset", "-c", c.cpu)
	}
	if c.pidns {
		argv = append(argv, "unshare")
		if os.Geteuid() != 0 {
			argv = append(argv, "--user", "--map-root-user")
		}
		argv = append(argv, "--pid", "--fork", "--mount-proc", "--kill-child", "--",
			"sh", "-c", `i=0; while [ "$i" -lt "$SLEEPERS" ]; do sleep "100000$((i % 10))" & i=$((i+1)); done; exec "$@"`, "sh", p.row.bin)
	} else {
		for i := range n - 1 {
			s := exec.Command("sleep", fmt.Sprintf("100000%d", i%10))
			s.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := s.Start(); err != nil {
				p.stopSleepers()
				return fmt.Errorf("start sleep processes: %w", err)
			}
			p.sleepers = append(p.sleepers, s)
		}
		argv = append(argv, p.row.bin)
	}
	argv = append(argv, args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), fmt.Sprintf("SLEEPERS=%d", n-1))
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.stopSleepers()
		return fmt.Errorf("start %s: %w", p.row.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// stop kills the exporter (with -pidns, its namespace's init, which takes
// the sleepers with it) and reaps it; safe on one that never started.
func (p *exporterProc) stop() {
	if p.done == nil {
		return
	}
	if p.pid > 0 && p.pid != p.cmd.Process.Pid {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	p.stopSleepers()
}

func (p *exporterProc) stopSleepers() {
	for _, s := range p.sleepers {
		_ = s.Process.Kill()
		_ = s.Wait()
	}
	p.sleepers = nil
}

// findPID finds the exporter's PID: the started process itself, or with
// -pidns the child of unshare once it has exec'd the exporter.
func (p *exporterProc) findPID() (int, error) {
	if p.cmd.Args[0] != "taskset" && p.cmd.Args[0] != "unshare" {
		return p.cmd.Process.Pid, nil
	}
	if !slices.Contains(p.cmd.Args, "unshare") {
		return p.cmd.Process.Pid, nil // taskset execs the exporter.
	}
	children, err := childrenOf(p.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	want := p.row.bin
	if resolved, err := filepath.EvalSymlinks(want); err == nil {
		want = resolved
	}
	want = filepath.Base(want)
	for _, c := range children {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c))
		if err == nil && filepath.Base(exe) == want {
			return c, nil
		}
	}
	return 0, fmt.Errorf("no %s child of unshare (PID %d) yet", want, p.cmd.Process.Pid)
}

// waitReady polls /metrics until it answers 200 with the row's ready metric
// and the exporter's PID is known, or the deadline passes.
func (p *exporterProc) waitReady(ctx context.Context, client *http.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		body, err := get(ctx, client, p.url, false)
		if err == nil {
			if countLines(body, p.row.ready) > 0 {
				if p.pid, err = p.findPID(); err == nil {
					return nil
				}
			} else {
				err = fmt.Errorf("no line starting %q yet", p.row.ready)
			}
		}
		if ctx.Err() == nil || last == nil {
			last = err // Keep the last error that is not the deadline's.
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before answering (%v); its log:\n%s", p.row.name, p.waitErr, tail(p.log, 20))
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready within %s: %w; its log:\n%s", p.row.name, timeout, last, tail(p.log, 20))
		case <-tick.C:
		}
	}
}

// cpuSample is a process's CPU time at a moment.
type cpuSample struct {
	at    time.Time
	cpu   time.Duration // sum of the threads' schedstat run time
	ticks time.Duration // utime+stime of the process
}

// cpu reads the exporter's CPU time.
func (p *exporterProc) cpu() (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	var err error
	if s.cpu, err = schedRuntime(p.pid); err != nil {
		return s, err
	}
	s.ticks, err = statCPU(p.pid)
	return s, err
}

// measure scrapes n times and fills the block figures, RSS and series of r.
func (p *exporterProc) measure(ctx context.Context, client *http.Client, n int, r *result) error {
	before, err := p.cpu()
	if err != nil {
		return err
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		body, err := get(ctx, client, p.url, true)
		if err != nil {
			return fmt.Errorf("%s scrape: %w", p.row.name, err)
		}
		lat = append(lat, time.Since(start))
		r.gzipBytes = len(body)
	}
	after, err := p.cpu()
	if err != nil {
		return err
	}
	r.scrapes = n
	r.blockCPU, r.blockWall, r.ticksCPU = after.cpu-before.cpu, after.at.Sub(before.at), after.ticks-before.ticks
	if r.rssAfter, r.anonAfter, err = rss(p.pid); err != nil {
		return err
	}
	slices.Sort(lat)
	r.p50, r.p99 = lat[(len(lat)-1)*50/100], lat[(len(lat)-1)*99/100]
	body, err := get(ctx, client, p.url, false)
	if err != nil {
		return fmt.Errorf("%s series count: %w", p.row.name, err)
	}
	r.series = countSeries(body)
	return nil
}

// get fetches url with a Prometheus scrape's headers; gzip asks for (and
// returns, undecoded) a compressed body, as Prometheus would receive it.
func get(ctx context.Context, client *http.Client, url string, gzip bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	if gzip {
		req.Header.Set("Accept", scrapeAccept)
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	return body, nil
}

// schedRuntime sums the run time of every thread of pid
// (/proc/PID/task/TID/schedstat, first field, nanoseconds).
func schedRuntime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	var sum time.Duration
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // The thread exited meanwhile.
		}
		if err != nil {
			return 0, fmt.Errorf("read schedstat: %w", err)
		}
		ns, err := parseSchedstat(raw)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, e.Name(), err)
		}
		sum += ns
	}
	return sum, nil
}

// parseSchedstat returns the first field of a schedstat line (time on CPU, ns).
func parseSchedstat(raw []byte) (time.Duration, error) {
	f := strings.Fields(string(raw))
	if len(f) < 1 {
		return 0, errors.New("empty schedstat")
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse schedstat: %w", err)
	}
	return time.Duration(v), nil
}

// statCPU returns utime+stime of pid from /proc/PID/stat, at USER_HZ = 100
// (Linux's value on every mainstream architecture).
func statCPU(pid int) (time.Duration, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	ticks, err := parseStatCPU(raw)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// parseStatCPU returns fields 14 and 15 (utime, stime) of a /proc/PID/stat
// line, summed, in clock ticks.
func parseStatCPU(raw []byte) (int64, error) {
	// Field 2, comm, is in parentheses and may hold spaces: count fields after the last ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, errors.New("no ')'")
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields", len(f)+2)
	}
	var sum int64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse utime/stime: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// childrenOf lists the PIDs whose parent is pid.
func childrenOf(pid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // Gone meanwhile.
		}
		i := strings.LastIndexByte(string(raw), ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(string(raw[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out, nil
}

// countProcs counts the processes the exporter pid sees in its /proc.
func countProcs(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/root/proc", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n, nil
}

// rss returns the resident set size of pid (VmRSS of /proc/PID/status) and
// its anonymous part (RssAnon), in bytes. The rest of VmRSS is mostly the
// executable's pages, whose count depends on the kernel's page-cache folio
// sizes as much as on the program.
func rss(pid int) (total, anon int64, err error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if total, anon, err = parseStatus(raw); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return total, anon, nil
}

// parseStatus returns VmRSS and RssAnon of a /proc/PID/status text, in bytes.
func parseStatus(raw []byte) (total, anon int64, err error) {
	total, anon = -1, -1
	for line := range strings.Lines(string(raw)) {
		key, v, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "RssAnon") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse %s: %w", key, err)
		}
		if key == "VmRSS" {
			total = kb * 1024
		} else {
			anon = kb * 1024
		}
	}
	if total < 0 || anon < 0 {
		return 0, 0, errors.New("no VmRSS or RssAnon line")
	}
	return total, anon, nil
}

// freePort returns a free 127.0.0.1 address. Another process could take it
// before the exporter binds it; the exporter would then fail to start and
// waitReady would say so.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// countZones counts the zone directories of a tree with an energy_uj file.
func countZones(entries []sysfsfixture.Entry) int {
	n := 0
	for _, e := range entries {
		if !e.Dir && strings.HasPrefix(e.Path, "class/powercap/intel-rapl:") && strings.HasSuffix(e.Path, "/energy_uj") {
			n++
		}
	}
	return n
}

// countLines counts the sample lines of body that start with prefix.
func countLines(body []byte, prefix string) int {
	n := 0
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

// countSeries counts the sample lines of a text exposition (every line that
// is neither empty nor a # comment).
func countSeries(body []byte) int {
	n := 0
	for line := range strings.Lines(string(body)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// printTable writes one scenario's results.
func printTable(w io.Writer, c config, procs int, res []result, took time.Duration) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "\n%d processes (%s, load average %s, scenario took %s)\n", procs, time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "), took.Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "exporter\tprocs seen\tseries\tidle CPU ms/min\tCPU ms/scrape\t"
	for _, iv := range c.intervals {
		head += fmt.Sprintf("CPU ms/s @%s\t", iv)
	}
	head += fmt.Sprintf("ratio @%s\tRSS MiB idle → after\tanon MiB idle → after\tp50 latency\tgzip B\t", c.intervals[0])
	fmt.Fprintln(tw, head)
	var base float64
	for _, r := range res {
		if r.scrapes > 0 && base == 0 {
			base = r.perSecondAt(0)
		}
	}
	for _, r := range res {
		if r.scrapes == 0 {
			fmt.Fprintf(tw, "%s\t%s\t\n", r.row.name, r.row.why)
			continue
		}
		line := fmt.Sprintf("%s\t%d\t%d\t%.1f\t%.3f\t", r.row.name, r.procs, r.series,
			r.idlePerSecond()*60e3, r.perScrape()*1e3)
		for i := range c.intervals {
			line += fmt.Sprintf("%.3f\t", r.perSecondAt(i)*1e3)
		}
		ratio := "n/a"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", r.perSecondAt(0)/base)
		}
		line += fmt.Sprintf("%s\t%.1f → %.1f\t%.1f → %.1f\t%s\t%d\t", ratio, float64(r.rssIdle)/(1<<20), float64(r.rssAfter)/(1<<20),
			float64(r.anonIdle)/(1<<20), float64(r.anonAfter)/(1<<20), round(r.p50), r.gzipBytes)
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	// The cross-check: schedstat (ns) and utime+stime (10 ms ticks) should
	// agree to a few ticks over each block of scrapes.
	for _, r := range res {
		if r.scrapes == 0 {
			continue
		}
		if d := (r.blockCPU - r.ticksCPU).Abs(); d > 50*time.Millisecond && d > r.blockCPU/10 {
			fmt.Fprintf(w, "note: %s: schedstat says %s over the scrapes, utime+stime %s\n", r.row.name, r.blockCPU.Round(time.Millisecond), r.ticksCPU)
		}
	}
}

// round keeps three significant digits of a latency.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 100*time.Microsecond:
		return d.Round(time.Microsecond)
	default:
		return d.Round(100 * time.Nanosecond)
	}
}

// parseInts parses a comma-separated list of integers.
func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseDurations parses a comma-separated list of positive durations.
func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		v, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("list %q: want positive durations: %v", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// firstLine runs cmd and returns the first line of its combined output.
func firstLine(cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && line == "" {
		return "unknown (" + err.Error() + ")"
	}
	return line
}

// tail returns the last n lines of the file at path, for error messages.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
