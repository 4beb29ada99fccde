// Command aiwatt measures the energy and carbon of AI workloads. Its
// subcommands are the node agent (agent), the cluster's carbon-intensity
// service (carbon) and version; each is documented by `aiwatt help
// SUBCOMMAND`.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs one subcommand, returning the process exit code.
func run(args []string) int {
	app := kingpin.New("aiwatt", "Energy and carbon of AI workloads, per project, model and request.")
	app.Version(version.Print("aiwatt"))
	app.HelpFlag.Short('h')
	logCfg := &promslog.Config{}
	promslogflag.AddFlags(app, logCfg)

	agentCmd := newAgentCommand(app)
	carbonCmd := newCarbonCommand(app)
	gateCmd := newGateCommand(app)
	reportCmd := newReportCommand(app)
	runCmd := newRunCommand(app)
	versionCmd := app.Command("version", "Print the version and build information.")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "aiwatt: %v (try --help)\n", err)
		return 2
	}
	logger := promslog.New(logCfg)
	switch cmd {
	case agentCmd.cmd.FullCommand():
		return agentCmd.run(logger)
	case carbonCmd.cmd.FullCommand():
		return carbonCmd.run(logger)
	case gateCmd.cmd.FullCommand():
		return gateCmd.run(logger)
	case reportCmd.cmd.FullCommand():
		return reportCmd.run(logger)
	case runCmd.cmd.FullCommand():
		return runCmd.run(logger)
	case versionCmd.FullCommand():
		fmt.Println(version.Print("aiwatt"))
		return 0
	}
	return 2
}
