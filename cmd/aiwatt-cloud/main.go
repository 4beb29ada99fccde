// Command aiwatt-cloud pulls AI/ML spend, usage and carbon from AWS, Azure
// and Google Cloud into an idempotent SQLite ledger, serves the ledger as
// Prometheus gauges and exports it as CSV and Parquet. It is a separate
// binary so that the node agent (cmd/aiwatt) never links cloud SDKs.
//
// Run it as a Deployment (scheduled pulls, --schedule, default every 24h,
// serving /metrics on --web.listen-address) or as a Kubernetes CronJob
// (--once: one pull, a summary on stdout, exit status 1 if a provider failed).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/cloud/ledger"
)

const defaultListenAddress = ":28292"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args and runs, returning the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("aiwatt-cloud", "Pull AI/ML spend, usage and carbon from AWS, Azure and Google Cloud into a ledger.")
	app.Version(version.Print("aiwatt-cloud"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	logCfg := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logCfg)
	var ledgerSet, scheduleSet bool
	var (
		configFile = app.Flag("config.file", "Strict YAML: providers, accounts/subscriptions/projects, schedule, ledger path (docs/cloud.md).").Required().String()
		once       = app.Flag("once", "Pull once, print the summary and exit (for a CronJob); exit status 1 if a provider failed.").Bool()
		schedule   = app.Flag("schedule", "Time between scheduled pulls, a Go duration such as 24h or 6h (at least 1m). Overrides the file's schedule; default 24h. The first pull runs at start.").IsSetByUser(&scheduleSet).Default("24h").Duration()
		ledgerPath = app.Flag("ledger", "SQLite ledger file. Overrides the file's ledger.").IsSetByUser(&ledgerSet).Default("./aiwatt-cloud.db").String()
		exportCSV  = app.Flag("export.csv", "After each pull, write the ledger's current rows to this CSV file (replaced atomically).").String()
		exportPQ   = app.Flag("export.parquet", "After each pull, write the ledger's current rows to this Parquet file for a warehouse (same rows and columns as the CSV, typed; replaced atomically).").String()
		webCfg     = kingpinflag.AddFlags(app, defaultListenAddress)
	)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "aiwatt-cloud: %v (try --help)\n", err)
		return 2
	}
	logger := promslog.New(logCfg)
	cfg, err := cloud.LoadConfig(*configFile)
	if err != nil {
		logger.Error("refusing configuration", "err", err)
		return 2
	}
	if !ledgerSet && cfg.Ledger != "" {
		*ledgerPath = cfg.Ledger
	}
	if !scheduleSet && cfg.Schedule > 0 {
		*schedule = cfg.Schedule
	}
	if *schedule < time.Minute {
		logger.Error("refusing --schedule below 1m", "schedule", *schedule)
		return 2
	}
	l, err := ledger.Open(*ledgerPath)
	if err != nil {
		logger.Error("cannot open ledger", "err", err)
		return 1
	}
	defer l.Close()

	tasks, disabled, closeTasks := buildTasks(ctx, cfg, logger)
	defer closeTasks()
	for name, why := range disabled {
		logger.Warn("provider disabled", "provider", name, "reason", why)
	}
	runner := &cloud.Runner{Tasks: tasks, Disabled: disabled, Sink: l, Deadline: cfg.Deadline,
		NewRetrier: cfg.Retry.NewRetrier, Logger: logger}
	col := ledger.NewCollector(l)
	status := newStatusCollector()

	pull := func() cloud.Summary {
		sum := runner.RunOnce(ctx)
		status.set(sum)
		if err := col.Refresh(ctx); err != nil {
			logger.Error("cannot read ledger for metrics", "err", err)
		}
		if *exportCSV != "" {
			if err := writeExport(*exportCSV, func(w io.Writer) error { return l.WriteCSV(ctx, w) }); err != nil {
				logger.Error("CSV export failed", "file", *exportCSV, "err", err)
			} else {
				logger.Info("CSV export written", "file", *exportCSV)
			}
		}
		if *exportPQ != "" {
			if err := writeExport(*exportPQ, func(w io.Writer) error { return l.WriteParquet(ctx, w) }); err != nil {
				logger.Error("Parquet export failed", "file", *exportPQ, "err", err)
			} else {
				logger.Info("Parquet export written", "file", *exportPQ)
			}
		}
		return sum
	}

	if *once {
		if len(tasks) == 0 {
			cloud.Summary{Tasks: disabledOnly(disabled)}.Write(stdout)
			logger.Error("every configured provider is disabled")
			return 1
		}
		sum := pull()
		sum.Write(stdout)
		if sum.Failed() {
			return 1
		}
		return 0
	}

	if err := col.Refresh(ctx); err != nil {
		logger.Error("cannot read ledger", "err", err)
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col, status, versioncollector.NewCollector("aiwatt_cloud"),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Healthy\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "<html><head><title>aiwatt-cloud</title></head><body><h1>aiwatt-cloud</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- web.ListenAndServe(srv, webCfg, logger) }()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(*schedule)
		defer ticker.Stop()
		for {
			if len(tasks) > 0 {
				var b strings.Builder
				pull().Write(&b)
				logger.Info("pull summary\n" + b.String())
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	code := 0
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "err", err)
			code = 1
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	return code
}

func disabledOnly(d map[string]string) []cloud.TaskSummary {
	var out []cloud.TaskSummary
	for n, why := range d {
		out = append(out, cloud.TaskSummary{Task: n, Disabled: why})
	}
	return out
}

// writeExport writes an export next to file with write and renames it into
// place, so a reader never sees a partial file.
func writeExport(file string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".aiwatt-cloud-*"+filepath.Ext(file))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// statusCollector exports the last run's outcome per provider.
type statusCollector struct {
	mu   sync.Mutex
	last cloud.Summary
}

var (
	successDesc = prometheus.NewDesc("aiwatt_cloud_pull_success", "1 if the provider's last pull succeeded with no refused batch, 0 if it failed or is disabled.", []string{"provider"}, nil)
	lastRunDesc = prometheus.NewDesc("aiwatt_cloud_pull_last_run_timestamp_seconds", "Start of the last pull, Unix seconds.", nil, nil)
)

func newStatusCollector() *statusCollector { return &statusCollector{} }

func (s *statusCollector) set(sum cloud.Summary) {
	s.mu.Lock()
	s.last = sum
	s.mu.Unlock()
}

func (s *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- successDesc
	ch <- lastRunDesc
}

func (s *statusCollector) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	sum := s.last
	s.mu.Unlock()
	if sum.Started.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(lastRunDesc, prometheus.GaugeValue, float64(sum.Started.Unix()))
	for _, t := range sum.Tasks {
		v := 1.0
		if t.Failed() || t.Disabled != "" {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, v, t.Task)
	}
}
