package report

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/inferensys/aiwatt/carbon"
	"github.com/inferensys/aiwatt/internal/energyql"
)

// Querier is the part of the Prometheus API client a report uses.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
	QueryRange(ctx context.Context, query string, r v1.Range, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

var _ Querier = v1.API(nil)

// Options say what to report on.
type Options struct {
	// From and To bound the period (To after From, whole seconds).
	From, To time.Time
	// Resolution is the step for gaps, outages and GPU-active time (default
	// 15m); it must be at least the scrape interval.
	Resolution time.Duration
	// Config is the report configuration (nil: defaults).
	Config *Config
	// Source is the Prometheus URL, recorded in the report.
	Source string
	// Ledger is the path of aiwatt-cloud's CSV export (--export.csv) to
	// show beside the measured figures ("" when none was given). Build
	// reads it with LoadLedgerCSV before any query and fails if it cannot.
	Ledger string
}

// Metric names the report reads.
const (
	mWorkloadEnergy = "aiwatt_workload_energy_joules_total"
	mWorkloadCO2e   = "aiwatt_workload_co2e_grams_total"
	mIdle           = "aiwatt_node_idle_energy_joules_total"
	mUnattributed   = "aiwatt_node_unattributed_energy_joules_total"
	mRequests       = "aiwatt_inference_requests_total"
	mOutputTokens   = "aiwatt_inference_output_tokens_total"
	mCPU            = "aiwatt_cpu_energy_joules_total"
	mGPU            = "aiwatt_gpu_energy_joules_total"
	mIntensity      = "aiwatt_grid_carbon_intensity_grams_per_kwh"
	mSourceUp       = "aiwatt_source_up"
	mSamples        = "aiwatt_samples_total"
	mAttribution    = "aiwatt_attribution_info"
)

var labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

type builder struct {
	q   Querier
	o   Options
	c   *Config
	r   *Report
	d   string // the period as a PromQL duration
	loc string
	// fleet is ", region" when the location label is not region itself:
	// the second fleet dimension every group query keeps.
	fleet string
	// warnings are what the engine warned about (a partial response).
	warnings []string
}

// Build queries Prometheus for the period and computes the report.
func Build(ctx context.Context, q Querier, o Options) (*Report, error) {
	if !o.To.After(o.From) {
		return nil, errors.New("the period is empty: --to must be after --from")
	}
	if o.To.Sub(o.From)%time.Second != 0 {
		return nil, errors.New("the period must be whole seconds")
	}
	if o.Resolution <= 0 {
		o.Resolution = 15 * time.Minute
	}
	if o.Resolution%time.Second != 0 || o.Resolution > o.To.Sub(o.From) {
		return nil, fmt.Errorf("resolution %s must be whole seconds and within the period", o.Resolution)
	}
	c := o.Config
	if c == nil {
		c = &Config{}
		c.defaults()
	}
	if !labelRE.MatchString(c.LocationLabel) {
		return nil, fmt.Errorf("location_label %q is not a label name", c.LocationLabel)
	}
	var led *Ledger
	if o.Ledger != "" {
		l, err := LoadLedgerCSV(o.Ledger)
		if err != nil {
			return nil, err
		}
		led = l
	}
	b := &builder{q: q, o: o, c: c, d: model.Duration(o.To.Sub(o.From)).String(), loc: c.LocationLabel}
	if b.loc != regionLabel {
		b.fleet = ", " + regionLabel
	}
	b.r = &Report{
		Title: "aiwatt energy and carbon report", Organisation: c.Organisation, Boundary: c.Boundary,
		From: o.From.UTC(), To: o.To.UTC(), Source: o.Source, Resolution: model.Duration(o.Resolution).String(), PUE: c.PUE,
		Groups: []Group{}, Training: []TrainingRun{}, Trend: []TrendPoint{}, Targets: []TargetProgress{}, Queries: []QueryRecord{},
	}
	steps := []func(context.Context) error{b.groups, b.training, b.dataQuality, b.trend, b.methodology, b.resets}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return nil, err
		}
	}
	b.ranges()
	b.partial()
	b.ledger(led)
	b.targets()
	fw, err := Frameworks()
	if err != nil {
		return nil, err
	}
	vals := b.r.Totals.Map()
	for k, v := range b.reportLevel() {
		vals[k] = v
	}
	b.r.Frameworks = fillFrameworks(fw, vals)
	return b.r, nil
}

