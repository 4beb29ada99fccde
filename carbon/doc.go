// Package carbon owns grid carbon intensity for aiwatt: providers with
// provenance, an ordered fallback chain, secret handling, and the
// time-matched CO2e calculation (CO2e = energy × grid carbon intensity).
//
// It is pure data and HTTP clients. It must not import agent/, exporter/ or
// any Prometheus client; it logs through an injected *slog.Logger and reads
// time from an injected Clock.
//
// # Values
//
// An Intensity is grams CO2e per kWh (GramsPerKWh) valid over
// [ValidFrom, ValidTo), with a Basis (location, market, marginal), the
// Provider that produced it and a Provenance: source, dataset/version or API
// endpoint, licence, factor type (direct or lifecycle), method
// (measured/estimated/actual/forecast/annual average), fetched-at, notes,
// and — from a Chain — which providers were skipped and why.
//
// # Providers
//
// Provider is Name plus Intensity(ctx, zone, at); HistoryProvider adds
// History(ctx, zone, from, to). The contract (context, typed errors
// ErrUnknownZone, ErrAuth, *RateLimitError/ErrRateLimited, ErrStale,
// ErrNoData, *ParseError, *APIError) is written at the interface.
//
//   - Static (NewStatic): the default, no key, no network. An embedded CSV
//     (data/grid_factors.csv) of annual factors by ISO country code (plus
//     WORLD and EU) and by cloud region ("aws:eu-west-1",
//     "gcp:europe-west4", "azure:westeurope"). Each row carries its source,
//     exact reference, data year and licence; ParseTable refuses rows
//     without them, or from a source or licence outside AllowedSources
//     (Ember/OWID and EEA CC-BY-4.0, EPA eGRID US-Gov-PD, Google
//     region-carbon-info and Cloud Carbon Footprint Apache-2.0). The values
//     are copies that go stale: refresh them from the named datasets.
//   - ElectricityMaps (NewElectricityMaps): v3 API, hourly, location basis,
//     emissionFactorType=direct by default (location-based Scope 2); token
//     in the auth-token header.
//   - WattTime (NewWattTime): v3 co2_moer, converted from lbs/MWh to g/kWh,
//     BasisMarginal. Login with basic auth, bearer token refreshed on
//     expiry, on 401 and on password rotation.
//   - UKCarbonIntensity (NewUKCarbonIntensity): free GB API, half-hourly,
//     national ("GB") or regional ("GB-1".."GB-17"); "actual" when present,
//     else "forecast", recorded in the provenance.
//   - Remote (NewRemote): another aiwatt process, the `aiwatt carbon`
//     service, read at IntensityAPIPath (wire types IntensityResponse and
//     IntensityErrorResponse), so that node agents share one cluster-wide
//     client and key. Answers keep the service's provider, basis and
//     provenance, plus the note "via aiwatt carbon at URL".
//
// All HTTP providers send User-Agent "aiwatt", bound each request by the
// context and a timeout, cap the body size, and map 429 (+Retry-After) to
// *RateLimitError, 401/403 to ErrAuth, malformed JSON to a *ParseError naming
// provider and endpoint. Base URLs are configurable (tests use httptest).
//
// # Fallback
//
// Chain (NewChain) is an ordered list of Links, each with its own zone name
// and staleness limit (MaxAge), and is itself a Provider. An error or a value
// older than MaxAge falls through to the next link; the answer's
// Provenance.Skipped says e.g. "electricitymaps: rate limited (retry after
// 30s)". The latest value per link and zone is cached and reused while its
// window covers the time asked, and a failing link is not called again before
// its Retry-After (or RetryInterval). A chain has one basis; providers of
// another basis are refused. Chain.Status reports per-link health for
// aiwatt_source_up, and failed calls counted by ErrorReason class (a fixed,
// label-safe set) for aiwatt_source_errors_total.
//
// # Secrets
//
// SecretRef names a file or an environment variable — never a literal. A
// Secret re-reads its file on every use, so a rotated Kubernetes Secret takes
// effect on the next request. Secret values never appear in errors, logs,
// provenance or String output.
//
// # Emissions
//
// Calculator (NewCalculator) turns an Interval (start, end, joules) into
// Emissions: the interval is split at intensity-window boundaries, energy is
// shared pro rata by time, and
//
//	location grams = Σ E_seg/3.6e6 × I(seg)
//	market grams   = Σ E_seg/3.6e6 × (1 − CoveredShare) × F(seg)
//
// where F is the supplier-specific factor, else the residual-mix factor, else
// the location factor (and the segment's MarketFactorSource says which). Only
// location-basis intensities are accepted (ErrBasis otherwise), so marginal
// signals cannot enter inventory totals. NewMarginalCalculator is the same
// time matching over a marginal chain: it accepts only marginal values and
// fills Emissions.Marginal alone (marginal grams, a steering view). Market.Intensity gives the same
// market factor as a value, (1 − CoveredShare) × F, with provenance. Accumulator sums intervals and keeps
// the provenance of every source used (SourceUse).
//
// # Configuration
//
// Config (YAML tags, for the agent's strict config) lists the location
// chain, an optional marginal provider, market instruments and secrets;
// Config.Build returns the Chain, the marginal Provider (alone in a marginal
// Chain of its own whose call is bounded by half the caller's time left,
// ChainOptions.BoundLast) and the Market.
//
// Typical use:
//
//	src, err := cfg.Build(carbon.BuildOptions{Logger: logger})
//	calc, err := src.Calculator()
//	acc := carbon.NewAccumulator(calc)
//	e, err := acc.Add(ctx, carbon.Interval{Start: t0, End: t1, Energy: joules})
//	// e.Location, e.Market in grams; e.Segments[i].Intensity.Provenance
package carbon
