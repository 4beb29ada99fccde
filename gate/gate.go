package gate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/inferensys/aiwatt/internal/energyql"
)

// DefaultMetric is the counter a gate sums when no query is given.
const DefaultMetric = "aiwatt_workload_energy_joules_total"

// ErrNoData means the query matched no series: never a pass.
var ErrNoData = errors.New("no data: the selector matched no energy series in the window")

// ErrBadData means the engine answered, but with a value or warnings that
// cannot be trusted (a negative energy, a partial response): never a pass.
var ErrBadData = errors.New("untrustworthy result")

// ErrPartial means the query engine answered with warnings, as Thanos does
// when a store behind it is down: the energy may be incomplete, so the result
// may be partial; never a pass. It is an ErrBadData.
var ErrPartial = fmt.Errorf("%w: partial response: the query engine warned, so the result may be partial", ErrBadData)

// Querier is the part of the Prometheus API client a gate uses.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

var _ Querier = v1.API(nil)

// Request is one budget check.
type Request struct {
	// Selector is a PromQL label selector such as {project="x",run_id="y"};
	// braces are added when missing.
	Selector string
	// Window is how far back from At the energy is summed.
	Window time.Duration
	// Budget is the allowed energy in joules.
	Budget float64
	// At is the end of the window; zero means now.
	At time.Time
	// Metric is the energy counter (default aiwatt_workload_energy_joules_total).
	Metric string
	// Query replaces the generated query entirely; it must return one scalar
	// or a one-element vector of joules.
	Query string
}

// Result is the verdict of one check.
type Result struct {
	// Query is the PromQL that was run.
	Query string `json:"query"`
	// At is the evaluation time.
	At time.Time `json:"at"`
	// Window is the summed window.
	Window string `json:"window"`
	// Joules is the energy used in the window.
	Joules float64 `json:"joules"`
	// BudgetJoules is the allowed energy.
	BudgetJoules float64 `json:"budget_joules"`
	// Used is Joules / BudgetJoules (1 = the whole budget).
	Used float64 `json:"used"`
	// Over is true when Joules exceeds the budget.
	Over bool `json:"over"`
	// Warnings are what Prometheus warned about.
	Warnings []string `json:"warnings,omitempty"`
}

// BuildQuery returns the PromQL for a request.
func BuildQuery(r Request) string {
	if r.Query != "" {
		return r.Query
	}
	sel := strings.TrimSpace(r.Selector)
	if sel != "" && !strings.HasPrefix(sel, "{") {
		sel = "{" + sel + "}"
	}
	metric := r.Metric
	if metric == "" {
		metric = DefaultMetric
	}
	return fmt.Sprintf("sum(%s)", energyql.Increase(metric+sel, model.Duration(r.Window).String()))
}

// Check runs the request against Prometheus.
func Check(ctx context.Context, q Querier, r Request) (Result, error) {
	if r.Window <= 0 && r.Query == "" {
		return Result{}, errors.New("window must be positive")
	}
	if r.Budget <= 0 {
		return Result{}, errors.New("budget must be positive")
	}
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	res := Result{Query: BuildQuery(r), At: at.UTC(), Window: model.Duration(r.Window).String(), BudgetJoules: r.Budget}
	val, warnings, _, err := q.Query(ctx, res.Query, at)
	res.Warnings = warnings
	if err != nil {
		return res, fmt.Errorf("query %s: %w", res.Query, err)
	}
	if len(warnings) > 0 {
		// Thanos, Mimir and Prometheus warn when a result is partial (a store
		// or a shard did not answer): the energy may be undercounted.
		return res, fmt.Errorf("query %s: %w: %s", res.Query, ErrPartial, strings.Join(warnings, "; "))
	}
	j, err := joules(val)
	if err != nil {
		return res, err
	}
	res.Joules = j
	if j < 0 {
		// increase() of a counter is never negative; a negative result is a
		// wrong --query or broken data, and must not pass a budget.
		return res, fmt.Errorf("%w: the query returned %s, a negative energy (check --query and the counter)", ErrBadData, FormatEnergy(j))
	}
	res.Used = j / r.Budget
	res.Over = j > r.Budget
	return res, nil
}

// joules extracts the single value of a query result.
func joules(v model.Value) (float64, error) {
	var f float64
	switch t := v.(type) {
	case model.Vector:
		if len(t) == 0 {
			return 0, ErrNoData
		}
		if len(t) > 1 {
			return 0, fmt.Errorf("the query returned %d series; it must return one (wrap it in sum())", len(t))
		}
		f = float64(t[0].Value)
	case *model.Scalar:
		f = float64(t.Value)
	default:
		return 0, fmt.Errorf("the query returned a %s; it must return a scalar or one series", v.Type())
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("the query returned %v", f)
	}
	return f, nil
}