// instant runs a query at the end of the period and records it.
func (b *builder) instant(ctx context.Context, q string) (model.Vector, error) {
	b.r.Queries = append(b.r.Queries, QueryRecord{Kind: "instant", Query: q, Time: b.r.To})
	v, warn, _, err := b.q.Query(ctx, q, b.o.To)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	b.warn(warn)
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %s: got %s, want a vector", q, v.Type())
	}
	return vec, nil
}

// rangeQ runs a range query over (From, To] and records it.
func (b *builder) rangeQ(ctx context.Context, q string, step time.Duration) (model.Matrix, error) {
	start := b.o.From.Add(step)
	if start.After(b.o.To) {
		start = b.o.To
	}
	b.r.Queries = append(b.r.Queries, QueryRecord{Kind: "range", Query: q, Start: start.UTC(), End: b.r.To, Step: model.Duration(step).String()})
	v, warn, _, err := b.q.QueryRange(ctx, q, v1.Range{Start: start, End: b.o.To, Step: step})
	if err != nil {
		return nil, fmt.Errorf("query_range %s: %w", q, err)
	}
	b.warn(warn)
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query_range %s: got %s, want a matrix", q, v.Type())
	}
	return m, nil
}

func (b *builder) warn(w v1.Warnings) {
	for _, s := range w {
		b.r.DataQuality.Notes = append(b.r.DataQuality.Notes, "Prometheus warning: "+s)
		b.warnings = append(b.warnings, s)
	}
}

// inc is the engine-independent rise of a counter over the period.
func (b *builder) inc(selector string) string { return energyql.Increase(selector, b.d) }

type gkey struct{ project, model, wtype, loc, region string }

func (b *builder) key(m model.Metric) gkey {
	k := gkey{string(m["project"]), string(m["model_id"]), string(m["workload_type"]), string(m[model.LabelName(b.loc)]), ""}
	if b.fleet != "" {
		k.region = string(m[regionLabel])
	}
	return k
}

// raw holds the summed counters of one group.
type raw struct {
	energyJ, locG, mktG, requests, tokens Num
}

func (b *builder) byGroup(ctx context.Context, q string, set func(*raw, model.Metric, float64), acc map[gkey]*raw) error {
	vec, err := b.instant(ctx, q)
	if err != nil {
		return err
	}
	for _, s := range vec {
		k := b.key(s.Metric)
		if acc[k] == nil {
			acc[k] = &raw{}
		}
		set(acc[k], s.Metric, float64(s.Value))
	}
	return nil
}

func (b *builder) sumAll(ctx context.Context, q string) (Num, error) {
	vec, err := b.instant(ctx, q)
	if err != nil {
		return NoData, err
	}
	n := NoData
	for _, s := range vec {
		n = n.Add(N(float64(s.Value)))
	}
	return n, nil
}

// kpis turns summed counters into KPIs (per-group figures; see doc.go).
func (b *builder) kpis(r raw) KPIs {
	pue := b.c.PUE
	kwh := r.energyJ.Scale(1 / 3.6e6)
	fac := kwh.Scale(pue)
	loc := r.locG.Scale(pue)
	k := KPIs{
		ITEnergyKWh: kwh, ITEnergyMWh: kwh.Scale(1e-3), ITEnergyGJ: r.energyJ.Scale(1e-9),
		FacilityEnergyKWh: fac, FacilityEnergyMWh: fac.Scale(1e-3), FacilityEnergyGJ: r.energyJ.Scale(pue * 1e-9),
		CO2eLocationT: loc.Scale(1e-6), CO2eMarketT: r.mktG.Scale(pue * 1e-6),
		Inferences: r.requests, OutputTokens: r.tokens,
		EnergyPer1kInferencesKWh: fac.Div(r.requests).Scale(1000),
		CO2ePer1kInferencesG:     loc.Div(r.requests).Scale(1000),
		JoulesPerOutputToken:     r.energyJ.Div(r.tokens),
	}
	if b.c.FunctionalUnit == "output_token" {
		k.SCIGramsPerUnit = loc.Div(r.tokens)
	} else {
		k.SCIGramsPerUnit = loc.Div(r.requests)
	}
	return k
}

