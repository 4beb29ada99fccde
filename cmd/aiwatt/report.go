package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"

	"github.com/inferensys/aiwatt/report"
)

type reportCommand struct {
	cmd        *kingpin.CmdClause
	from, to   *string
	prometheus *string
	httpConfig *string
	config     *string
	ledger     *string
	formats    *string
	out        *string
	resolution *time.Duration
	timeout    *time.Duration
}

func newReportCommand(app *kingpin.Application) *reportCommand {
	c := &reportCommand{cmd: app.Command("report", "Write an energy and carbon disclosure report for a period (JSON, CSV, Markdown, HTML, PDF) from Prometheus.")}
	c.from = c.cmd.Flag("from", "Start of the period, RFC 3339 or YYYY-MM-DD (UTC midnight).").Required().String()
	c.to = c.cmd.Flag("to", "End of the period (exclusive), RFC 3339 or YYYY-MM-DD; every total is evaluated at this time.").Required().String()
	c.prometheus = c.cmd.Flag("prometheus", "Prometheus (or Thanos/Mimir query) base URL.").Required().String()
	c.httpConfig = c.cmd.Flag("prometheus.http-config-file", "HTTP client configuration for Prometheus (TLS, basic auth, bearer token file), in Prometheus's http_config format.").Default("").String()
	c.config = c.cmd.Flag("config", "Report configuration file (organisation, boundary, PUE, targets, market instruments, training-run GPU counts).").Default("").String()
	c.ledger = c.cmd.Flag("ledger", "Cloud-provider ledger to show beside the measured figures (not available yet: reported as \"no ledger\").").Default("").String()
	c.formats = c.cmd.Flag("format", "Comma-separated formats: "+strings.Join(report.Formats, ",")+".").Default(strings.Join(report.Formats, ",")).String()
	c.out = c.cmd.Flag("out", "Directory to write report.FORMAT files into.").Default(".").String()
	c.resolution = c.cmd.Flag("resolution", "Step for finding gaps, outages and GPU-active time; at least the scrape interval.").Default("15m").Duration()
	c.timeout = c.cmd.Flag("timeout", "Timeout for all queries together.").Default("5m").Duration()
	return c
}

func parseReportTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}

func (c *reportCommand) run(logger *slog.Logger) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "aiwatt report: "+format+"\n", a...)
		return 2
	}
	from, err := parseReportTime(*c.from)
	if err != nil {
		return fail("--from: %v", err)
	}
	to, err := parseReportTime(*c.to)
	if err != nil {
		return fail("--to: %v", err)
	}
	var formats []string
	for _, f := range strings.Split(*c.formats, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		known := false
		for _, k := range report.Formats {
			known = known || k == f
		}
		if !known {
			return fail("--format: unknown format %q (want %s)", f, strings.Join(report.Formats, ","))
		}
		formats = append(formats, f)
	}
	cfg, err := report.LoadConfig(*c.config)
	if err != nil {
		return fail("--config: %v", err)
	}
	pc := api.Config{Address: *c.prometheus}
	if *c.httpConfig != "" {
		hc, _, err := promconfig.LoadHTTPConfigFile(*c.httpConfig)
		if err != nil {
			return fail("--prometheus.http-config-file: %v", err)
		}
		rt, err := promconfig.NewRoundTripperFromConfig(*hc, "aiwatt-report")
		if err != nil {
			return fail("--prometheus.http-config-file: %v", err)
		}
		pc.RoundTripper = rt
	}
	client, err := api.NewClient(pc)
	if err != nil {
		return fail("--prometheus: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *c.timeout)
	defer cancel()
	r, err := report.Build(ctx, v1.NewAPI(client), report.Options{
		From: from, To: to, Resolution: *c.resolution, Config: cfg, Source: *c.prometheus, Ledger: *c.ledger,
	})
	if err != nil {
		return fail("%v", err)
	}
	paths, err := report.Write(r, *c.out, formats)
	if err != nil {
		return fail("%v", err)
	}
	for _, p := range paths {
		fmt.Println(p)
	}
	logger.Info("report written", "from", r.From, "to", r.To, "queries", len(r.Queries), "gaps", len(r.DataQuality.Gaps), "files", len(paths))
	return 0
}
