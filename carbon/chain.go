package carbon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// DefaultRetryInterval is how long a Chain leaves a provider alone after a
// failure that came without a Retry-After delay, or after a stale answer.
const DefaultRetryInterval = time.Minute

// DefaultMaxRetryInterval caps the backoff of a provider that keeps failing:
// each consecutive failure doubles its wait, from RetryInterval up to this.
const DefaultMaxRetryInterval = 30 * time.Minute

// Link is one provider in a Chain.
type Link struct {
	// Provider answers for this link.
	Provider Provider
	// Zone is the zone this provider is asked for (providers name zones
	// differently: "DE" for Electricity Maps, "GB-13" for the UK API,
	// "aws:eu-central-1" for the static table). Empty: the zone given to
	// Chain.Intensity.
	Zone string
	// MaxAge is the staleness limit: a value whose window ended more than
	// MaxAge before the time asked is skipped. Zero: no limit.
	MaxAge time.Duration
}

// ChainOptions configures a Chain.
type ChainOptions struct {
	// Basis every answer must have; default BasisLocation. Links whose
	// provider has another fixed basis are refused by NewChain, and answers
	// of another basis are skipped.
	Basis Basis
	// RetryInterval is how long a failed or stale provider is left alone
	// after its first failure when it gave no Retry-After; default
	// DefaultRetryInterval. Each further consecutive failure doubles it.
	RetryInterval time.Duration
	// MaxRetryInterval caps the doubling; default DefaultMaxRetryInterval
	// (never less than RetryInterval).
	MaxRetryInterval time.Duration
	// Clock tells the time; nil: SystemClock.
	Clock Clock
	// Logger gets one line per provider state change; nil: discard.
	Logger *slog.Logger
}

// Chain is an ordered fallback over providers, itself a Provider. For each
// request it walks the links in order and answers with the first value that
// has the required basis and is within that link's MaxAge; every link
// passed over is listed, with the reason, in the answer's
// Provenance.Skipped.
//
// It caches the latest value per link and zone: a cached value whose window
// contains the time asked is served without a call (an hourly source is
// called about once an hour per zone). While later links remain, a link's
// call gets at most half of the time left before the caller's deadline, so
// a provider that accepts connections and never answers fails in time for
// the next link (ultimately the static table) to answer the same call.
// After an error the link is not called again until the server's
// Retry-After (429) or its backoff (RetryInterval, doubling with each
// consecutive failure up to MaxRetryInterval) has passed;
// meanwhile its cached value is served if it is within MaxAge, otherwise the
// link is skipped with the reason and the remaining wait, e.g.
// "rate limited (retry after 25s)".
type Chain struct {
	links    []Link
	basis    Basis
	retry    time.Duration
	maxRetry time.Duration
	clock    Clock
	log      *slog.Logger

	mu    sync.Mutex
	state map[linkKey]*linkState
}

var (
	_ Provider = (*Chain)(nil)
	_ basisOf  = (*Chain)(nil)
)

type linkKey struct {
	link int
	zone string
}

type linkState struct {
	cached   Intensity
	has      bool
	until    time.Time // do not call before this
	lastErr  error
	reason   string // why the link is backing off
	failures int
	errors   map[string]uint64 // failed calls by ErrorReason class
}