func (b *builder) groups(ctx context.Context) error {
	by := fmt.Sprintf("project, model_id, workload_type, %s%s", b.loc, b.fleet)
	acc := map[gkey]*raw{}
	if err := b.byGroup(ctx, fmt.Sprintf("sum by (%s) (%s)", by, b.inc(mWorkloadEnergy)),
		func(r *raw, _ model.Metric, v float64) { r.energyJ = r.energyJ.Add(N(v)) }, acc); err != nil {
		return err
	}
	if err := b.byGroup(ctx, fmt.Sprintf("sum by (%s, basis) (%s)", by, b.inc(mWorkloadCO2e)),
		func(r *raw, m model.Metric, v float64) {
			switch m["basis"] {
			case "location":
				r.locG = r.locG.Add(N(v))
			case "market":
				r.mktG = r.mktG.Add(N(v))
			}
		}, acc); err != nil {
		return err
	}
	if err := b.byGroup(ctx, fmt.Sprintf("sum by (%s) (%s)", by, b.inc(mRequests)),
		func(r *raw, _ model.Metric, v float64) { r.requests = r.requests.Add(N(v)) }, acc); err != nil {
		return err
	}
	if err := b.byGroup(ctx, fmt.Sprintf("sum by (%s) (%s)", by, b.inc(mOutputTokens)),
		func(r *raw, _ model.Metric, v float64) { r.tokens = r.tokens.Add(N(v)) }, acc); err != nil {
		return err
	}
	idle, err := b.sumAll(ctx, fmt.Sprintf("sum(%s)", b.inc(mIdle)))
	if err != nil {
		return err
	}
	unattr, err := b.sumAll(ctx, fmt.Sprintf("sum(%s)", b.inc(mUnattributed)))
	if err != nil {
		return err
	}
	if !idle.Valid() {
		b.r.DataQuality.Notes = append(b.r.DataQuality.Notes, "No node idle energy series in the period: IT energy counts attributed and unattributed energy only.")
	}
	if !unattr.Valid() {
		b.r.DataQuality.Notes = append(b.r.DataQuality.Notes, "No node unattributed energy series in the period.")
	}

	var all raw
	var serving raw // Groups that served inferences: the denominators' energy.
	for k, r := range acc {
		g := Group{Project: k.project, ModelID: k.model, WorkloadType: k.wtype, Location: k.loc, Region: k.region, KPIs: b.kpis(*r)}
		b.r.Groups = append(b.r.Groups, g)
		all.energyJ, all.locG, all.mktG = all.energyJ.Add(r.energyJ), all.locG.Add(r.locG), all.mktG.Add(r.mktG)
		all.requests, all.tokens = all.requests.Add(r.requests), all.tokens.Add(r.tokens)
		if r.requests.Valid() && r.requests.Float() > 0 || r.tokens.Valid() && r.tokens.Float() > 0 {
			serving.energyJ, serving.locG = serving.energyJ.Add(r.energyJ), serving.locG.Add(r.locG)
			serving.requests, serving.tokens = serving.requests.Add(r.requests), serving.tokens.Add(r.tokens)
		}
	}
	sortGroups(b.r.Groups)

	// Totals: IT energy includes idle and unattributed energy, which carry
	// the energy-weighted average intensity of attributed energy.
	sharedJ := idle.Add(unattr)
	itJ := all.energyJ.Add(sharedJ)
	scale := itJ.Div(all.energyJ)
	tot := all
	tot.energyJ = itJ
	tot.locG = all.locG.Scale(scale.Float())
	tot.mktG = all.mktG.Scale(scale.Float())
	if !scale.Valid() {
		tot.locG, tot.mktG = NoData, NoData
	}
	b.r.Totals = b.kpis(tot)
	// Intensities per 1k inferences and per token use serving workloads only.
	sk := b.kpis(serving)
	b.r.Totals.EnergyPer1kInferencesKWh = sk.EnergyPer1kInferencesKWh
	b.r.Totals.CO2ePer1kInferencesG = sk.CO2ePer1kInferencesG
	b.r.Totals.JoulesPerOutputToken = sk.JoulesPerOutputToken
	b.r.Totals.SCIGramsPerUnit = sk.SCIGramsPerUnit
	shared := raw{energyJ: sharedJ}
	if tot.locG.Valid() && all.locG.Valid() {
		shared.locG = N(tot.locG.Float() - all.locG.Float())
	}
	if tot.mktG.Valid() && all.mktG.Valid() {
		shared.mktG = N(tot.mktG.Float() - all.mktG.Float())
	}
	b.r.Shared = b.kpis(shared)

	b.r.ByProject = b.aggregate(acc, func(k gkey) gkey { return gkey{project: k.project} })
	b.r.ByModel = b.aggregate(acc, func(k gkey) gkey { return gkey{model: k.model} })
	b.r.ByWorkloadType = b.aggregate(acc, func(k gkey) gkey { return gkey{wtype: k.wtype} })
	b.r.ByLocation = b.aggregate(acc, func(k gkey) gkey { return gkey{loc: k.loc, region: k.region} })
	top := append([]Group(nil), b.r.ByModel...)
	sort.SliceStable(top, func(i, j int) bool { return top[i].FacilityEnergyKWh.Float() > top[j].FacilityEnergyKWh.Float() })
	if len(top) > 10 {
		top = top[:10]
	}
	b.r.TopModels = top
	return nil
}

