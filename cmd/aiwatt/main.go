// Command aiwatt measures the energy and carbon of AI workloads. Its
// subcommands are the node agent (agent), the cluster's carbon-intensity
// service (carbon) and version; each is documented by `aiwatt help
// SUBCOMMAND`.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run parses args and runs one subcommand, returning the process exit code.
func run(args []string) int {
	a := newApp()
	app, logCfg := a.app, a.logCfg
	agentCmd, carbonCmd, gateCmd, reportCmd, runCmd, versionCmd := a.agent, a.carbon, a.gate, a.report, a.run, a.version

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
