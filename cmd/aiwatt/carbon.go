package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/internal/yamlconf"
)

// defaultCarbonListenAddress is the port of the `aiwatt carbon` service.
const defaultCarbonListenAddress = ":28291"

type carbonCommand struct {
	cmd         *kingpin.CmdClause
	configFile  *string
	once        *bool
	zone        *string
	at          *string
	basis       *string
	format      *string
	interval    *time.Duration
	metricsPath *string
	maxRequests *int
	web         *web.FlagConfig
}

func newCarbonCommand(app *kingpin.Application) *carbonCommand {
	c := &carbonCommand{cmd: app.Command("carbon", "Run the grid carbon-intensity providers once for the whole cluster: serve the intensity as metrics and a JSON API, or (--once) print it with its provenance.")}
	c.configFile = c.cmd.Flag("config.file", "YAML file listing the zones served and their providers (strict: unknown keys are refused). Empty: the embedded static table for --zone.").Default("").String()
	c.once = c.cmd.Flag("once", "Print the intensity of --zone (at --at) with its provenance and exit: 0 when a value was found, 1 otherwise.").Bool()
	c.zone = c.cmd.Flag("zone", "Zone: the one served without --config.file, or the one printed by --once (default: the only zone of the file).").Default("").String()
	c.at = c.cmd.Flag("at", "With --once: the time asked for, RFC 3339 (default: now).").Default("").String()
	c.basis = c.cmd.Flag("basis", "With --once: location, market or marginal.").Default(string(carbon.BasisLocation)).Enum(string(carbon.BasisLocation), string(carbon.BasisMarket), string(carbon.BasisMarginal))
	c.format = c.cmd.Flag("format", "With --once: output format.").Default("text").Enum("text", "json")
	c.interval = c.cmd.Flag("carbon.interval", "How often every zone is refreshed (providers' own caches keep upstream calls to about one per data window).").Default("5m").Duration()
	c.metricsPath = c.cmd.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
	c.maxRequests = c.cmd.Flag("web.max-requests", "Maximum number of parallel scrape requests (0 = no limit).").Default("40").Int()
	c.web = kingpinflag.AddFlags(c.cmd, defaultCarbonListenAddress)
	return c
}

// usageError is a misuse of the flags (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func (c *carbonCommand) run(logger *slog.Logger) int {
	zones, err := c.setup(logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt carbon: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	svc := newCarbonService(zones, carbon.SystemClock, logger)
	if *c.once {
		return c.runOnce(ctx, svc, os.Stdout, os.Stderr)
	}
	return c.serve(ctx, stop, svc, logger)
}

// setup checks the flags, reads the configuration and builds the zones.
func (c *carbonCommand) setup(logger *slog.Logger) ([]*carbonZone, error) {
	if *c.interval <= 0 {
		return nil, &usageError{fmt.Sprintf("--carbon.interval must be positive, got %s", *c.interval)}
	}
	if !*c.once && *c.at != "" {
		return nil, &usageError{"--at applies to --once; the service answers other times through " + carbon.IntensityAPIPath + "?at="}
	}
	var f *carbonFile
	switch {
	case *c.configFile != "":
		if !*c.once && *c.zone != "" {
			return nil, &usageError{"--zone selects the zone of --once, or the zone served without --config.file; the service serves the zones of " + *c.configFile}
		}
		data, err := yamlconf.ReadFile(*c.configFile)
		if err != nil {
			return nil, err
		}
		if f, err = parseCarbonFile(*c.configFile, data); err != nil {
			return nil, fmt.Errorf("invalid configuration:\n%w", err)
		}
	case *c.zone == "":
		return nil, &usageError{"give --zone (served from the embedded static table) or --config.file"}
	default:
		f = defaultCarbonFile(*c.zone)
		static, err := carbon.NewStatic(nil)
		if err != nil {
			return nil, err
		}
		if err := staticOnlyKnown(static, f.Zones[0]); err != nil {
			return nil, fmt.Errorf("--zone: %w", err)
		}
	}
	return f.build(carbon.BuildOptions{Clock: carbon.SystemClock, Logger: logger})
}