func (b *builder) aggregate(acc map[gkey]*raw, f func(gkey) gkey) []Group {
	m := map[gkey]*raw{}
	for k, r := range acc {
		a := f(k)
		if m[a] == nil {
			m[a] = &raw{}
		}
		x := m[a]
		x.energyJ, x.locG, x.mktG = x.energyJ.Add(r.energyJ), x.locG.Add(r.locG), x.mktG.Add(r.mktG)
		x.requests, x.tokens = x.requests.Add(r.requests), x.tokens.Add(r.tokens)
	}
	out := []Group{}
	for k, r := range m {
		out = append(out, Group{Project: k.project, ModelID: k.model, WorkloadType: k.wtype, Location: k.loc, Region: k.region, KPIs: b.kpis(*r)})
	}
	sortGroups(out)
	return out
}

func (b *builder) training(ctx context.Context) error {
	by := "namespace, pod, project, model_id, " + b.loc
	sel := mWorkloadEnergy + `{workload_type="training"}`
	res := b.o.Resolution
	type run struct {
		TrainingRun
		j, locG  Num
		first    Num
		last     Num
		activeSt Num
	}
	runs := map[string]*run{}
	keyOf := func(m model.Metric) *run {
		k := strings.Join([]string{string(m["namespace"]), string(m["pod"]), string(m["project"]), string(m["model_id"]), string(m[model.LabelName(b.loc)])}, "\xff")
		if runs[k] == nil {
			runs[k] = &run{TrainingRun: TrainingRun{Namespace: string(m["namespace"]), Pod: string(m["pod"]), Project: string(m["project"]),
				ModelID: string(m["model_id"]), Location: string(m[model.LabelName(b.loc)])}}
		}
		return runs[k]
	}
	queries := []struct {
		q   string
		set func(r *run, v float64)
	}{
		{fmt.Sprintf("sum by (%s) (%s)", by, b.inc(sel)), func(r *run, v float64) { r.j = N(v) }},
		{fmt.Sprintf("sum by (%s) (%s)", by, b.inc(mWorkloadCO2e+`{workload_type="training",basis="location"}`)), func(r *run, v float64) { r.locG = N(v) }},
		{fmt.Sprintf("min by (%s) (min_over_time(timestamp(%s)[%s:%s]))", by, sel, b.d, model.Duration(res)), func(r *run, v float64) { r.first = N(v) }},
		{fmt.Sprintf("max by (%s) (max_over_time(timestamp(%s)[%s:%s]))", by, sel, b.d, model.Duration(res)), func(r *run, v float64) { r.last = N(v) }},
		{fmt.Sprintf("max by (%s) (count_over_time((rate(%s[%s]) > 0)[%s:%s]))", by,
			mWorkloadEnergy+`{workload_type="training",component="gpu"}`, model.Duration(2*res), b.d, model.Duration(res)),
			func(r *run, v float64) { r.activeSt = N(v) }},
	}
	for _, qq := range queries {
		vec, err := b.instant(ctx, qq.q)
		if err != nil {
			return err
		}
		for _, s := range vec {
			qq.set(keyOf(s.Metric), float64(s.Value))
		}
	}
	for _, r := range runs {
		t := r.TrainingRun
		kwh := r.j.Scale(1 / 3.6e6)
		t.EnergyKWh = kwh
		t.EnergyMWh = "no data"
		if kwh.Valid() {
			t.EnergyMWh = Sig(kwh.Float()/1000, 2)
		}
		if r.first.Valid() && r.last.Valid() {
			if first, last, ok := b.sampleSpan(r.first.Float(), r.last.Float()); ok {
				t.FirstSample, t.LastSample = first, last
				t.WallClockHours = N(last.Sub(first).Hours())
			} else {
				b.finding("Training run %s/%s: its sample timestamps (%s, %s) lie outside the period, so wall-clock time is not reported.",
					t.Namespace, t.Pod, r.first.Human(), r.last.Human())
			}
		}
		t.GPUActiveHours = r.activeSt.Scale(res.Hours())
		t.GPUs = b.c.gpusFor(t.Pod, t.ModelID)
		if t.GPUs > 0 {
			t.GPUHours = t.GPUActiveHours.Scale(float64(t.GPUs))
		} else {
			b.r.DataQuality.Notes = append(b.r.DataQuality.Notes,
				fmt.Sprintf("Training run %s/%s: GPU count not configured (training_runs), so GPU-hours are not reported.", t.Namespace, t.Pod))
		}
		t.CO2eLocationT = r.locG.Scale(b.c.PUE * 1e-6)
		b.r.Training = append(b.r.Training, t)
	}
	sort.Slice(b.r.Training, func(i, j int) bool {
		a, c := b.r.Training[i], b.r.Training[j]
		if a.Namespace != c.Namespace {
			return a.Namespace < c.Namespace
		}
		return a.Pod < c.Pod
	})
	return nil
}