// NewChain returns a chain over links, tried in order.
func NewChain(o ChainOptions, links ...Link) (*Chain, error) {
	if len(links) == 0 {
		return nil, errors.New("carbon: a chain needs at least one provider")
	}
	if o.Basis == "" {
		o.Basis = BasisLocation
	}
	if !o.Basis.Valid() {
		return nil, fmt.Errorf("carbon: chain basis %q", o.Basis)
	}
	for i, l := range links {
		if l.Provider == nil {
			return nil, fmt.Errorf("carbon: chain link %d has no provider", i)
		}
		if l.MaxAge < 0 {
			return nil, fmt.Errorf("carbon: chain link %d (%s): negative max age", i, l.Provider.Name())
		}
		if b, ok := l.Provider.(basisOf); ok && b.Basis() != o.Basis {
			return nil, fmt.Errorf("carbon: %s provides %s intensity; it cannot be in a %s chain: %w",
				l.Provider.Name(), b.Basis(), o.Basis, ErrBasis)
		}
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.MaxRetryInterval <= 0 {
		o.MaxRetryInterval = DefaultMaxRetryInterval
	}
	o.MaxRetryInterval = max(o.MaxRetryInterval, o.RetryInterval)
	if o.Clock == nil {
		o.Clock = SystemClock
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Chain{links: append([]Link(nil), links...), basis: o.Basis, retry: o.RetryInterval, maxRetry: o.MaxRetryInterval,
		clock: o.Clock, log: o.Logger, state: map[linkKey]*linkState{}}, nil
}

// Name lists the links, e.g. "chain(electricitymaps,static)".
func (c *Chain) Name() string {
	names := make([]string, len(c.links))
	for i, l := range c.links {
		names[i] = l.Provider.Name()
	}
	return "chain(" + strings.Join(names, ",") + ")"
}

// Basis returns the basis every answer has.
func (c *Chain) Basis() Basis { return c.basis }

// Intensity implements Provider. It returns the first usable value, with
// Provider set to the link that answered and Provenance.Skipped saying why
// earlier links were passed over; or a *ChainError listing every link's
// reason. A cancelled ctx stops the walk at once.
func (c *Chain) Intensity(ctx context.Context, zone string, at time.Time) (Intensity, error) {
	var skipped []Skip
	for i, l := range c.links {
		if err := ctx.Err(); err != nil {
			return Intensity{}, err
		}
		lz := l.Zone
		if lz == "" {
			lz = zone
		}
		in, skip, err := c.tryLink(ctx, i, l, lz, at)
		if err != nil {
			return Intensity{}, err // caller cancelled
		}
		if skip != nil {
			skipped = append(skipped, *skip)
			continue
		}
		if len(skipped) > 0 {
			in.Provenance.Skipped = append(append([]Skip(nil), in.Provenance.Skipped...), skipped...)
		}
		return in, nil
	}
	return Intensity{}, &ChainError{Zone: zone, Skipped: skipped}
}

// tryLink returns a usable value, or a skip with its reason. err is non-nil
// only when ctx was cancelled.
func (c *Chain) tryLink(ctx context.Context, i int, l Link, zone string, at time.Time) (Intensity, *Skip, error) {
	name := l.Provider.Name()
	key := linkKey{i, zone}
	now := c.clock.Now()

	c.mu.Lock()
	st := c.state[key]
	if st == nil {
		st = &linkState{}
		c.state[key] = st
	}
	cached, has := st.cached, st.has
	waiting := now.Before(st.until)
	reason, lastErr, until := st.reason, st.lastErr, st.until
	c.mu.Unlock()

	if has && cached.Contains(at) {
		return cached, nil, nil
	}
	if waiting {
		wait := until.Sub(now).Round(time.Second)
		why := fmt.Sprintf("%s (retry after %s)", reason, wait)
		if has && c.fresh(cached, l, at) {
			cached.Provenance.Notes = append(append([]string(nil), cached.Provenance.Notes...),
				fmt.Sprintf("served from cache; refresh deferred: %s", why))
			return cached, nil, nil
		}
		return Intensity{}, &Skip{Provider: name, Reason: why, Err: lastErr}, nil
	}

	lctx, cancel := c.linkContext(ctx, i)
	in, err := l.Provider.Intensity(lctx, zone, at)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return Intensity{}, nil, fmt.Errorf("carbon: %s: %w", name, ctx.Err())
		}
		var retryAfter time.Duration
		var rl *RateLimitError
		if errors.As(err, &rl) && rl.RetryAfter > 0 {
			retryAfter = rl.RetryAfter
		}
		base := reasonFor(err)
		wait := c.fail(key, name, zone, now, retryAfter, base, ErrorReason(err), err)
		why := fmt.Sprintf("%s (retry after %s)", base, wait)
		if has && c.fresh(cached, l, at) {
			cached.Provenance.Notes = append(append([]string(nil), cached.Provenance.Notes...),
				fmt.Sprintf("served from cache; refresh failed: %s", why))
			return cached, nil, nil
		}
		return Intensity{}, &Skip{Provider: name, Reason: why, Err: err}, nil
	}
	if err := in.Validate(); err != nil {
		err = fmt.Errorf("%s: invalid answer: %w", name, err)
		c.fail(key, name, zone, now, 0, err.Error(), ReasonInvalid, err)
		return Intensity{}, &Skip{Provider: name, Reason: err.Error(), Err: err}, nil
	}
	if in.Basis != c.basis {
		err := fmt.Errorf("%s answered with %s basis, chain requires %s: %w", name, in.Basis, c.basis, ErrBasis)
		return Intensity{}, &Skip{Provider: name, Reason: fmt.Sprintf("basis %s, want %s", in.Basis, c.basis), Err: err}, nil
	}
	if in.ValidFrom.After(at) {
		err := fmt.Errorf("%s answered for %s, after the time asked %s: %w", name,
			in.ValidFrom.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339), ErrNoData)
		return Intensity{}, &Skip{Provider: name, Reason: "no value at the time asked", Err: err}, nil
	}

	c.mu.Lock()
	if !st.has || !in.ValidFrom.Before(st.cached.ValidFrom) {
		st.cached, st.has = in, true
	}
	recovered := st.failures > 0
	st.failures, st.lastErr, st.reason, st.until = 0, nil, "", time.Time{}
	c.mu.Unlock()
	if recovered {
		c.log.Info("carbon intensity provider recovered", "provider", name, "zone", zone)
	}

	if !c.fresh(in, l, at) {
		age := in.Age(at)
		why := fmt.Sprintf("stale: newest value ends %s, %s before %s (limit %s)",
			in.ValidTo.UTC().Format(time.RFC3339), age, at.UTC().Format(time.RFC3339), l.MaxAge)
		err := fmt.Errorf("%s: %s: %w", name, why, ErrStale)
		c.fail(key, name, zone, now, 0, "stale", ReasonStale, err)
		return Intensity{}, &Skip{Provider: name, Reason: why, Err: err}, nil
	}
	return in, nil, nil
}

