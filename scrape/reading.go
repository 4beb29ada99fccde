package scrape

import (
	"errors"
	"math"
	"slices"
	"strings"
)

// Reasons counted per target in [Result.Errors]. The first group fails a
// scrape ([Result.Up] false); the second skips one line or sample while the
// rest of the scrape counts.
const (
	// ErrReasonTimeout: the per-target timeout or the tick deadline passed
	// before the body was read.
	ErrReasonTimeout = "timeout"
	// ErrReasonCanceled: the caller's context was canceled.
	ErrReasonCanceled = "canceled"
	// ErrReasonConnection: the request failed (refused, reset, DNS, TLS).
	ErrReasonConnection = "connection"
	// ErrReasonHTTPStatus: the server answered with a non-2xx status.
	ErrReasonHTTPStatus = "http_status"
	// ErrReasonBodyTooLarge: the body exceeded the target's body limit; it
	// is refused whole, never truncated.
	ErrReasonBodyTooLarge = "body_too_large"
	// ErrReasonRead: reading the body failed midway.
	ErrReasonRead = "read"
	// ErrReasonParse: a non-empty body held no valid sample line at all.
	ErrReasonParse = "parse"
	// ErrReasonBadTarget: the target itself is unusable (bad URL, duplicate ID).
	ErrReasonBadTarget = "bad_target"

	// ErrReasonBadLine: a malformed exposition line (bad name, labels or
	// value) was skipped.
	ErrReasonBadLine = "bad_line"
	// ErrReasonNaN: a consumed sample was NaN (llama.cpp's "-nan") and skipped.
	ErrReasonNaN = "nan"
	// ErrReasonInf: a consumed sample was ±Inf and skipped.
	ErrReasonInf = "inf"
	// ErrReasonNegative: a consumed counter was negative and skipped.
	ErrReasonNegative = "negative"
	// ErrReasonTooLarge: a consumed counter exceeded MaxCounterValue and
	// was skipped.
	ErrReasonTooLarge = "too_large"
	// ErrReasonDuplicate: a consumed series appeared twice in one
	// exposition; the first line counts.
	ErrReasonDuplicate = "duplicate_series"
	// ErrReasonUnrecognized: with server auto, no metric name of a known
	// server was found; the scrape is up but yields nothing.
	ErrReasonUnrecognized = "unrecognized"
	// ErrReasonModelsFolded: a series of a model beyond the target's model
	// cap (Options.MaxModels) was counted under the model "other".
	ErrReasonModelsFolded = "models_folded"
	// ErrReasonSeriesCap: a new series beyond the target's series cap
	// (Options.MaxSeries) was skipped.
	ErrReasonSeriesCap = "series_cap"
)

// MaxCounterValue is the largest counter value consumed: 2^53, above which
// float64 no longer counts whole units exactly. No real token, request or
// joule counter comes near it; a larger value is a broken exporter, skipped
// and counted as ErrReasonTooLarge, so that it cannot overflow a total.
const MaxCounterValue = 1 << 53

// ErrUnparsable is returned by [Parse] (and wrapped in [Result.Err]) when a
// non-empty body holds no valid sample line.
var ErrUnparsable = errors.New("no valid sample line in exposition")

// ModelStats is what one target reports for one model. In a [Result] the
// values are monotonic totals since the Scraper first scraped the target
// successfully; in a [Reading] they are the server's raw counter values.
// A quantity the server does not export is absent (its Has flag false, or
// Requests nil), never an invented zero.
type ModelStats struct {
	// Model is the model name: the target's Model override, else the
	// server's model label, else "".
	Model string
	// Requests counts finished requests by finished_reason (the server's own
	// reasons, or ReasonSuccess, ReasonError, ReasonUnknown). Nil when the
	// server exports no request counter for this model.
	Requests map[string]float64
	// InputTokens counts prompt (prefill) tokens; valid if HasInputTokens.
	InputTokens float64
	// HasInputTokens is true when the server exports an input-token counter.
	HasInputTokens bool
	// OutputTokens counts generated tokens; valid if HasOutputTokens.
	OutputTokens float64
	// HasOutputTokens is true when the server exports an output-token counter.
	HasOutputTokens bool
	// Inferences is Triton's nv_inference_count (batch items, not requests
	// and not tokens); valid if HasInferences.
	Inferences float64
	// HasInferences is true when the server exports nv_inference_count.
	HasInferences bool
}