// spans merges the steps present in a series into outages [t−step, t].
func spans(s *model.SampleStream, step time.Duration, name string, present bool, times []time.Time) []Outage {
	have := map[int64]bool{}
	for _, p := range s.Values {
		have[p.Timestamp.Unix()] = true
	}
	var out []Outage
	var cur *Outage
	for _, t := range times {
		hit := have[t.Unix()] == present
		if hit {
			if cur != nil && !cur.End.Before(t.Add(-step)) {
				cur.End = t
				continue
			}
			out = append(out, Outage{Series: name, Start: t.Add(-step).UTC(), End: t.UTC()})
			cur = &out[len(out)-1]
		} else {
			cur = nil
		}
	}
	for i := range out {
		out[i].Hours = N(out[i].End.Sub(out[i].Start).Hours())
	}
	return out
}

func (b *builder) steps(step time.Duration) []time.Time {
	var ts []time.Time
	for t := b.o.From.Add(step); !t.After(b.o.To); t = t.Add(step) {
		ts = append(ts, t)
	}
	return ts
}

func seriesName(m model.Metric) string {
	delete(m, model.MetricNameLabel)
	if len(m) == 0 {
		return "all"
	}
	return m.String()
}

func (b *builder) dataQuality(ctx context.Context) error {
	res := b.o.Resolution
	dres := model.Duration(res).String()
	times := b.steps(res)
	b.r.DataQuality.Gaps = []Outage{}
	b.r.DataQuality.SourcesDown = []Outage{}
	m, err := b.rangeQ(ctx, fmt.Sprintf("count by (instance, %s%s) (count_over_time(%s[%s]))", b.loc, b.fleet, mSamples, dres), res)
	if err != nil {
		return err
	}
	if len(m) == 0 {
		b.r.DataQuality.Gaps = append(b.r.DataQuality.Gaps, Outage{Series: "all (no " + mSamples + " at all)", Start: b.r.From, End: b.r.To, Hours: N(b.o.To.Sub(b.o.From).Hours())})
	}
	for _, s := range m {
		b.r.DataQuality.Gaps = append(b.r.DataQuality.Gaps, spans(s, res, seriesName(s.Metric), false, times)...)
	}
	m, err = b.rangeQ(ctx, fmt.Sprintf("min by (source, target, instance, %s%s) (min_over_time(%s[%s])) == 0", b.loc, b.fleet, mSourceUp, dres), res)
	if err != nil {
		return err
	}
	for _, s := range m {
		b.r.DataQuality.SourcesDown = append(b.r.DataQuality.SourcesDown, spans(s, res, seriesName(s.Metric), true, times)...)
	}
	sortOutages(b.r.DataQuality.Gaps)
	sortOutages(b.r.DataQuality.SourcesDown)
	return nil
}

