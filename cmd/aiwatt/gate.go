package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"

	"github.com/inferensys/aiwatt/gate"
)

type gateCommand struct {
	cmd        *kingpin.CmdClause
	prometheus *string
	httpConfig *string
	selector   *string
	window     *time.Duration
	budget     *string
	at         *string
	metric     *string
	query      *string
	format     *string
	output     *string
	timeout    *time.Duration
}

func newGateCommand(app *kingpin.Application) *gateCommand {
	c := &gateCommand{cmd: app.Command("gate", "Fail (exit 1) when the energy recorded in Prometheus for a selector exceeds a budget; exit 2 when there is no data, a negative result, a partial answer (Prometheus warnings) or the query fails.")}
	c.prometheus = c.cmd.Flag("prometheus", "Prometheus (or Thanos/Mimir query) base URL.").Required().String()
	c.httpConfig = c.cmd.Flag("prometheus.http-config-file", "HTTP client configuration for Prometheus (TLS, basic auth, bearer token file), in Prometheus's http_config format.").Default("").String()
	c.selector = c.cmd.Flag("selector", `Label selector of the energy to sum, e.g. '{project="x",run_id="y"}'.`).Default("").String()
	c.window = c.cmd.Flag("window", "How far back from --at to sum energy.").Default("24h").Duration()
	c.budget = c.cmd.Flag("budget", "Energy budget, e.g. 50kWh, 3.6MJ, 500Wh.").Required().String()
	c.at = c.cmd.Flag("at", "End of the window, RFC 3339 (default now).").Default("").String()
	c.metric = c.cmd.Flag("metric", "Energy counter to sum.").Default(gate.DefaultMetric).String()
	c.query = c.cmd.Flag("query", "PromQL returning joules, replacing the generated query (must return one value).").Default("").String()
	c.format = c.cmd.Flag("format", "Output format.").Default(gate.FormatText).Enum(gate.FormatText, gate.FormatJSON, gate.FormatJUnit)
	c.output = c.cmd.Flag("output", "Write the verdict to this file instead of stdout (e.g. a JUnit report).").Default("").String()
	c.timeout = c.cmd.Flag("timeout", "Query timeout.").Default("30s").Duration()
	return c
}

func (c *gateCommand) run(_ *slog.Logger) int {
	budget, err := gate.ParseEnergy(*c.budget)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt gate: --budget: %v\n", err)
		return 2
	}
	req := gate.Request{Selector: *c.selector, Window: *c.window, Budget: budget, Metric: *c.metric, Query: *c.query}
	if *c.at != "" {
		if req.At, err = time.Parse(time.RFC3339, *c.at); err != nil {
			fmt.Fprintf(os.Stderr, "aiwatt gate: --at: %v\n", err)
			return 2
		}
	}
	cfg := api.Config{Address: *c.prometheus}
	if *c.httpConfig != "" {
		hc, _, err := promconfig.LoadHTTPConfigFile(*c.httpConfig)
		if err != nil {
			fmt.Fprintf(os.Stderr, "aiwatt gate: --prometheus.http-config-file: %v\n", err)
			return 2
		}
		rt, err := promconfig.NewRoundTripperFromConfig(*hc, "aiwatt-gate")
		if err != nil {
			fmt.Fprintf(os.Stderr, "aiwatt gate: --prometheus.http-config-file: %v\n", err)
			return 2
		}
		cfg.RoundTripper = rt
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt gate: --prometheus: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *c.timeout)
	defer cancel()
	res, checkErr := gate.Check(ctx, v1.NewAPI(client), req)
	var out io.Writer = os.Stdout
	if *c.output != "" {
		f, err := os.Create(*c.output)
		if err != nil {
			fmt.Fprintf(os.Stderr, "aiwatt gate: --output: %v\n", err)
			return 2
		}
		defer f.Close()
		out = f
		// A person watching the CI log still sees the verdict.
		_ = gate.Render(os.Stderr, gate.FormatText, res, checkErr)
	}
	if err := gate.Render(out, *c.format, res, checkErr); err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt gate: write verdict: %v\n", err)
		return 2
	}
	return gate.ExitCode(res, checkErr)
}
