package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/internal/yamlconf"
)

// carbonFile is the configuration file of `aiwatt carbon` (--config.file):
// the zones the service serves, each configured exactly like the agent's
// carbon section (zone, providers, marginal, market, retry_interval). YAML
// anchors share a provider list between zones. Secrets are references
// ({file: PATH} or {env: NAME}), never values.
//
//	zones:
//	  - zone: DE
//	    providers: &em
//	      - type: electricitymaps
//	        token: {file: /etc/aiwatt/secrets/electricitymaps-token}
//	        max_age: 2h
//	  - zone: FR
//	    providers: *em
//	  - zone: GB
//	    providers:
//	      - {type: ukci, max_age: 1h}
type carbonFile struct {
	// Zones are the zones served, in the order they are listed.
	Zones []carbon.Config `yaml:"zones"`

	name string     // file name for errors; empty for the --zone default
	root *yaml.Node // the document, for error lines; nil for the default
}

// defaultCarbonFile serves one zone from the embedded static table: what
// `aiwatt carbon --zone Z` runs without a configuration file.
func defaultCarbonFile(zone string) *carbonFile {
	return &carbonFile{Zones: []carbon.Config{{Zone: zone}}}
}

// parseCarbonFile decodes and validates a configuration. Errors read
// "FILE:LINE: zones[i].field: reason", one per line.
func parseCarbonFile(name string, data []byte) (*carbonFile, error) {
	f := &carbonFile{name: name}
	root, err := yamlconf.Decode(name, data, f)
	if err != nil {
		return nil, secretHint(err)
	}
	f.root = root
	if err := f.validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// secretHint adds the fix to the YAML error of a secret written as a value.
func secretHint(err error) error {
	if !strings.Contains(err.Error(), "into carbon.SecretRef") {
		return err
	}
	return fmt.Errorf("%w\n(a secret is referenced as {file: PATH} or {env: NAME}; its value is never written in the configuration)", err)
}

// errorf formats an error at the line of path ("zones[0].providers[1]").
func (f *carbonFile) errorf(path, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if f.name == "" {
		return errors.New(msg)
	}
	return fmt.Errorf("%s:%d: %s", f.name, yamlconf.Line(f.root, path), msg)
}

// zoneError places an error of zone entry i's carbon.Config (Validate or
// Build) at the line of the key it names.
func (f *carbonFile) zoneError(i int, err error) error {
	entry := fmt.Sprintf("zones[%d]", i)
	if field := carbon.ErrorField(err); field != "" {
		return f.errorf(entry+"."+field, "%s.%s", entry, strings.TrimPrefix(err.Error(), "carbon."))
	}
	return f.errorf(entry, "%s: %v", entry, err)
}

// validate checks every zone entry, refuses duplicate zones, and refuses a
// zone that only the static table would answer when the table does not know
// it (it could never have a value).
func (f *carbonFile) validate() error {
	if len(f.Zones) == 0 {
		return f.errorf("zones", "zones: at least one zone is required")
	}
	static, err := carbon.NewStatic(nil)
	if err != nil {
		return err
	}
	seen := map[string]int{}
	var errs []error
	for i, z := range f.Zones {
		if err := z.Validate(); err != nil {
			errs = append(errs, f.zoneError(i, err))
			continue
		}
		if strings.TrimSpace(z.Zone) != z.Zone {
			errs = append(errs, f.errorf(fmt.Sprintf("zones[%d].zone", i), "zones[%d].zone %q: surrounding spaces", i, z.Zone))
			continue
		}
		key := strings.ToLower(z.Zone)
		if j, dup := seen[key]; dup {
			errs = append(errs, f.errorf(fmt.Sprintf("zones[%d].zone", i), "zones[%d].zone: %s is already served by zones[%d]", i, z.Zone, j))
			continue
		}
		seen[key] = i
		if err := staticOnlyKnown(static, z); err != nil {
			errs = append(errs, f.errorf(fmt.Sprintf("zones[%d].zone", i), "zones[%d].zone: %v", i, err))
		}
	}
	return errors.Join(errs...)
}

// staticOnlyKnown refuses a zone served by the static table alone when the
// table has no factor for it.
func staticOnlyKnown(static *carbon.Static, z carbon.Config) error {
	zone := z.Zone
	for _, p := range z.Providers {
		if p.Type != carbon.TypeStatic {
			return nil
		}
		if p.Zone != "" {
			zone = p.Zone
		}
	}
	_, err := static.Intensity(context.Background(), zone, time.Now())
	if errors.Is(err, carbon.ErrUnknownZone) {
		return fmt.Errorf("%s is not in the embedded static table (an ISO country code, WORLD, EU or a cloud region such as aws:eu-west-1) and no other provider is configured", zone)
	}
	return err
}

// carbonZone is one served zone: its location chain, and the optional
// marginal chain and market instruments.
type carbonZone struct {
	name     string
	location *carbon.Chain
	marginal *carbon.Chain  // nil unless marginal is configured
	market   *carbon.Market // nil unless market is configured
}

// serves reports whether the zone serves basis b.
func (z *carbonZone) serves(b carbon.Basis) bool {
	switch b {
	case carbon.BasisLocation:
		return true
	case carbon.BasisMarket:
		return z.market != nil
	case carbon.BasisMarginal:
		return z.marginal != nil
	}
	return false
}

// build constructs every zone's providers and chains. The marginal provider
// gets a chain of its own (marginal basis) so that it has the same caching,
// back-off and status as the location links.
func (f *carbonFile) build(o carbon.BuildOptions) ([]*carbonZone, error) {
	zones := make([]*carbonZone, 0, len(f.Zones))
	for i, cfg := range f.Zones {
		src, err := cfg.Build(o)
		if err != nil {
			return nil, f.zoneError(i, err)
		}
		z := &carbonZone{name: cfg.Zone, location: src.Location, market: src.Market}
		if src.Marginal != nil {
			z.marginal, err = carbon.NewChain(carbon.ChainOptions{Basis: carbon.BasisMarginal, RetryInterval: cfg.RetryInterval, Clock: o.Clock, Logger: o.Logger},
				carbon.Link{Provider: src.Marginal, Zone: cfg.Marginal.Zone, MaxAge: cfg.Marginal.MaxAge})
			if err != nil {
				return nil, f.errorf(fmt.Sprintf("zones[%d].marginal", i), "zones[%d].marginal: %v", i, err)
			}
		}
		zones = append(zones, z)
	}
	return zones, nil
}