// runOnce prints one value and its provenance.
func (c *carbonCommand) runOnce(ctx context.Context, svc *carbonService, stdout, stderr io.Writer) int {
	zone := *c.zone
	if zone == "" {
		if len(svc.zones) > 1 {
			fmt.Fprintf(stderr, "aiwatt carbon: %s serves several zones (%s); choose one with --zone\n", *c.configFile, strings.Join(svc.zoneNames(), ", "))
			return 2
		}
		zone = svc.zones[0].name
	}
	at := svc.clock.Now()
	if *c.at != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, *c.at); err != nil {
			fmt.Fprintf(stderr, "aiwatt carbon: --at %q: want an RFC 3339 time such as 2024-03-06T19:20:00Z\n", *c.at)
			return 2
		}
	}
	resp, err := svc.lookup(ctx, zone, carbon.Basis(*c.basis), at)
	if err != nil {
		fmt.Fprintf(stderr, "aiwatt carbon: %v\n", err)
		return 1
	}
	if *c.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(resp)
	} else {
		err = writeIntensityText(stdout, resp)
	}
	if err != nil {
		fmt.Fprintf(stderr, "aiwatt carbon: write: %v\n", err)
		return 1
	}
	return 0
}

// writeIntensityText prints a value and its provenance, one field a line.
func writeIntensityText(w io.Writer, r carbon.IntensityResponse) error {
	in, p := r.Intensity, r.Intensity.Provenance
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-12s %s\n", k, v)
		}
	}
	line("zone", r.Zone)
	if in.Zone != "" && !strings.EqualFold(in.Zone, r.Zone) {
		line("source zone", in.Zone)
	}
	line("intensity", in.Value.String())
	line("basis", string(in.Basis))
	line("provider", in.Provider)
	line("at", r.At.Format(time.RFC3339))
	line("valid", in.ValidFrom.UTC().Format(time.RFC3339)+" to "+in.ValidTo.UTC().Format(time.RFC3339))
	line("age", (time.Duration(r.AgeSeconds) * time.Second).String())
	line("source", p.Source)
	line("dataset", p.Dataset)
	line("reference", p.Reference)
	line("licence", p.Licence)
	line("factor type", string(p.FactorType))
	line("method", p.Method)
	line("estimated", fmt.Sprint(p.Estimated))
	if !p.FetchedAt.IsZero() {
		line("fetched at", p.FetchedAt.UTC().Format(time.RFC3339))
	}
	for _, n := range p.Notes {
		line("note", n)
	}
	if len(p.Skipped) == 0 {
		line("skipped", "none (the first provider answered)")
	}
	for _, s := range p.Skipped {
		line("skipped", s.String())
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// serve runs the refresh loop and the HTTP server until a signal arrives or
// the server fails.
func (c *carbonCommand) serve(ctx context.Context, stop context.CancelFunc, svc *carbonService, logger *slog.Logger) int {
	logger.Info("starting aiwatt carbon service", "version", version.Info(), "zones", strings.Join(svc.zoneNames(), ","), "interval", *c.interval)
	handler, err := newCarbonHandler(svc, carbonHandlerOptions{MetricsPath: *c.metricsPath, MaxRequests: *c.maxRequests, Logger: logger})
	if err != nil {
		logger.Error("cannot build the HTTP handler", "err", err)
		return 1
	}
	refreshDone := make(chan struct{})
	go func() {
		defer close(refreshDone)
		svc.Run(ctx, *c.interval)
	}()
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	for _, addr := range *c.web.WebListenAddresses {
		logger.Info("serving carbon intensity", "metrics", metricsURL(addr, *c.metricsPath, *c.web.WebConfigFile != ""),
			"api", metricsURL(addr, carbon.IntensityAPIPath, *c.web.WebConfigFile != ""))
	}
	code := serve(ctx, stop, srv, c.web, logger)
	<-refreshDone
	logger.Info("stopped")
	return code
}