func sortOutages(o []Outage) {
	sort.Slice(o, func(i, j int) bool {
		if !o[i].Start.Equal(o[j].Start) {
			return o[i].Start.Before(o[j].Start)
		}
		return o[i].Series < o[j].Series
	})
}

func (b *builder) trendStep() time.Duration {
	d := b.o.To.Sub(b.o.From)
	switch {
	case d >= 7*24*time.Hour:
		return 24 * time.Hour
	case d >= 24*time.Hour:
		return time.Hour
	}
	return b.o.Resolution
}

func (b *builder) trend(ctx context.Context) error {
	step := b.trendStep()
	b.r.TrendStep = model.Duration(step).String()
	ds := model.Duration(step).String()
	get := func(q string) (map[int64]float64, error) {
		m, err := b.rangeQ(ctx, q, step)
		if err != nil {
			return nil, err
		}
		out := map[int64]float64{}
		for _, s := range m {
			for _, p := range s.Values {
				out[p.Timestamp.Unix()] += float64(p.Value)
			}
		}
		return out, nil
	}
	work, err := get(fmt.Sprintf("sum(increase(%s[%s]))", mWorkloadEnergy, ds))
	if err != nil {
		return err
	}
	shared, err := get(fmt.Sprintf("sum(increase(%s[%s])) + sum(increase(%s[%s]))", mIdle, ds, mUnattributed, ds))
	if err != nil {
		return err
	}
	loc, err := get(fmt.Sprintf("sum(increase(%s[%s]))", mWorkloadCO2e+`{basis="location"}`, ds))
	if err != nil {
		return err
	}
	for _, t := range b.steps(step) {
		p := TrendPoint{End: t.UTC()}
		w, ok := work[t.Unix()]
		if ok {
			it := w + shared[t.Unix()]
			p.FacilityEnergyKWh = N(it / 3.6e6 * b.c.PUE)
			if l, ok := loc[t.Unix()]; ok && w > 0 {
				p.CO2eLocationKg = N(l * it / w * b.c.PUE / 1000)
			}
		}
		for _, g := range b.r.DataQuality.Gaps {
			if g.Start.Before(t) && g.End.After(t.Add(-step)) {
				p.Gap = true
			}
		}
		b.r.Trend = append(b.r.Trend, p)
	}
	return nil
}

