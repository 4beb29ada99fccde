package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Plausibility bounds of one report's figures. A figure beyond them (or a
// negative one) is not dropped, because the report must show what was
// measured, but it is listed as a data-quality finding so that nobody
// publishes it without review.
const (
	// maxPlausibleKWh is about the world's electricity use in a year.
	maxPlausibleKWh = 3e13
	// maxPlausibleTonnes is about the world's greenhouse-gas emissions in a
	// year, in tonnes CO2e.
	maxPlausibleTonnes = 6e10
)

// finding appends a data-quality note.
func (b *builder) finding(format string, a ...any) {
	b.r.DataQuality.Notes = append(b.r.DataQuality.Notes, fmt.Sprintf(format, a...))
}

// sampleSpan turns the first and last sample timestamps of a training run
// (Unix seconds) into times, refusing values outside the period (with a day
// of slack for the look-back of the first sample) or out of order.
func (b *builder) sampleSpan(first, last float64) (time.Time, time.Time, bool) {
	lo, hi := float64(b.o.From.Add(-24*time.Hour).Unix()), float64(b.o.To.Add(time.Minute).Unix())
	if !(first >= lo && last <= hi && first <= last) {
		return time.Time{}, time.Time{}, false
	}
	return time.Unix(int64(first), 0).UTC(), time.Unix(int64(last), 0).UTC(), true
}

// ranges lists negative and implausibly large figures as data-quality
// findings, one note per row and kind: the totals, the shared figures,
// every group and training run, and the trend steps (summed up in one
// note). Aggregates (by project, model, ...) are sums of the groups and are
// not listed again.
func (b *builder) ranges() {
	b.kpiRanges("Totals", b.r.Totals)
	b.kpiRanges("Shared (node idle and unattributed)", b.r.Shared)
	for _, g := range b.r.Groups {
		b.kpiRanges("Group "+groupName(g), g.KPIs)
	}
	for _, t := range b.r.Training {
		var o outOfRange
		o.check("energy_kwh", "kWh", t.EnergyKWh, maxPlausibleKWh)
		o.check("co2e_location_t", "t CO2e", t.CO2eLocationT, maxPlausibleTonnes)
		o.check("gpu_active_hours", "h", t.GPUActiveHours, 0)
		b.report("Training run "+t.Namespace+"/"+t.Pod, o)
	}
	var bad []string
	for _, p := range b.r.Trend {
		var o outOfRange
		o.check("facility_energy_kwh", "kWh", p.FacilityEnergyKWh, maxPlausibleKWh)
		o.check("co2e_location_kg", "kg CO2e", p.CO2eLocationKg, maxPlausibleTonnes*1e3)
		if len(o.negative)+len(o.large) > 0 {
			bad = append(bad, ts(p.End))
		}
	}
	if len(bad) > 0 {
		b.finding("Out of range: %d trend step(s) have a negative or implausibly large figure (the first ends %s); review the data before publishing.", len(bad), bad[0])
	}
}

// outOfRange collects the out-of-range figures of one row.
type outOfRange struct{ negative, large []string }

// check records a negative figure, or one above limit (0: no upper limit).
func (o *outOfRange) check(key, unit string, n Num, limit float64) {
	if !n.Valid() {
		return
	}
	switch v := n.Float(); {
	case v < 0:
		o.negative = append(o.negative, fmt.Sprintf("%s %s %s", key, n.Human(), unit))
	case limit > 0 && v > limit:
		o.large = append(o.large, fmt.Sprintf("%s %s %s, more than %s", key, n.Human(), unit, strconv.FormatFloat(limit, 'g', 2, 64)))
	}
}

// report writes the findings of one row.
func (b *builder) report(where string, o outOfRange) {
	if len(o.negative) > 0 {
		b.finding("Out of range: %s has negative figures (%s): a counter that went backwards, a negative sample or a wrong recording rule. They are shown as measured; review them before publishing.",
			where, strings.Join(o.negative, ", "))
	}
	if len(o.large) > 0 {
		b.finding("Out of range: %s has implausibly large figures (%s); review the data before publishing.", where, strings.Join(o.large, ", "))
	}
}

// kpiRanges checks every KPI of one row.
func (b *builder) kpiRanges(where string, k KPIs) {
	var o outOfRange
	m := k.Map()
	for _, key := range KPIKeys {
		limit := 0.0
		switch Unit(key) {
		case "MWh", "GJ":
			continue // the kWh figure in other units
		case "kWh":
			limit = maxPlausibleKWh
		case "t CO2e":
			limit = maxPlausibleTonnes
		}
		o.check(key, Unit(key), m[key], limit)
	}
	b.report(where, o)
}

// groupName names a group by its labels for findings.
func groupName(g Group) string {
	var parts []string
	for _, l := range []struct{ k, v string }{{"project", g.Project}, {"model_id", g.ModelID}, {"workload_type", g.WorkloadType}, {"location", g.Location}} {
		if l.v != "" {
			parts = append(parts, l.k+"="+l.v)
		}
	}
	if len(parts) == 0 {
		return "(no labels)"
	}
	return strings.Join(parts, ",")
}
