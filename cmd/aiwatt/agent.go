package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/exporter"
)

// defaultListenAddress is aiwatt's port.
const defaultListenAddress = ":28290"

type agentCommand struct {
	cmd         *kingpin.CmdClause
	interval    *time.Duration
	configFile  *string
	sysfs       *string
	procfs      *string
	live        *bool
	dcgmURL     *string
	nodeName    *string
	kubeconfig  *string
	rootfs      *string
	metricsPath *string
	maxRequests *int
	pprof       *bool
	web         *web.FlagConfig
}

func newAgentCommand(app *kingpin.Application) *agentCommand {
	c := &agentCommand{cmd: app.Command("agent", "Run the node agent: sample energy counters and serve /metrics.")}
	c.interval = c.cmd.Flag("agent.interval", "Sampling period.").Default("5s").Duration()
	c.configFile = c.cmd.Flag("config.file", "YAML configuration file (strict: unknown keys are refused). Empty means defaults.").Default("").String()
	c.sysfs = c.cmd.Flag("path.sysfs", "sysfs mount point (the host's /sys, read-only, in a container).").Default("/sys").String()
	c.procfs = c.cmd.Flag("path.procfs", "procfs mount point (the host's /proc in a container).").Default("/proc").String()
	c.dcgmURL = c.cmd.Flag("dcgm.exporter-url", "dcgm-exporter metrics URL, used when NVML is unavailable or gpu.backend is dcgm-exporter (overrides gpu.exporter_url).").Default("").String()
	c.nodeName = c.cmd.Flag("kubernetes.node-name", "This node's Kubernetes name: pods on it are watched for workload labels (empty outside Kubernetes).").Default("").Envar("NODE_NAME").String()
	c.kubeconfig = c.cmd.Flag("kubernetes.kubeconfig", "kubeconfig file; empty means the in-cluster service account.").Default("").String()
	c.rootfs = c.cmd.Flag("path.rootfs", "Host root filesystem (its /etc/passwd names users in workload rules).").Default("/").String()
	c.live = c.cmd.Flag("agent.live", "Print a one-line power summary to stderr after every sample.").Bool()
	c.metricsPath = c.cmd.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
	c.maxRequests = c.cmd.Flag("web.max-requests", "Maximum number of parallel scrape requests (0 = no limit).").Default("40").Int()
	c.pprof = addPprofFlag(c.cmd)
	c.web = kingpinflag.AddFlags(c.cmd, defaultListenAddress)
	return c
}

func (c *agentCommand) run(logger *slog.Logger) int {
	logger.Info("starting aiwatt agent", "version", version.Info(), "build", version.BuildContext())
	if *c.interval <= 0 {
		logger.Error("--agent.interval must be positive", "interval", *c.interval)
		return 2
	}
	cfg := agent.DefaultConfig()
	if *c.configFile != "" {
		var err error
		if cfg, err = agent.LoadConfigFile(*c.configFile); err != nil {
			fmt.Fprintf(os.Stderr, "aiwatt: invalid configuration:\n%v\n", err)
			return 1
		}
	}
	opts := agent.Options{
		Interval:   *c.interval,
		SysfsRoot:  *c.sysfs,
		ProcfsRoot: *c.procfs,
		ConfigFile: *c.configFile,
		Logger:     logger,

		DCGMExporterURL: *c.dcgmURL,
		NodeName:        *c.nodeName,
		Kubeconfig:      *c.kubeconfig,
		HostRoot:        *c.rootfs,
	}
	if *c.live {
		opts.OnTick = func(s *agent.Snapshot) { fmt.Fprintln(os.Stderr, liveLine(s)) }
	}
	a, err := agent.New(opts, cfg)
	if err != nil {
		logger.Error("cannot start the agent", "err", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = a.Reload() // The agent logs the outcome and exports it.
			}
		}
	}()

	handler, err := exporter.NewHandler(exporter.HandlerOptions{
		Source: scrapeView{a}, Reload: a.Reload, MetricsPath: *c.metricsPath, MaxRequests: *c.maxRequests, Logger: logger,
		ProcessMetricsTTL: *c.interval,
	})
	if err != nil {
		logger.Error("cannot build the HTTP handler", "err", err)
		return 1
	}
	srv := &http.Server{Handler: withPprof(handler, *c.pprof), ReadHeaderTimeout: 10 * time.Second}
	for _, addr := range *c.web.WebListenAddresses {
		logger.Info("serving metrics", "url", metricsURL(addr, *c.metricsPath, *c.web.WebConfigFile != ""))
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.Run(ctx) }()
	code := serve(ctx, stop, srv, c.web, logger)
	<-agentDone
	if err := a.Close(); err != nil {
		logger.Warn("closing sources", "err", err)
	}
	logger.Info("stopped")
	return code
}

// scrapeView is the agent as /metrics reads it: Fresh, which in on-demand
// mode samples first when the latest sample is older than the interval.
type scrapeView struct{ *agent.Agent }

// Snapshot implements exporter.Source.
func (v scrapeView) Snapshot() *agent.Snapshot { return v.Fresh() }

// metricsURL is a clickable address for the log line.
func metricsURL(addr, path string, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "localhost" + addr
	}
	return scheme + "://" + addr + path
}

// liveLine is the one-line summary printed by --agent.live: CPU power by zone
// and method, and which sources are up.
func liveLine(s *agent.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", s.Time.Format("15:04:05"))
	type key struct{ zone, source string }
	watts := map[key]float64{}
	var order []key
	for _, e := range s.CPU {
		k := key{e.Zone, e.Source}
		if _, ok := watts[k]; !ok {
			order = append(order, k)
		}
		watts[k] += e.Watts
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].source != order[j].source {
			return order[i].source < order[j].source
		}
		return order[i].zone < order[j].zone
	})
	if len(order) == 0 {
		b.WriteString("  cpu: no energy source")
	}
	for _, k := range order {
		fmt.Fprintf(&b, "  %s %.1f W (%s)", k.zone, watts[k], k.source)
	}
	if len(s.GPU) > 0 {
		var gpuW float64
		for _, g := range s.GPU {
			gpuW += g.PowerWatts
		}
		fmt.Fprintf(&b, "  gpu %.1f W (%d GPUs, %s)", gpuW, len(s.GPU), s.GPU[0].Source)
	}
	var up, down []string
	for _, src := range s.Sources {
		if src.Up {
			up = append(up, src.Name)
		} else {
			down = append(down, src.Name)
		}
	}
	fmt.Fprintf(&b, "  | up: %s", joinOrNone(up))
	if len(down) > 0 {
		fmt.Fprintf(&b, "  down: %s", strings.Join(down, ","))
	}
	return b.String()
}

func joinOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}
