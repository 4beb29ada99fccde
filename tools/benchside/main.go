// Command benchside runs aiwatt and Debian's prometheus-node-exporter (rapl
// collector only) side by side over the same sysfs fixture tree, scrapes each
// the same number of times, sequentially from one client on 127.0.0.1, and
// prints the CPU time each process spent per scrape, scrape latency and RSS.
//
// CPU time is utime+stime from /proc/PID/stat (whole process, all threads),
// read just before and just after each exporter's block of scrapes, so it
// includes whatever else the process did meanwhile (aiwatt's 5 s sampling
// tick, the Go runtime's background work). Its resolution is one clock tick
// (1/CLK_TCK s, 10 ms on Linux), hence the default of 2000 scrapes.
//
// Usage (from the repository root, after make build):
//
//	go run ./tools/benchside -aiwatt bin/aiwatt
package main

import (
	"bufio"
	"context"
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

	"github.com/inferensys/aiwatt/internal/sysfsfixture"
)

// scrapeAccept is the Accept header of a Prometheus scrape.
const scrapeAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," +
	"text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// config holds the command-line flags.
type config struct {
	aiwatt       string
	nodeExporter string
	fixture      string
	scrapes      int
	zones        int
	zoneScrapes  int
	warmup       int
	startTimeout time.Duration
	keepLogs     bool
}

func main() {
	var c config
	flag.StringVar(&c.aiwatt, "aiwatt", "bin/aiwatt", "aiwatt binary (make build writes bin/aiwatt)")
	flag.StringVar(&c.nodeExporter, "node-exporter", "prometheus-node-exporter", "node_exporter binary (name looked up in PATH, or a path)")
	flag.StringVar(&c.fixture, "fixture", "rapl/testdata/intel-2socket.sysfs", "sysfs fixture tree of the first scenario")
	flag.IntVar(&c.scrapes, "scrapes", 2000, "scrapes of each exporter in the fixture scenario")
	flag.IntVar(&c.zones, "zones", 1000, "zones of the synthetic scenario (a multiple of 4; 0 skips it)")
	flag.IntVar(&c.zoneScrapes, "zone-scrapes", 500, "scrapes of each exporter in the synthetic scenario (node_exporter takes tens of ms per scrape there)")
	flag.IntVar(&c.warmup, "warmup", 20, "unmeasured scrapes of each exporter before measuring")
	flag.DurationVar(&c.startTimeout, "start-timeout", 30*time.Second, "how long each exporter may take to answer its first scrape")
	flag.BoolVar(&c.keepLogs, "keep", false, "keep the temporary directory (fixture trees and exporter logs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, c, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchside:", err)
		os.Exit(1)
	}
}

