package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/dcgm"
	"github.com/inferensys/aiwatt/gate"
	"github.com/inferensys/aiwatt/gpu/backends"
	"github.com/inferensys/aiwatt/runner"
)

// runLogEvery is how often a progress line is logged when stderr is not a
// terminal.
const runLogEvery = 30 * time.Second

type runCommand struct {
	cmd          *kingpin.CmdClause
	budget       *string
	out          *string
	csv          *string
	interval     *time.Duration
	grace        *time.Duration
	zone         *string
	marketFactor *string
	coveredShare *string
	marketSource *string
	sysfs        *string
	procfs       *string
	raplMaxPower *float64
	gpuBackend   *string
	dcgmURL      *string
	gpuDevices   *string
	pushgateway  *string
	pushJob      *string
	labels       *[]string
	mlflowURI    *string
	mlflowRunID  *string
	wandb        *string
	argv         *[]string
	carbonFlags  runCarbonFlags
}

func newRunCommand(app *kingpin.Application) *runCommand {
	c := &runCommand{cmd: app.Command("run", "Run a command and measure the energy and CO2e of its whole process tree "+
		"(usage: aiwatt run [flags] -- COMMAND ARGS...). Exits with the command's exit code, or 124 when it was stopped for exceeding --budget.")}
	c.budget = c.cmd.Flag("budget", "Energy budget, e.g. 12kWh, 500Wh, 3.6MJ: over it the command is stopped (SIGTERM, then SIGKILL after --grace) and aiwatt exits 124.").Default("").String()
	c.out = c.cmd.Flag("out", "Write the run's report as JSON to this file (and as CSV beside it, see --csv).").Default("").String()
	c.csv = c.cmd.Flag("csv", "Write the run's summary as CSV to this file (default: --out with a .csv extension).").Default("").String()
	c.interval = c.cmd.Flag("interval", "Sampling period.").Default("1s").Duration()
	c.grace = c.cmd.Flag("grace", "Time between SIGTERM and SIGKILL when the budget is exceeded.").Default("10s").Duration()
	zone := c.cmd.Flag("zone", "Carbon-intensity zone of the embedded static table: an ISO country code, WORLD, EU, or a cloud region such as aws:eu-west-1 (with --config.file, its carbon section's zone and providers are used instead).")
	marketFactor := c.cmd.Flag("market-factor", "Supplier-specific emission factor in gCO2e/kWh, for market-based CO2e.")
	coveredShare := c.cmd.Flag("covered-share", "Share (0..1) of consumption covered by PPAs, RECs or GOs, for market-based CO2e.")
	c.carbonFlags.register(c.cmd, zone, marketFactor, coveredShare)
	c.zone = zone.Default(runner.DefaultZone).String()
	c.marketFactor = marketFactor.Default("").String()
	c.coveredShare = coveredShare.Default("").String()
	c.marketSource = c.cmd.Flag("market-source", "What --market-factor and --covered-share come from (supplier, contract, year); recorded in the report.").Default("aiwatt run --market-factor/--covered-share").String()
	c.sysfs = c.cmd.Flag("path.sysfs", "sysfs mount point (RAPL under class/powercap).").Default("/sys").String()
	c.procfs = c.cmd.Flag("path.procfs", "procfs mount point.").Default("/proc").String()
	c.raplMaxPower = c.cmd.Flag("rapl.max-power-watts", "Plausibility ceiling per RAPL zone; 0 means the default (2000 W).").Default("0").Float64()
	c.gpuBackend = c.cmd.Flag("gpu.backend", "GPU energy: auto (NVML, else --dcgm.exporter-url), nvml, dcgm-exporter or none.").Default(dcgm.BackendAuto).Enum(dcgm.BackendAuto, dcgm.BackendNVML, dcgm.BackendDCGMExporter, dcgm.BackendNone)
	c.dcgmURL = c.cmd.Flag("dcgm.exporter-url", "dcgm-exporter metrics URL, e.g. http://127.0.0.1:9400/metrics.").Default("").String()
	c.gpuDevices = c.cmd.Flag("gpu.devices", "GPUs (indexes or UUIDs, comma-separated) that belong to the run wholly. Default with dcgm-exporter: the command's CUDA_VISIBLE_DEVICES.").Default("").String()
	c.pushgateway = c.cmd.Flag("pushgateway", "Prometheus Pushgateway URL to push the run's summary to.").Default("").String()
	c.pushJob = c.cmd.Flag("pushgateway.job", "Job name of the pushed group.").Default("aiwatt_run").String()
	c.labels = c.cmd.Flag("label", "Grouping label k=v of the pushed group; repeatable.").Strings()
	c.mlflowURI = c.cmd.Flag("mlflow.tracking-uri", "MLflow tracking server URL: log the summary to --mlflow.run-id (token from MLFLOW_TRACKING_TOKEN).").Default("").String()
	c.mlflowRunID = c.cmd.Flag("mlflow.run-id", "MLflow run to log the summary to.").Default("").String()
	c.wandb = c.cmd.Flag("wandb.summary", "Only write (or merge into) the local file wandb-summary.json with aiwatt/ keys; nothing is sent to W&B (the file reaches it with `wandb sync`).").Default("").String()
	c.argv = c.cmd.Arg("command", "The command and its arguments (after --).").Required().Strings()
	return c
}

