package test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/internal/yamlconf"
)

// checkCarbonFile checks a configuration file of `aiwatt carbon` the way
// the command does (cmd/aiwatt's parseCarbonFile, which a package main does
// not export): strict YAML into {zones: []carbon.Config}, every zone valid,
// and a zone answered by the static table alone must be in the table.
func checkCarbonFile(name string, data []byte) error {
	var f struct {
		Zones []carbon.Config `yaml:"zones"`
	}
	if _, err := yamlconf.Decode(name, data, &f); err != nil {
		return err
	}
	if len(f.Zones) == 0 {
		return errors.New("zones: at least one zone is required")
	}
	static, err := carbon.NewStatic(nil)
	if err != nil {
		return err
	}
	var errs []error
	for i, z := range f.Zones {
		if err := z.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("zones[%d]: %w", i, err))
			continue
		}
		staticOnly := true
		for _, p := range z.Providers {
			staticOnly = staticOnly && p.Type == carbon.TypeStatic
		}
		if staticOnly {
			if _, err := static.Intensity(context.Background(), z.Zone, time.Now()); err != nil {
				errs = append(errs, fmt.Errorf("zones[%d]: static table: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}