// GPUEnergy is the GPU energy an inference server reports about itself
// (Triton's nv_energy_consumption, joules since Triton started). It is the
// server's own figure, exported for comparison only: it must never be added
// to aiwatt's measured GPU energy.
type GPUEnergy struct {
	// UUID is the GPU's UUID (label gpu_uuid).
	UUID string
	// Joules is the energy (in a Result: monotonic total since first seen).
	Joules float64
}

// Reading is what one exposition says, before accumulation across scrapes.
type Reading struct {
	// Server is the configured server, or the detected one; ServerAuto when
	// nothing was recognized.
	Server Server
	// Models are the per-model counter values as exported, summed over
	// engines, DP ranks and other series of the model, with replicated
	// ranks counted once; sorted by model.
	Models []ModelStats
	// GPUEnergy is the server's self-reported GPU energy, by GPU UUID.
	GPUEnergy []GPUEnergy
	// Issues counts skipped lines and samples by reason (ErrReasonBadLine,
	// ErrReasonNaN, ErrReasonInf, ErrReasonNegative, ErrReasonTooLarge,
	// ErrReasonDuplicate).
	Issues map[string]uint64
}

// Parse reads one text exposition for server (ServerAuto to detect it),
// reporting every series under model when model is not empty. It is the
// pure parsing path of the Scraper, without accumulation. It fails only
// with ErrUnparsable; malformed lines are skipped and counted in Issues.
func Parse(body []byte, server Server, model string) (Reading, error) {
	var p lineParser
	e, err := p.read(body, server, model)
	if err != nil {
		return Reading{}, err
	}
	r := Reading{Server: e.server, Issues: e.issues}
	var t totals
	for _, o := range e.obs {
		t.add(o.role, o.model, o.sub, o.value)
	}
	r.Models, r.GPUEnergy = t.stats()
	return r, nil
}

// observation is one consumed series of one exposition.
type observation struct {
	key    string // series identity (name and labels, without rank labels)
	ranked bool   // rank labels were dropped from key
	role   role
	model  string
	sub    string // finished_reason for requests, GPU UUID for energy
	value  float64
}

// exposition is one body, read for one server.
type exposition struct {
	server       Server
	obs          []observation
	created      map[string]float64 // series key of a counter → its _created value
	procStart    float64
	hasProcStart bool
	issues       map[string]uint64
}

func (e *exposition) count(reason string) {
	if e.issues == nil {
		e.issues = map[string]uint64{}
	}
	e.issues[reason]++
}

// candidate is a sample whose name some adapter consumes.
type candidate struct {
	name   string
	labels []label
	value  float64
}

