package report

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/inferensys/aiwatt/internal/energyql"
)

// regionLabel is the fleet's second location dimension: each Prometheus of
// a fleet carries cluster and region as external labels.
const regionLabel = "region"

// resetCounters are the counters whose rise over the period the report uses.
var resetCounters = []string{mWorkloadEnergy, mWorkloadCO2e, mIdle, mUnattributed, mRequests, mOutputTokens, mCPU, mGPU}

// resets notes the series that reset inside the period (an agent restart):
// their rise is the engine's own increase(), not last minus first.
func (b *builder) resets(ctx context.Context) error {
	// One query per counter: resets() drops the metric name, so two counters
	// with the same labels would collide in one vector.
	count := map[gkey]int{}
	for _, m := range resetCounters {
		vec, err := b.instant(ctx, energyql.Resets(m, b.d, b.loc+b.fleet))
		if err != nil {
			return err
		}
		for _, s := range vec {
			g := b.key(s.Metric)
			count[gkey{loc: g.loc, region: g.region}] += int(s.Value)
		}
	}
	var where []string
	for g, n := range count {
		where = append(where, fmt.Sprintf("%d in %s", n, label(Group{Location: g.loc, Region: g.region}.where())))
	}
	sort.Strings(where)
	if len(where) > 0 {
		b.r.DataQuality.Notes = append(b.r.DataQuality.Notes, fmt.Sprintf(
			"Counter series reset in the period (agent restarts): %s. Their rise is the query engine's increase(), which "+
				"Prometheus and Thanos extrapolate to the period's edges and VictoriaMetrics does not; elsewhere figures are "+
				"last minus first sample, the same on every engine.", strings.Join(where, ", ")))
	}
	return nil
}

// partial turns the engine's warnings into gaps over the whole period: a
// partial response (a store down behind a global engine) leaves out some
// series, and the report must not read as complete.
func (b *builder) partial() {
	b.r.DataQuality.PartialResponse = []string{}
	seen := map[string]bool{}
	for _, w := range b.warnings {
		if seen[w] {
			continue
		}
		seen[w] = true
		b.r.DataQuality.PartialResponse = append(b.r.DataQuality.PartialResponse, w)
		b.r.DataQuality.Gaps = append(b.r.DataQuality.Gaps, Outage{Series: "partial response: " + w,
			Start: b.r.From, End: b.r.To, Hours: N(b.o.To.Sub(b.o.From).Hours())})
	}
	sort.Strings(b.r.DataQuality.PartialResponse)
	sortOutages(b.r.DataQuality.Gaps)
	if len(seen) > 0 {
		for i := range b.r.Trend {
			b.r.Trend[i].Gap = true
		}
	}
}

// where is a group's location, with its region when it has one.
func (g Group) where() string {
	if g.Region != "" {
		return g.Location + " (" + g.Region + ")"
	}
	return g.Location
}