// fresh reports whether in is within the link's staleness limit at at.
func (c *Chain) fresh(in Intensity, l Link, at time.Time) bool {
	return l.MaxAge == 0 || in.Age(at) <= l.MaxAge
}

// linkContext bounds the call of link i: while later links remain and ctx
// has a deadline, to half the time left before it.
func (c *Chain) linkContext(ctx context.Context, i int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || i == len(c.links)-1 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Until(dl)/2)
}

// fail records a failed call at now and returns how long the link is left
// alone: retryAfter when the server said so, else the backoff, which
// doubles with each consecutive failure up to maxRetry.
func (c *Chain) fail(key linkKey, name, zone string, now time.Time, retryAfter time.Duration, reason, class string, err error) time.Duration {
	c.mu.Lock()
	st := c.state[key]
	first := st.failures == 0
	st.failures++
	wait := retryAfter
	if wait <= 0 {
		wait = c.retry
		for n := 1; n < st.failures && wait < c.maxRetry; n++ {
			wait *= 2
		}
		wait = min(wait, c.maxRetry)
	}
	st.until, st.reason, st.lastErr = now.Add(wait), reason, err
	if st.errors == nil {
		st.errors = map[string]uint64{}
	}
	st.errors[class]++
	c.mu.Unlock()
	if first {
		c.log.Warn("carbon intensity provider unavailable; falling back", "provider", name, "zone", zone, "err", err)
	} else {
		c.log.Debug("carbon intensity provider still unavailable", "provider", name, "zone", zone, "err", err, "retry_in", wait)
	}
	return wait
}

// reasonFor turns an error into a short skip reason.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, ErrRateLimited):
		return "rate limited"
	case errors.Is(err, ErrAuth):
		return "authentication failed"
	case errors.Is(err, ErrUnknownZone):
		return "unknown zone"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return err.Error()
}

// Error classes returned by ErrorReason: short, fixed strings fit for a
// metrics label such as aiwatt_source_errors_total{reason}.
const (
	ReasonRateLimited = "rate_limited" // HTTP 429
	ReasonAuth        = "auth"         // HTTP 401/403, unreadable credentials
	ReasonUnknownZone = "unknown_zone" // the provider does not know the zone
	ReasonTimeout     = "timeout"      // the request ran past its deadline
	ReasonStale       = "stale"        // the newest value is older than MaxAge
	ReasonNoData      = "no_data"      // no value for the time asked
	ReasonParse       = "parse"        // malformed or unexpected response
	ReasonHTTP        = "http"         // another HTTP error status
	ReasonUnreachable = "unreachable"  // connection refused, DNS failure, reset
	ReasonInvalid     = "invalid"      // an implausible value or empty window
	ReasonOther       = "other"        // anything else (unreadable secret, ...)
)

// ErrorReason classifies a provider error into one of the Reason classes.
func ErrorReason(err error) string {
	var pe *ParseError
	var ae *APIError
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.Is(err, ErrRateLimited):
		return ReasonRateLimited
	case errors.Is(err, ErrAuth):
		return ReasonAuth
	case errors.Is(err, ErrUnknownZone):
		return ReasonUnknownZone
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, ErrStale):
		return ReasonStale
	case errors.Is(err, ErrNoData):
		return ReasonNoData
	case errors.As(err, &pe):
		return ReasonParse
	case errors.As(err, &ae):
		return ReasonHTTP
	case errors.As(err, &oe), errors.As(err, &de):
		return ReasonUnreachable
	}
	return ReasonOther
}

// LinkStatus is the health of one link for one zone, for self-metrics such
// as aiwatt_source_up.
type LinkStatus struct {
	Provider string    // provider name
	Zone     string    // zone asked of the provider
	Up       bool      // false while the link is failing or stale
	Reason   string    // why it is down
	Until    time.Time // when it will be tried again
	Cached   *Intensity
	// Errors counts the link's failed calls for this zone since the chain
	// was made, by ErrorReason class (stale and invalid answers included).
	Errors map[string]uint64
}

// Status returns the state of every link and zone asked so far.
func (c *Chain) Status() []LinkStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []LinkStatus
	for i, l := range c.links {
		for k, st := range c.state {
			if k.link != i {
				continue
			}
			s := LinkStatus{Provider: l.Provider.Name(), Zone: k.zone, Up: st.failures == 0, Reason: st.reason, Until: st.until}
			if st.has {
				v := st.cached
				s.Cached = &v
			}
			if len(st.errors) > 0 {
				s.Errors = make(map[string]uint64, len(st.errors))
				for r, n := range st.errors {
					s.Errors[r] = n
				}
			}
			out = append(out, s)
		}
	}
	return out
}
