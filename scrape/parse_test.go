package scrape

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// flatSample is a parsed sample in comparable form.
type flatSample struct {
	name   string
	labels string // sorted k="v" pairs, escaped with %q
	value  float64
}

func (s flatSample) String() string { return fmt.Sprintf("%s{%s} %v", s.name, s.labels, s.value) }

func flatLabels(pairs [][2]string) string {
	sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", p[0], p[1])
	}
	return b.String()
}

// ourSamples returns every sample line the package's parser accepts, and
// the number of malformed lines.
func ourSamples(body []byte) (samples []flatSample, bad int) {
	var p lineParser
	var s rawSample
	forEachLine(body, func(line []byte) {
		switch p.parse(line, &s) {
		case lineBad:
			bad++
		case lineSample:
			v, ok := parseValue(s.value)
			if !ok {
				bad++
				return
			}
			var pairs [][2]string
			for _, l := range s.labels {
				pairs = append(pairs, [2]string{string(l.name), string(l.value)})
			}
			samples = append(samples, flatSample{string(s.name), flatLabels(pairs), v})
		}
	})
	return samples, bad
}

// expfmtSamples returns the samples expfmt reads, for counter, gauge and
// untyped families (histogram and summary lines are restructured by expfmt);
// with buckets also histogram _sum, _count and _bucket lines.
func expfmtSamples(body []byte, histograms bool) ([]flatSample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	var out []flatSample
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var pairs [][2]string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, [2]string{l.GetName(), l.GetValue()})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out = append(out, flatSample{name, flatLabels(pairs), m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				out = append(out, flatSample{name, flatLabels(pairs), m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				out = append(out, flatSample{name, flatLabels(pairs), m.GetUntyped().GetValue()})
			case dto.MetricType_HISTOGRAM:
				if !histograms {
					continue
				}
				h := m.GetHistogram()
				ls := flatLabels(slices.Clone(pairs))
				if h.SampleSum != nil {
					out = append(out, flatSample{name + "_sum", ls, h.GetSampleSum()})
				}
				if h.SampleCount != nil {
					out = append(out, flatSample{name + "_count", ls, float64(h.GetSampleCount())})
				}
				if h.SampleCountFloat != nil {
					out = append(out, flatSample{name + "_count", ls, h.GetSampleCountFloat()})
				}
				for _, b := range h.GetBucket() {
					v := float64(b.GetCumulativeCount())
					if b.CumulativeCountFloat != nil {
						v = b.GetCumulativeCountFloat()
					}
					out = append(out, flatSample{name + "_bucket", placeholder(pairs, "le", b.GetUpperBound()), v})
				}
			case dto.MetricType_SUMMARY:
				if !histograms {
					continue
				}
				sm := m.GetSummary()
				ls := flatLabels(slices.Clone(pairs))
				if sm.SampleSum != nil {
					out = append(out, flatSample{name + "_sum", ls, sm.GetSampleSum()})
				}
				if sm.SampleCount != nil {
					out = append(out, flatSample{name + "_count", ls, float64(sm.GetSampleCount())})
				}
				for _, q := range sm.GetQuantile() {
					out = append(out, flatSample{name, placeholder(pairs, "quantile", q.GetQuantile()), q.GetValue()})
				}
			}
		}
	}
	return out, nil
}

// placeholder renders labels plus a float-valued label (le, quantile) whose
// value is replaced by a placeholder and appended as a float, so that "1.0"
// and "1" compare equal.
func placeholder(pairs [][2]string, name string, v float64) string {
	ls := append(slices.Clone(pairs), [2]string{name, "X"})
	return flatLabels(ls) + "@" + strconv.FormatFloat(v, 'g', -1, 64)
}

// normalizeFloatLabel rewrites a bucket's le or a quantile label like
// placeholder does.
func normalizeFloatLabel(s flatSample) flatSample {
	for _, name := range []string{"le", "quantile"} {
		if name == "le" && !strings.HasSuffix(s.name, "_bucket") {
			continue
		}
		i := strings.Index(s.labels, name+`="`)
		if i < 0 {
			continue
		}
		start := i + len(name) + 2
		j := strings.IndexByte(s.labels[start:], '"')
		v, err := strconv.ParseFloat(s.labels[start:start+j], 64)
		if err != nil {
			continue
		}
		s.labels = s.labels[:start] + "X" + s.labels[start+j:] + "@" + strconv.FormatFloat(v, 'g', -1, 64)
		return s
	}
	return s
}