// runFlags is the checked form of the flags.
type runFlags struct {
	carbon     *carbon.Config // --config.file's carbon section; nil: static table for --zone
	budget     float64
	market     *carbon.Market
	gpuDevices []string
	labels     [][2]string
	outJSON    string
	outCSV     string
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// check validates the flags; its error is a usage error (exit 2).
func (c *runCommand) check() (runFlags, error) {
	var f runFlags
	var err error
	if *c.budget != "" {
		if f.budget, err = gate.ParseEnergy(*c.budget); err != nil {
			return f, fmt.Errorf("--budget: %w", err)
		}
		if f.budget == 0 {
			return f, errors.New("--budget: must be more than 0")
		}
	}
	if *c.interval <= 0 {
		return f, fmt.Errorf("--interval: must be positive, got %s", *c.interval)
	}
	if *c.grace < 0 {
		return f, fmt.Errorf("--grace: must not be negative, got %s", *c.grace)
	}
	if *c.raplMaxPower < 0 {
		return f, fmt.Errorf("--rapl.max-power-watts: must not be negative, got %v", *c.raplMaxPower)
	}
	if *c.marketFactor != "" || *c.coveredShare != "" {
		m := &carbon.Market{}
		if *c.marketFactor != "" {
			v, err := strconv.ParseFloat(*c.marketFactor, 64)
			if err != nil {
				return f, fmt.Errorf("--market-factor: %w", err)
			}
			g := carbon.GramsPerKWh(v)
			m.SupplierFactor, m.SupplierSource = &g, *c.marketSource
		}
		if *c.coveredShare != "" {
			v, err := strconv.ParseFloat(*c.coveredShare, 64)
			if err != nil {
				return f, fmt.Errorf("--covered-share: %w", err)
			}
			m.CoveredShare, m.CoveredSource = v, *c.marketSource
		}
		if err := m.Validate(); err != nil {
			return f, fmt.Errorf("--market-factor/--covered-share: %w", err)
		}
		f.market = m
	}
	if f.carbon, err = c.carbonFlags.load(); err != nil {
		return f, err
	}
	if f.carbon == nil {
		static, err := carbon.NewStatic(nil)
		if err != nil {
			return f, fmt.Errorf("static carbon table: %w", err)
		}
		if _, err := static.Intensity(context.Background(), *c.zone, time.Now()); err != nil {
			return f, fmt.Errorf("--zone: %w", err)
		}
	}
	for _, d := range strings.Split(*c.gpuDevices, ",") {
		if d = strings.TrimSpace(d); d != "" {
			f.gpuDevices = append(f.gpuDevices, d)
		}
	}
	for _, l := range *c.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || !labelName.MatchString(k) || strings.HasPrefix(k, "__") || k == "job" {
			return f, fmt.Errorf("--label %q: want name=value with a Prometheus label name other than job", l)
		}
		f.labels = append(f.labels, [2]string{k, v})
	}
	for flag, u := range map[string]string{"--pushgateway": *c.pushgateway, "--mlflow.tracking-uri": *c.mlflowURI, "--dcgm.exporter-url": *c.dcgmURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return f, fmt.Errorf("%s %q: want an http(s) URL", flag, u)
		}
	}
	if (*c.mlflowURI == "") != (*c.mlflowRunID == "") {
		return f, errors.New("--mlflow.tracking-uri and --mlflow.run-id go together")
	}
	if *c.gpuBackend == dcgm.BackendDCGMExporter && *c.dcgmURL == "" {
		return f, errors.New("--gpu.backend=dcgm-exporter needs --dcgm.exporter-url")
	}
	f.outJSON, f.outCSV = *c.out, *c.csv
	if f.outCSV == "" && f.outJSON != "" {
		f.outCSV = strings.TrimSuffix(f.outJSON, filepath.Ext(f.outJSON)) + ".csv"
	}
	// Fail before running anything if an output cannot be written.
	for _, p := range []string{f.outJSON, f.outCSV} {
		if p == "" {
			continue
		}
		file, err := os.Create(p)
		if err != nil {
			return f, fmt.Errorf("output: %w", err)
		}
		_ = file.Close()
	}
	if *c.wandb != "" {
		if st, err := os.Stat(filepath.Dir(*c.wandb)); err != nil || !st.IsDir() {
			return f, fmt.Errorf("--wandb.summary %s: its directory does not exist", *c.wandb)
		}
	}
	return f, nil
}