func (b *builder) methodology(ctx context.Context) error {
	me := &b.r.Methodology
	me.PUE, me.PUESource, me.FunctionalUnit = b.c.PUE, b.c.PUESource, b.c.FunctionalUnit
	if me.PUESource == "" {
		me.PUESource = "not stated in the configuration"
	}
	me.MarketInstruments = b.c.MarketInstruments.Note
	if me.MarketInstruments == "" {
		me.MarketInstruments = "none stated: market-based figures use the agent's market basis (supplier, residual mix or location factor)"
	}
	me.Measurement = []MeasurementSource{}
	me.Intensity = []IntensitySource{}
	var total, estimated float64
	for _, dev := range []struct{ name, q string }{
		{"cpu", fmt.Sprintf(`sum by (source) (%s)`, b.inc(mCPU+`{zone=~"package|dram"}`))},
		{"gpu", fmt.Sprintf(`sum by (source) (%s)`, b.inc(mGPU))},
	} {
		vec, err := b.instant(ctx, dev.q)
		if err != nil {
			return err
		}
		var sum float64
		for _, s := range vec {
			sum += float64(s.Value)
		}
		for _, s := range vec {
			v := float64(s.Value)
			me.Measurement = append(me.Measurement, MeasurementSource{Device: dev.name, Source: string(s.Metric["source"]),
				EnergyKWh: N(v / 3.6e6), SharePercent: N(v).Div(N(sum)).Scale(100)})
			total += v
			if src := string(s.Metric["source"]); src == "estimate" || src == "nvml_power" {
				estimated += v
			}
		}
	}
	sort.Slice(me.Measurement, func(i, j int) bool {
		return me.Measurement[i].Device+me.Measurement[i].Source < me.Measurement[j].Device+me.Measurement[j].Source
	})
	b.r.DataQuality.EstimatedSharePercent = N(estimated).Div(N(total)).Scale(100)
	if len(me.Measurement) == 0 {
		b.r.DataQuality.Notes = append(b.r.DataQuality.Notes, "No device energy counters (aiwatt_cpu_energy_joules_total, aiwatt_gpu_energy_joules_total) in the period: the estimated share is not known.")
	}
	vec, err := b.instant(ctx, fmt.Sprintf("avg by (%s%s, zone, provider, basis) (avg_over_time(%s[%s]))", b.loc, b.fleet, mIntensity, b.d))
	if err != nil {
		return err
	}
	table, _ := carbon.DefaultTable()
	for _, s := range vec {
		is := IntensitySource{Location: string(s.Metric[model.LabelName(b.loc)]), Region: string(s.Metric[regionLabel]),
			Zone: string(s.Metric["zone"]), Provider: string(s.Metric["provider"]), Basis: string(s.Metric["basis"]), AvgGramsPerKWh: N(float64(s.Value))}
		is.Dataset = "as served by the provider (see the agent's provenance)"
		if is.Provider == "static" && table != nil {
			if f, ok := table.Lookup(is.Zone, b.o.To.Year()); ok {
				is.Dataset = fmt.Sprintf("aiwatt static table: %s %s (%s), %s, %s", f.Source, f.DataYear(), f.SourceRef, f.Licence, f.FactorType)
			}
		}
		me.Intensity = append(me.Intensity, is)
	}
	sort.Slice(me.Intensity, func(i, j int) bool {
		a, c := me.Intensity[i], me.Intensity[j]
		return a.Location+"\xff"+a.Region+"\xff"+a.Zone+"\xff"+a.Basis+"\xff"+a.Provider < c.Location+"\xff"+c.Region+"\xff"+c.Zone+"\xff"+c.Basis+"\xff"+c.Provider
	})
	vec, err = b.instant(ctx, fmt.Sprintf("max by (idle) (last_over_time(%s[%s]))", mAttribution, b.d))
	if err != nil {
		return err
	}
	me.AttributionPolicy = []string{}
	for _, s := range vec {
		switch s.Metric["idle"] {
		case "node":
			me.AttributionPolicy = append(me.AttributionPolicy, "idle=node: exclusively allocated devices belong wholly to their holder; shared devices split active energy by activity share and keep idle energy as node idle")
		case "allocation":
			me.AttributionPolicy = append(me.AttributionPolicy, "idle=allocation: shared devices' idle energy is spread over workloads by allocation")
		default:
			me.AttributionPolicy = append(me.AttributionPolicy, "idle="+string(s.Metric["idle"]))
		}
	}
	sort.Strings(me.AttributionPolicy)
	me.Notes = []string{
		"Totals are each counter's last minus first sample in the period (max_over_time - min_over_time), evaluated at its end, which every query engine (Prometheus, Thanos, VictoriaMetrics) computes the same way; a series with a counter reset in the period uses the engine's increase(). The trend uses increase() per step. Every query is listed under Queries.",
		fmt.Sprintf("Facility energy = IT energy x PUE (%g). Workload CO2e is the agent's time-matched aiwatt_workload_co2e_grams_total x PUE.", b.c.PUE),
		"Total CO2e carries node idle and unattributed energy at the energy-weighted average intensity of attributed energy: total = PUE x sum(workload CO2e) x IT energy / workload energy.",
		"Energy and CO2e per 1k inferences and J per output token use only workloads that served inferences; J per output token uses IT energy.",
		fmt.Sprintf("SCI = (E x I + M) per R with R = one %s, location-based, facility energy; embodied emissions M are not included (M = 0).", strings.ReplaceAll(b.c.FunctionalUnit, "_", " ")),
		fmt.Sprintf("Training runs: wall-clock from first to last sample (timestamps of the samples seen at steps of %s); GPU-active time = steps of %s in which GPU energy rose x %s; GPU-hours = GPU-active hours x configured GPU count.", b.r.Resolution, b.r.Resolution, b.r.Resolution),
		fmt.Sprintf("Gaps: windows of %s in which an instance exported no %s; KPIs with no data are reported as no data, never as zero.", b.r.Resolution, mSamples),
	}
	return nil
}