func sameValue(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// missingFrom returns the samples of want that got lacks (name, labels and
// value equal).
func missingFrom(want, got []flatSample) []flatSample {
	idx := map[string][]float64{}
	for _, s := range got {
		idx[s.name+"|"+s.labels] = append(idx[s.name+"|"+s.labels], s.value)
	}
	var missing []flatSample
	for _, s := range want {
		if !slices.ContainsFunc(idx[s.name+"|"+s.labels], func(v float64) bool { return sameValue(v, s.value) }) {
			missing = append(missing, s)
		}
	}
	return missing
}

// TestParserMatchesExpfmt: on every capture expfmt accepts, the tolerant
// parser reads exactly the samples expfmt reads (histogram lines included)
// and finds no malformed line.
func TestParserMatchesExpfmt(t *testing.T) {
	for _, c := range captureCases {
		body := []byte(readFixture(t, c.file))
		theirs, err := expfmtSamples(body, true)
		ours, bad := ourSamples(body)
		if bad != 0 {
			t.Errorf("%s: %d malformed lines", c.file, bad)
		}
		if err != nil {
			t.Logf("%s: expfmt refuses it: %v", c.file, err)
			continue
		}
		for i := range ours {
			ours[i] = normalizeFloatLabel(ours[i])
		}
		if missing := missingFrom(theirs, ours); len(missing) > 0 {
			t.Errorf("%s: %d samples read by expfmt but not by us, e.g. %v", c.file, len(missing), missing[0])
		}
		if len(ours) != len(theirs) {
			t.Errorf("%s: %d samples, expfmt %d", c.file, len(ours), len(theirs))
		}
	}
}

func TestParseLine(t *testing.T) {
	cases := []struct {
		line string
		want string // flatSample.String(), "" for skip, "bad" for malformed
	}{
		{"", ""},
		{"   \t", ""},
		{"# HELP x y", ""},
		{"  # comment", ""},
		{`vllm:prompt_tokens_total{model_name="m"} 5`, `vllm:prompt_tokens_total{model_name="m"} 5`},
		{`x 1`, `x{} 1`},
		{`x{} 1`, `x{} 1`},
		{"x\t{a=\"b\"}\t2 1700000000000", `x{a="b"} 2`},
		{`x{a="b",} 3`, `x{a="b"} 3`},
		{`x{ a = "b" , c="d"} 4`, `x{a="b",c="d"} 4`},
		{`x{a="q\"uote\\back\nnl"} 5`, `x{a="q\"uote\\back\nnl"} 5`},
		{`x{a="}{,"} 6`, `x{a="}{,"} 6`},
		{`{"my.metric"} 7`, `my.metric{} 7`},
		{`{"my.metric",a="b"} 8`, `my.metric{a="b"} 8`},
		{`{a="b","my.metric"} 9`, `my.metric{a="b"} 9`},
		{`"quoted:name"{"dotted.label"="v"} 10`, `quoted:name{dotted.label="v"} 10`},
		{`x{a="b"}11`, `x{a="b"} 11`},
		{"x 12\r", `x{} 12`},
		{`x -nan`, `x{} NaN`},
		{`x +Inf`, `x{} +Inf`},
		{`x 1 # {trace_id="abc"} 1`, `x{} 1`}, // OpenMetrics exemplar ignored
		{`x`, "bad"},
		{`x{a="b"}`, "bad"},
		{`x{a="b"`, "bad"},
		{`x{a=b} 1`, "bad"},
		{`x{a="b" c="d"} 1`, "bad"},
		{`x{a="b",a="c"} 1`, "bad"},
		{`x{__name__="y"} 1`, "bad"},
		{`x{a="\q"} 1`, "bad"},
		{`{} 1`, "bad"},
		{`{"a","b"} 1`, "bad"},
		{`x{"y"} 1`, "bad"},
		{`"unterminated 1`, "bad"},
		{`"" 1`, "bad"},
		{`1x 2`, "bad"},
		{`x 0x1p3`, "bad"},
		{`x 1_000`, "bad"},
		{`x one`, "bad"},
		{`nv_inference_first_response_histogram_ms{model="my_model",version="1", le="100"} 8`,
			`nv_inference_first_response_histogram_ms{le="100",model="my_model",version="1"} 8`},
	}
	for _, c := range cases {
		samples, bad := ourSamples([]byte(c.line))
		var got string
		switch {
		case bad > 0:
			got = "bad"
		case len(samples) == 1:
			got = samples[0].String()
		case len(samples) > 1:
			got = fmt.Sprint(samples)
		}
		if got != c.want {
			t.Errorf("%q: got %s, want %s", c.line, got, c.want)
		}
		// Where expfmt accepts the line, it must agree.
		if theirs, err := expfmtSamples([]byte(c.line+"\n"), false); err == nil {
			if m := missingFrom(theirs, samples); len(m) > 0 {
				t.Errorf("%q: expfmt reads %v, we do not", c.line, m)
			}
		}
	}
}

func TestParseValue(t *testing.T) {
	for tok, want := range map[string]float64{
		"1": 1, "1.5e3": 1500, "-0": 0, "NaN": math.NaN(), "nan": math.NaN(), "-nan": math.NaN(), "+NaN": math.NaN(),
		"+Inf": math.Inf(1), "-inf": math.Inf(-1), "Infinity": math.Inf(1), "40.000000": 40,
	} {
		got, ok := parseValue([]byte(tok))
		if !ok || !sameValue(got, want) {
			t.Errorf("%q: %v %v, want %v", tok, got, ok, want)
		}
	}
	for _, tok := range []string{"", "-", "nan1", "--nan", "1e", "0x10", "1_0", "abc"} {
		if v, ok := parseValue([]byte(tok)); ok {
			t.Errorf("%q parsed as %v", tok, v)
		}
	}
}

// A line with very many labels stays linear, and duplicates are still found.
func TestParseManyLabels(t *testing.T) {
	var b strings.Builder
	b.WriteString("x{")
	for i := 0; i < 200000; i++ {
		fmt.Fprintf(&b, "l%d=\"v\",", i)
	}
	line := b.String()
	start := time.Now()
	samples, bad := ourSamples([]byte(line + "} 1"))
	if bad != 0 || len(samples) != 1 {
		t.Fatalf("bad %d samples %d", bad, len(samples))
	}
	if _, bad := ourSamples([]byte(line + `l77="again"} 1`)); bad != 1 {
		t.Fatalf("duplicate among many labels not found")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
}
