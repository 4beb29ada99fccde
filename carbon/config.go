package carbon

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

// Provider types accepted in ProviderConfig.Type.
const (
	TypeElectricityMaps   = "electricitymaps"
	TypeWattTime          = "watttime"
	TypeUKCarbonIntensity = "ukci"
	TypeStatic            = "static"
	// TypeAiwatt reads an `aiwatt carbon` service (Remote).
	TypeAiwatt = "aiwatt"
)

// Config is the carbon section of the agent's YAML configuration. Secrets
// are referenced by file or environment variable, never written inline.
//
//	carbon:
//	  zone: DE
//	  providers:                 # location chain, tried in order
//	    - type: electricitymaps
//	      token: {file: /etc/aiwatt/secrets/electricitymaps-token}
//	      max_age: 2h
//	    - type: aiwatt           # or: the cluster's `aiwatt carbon` service
//	      base_url: http://aiwatt-carbon.monitoring.svc:28291
//	    - type: static           # appended automatically when absent
//	  marginal:                  # optional steering signal, never in totals
//	    type: watttime
//	    zone: CAISO_NORTH
//	    username: aiwatt
//	    password: {env: WATTTIME_PASSWORD}
//	  market:
//	    supplier_factor_g_per_kwh: 120
//	    supplier_source: "Stadtwerke X 2024 disclosure"
//	    covered_share: 0.4
//	    covered_source: "GO certificates 2025, 40% of site load"
type Config struct {
	// Zone is the default zone for every provider (ISO country code, an
	// Electricity Maps zone, or a cloud key such as "aws:eu-west-1").
	Zone string `yaml:"zone"`
	// Providers is the location-basis fallback chain, in order. The static
	// table is appended as the last link when not listed.
	Providers []ProviderConfig `yaml:"providers,omitempty"`
	// Marginal optionally configures a marginal signal (WattTime) for
	// carbon-aware scheduling; it is never used for emissions totals.
	Marginal *ProviderConfig `yaml:"marginal,omitempty"`
	// Market configures market-based emissions; absent: location only.
	Market *MarketConfig `yaml:"market,omitempty"`
	// RetryInterval is how long a failing provider is left alone when it
	// gave no Retry-After. Default 1m.
	RetryInterval time.Duration `yaml:"retry_interval,omitempty"`
}

// ProviderConfig configures one provider.
type ProviderConfig struct {
	// Type is electricitymaps, watttime, ukci, static or aiwatt (an `aiwatt
	// carbon` service, read by Remote).
	Type string `yaml:"type"`
	// Zone overrides Config.Zone for this provider (e.g. "GB-13" for ukci,
	// "CAISO_NORTH" for watttime, "aws:eu-west-1" for static).
	Zone string `yaml:"zone,omitempty"`
	// BaseURL overrides the provider's public API URL; required for aiwatt
	// (the service's URL).
	BaseURL string `yaml:"base_url,omitempty"`
	// MaxAge is the staleness limit; zero: none.
	MaxAge time.Duration `yaml:"max_age,omitempty"`
	// Timeout bounds one request; zero: 10s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Token is the Electricity Maps API key.
	Token SecretRef `yaml:"token,omitempty"`
	// Username is the WattTime account name, or the basic-auth user of an
	// aiwatt service (not secret).
	Username string `yaml:"username,omitempty"`
	// Password is the WattTime password, or the aiwatt service's basic-auth
	// password.
	Password SecretRef `yaml:"password,omitempty"`
	// EmissionFactorType is direct (default) or lifecycle; Electricity Maps
	// only.
	EmissionFactorType string `yaml:"emission_factor_type,omitempty"`
}

// MarketConfig is the YAML form of Market.
type MarketConfig struct {
	SupplierFactor *float64 `yaml:"supplier_factor_g_per_kwh,omitempty"`
	SupplierSource string   `yaml:"supplier_source,omitempty"`
	ResidualFactor *float64 `yaml:"residual_factor_g_per_kwh,omitempty"`
	ResidualSource string   `yaml:"residual_source,omitempty"`
	CoveredShare   float64  `yaml:"covered_share,omitempty"`
	CoveredSource  string   `yaml:"covered_source,omitempty"`
}