func (b *builder) ledger(l *Ledger) {
	b.r.Cloud = CloudFigures{ModelVersions: []string{}, Totals: []CloudTotal{}, Figures: []CloudFigure{}}
	if l == nil {
		b.r.Ledger = "no ledger: no --ledger was given, so no cloud-provider figures are shown."
		return
	}
	b.r.Cloud = cloudFigures(l, b.r.From, b.r.To)
	b.r.Ledger = cloudStatement(b.r.Cloud)
}

func (b *builder) targets() {
	all := b.r.Totals.Map()
	for k, v := range b.reportLevel() {
		all[k] = v
	}
	for _, t := range b.c.Targets {
		p := TargetProgress{Target: t, Unit: Unit(t.KPI), Current: all[t.KPI]}
		if p.Current.Valid() && t.BaselineValue != t.TargetValue {
			p.ProgressPercent = N((t.BaselineValue - p.Current.Float()) / (t.BaselineValue - t.TargetValue) * 100)
		}
		b.r.Targets = append(b.r.Targets, p)
	}
}

// reportLevel returns the report-level figures the frameworks use.
func (b *builder) reportLevel() map[string]Num {
	out := map[string]Num{"grid_share_percent": N(*b.c.GridSharePercent)}
	if p := b.c.MarketInstruments.RenewableSharePercent; p != nil {
		out["renewable_share_percent"] = N(*p)
		out["renewable_energy_mwh"] = b.r.Totals.FacilityEnergyMWh.Scale(*p / 100)
		out["nonrenewable_energy_mwh"] = b.r.Totals.FacilityEnergyMWh.Scale(1 - *p/100)
	} else {
		out["renewable_share_percent"], out["renewable_energy_mwh"], out["nonrenewable_energy_mwh"] = NoData, NoData, NoData
	}
	return out
}
