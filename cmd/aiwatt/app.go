package main

import (
	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
)

// aiwattApp is aiwatt's command line: the kingpin application with every
// subcommand and flag registered. Building it runs nothing, so tests parse
// documented command lines with the real parser.
type aiwattApp struct {
	app     *kingpin.Application
	logCfg  *promslog.Config
	agent   *agentCommand
	carbon  *carbonCommand
	gate    *gateCommand
	report  *reportCommand
	run     *runCommand
	version *kingpin.CmdClause
}

// newApp registers every subcommand and flag.
func newApp() *aiwattApp {
	a := &aiwattApp{app: kingpin.New("aiwatt", "Energy and carbon of AI workloads, per project, model and request."), logCfg: &promslog.Config{}}
	a.app.Version(version.Print("aiwatt"))
	a.app.HelpFlag.Short('h')
	promslogflag.AddFlags(a.app, a.logCfg)
	a.agent = newAgentCommand(a.app)
	a.carbon = newCarbonCommand(a.app)
	a.gate = newGateCommand(a.app)
	a.report = newReportCommand(a.app)
	a.run = newRunCommand(a.app)
	a.version = a.app.Command("version", "Print the version and build information.")
	return a
}