// Market converts the YAML form.
func (m *MarketConfig) Market() *Market {
	if m == nil {
		return nil
	}
	out := &Market{SupplierSource: m.SupplierSource, ResidualSource: m.ResidualSource,
		CoveredShare: m.CoveredShare, CoveredSource: m.CoveredSource}
	if m.SupplierFactor != nil {
		v := GramsPerKWh(*m.SupplierFactor)
		out.SupplierFactor = &v
	}
	if m.ResidualFactor != nil {
		v := GramsPerKWh(*m.ResidualFactor)
		out.ResidualFactor = &v
	}
	return out
}

// Validate checks the configuration without building anything. Errors name
// the field (carbon.providers[0].token ...).
func (c *Config) Validate() error {
	if c.Zone == "" {
		return errors.New("carbon.zone is required")
	}
	if c.RetryInterval < 0 {
		return errors.New("carbon.retry_interval must not be negative")
	}
	for i, p := range c.Providers {
		if err := p.validate(); err != nil {
			return fmt.Errorf("carbon.providers[%d]: %w", i, err)
		}
		if p.Type == TypeWattTime {
			return fmt.Errorf("carbon.providers[%d]: watttime gives marginal intensity, which must not enter location totals; configure it under carbon.marginal", i)
		}
	}
	if c.Marginal != nil {
		if c.Marginal.Type != TypeWattTime && c.Marginal.Type != TypeAiwatt {
			return fmt.Errorf("carbon.marginal: type %q: only watttime (or an aiwatt carbon service relaying it) provides a marginal signal", c.Marginal.Type)
		}
		if err := c.Marginal.validate(); err != nil {
			return fmt.Errorf("carbon.marginal: %w", err)
		}
	}
	if c.Market != nil {
		if err := c.Market.Market().Validate(); err != nil {
			return fmt.Errorf("carbon.market: %w", err)
		}
	}
	return nil
}

// errorFieldRE reads the key out of a Validate or Build error:
// "carbon.providers[0]: token: ...", "carbon.zone is required".
var errorFieldRE = regexp.MustCompile(`^carbon\.([a-z_]+(?:\[\d+\])?)(?:: ([a-z_]+):)?`)

// ErrorField returns the key an error of Validate or Build is about, as a
// path relative to the carbon section ("providers[1].token", "marginal",
// "zone"), for callers that place the error at its line in a file; "" when
// the error names no key.
func ErrorField(err error) string {
	m := errorFieldRE.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return ""
	case m[2] != "":
		return m[1] + "." + m[2]
	}
	return m[1]
}

func (p *ProviderConfig) validate() error {
	if p.MaxAge < 0 || p.Timeout < 0 {
		return errors.New("max_age and timeout must not be negative")
	}
	switch p.Type {
	case TypeElectricityMaps:
		if err := p.Token.Validate(); err != nil {
			return fmt.Errorf("token: %w", err)
		}
		switch FactorType(p.EmissionFactorType) {
		case "", FactorDirect, FactorLifecycle:
		default:
			return fmt.Errorf("emission_factor_type %q: want direct or lifecycle", p.EmissionFactorType)
		}
	case TypeWattTime:
		if p.Username == "" {
			return errors.New("username is required")
		}
		if err := p.Password.Validate(); err != nil {
			return fmt.Errorf("password: %w", err)
		}
	case TypeAiwatt:
		if p.BaseURL == "" {
			return errors.New("base_url (the aiwatt carbon service) is required")
		}
		if (p.Username == "") != p.Password.IsZero() {
			return errors.New("basic auth needs both username and password")
		}
		if !p.Password.IsZero() {
			if err := p.Password.Validate(); err != nil {
				return fmt.Errorf("password: %w", err)
			}
		}
	case TypeUKCarbonIntensity, TypeStatic:
	default:
		return fmt.Errorf("type %q: want electricitymaps, watttime, ukci, static or aiwatt", p.Type)
	}
	if p.Type != TypeElectricityMaps && (!p.Token.IsZero() || p.EmissionFactorType != "") {
		return fmt.Errorf("token and emission_factor_type apply to electricitymaps only")
	}
	if p.Type != TypeWattTime && p.Type != TypeAiwatt && (!p.Password.IsZero() || p.Username != "") {
		return fmt.Errorf("username and password apply to watttime and aiwatt only")
	}
	if p.Type == TypeStatic && (p.BaseURL != "" || p.Timeout != 0) {
		return fmt.Errorf("static takes no base_url or timeout")
	}
	return nil
}