// read parses body into the observations of server (detected when
// ServerAuto). It fails only when a body with sample-looking lines has no
// valid one.
func (p *lineParser) read(body []byte, server Server, model string) (exposition, error) {
	var (
		e         exposition
		cands     []candidate
		bits      detectBits
		good, bad int
		s         rawSample
	)
	forEachLine(body, func(line []byte) {
		switch p.parse(line, &s) {
		case lineBad:
			bad++
			return
		case lineSkip:
			return
		}
		v, ok := parseValue(s.value)
		if !ok {
			bad++
			return
		}
		good++
		bits |= detectName(s.name)
		if _, ok := consumedNames[string(s.name)]; !ok {
			return
		}
		c := candidate{name: string(s.name), labels: make([]label, len(s.labels)), value: v}
		for i, l := range s.labels {
			c.labels[i] = label{name: string(l.name), value: string(l.value)}
		}
		slices.SortFunc(c.labels, func(a, b label) int { return strings.Compare(a.name, b.name) })
		cands = append(cands, c)
	})
	if bad > 0 {
		e.issues = map[string]uint64{ErrReasonBadLine: uint64(bad)}
	}
	if good == 0 && bad > 0 {
		return e, ErrUnparsable
	}
	e.server = server
	if server == ServerAuto {
		e.server = detect(bits)
	}
	a := adapters[e.server]
	index := map[string]int{}
	for i := range cands {
		c := &cands[i]
		if c.name == processStartName {
			if len(c.labels) == 0 && !math.IsNaN(c.value) && !math.IsInf(c.value, 0) {
				e.procStart, e.hasProcStart = c.value, true
			}
			continue
		}
		if a == nil {
			continue
		}
		if total, ok := createdOf[c.name]; ok {
			if _, ok := a.metrics[total]; ok && !math.IsNaN(c.value) && !math.IsInf(c.value, 0) {
				key, _ := a.seriesKey(total, c.labels)
				if e.created == nil {
					e.created = map[string]float64{}
				}
				e.created[key] = max(e.created[key], c.value)
			}
			continue
		}
		spec, ok := a.metrics[c.name]
		if !ok {
			continue
		}
		switch {
		case math.IsNaN(c.value):
			e.count(ErrReasonNaN)
			continue
		case math.IsInf(c.value, 0):
			e.count(ErrReasonInf)
			continue
		case c.value < 0:
			e.count(ErrReasonNegative)
			continue
		case c.value > MaxCounterValue:
			e.count(ErrReasonTooLarge)
			continue
		}
		o := observation{role: spec.role, value: c.value}
		o.key, o.ranked = a.seriesKey(c.name, c.labels)
		switch spec.role {
		case roleEnergy:
			o.sub = labelValue(c.labels, "gpu_uuid")
		default:
			o.model = model
			if o.model == "" {
				o.model = a.modelOf(c.labels)
			}
			if spec.role == roleRequests {
				o.sub = spec.reason
				if spec.reasonLabel != "" {
					o.sub = labelValue(c.labels, spec.reasonLabel)
				}
				if o.sub == "" {
					o.sub = ReasonUnknown
				}
			}
		}
		if j, dup := index[o.key]; dup {
			if o.ranked {
				// Replicated ranks count once: keep the most advanced.
				e.obs[j].value = max(e.obs[j].value, o.value)
			} else {
				e.count(ErrReasonDuplicate)
			}
			continue
		}
		index[o.key] = len(e.obs)
		e.obs = append(e.obs, o)
	}
	return e, nil
}

func labelValue(labels []label, name string) string {
	for _, l := range labels {
		if l.name == name {
			return l.value
		}
	}
	return ""
}

// aggKey names one reported quantity: a model's requests with one reason,
// a model's tokens or inferences, or one GPU's energy.
type aggKey struct {
	role  role
	model string
	sub   string
}

// totals sums observations by aggKey.
type totals struct {
	m map[aggKey]float64
}

func (t *totals) add(r role, model, sub string, v float64) {
	if t.m == nil {
		t.m = map[aggKey]float64{}
	}
	t.m[aggKey{r, model, sub}] += v
}

// dropModel forgets every sum of one model (energy sums are never dropped).
func (t *totals) dropModel(model string) {
	for k := range t.m {
		if k.model == model && k.role != roleEnergy {
			delete(t.m, k)
		}
	}
}

// stats turns the sums into sorted ModelStats and GPUEnergy.
func (t *totals) stats() ([]ModelStats, []GPUEnergy) {
	byModel := map[string]*ModelStats{}
	var energy []GPUEnergy
	for k, v := range t.m {
		if k.role == roleEnergy {
			energy = append(energy, GPUEnergy{UUID: k.sub, Joules: v})
			continue
		}
		ms := byModel[k.model]
		if ms == nil {
			ms = &ModelStats{Model: k.model}
			byModel[k.model] = ms
		}
		switch k.role {
		case roleRequests:
			if ms.Requests == nil {
				ms.Requests = map[string]float64{}
			}
			ms.Requests[k.sub] += v
		case roleInputTokens:
			ms.InputTokens, ms.HasInputTokens = ms.InputTokens+v, true
		case roleOutputTokens:
			ms.OutputTokens, ms.HasOutputTokens = ms.OutputTokens+v, true
		case roleInferences:
			ms.Inferences, ms.HasInferences = ms.Inferences+v, true
		}
	}
	models := make([]ModelStats, 0, len(byModel))
	for _, ms := range byModel {
		models = append(models, *ms)
	}
	slices.SortFunc(models, func(a, b ModelStats) int { return strings.Compare(a.Model, b.Model) })
	slices.SortFunc(energy, func(a, b GPUEnergy) int { return strings.Compare(a.UUID, b.UUID) })
	return models, energy
}