// run materialises the trees, runs every scenario and prints the tables to w.
func run(ctx context.Context, c config, w io.Writer) error {
	if c.scrapes <= 0 || c.zoneScrapes <= 0 || c.warmup < 0 || c.zones < 0 || c.zones%4 != 0 {
		return errors.New("need -scrapes > 0, -zone-scrapes > 0, -warmup >= 0 and -zones a non-negative multiple of 4")
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
		return fmt.Errorf("node_exporter binary (apt-get install prometheus-node-exporter): %w", err)
	}
	tmp, err := os.MkdirTemp("", "aiwatt-benchside-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	if c.keepLogs {
		fmt.Fprintln(w, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	tck, tckNote := clockTicks()
	neVersion := firstLine(exec.CommandContext(ctx, neBin, "--version"))
	aiVersion := firstLine(exec.CommandContext(ctx, aiwattBin, "--version"))
	fmt.Fprintf(w, "node_exporter: %s (%s)\naiwatt:        %s (%s)\nCLK_TCK:       %d (%s)\n",
		neVersion, neBin, aiVersion, aiwattBin, tck, tckNote)

	data, err := os.ReadFile(c.fixture)
	if err != nil {
		return fmt.Errorf("read fixture: %w", err)
	}
	entries, err := sysfsfixture.Parse(data)
	if err != nil {
		return fmt.Errorf("parse fixture %s: %w", c.fixture, err)
	}
	scenarios := []scenario{{
		name:    filepath.Base(strings.TrimSuffix(c.fixture, ".sysfs")),
		entries: entries, zones: countZones(entries), scrapes: c.scrapes,
	}}
	if c.zones > 0 {
		e := syntheticTree(c.zones / 4)
		scenarios = append(scenarios, scenario{name: fmt.Sprintf("synthetic-%dzones", c.zones), entries: e, zones: c.zones, scrapes: c.zoneScrapes})
	}
	for i, sc := range scenarios {
		dir := filepath.Join(tmp, fmt.Sprintf("s%d", i))
		sc.sysfs = filepath.Join(dir, "sys")
		if err := sysfsfixture.Write(sc.sysfs, sc.entries); err != nil {
			return fmt.Errorf("scenario %s: write tree: %w", sc.name, err)
		}
		res, err := runScenario(ctx, c, sc, dir, aiwattBin, neBin, tck)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		printTable(w, sc, res)
	}
	return nil
}

// scenario is one sysfs tree served by both exporters.
type scenario struct {
	name    string
	entries []sysfsfixture.Entry
	sysfs   string
	zones   int
	scrapes int
}

// result is what one exporter cost over one block of scrapes.
type result struct {
	name      string
	scrapes   int
	cpu       time.Duration
	p50, p99  time.Duration
	rssBytes  int64
	bodyBytes int
}

// exporterProc is a started exporter.
type exporterProc struct {
	name   string
	url    string
	cmd    *exec.Cmd
	log    string
	series string // a metric name prefix whose lines count the zones served

	done    chan struct{} // closed when the process has exited
	waitErr error         // why it exited; valid once done is closed
}

// runScenario starts both exporters over sc, waits until both answer, then
// measures each one's block of scrapes. Both processes are killed on return.
func runScenario(ctx context.Context, c config, sc scenario, dir, aiwattBin, neBin string, tck int64) ([]result, error) {
	nePort, err := freePort()
	if err != nil {
		return nil, err
	}
	aiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	procs := []*exporterProc{
		{
			name: "node_exporter", series: "node_rapl_",
			cmd: exec.Command(neBin, "--collector.disable-defaults", "--collector.rapl",
				"--path.sysfs="+sc.sysfs, "--web.listen-address="+nePort),
		},
		{
			name: "aiwatt", series: "aiwatt_cpu_energy_joules_total{",
			cmd: exec.Command(aiwattBin, "agent", "--path.sysfs="+sc.sysfs,
				"--web.listen-address="+aiPort, "--agent.interval=5s"),
		},
	}
	procs[0].url = "http://" + nePort + "/metrics"
	procs[1].url = "http://" + aiPort + "/metrics"
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, p := range procs {
		if err := p.start(dir); err != nil {
			return nil, err
		}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableCompression: true, MaxIdleConnsPerHost: 1,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	defer client.CloseIdleConnections()
	for _, p := range procs {
		if err := p.waitReady(ctx, client, c.startTimeout, sc.zones); err != nil {
			return nil, err
		}
	}
	var out []result
	for _, p := range procs {
		r, err := p.measure(ctx, client, c.warmup, sc.scrapes, tck)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// start runs the exporter with its output in a log file under dir. The
// process dies with this one (Pdeathsig) should benchside be killed.
func (p *exporterProc) start(dir string) error {
	p.log = filepath.Join(dir, p.name+".log")
	f, err := os.Create(p.log)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.name, err)
	}
	defer f.Close()
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// stop kills the process and reaps it; it is safe to call on one that never
// started or has already exited.
func (p *exporterProc) stop() {
	if p.done == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitReady polls /metrics until it answers 200 with zones series of the
// exporter's energy metric, or the deadline passes.
func (p *exporterProc) waitReady(ctx context.Context, client *http.Client, timeout time.Duration, zones int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		body, err := get(ctx, client, p.url, false)
		if err == nil {
			n := countLines(body, p.series)
			if n == zones {
				return nil
			}
			err = fmt.Errorf("%d lines starting %q, want %d", n, p.series, zones)
		}
		if ctx.Err() == nil || last == nil {
			last = err // Keep the last error that is not the deadline's.
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before answering (%v); its log:\n%s", p.name, p.waitErr, tail(p.log, 20))
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready within %s: %w; its log:\n%s", p.name, timeout, last, tail(p.log, 20))
		case <-tick.C:
		}
	}
}

// measure scrapes warmup times unmeasured, then n times, reading the
// process's CPU time just before and after.
func (p *exporterProc) measure(ctx context.Context, client *http.Client, warmup, n int, tck int64) (result, error) {
	r := result{name: p.name, scrapes: n}
	for range warmup {
		if _, err := get(ctx, client, p.url, true); err != nil {
			return r, fmt.Errorf("%s warm-up: %w", p.name, err)
		}
	}
	pid := p.cmd.Process.Pid
	before, err := cpuTicks(pid)
	if err != nil {
		return r, err
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		body, err := get(ctx, client, p.url, true)
		if err != nil {
			return r, fmt.Errorf("%s scrape: %w", p.name, err)
		}
		lat = append(lat, time.Since(start))
		r.bodyBytes = len(body)
	}
	after, err := cpuTicks(pid)
	if err != nil {
		return r, err
	}
	if r.rssBytes, err = rss(pid); err != nil {
		return r, err
	}
	r.cpu = time.Duration(after-before) * time.Second / time.Duration(tck)
	slices.Sort(lat)
	r.p50, r.p99 = lat[(len(lat)-1)*50/100], lat[(len(lat)-1)*99/100]
	return r, nil
}

// get fetches url with a Prometheus scrape's headers; gzip asks for (and
// returns, undecoded) a compressed body, as Prometheus would receive it.
func get(ctx context.Context, client *http.Client, url string, gzip bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	req.Header.Set("Accept", scrapeAccept)
	if gzip {
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

// cpuTicks returns utime+stime of pid (fields 14 and 15 of /proc/PID/stat), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	// Field 2, comm, is in parentheses and may hold spaces: count fields after the last ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, fmt.Errorf("parse %s: no ')'", path)
	}
	f := strings.Fields(string(raw[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("parse %s: %d fields", path, len(f)+2)
	}
	var sum int64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", path, err)
		}
		sum += v
	}
	return sum, nil
}

// rss returns the resident set size of pid (VmRSS of /proc/PID/status), in bytes.
func rss(pid int) (int64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s: %w", path, err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no VmRSS line", path)
}

// clockTicks returns CLK_TCK from getconf, or 100 (Linux's USER_HZ on every
// mainstream architecture) when getconf is unavailable; the note says which.
func clockTicks() (int64, string) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v, "getconf CLK_TCK"
		}
	}
	return 100, "getconf unavailable: assumed 100"
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

// syntheticTree is sockets × package, core, uncore, dram zones named as the
// kernel names them (intel-rapl:<hex>[:n]), as agent/bench_test.go builds.
func syntheticTree(sockets int) []sysfsfixture.Entry {
	var out []sysfsfixture.Entry
	for s := range sockets {
		zones := []struct{ dir, name string }{
			{fmt.Sprintf("intel-rapl:%x", s), fmt.Sprintf("package-%d", s)},
			{fmt.Sprintf("intel-rapl:%x:0", s), "core"},
			{fmt.Sprintf("intel-rapl:%x:1", s), "uncore"},
			{fmt.Sprintf("intel-rapl:%x:2", s), "dram"},
		}
		for i, z := range zones {
			dir := "class/powercap/" + z.dir + "/"
			out = append(out,
				sysfsfixture.Entry{Path: dir + "name", Content: z.name},
				sysfsfixture.Entry{Path: dir + "energy_uj", Content: strconv.FormatUint(100_000_000_000+uint64(s*4+i)*1_000_003, 10)},
				sysfsfixture.Entry{Path: dir + "max_energy_range_uj", Content: "262143328850"},
				sysfsfixture.Entry{Path: dir + "enabled", Content: "1"},
			)
		}
	}
	return out
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

// countLines counts the lines of body that start with prefix.
func countLines(body []byte, prefix string) int {
	n := 0
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, prefix) && !strings.HasPrefix(line, "# ") {
			n++
		}
	}
	return n
}

// printTable writes one scenario's results; the ratio is each exporter's CPU
// per scrape over node_exporter's.
func printTable(w io.Writer, sc scenario, res []result) {
	fmt.Fprintf(w, "\nscenario %s: %d zones, %d scrapes each (sequential, one client, gzip)\n", sc.name, sc.zones, sc.scrapes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "exporter\tscrapes\tCPU time total\tCPU µs/scrape\tp50 latency\tp99 latency\tRSS MiB\tgzip B/scrape\tCPU ratio vs node_exporter\t")
	var base float64
	for _, r := range res {
		per := float64(r.cpu.Microseconds()) / float64(r.scrapes)
		if r.name == "node_exporter" {
			base = per
		}
		ratio := "n/a"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", per/base)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%.1f\t%d\t%s\t\n", r.name, r.scrapes, r.cpu, per,
			round(r.p50), round(r.p99), float64(r.rssBytes)/(1<<20), r.bodyBytes, ratio)
	}
	_ = tw.Flush()
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