// openGPU opens the GPU backend. A missing GPU with --gpu.backend=auto is no
// GPU, not an error.
func (c *runCommand) openGPU(logger *slog.Logger) (dcgm.Backend, error) {
	if *c.gpuBackend == dcgm.BackendNone {
		return nil, nil
	}
	b, err := backends.Open(dcgm.Config{Backend: *c.gpuBackend, ExporterURL: *c.dcgmURL}, logger, backends.Options{NoProbe: true})
	if err != nil {
		if *c.gpuBackend == dcgm.BackendAuto && errors.Is(err, dcgm.ErrNoData) {
			logger.Debug("no GPU backend", "reason", err)
			return nil, nil
		}
		return nil, fmt.Errorf("GPU backend %s: %w", *c.gpuBackend, err)
	}
	return b, nil
}

// cudaVisibleDevices returns the GPUs named by CUDA_VISIBLE_DEVICES, and
// whether the variable was set.
func cudaVisibleDevices() ([]string, bool) {
	v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES")
	if !ok {
		return nil, false
	}
	var out []string
	for _, d := range strings.Split(v, ",") {
		d = strings.TrimSpace(d)
		if d == "" || d == "-1" || strings.EqualFold(d, "NoDevFiles") {
			break // CUDA stops at the first invalid entry
		}
		out = append(out, d)
	}
	return out, true
}

// foregroundTTY reports whether stdin is a terminal whose foreground process
// group is this process's: the command can then be given the terminal.
func foregroundTTY() bool {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return false
	}
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