// BuildOptions are the runtime dependencies Build injects.
type BuildOptions struct {
	// HTTPClient for every provider; nil: a default client.
	HTTPClient *http.Client
	// Clock; nil: SystemClock.
	Clock Clock
	// Logger; nil: discard.
	Logger *slog.Logger
	// Table for the static provider; nil: DefaultTable.
	Table *Table
}

// Sources are the parts Build makes from a Config.
type Sources struct {
	// Zone is Config.Zone.
	Zone string
	// Location is the location-basis chain (static table last).
	Location *Chain
	// Marginal is the marginal-signal provider, nil when not configured.
	Marginal Provider
	// Market is the market instruments, nil when not configured.
	Market *Market
}

// Calculator returns a Calculator over the location chain and market.
func (s *Sources) Calculator() (*Calculator, error) {
	return NewCalculator(s.Location, s.Zone, s.Market)
}

// Build validates c and constructs the providers, chain and market.
func (c *Config) Build(o BuildOptions) (*Sources, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.Clock == nil {
		o.Clock = SystemClock
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	provs := c.Providers
	hasStatic := false
	for _, p := range provs {
		hasStatic = hasStatic || p.Type == TypeStatic
	}
	if !hasStatic {
		provs = append(append([]ProviderConfig(nil), provs...), ProviderConfig{Type: TypeStatic})
	}
	links := make([]Link, 0, len(provs))
	for i, pc := range provs {
		p, err := pc.build(o, BasisLocation)
		if err != nil {
			return nil, fmt.Errorf("carbon.providers[%d]: %w", i, err)
		}
		links = append(links, Link{Provider: p, Zone: pc.Zone, MaxAge: pc.MaxAge})
	}
	chain, err := NewChain(ChainOptions{Basis: BasisLocation, RetryInterval: c.RetryInterval, Clock: o.Clock, Logger: o.Logger}, links...)
	if err != nil {
		return nil, err
	}
	s := &Sources{Zone: c.Zone, Location: chain, Market: c.Market.Market()}
	if c.Marginal != nil {
		p, err := c.Marginal.build(o, BasisMarginal)
		if err != nil {
			return nil, fmt.Errorf("carbon.marginal: %w", err)
		}
		s.Marginal = p
	}
	return s, nil
}

// build makes the provider; basis is what an aiwatt service is asked for.
func (p *ProviderConfig) build(o BuildOptions, basis Basis) (Provider, error) {
	h := HTTPOptions{BaseURL: p.BaseURL, Client: o.HTTPClient, Timeout: p.Timeout, Clock: o.Clock, Logger: o.Logger}
	switch p.Type {
	case TypeElectricityMaps:
		tok, err := NewSecret(p.Token, o.Logger)
		if err != nil {
			return nil, err
		}
		return NewElectricityMaps(ElectricityMapsOptions{HTTPOptions: h, Token: tok, EmissionFactorType: FactorType(p.EmissionFactorType)})
	case TypeWattTime:
		pw, err := NewSecret(p.Password, o.Logger)
		if err != nil {
			return nil, err
		}
		return NewWattTime(WattTimeOptions{HTTPOptions: h, Username: p.Username, Password: pw})
	case TypeUKCarbonIntensity:
		return NewUKCarbonIntensity(h)
	case TypeStatic:
		return NewStatic(o.Table)
	case TypeAiwatt:
		ro := RemoteOptions{HTTPOptions: h, Basis: basis, Username: p.Username}
		if !p.Password.IsZero() {
			pw, err := NewSecret(p.Password, o.Logger)
			if err != nil {
				return nil, err
			}
			ro.Password = pw
		}
		return NewRemote(ro)
	}
	return nil, fmt.Errorf("type %q", p.Type)
}
