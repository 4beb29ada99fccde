package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/alecthomas/kingpin/v2"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/carbon"
)

// runCarbonFlags are the flags that give `aiwatt run` the agent's carbon
// configuration.
type runCarbonFlags struct {
	configFile *string
	zoneSet    bool // --zone was given on the command line
	marketSet  bool // --market-factor or --covered-share was given
}

func (r *runCarbonFlags) register(cmd *kingpin.CmdClause, zone, marketFactor, coveredShare *kingpin.FlagClause) {
	r.configFile = cmd.Flag("config.file", "The agent's configuration file: its carbon: section (zone, providers, market) gives the run's carbon intensity exactly as for `aiwatt agent`. The whole file is checked; its other sections are not used.").Default("").String()
	zone.IsSetByUser(&r.zoneSet)
	marketFactor.IsSetByUser(&r.marketSet)
	coveredShare.IsSetByUser(&r.marketSet)
}

// load reads --config.file's carbon section; nil without --config.file.
// --zone and the market flags may not contradict it.
func (r *runCarbonFlags) load() (*carbon.Config, error) {
	if *r.configFile == "" {
		return nil, nil
	}
	cfg, err := agent.LoadConfigFile(*r.configFile)
	if err != nil {
		return nil, fmt.Errorf("--config.file: %w", err)
	}
	if cfg.Carbon == nil {
		return nil, fmt.Errorf("--config.file %s: no carbon: section (without one, leave --config.file out and use --zone)", *r.configFile)
	}
	if r.zoneSet {
		return nil, errors.New("--zone and --config.file: the zone comes from the file's carbon.zone; give one of them")
	}
	if r.marketSet && cfg.Carbon.Market != nil {
		return nil, errors.New("--market-factor/--covered-share and --config.file: the file's carbon.market already sets the market instruments; give one of them")
	}
	return cfg.Carbon, nil
}

// runCarbon is the intensity provider, zone and market of a run.
type runCarbon struct {
	intensity carbon.Provider // nil: the embedded static table
	zone      string
	market    *carbon.Market
}

// buildRunCarbon builds the run's carbon sources: from the configuration's
// carbon section when there is one (the location chain, static table last,
// and its market unless the flags give one), else the static table for zone.
func buildRunCarbon(cfg *carbon.Config, zone string, market *carbon.Market, logger *slog.Logger) (runCarbon, error) {
	if cfg == nil {
		return runCarbon{zone: zone, market: market}, nil
	}
	src, err := cfg.Build(carbon.BuildOptions{Logger: logger})
	if err != nil {
		return runCarbon{}, err
	}
	if market == nil {
		market = src.Market
	}
	return runCarbon{intensity: src.Location, zone: src.Zone, market: market}, nil
}