func (c *runCommand) run(logger *slog.Logger) int {
	f, err := c.check()
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt run: %v\n", err)
		return 2
	}
	gpu, err := c.openGPU(logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt run: cannot measure: %v\n", err)
		return runner.ExitFailure
	}
	if gpu != nil {
		defer gpu.Close()
		if len(f.gpuDevices) == 0 && gpu.Name() == dcgm.NameDCGMExporter {
			if devs, ok := cudaVisibleDevices(); ok {
				f.gpuDevices = devs
				logger.Info("GPUs of the run from CUDA_VISIBLE_DEVICES", "gpus", strings.Join(devs, ","))
			} else {
				logger.Warn("dcgm-exporter does not say which process uses a GPU: pass --gpu.devices (or set CUDA_VISIBLE_DEVICES) " +
					"for the run to be given GPU energy; GPU energy is reported as node energy only")
			}
		}
	}
	cb, err := buildRunCarbon(f.carbon, *c.zone, f.market, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt run: --config.file carbon: %v\n", err)
		return 2 // a configuration mistake: nothing was run
	}
	meter, err := runner.New(runner.Options{
		SysfsRoot:         *c.sysfs,
		ProcfsRoot:        *c.procfs,
		RAPLMaxPowerWatts: *c.raplMaxPower,
		GPU:               gpu,
		GPUDevices:        f.gpuDevices,
		Zone:              cb.zone,
		Intensity:         cb.intensity,
		Market:            cb.market,
		BudgetJoules:      f.budget,
		Logger:            logger,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt run: cannot measure: %v\n", err)
		return runner.ExitFailure
	}

	// Catch the signals to forward before the command exists, so none is lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, runner.ForwardedSignals...)
	defer signal.Stop(sigs)

	child, err := runner.StartChild(*c.argv, runner.ChildOptions{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Foreground: foregroundTTY(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt run: %v\n", err)
		return runner.StartExitCode(err)
	}
	ctx := context.Background()
	if err := meter.Start(ctx, child.PID()); err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt run: cannot measure, stopping the command: %v\n", err)
		child.Stop(*c.grace)
		return runner.ExitFailure
	}
	logger.Debug("command started", "pid", child.PID(), "command", strings.Join(*c.argv, " "))

	live := term.IsTerminal(int(os.Stderr.Fd()))
	ticker := time.NewTicker(*c.interval)
	defer ticker.Stop()
	lastLog := time.Now()
	stopped := make(chan struct{})
	stopping := false
	stop := func(p runner.Progress) {
		if stopping {
			return
		}
		stopping = true
		logger.Warn("energy budget exceeded: stopping the command", "used", runner.FormatEnergy(p.Energy.Total),
			"budget", runner.FormatEnergy(p.BudgetJoules), "grace", *c.grace)
		go func() {
			child.Stop(*c.grace)
			close(stopped)
		}()
	}
loop:
	for {
		select {
		case <-ticker.C:
			p, _ := meter.Tick(ctx) // errors only before Start
			switch {
			case live:
				fmt.Fprintf(os.Stderr, "\r\x1b[K%s", runner.LiveLine(p))
			case time.Since(lastLog) >= runLogEvery:
				lastLog = time.Now()
				logger.Info("aiwatt run progress", "elapsed", p.Elapsed.Round(time.Second), "energy", runner.FormatEnergy(p.Energy.Total),
					"watts", fmt.Sprintf("%.1f", p.Watts), "co2e_grams", fmt.Sprintf("%.3g", p.CO2eGrams), "processes", p.Processes)
			}
			if p.BudgetExceeded {
				stop(p)
			}
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			logger.Debug("forwarding signal to the command's process group", "signal", s)
			if err := child.Signal(sig); err != nil {
				logger.Warn("cannot forward signal", "signal", s, "err", err)
			}
		case <-child.Done():
			break loop
		}
	}
	if stopping {
		<-stopped // the rest of the group is gone, or killed
	}
	ps, waitErr := child.State()
	if ps != nil {
		meter.RootExited(ps.UserTime() + ps.SystemTime())
	}
	p, _ := meter.Tick(ctx)
	if live {
		fmt.Fprint(os.Stderr, "\r\x1b[K")
	}

	rep := meter.Report()
	rep.Command = *c.argv
	rep.IntervalSeconds = c.interval.Seconds()
	code, sig := runner.ExitStatus(ps)
	if waitErr != nil {
		logger.Error("waiting for the command failed", "err", waitErr)
	}
	if sig == "" && ps != nil {
		rep.ChildExitCode = &code
	}
	rep.ChildSignal = sig
	if p.BudgetExceeded {
		code = runner.ExitBudgetExceeded
	}
	rep.ExitCode = code

	c.writeOutputs(logger, &rep, f)
	_ = rep.WriteSummary(os.Stderr)
	c.integrations(logger, &rep, f)
	return code
}

// writeOutputs writes the JSON, CSV and W&B outputs; failures are logged.
func (c *runCommand) writeOutputs(logger *slog.Logger, rep *runner.Report, f runFlags) {
	write := func(path string, fn func(*os.File) error) {
		if path == "" {
			return
		}
		file, err := os.Create(path)
		if err == nil {
			err = fn(file)
			if cerr := file.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			logger.Error("cannot write output", "file", path, "err", err)
		}
	}
	write(f.outJSON, func(w *os.File) error { return rep.WriteJSON(w) })
	write(f.outCSV, func(w *os.File) error { return rep.WriteCSV(w) })
	if *c.wandb != "" {
		if err := writeWandbSummary(*c.wandb, rep); err != nil {
			logger.Error("cannot write the W&B summary", "file", *c.wandb, "err", err)
		}
	}
}

// integrations pushes the summary to the Pushgateway and MLflow; failures
// are logged and do not change the exit code.
func (c *runCommand) integrations(logger *slog.Logger, rep *runner.Report, f runFlags) {
	if *c.pushgateway != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := pushRun(ctx, *c.pushgateway, *c.pushJob, f.labels, rep)
		cancel()
		if err != nil {
			logger.Error("cannot push to the Pushgateway", "url", *c.pushgateway, "err", err)
		} else {
			logger.Info("pushed the run's summary", "pushgateway", *c.pushgateway, "job", *c.pushJob)
		}
	}
	if *c.mlflowURI != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := logMLflow(ctx, *c.mlflowURI, *c.mlflowRunID, rep)
		cancel()
		if err != nil {
			logger.Error("cannot log to MLflow", "url", *c.mlflowURI, "run_id", *c.mlflowRunID, "err", err)
		} else {
			logger.Info("logged the run's summary to MLflow", "run_id", *c.mlflowRunID)
		}
	}
}
