package scrape

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// This file is a tolerant, allocation-light reader of the Prometheus text
// exposition format (0.0.4; OpenMetrics text is read line by line the same
// way). It exists because expfmt's TextParser is all-or-nothing: a single
// "-nan" (llama.cpp before PR 11915) or one malformed line discards the
// whole scrape. Here a malformed line is skipped and counted, and the other
// lines still count. The grammar of names, labels, quoting and escapes
// follows expfmt (prometheus/common v0.74.0, UTF-8 names allowed); tests
// check that every sample expfmt accepts is read identically.

// rawLabel is one label pair as it appears on a line. name and value are
// sub-slices of the line unless an escape or quote forced a copy.
type rawLabel struct {
	name  []byte
	value []byte
}

// rawSample is one parsed sample line. Slices point into the scraped body
// or into the parser's scratch buffers and are valid until the next line.
type rawSample struct {
	name   []byte
	labels []rawLabel
	value  []byte // the value token, unparsed
}

// lineParser holds scratch space reused across lines.
type lineParser struct {
	labels []rawLabel
	buf    []byte              // backing store for unescaped names and values
	seen   map[string]struct{} // label names of a line with many labels
}

// lineKind says what a line was.
type lineKind uint8

const (
	lineSkip   lineKind = iota // blank or comment
	lineSample                 // a well-formed sample
	lineBad                    // malformed: skipped and counted
)

// forEachLine calls fn for every line of body, without the line feed and
// without a trailing carriage return.
func forEachLine(body []byte, fn func(line []byte)) {
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		var line []byte
		if i < 0 {
			line, body = body, nil
		} else {
			line, body = body[:i], body[i+1:]
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		fn(line)
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func isLabelNameStart(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '"'
}

func isMetricNameStart(c byte) bool { return isLabelNameStart(c) || c == ':' }

// isNameContinuation mirrors expfmt: inside quotes any byte continues a name.
func isNameContinuation(c byte, quoted, metric bool) bool {
	if quoted {
		return true
	}
	return isLabelNameStart(c) || (c >= '0' && c <= '9') || (metric && c == ':')
}

// parse reads one line into s. It never panics on any input.
func (p *lineParser) parse(line []byte, s *rawSample) lineKind {
	p.labels = p.labels[:0]
	p.buf = p.buf[:0]
	if len(p.seen) > 0 {
		clear(p.seen)
	}
	*s = rawSample{}
	i := skipBlanks(line, 0)
	if i >= len(line) || line[i] == '#' {
		return lineSkip
	}
	braces := false
	if line[i] == '{' {
		braces = true
		i++
	} else {
		name, j, ok := p.readName(line, i, true)
		if !ok || len(name) == 0 {
			return lineBad
		}
		s.name = name
		i = skipBlanks(line, j)
		if i < len(line) && line[i] == '{' {
			braces = true
			i++
		}
	}
	if braces {
		var ok bool
		if i, ok = p.readLabels(line, i, s); !ok {
			return lineBad
		}
		if len(s.name) == 0 {
			return lineBad
		}
		i = skipBlanks(line, i)
	}
	start := i
	for i < len(line) && !isBlank(line[i]) {
		i++
	}
	if i == start {
		return lineBad
	}
	s.value = line[start:i]
	s.labels = p.labels
	// Anything after the value (a timestamp, an OpenMetrics exemplar) is ignored.
	return lineSample
}

func skipBlanks(line []byte, i int) int {
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	return i
}

// readName reads a metric (metric=true) or label name starting at i, with
// expfmt's quoting rules: a double quote toggles quoting, a closing quote
// ends the name, \\ \n \" are the escapes inside quotes. It returns the name,
// the index after it and false on malformed input. An empty name with ok is
// returned when line[i] cannot start a name.
func (p *lineParser) readName(line []byte, i int, metric bool) ([]byte, int, bool) {
	if i >= len(line) {
		return nil, i, true
	}
	c := line[i]
	if !(isLabelNameStart(c) || (metric && c == ':')) {
		return nil, i, true
	}
	start := i
	quoted, escaped, copied := false, false, false
	bufStart := len(p.buf)
	for {
		c = line[i]
		switch {
		case escaped:
			switch c {
			case '\\', '"':
				p.buf = append(p.buf, c)
			case 'n':
				p.buf = append(p.buf, '\n')
			default:
				return nil, i, false
			}
			escaped = false
		case c == '"':
			if !copied {
				p.buf = append(p.buf, line[start:i]...)
				copied = true
			}
			quoted = !quoted
			if !quoted {
				return p.buf[bufStart:], i + 1, true
			}
		case c == '\\':
			// Only reachable inside quotes: unquoted, '\\' ends the name.
			escaped = true
		default:
			if copied {
				p.buf = append(p.buf, c)
			}
		}
		i++
		if i >= len(line) {
			if quoted {
				return nil, i, false // unterminated quote
			}
			break
		}
		c = line[i]
		if !isNameContinuation(c, quoted, metric) || (!quoted && (c == ' ' || (!metric && c == '='))) {
			break
		}
	}
	if copied {
		return p.buf[bufStart:], i, true
	}
	return line[start:i], i, true
}

// readLabels reads label pairs after '{' up to and including '}'. Inside
// braces a name not followed by '=' is the metric name (UTF-8 syntax).
func (p *lineParser) readLabels(line []byte, i int, s *rawSample) (int, bool) {
	for {
		i = skipBlanks(line, i)
		if i >= len(line) {
			return i, false
		}
		if line[i] == '}' {
			return i + 1, true
		}
		name, j, ok := p.readName(line, i, false)
		if !ok || len(name) == 0 {
			return j, false
		}
		i = skipBlanks(line, j)
		if i >= len(line) {
			return i, false
		}
		if line[i] != '=' {
			// A bare (quoted) name inside braces is the metric name, once.
			if len(s.name) != 0 || (line[i] != ',' && line[i] != '}') {
				return i, false
			}
			s.name = name
			if line[i] == '}' {
				return i + 1, true
			}
			i++
			continue
		}
		if string(name) == "__name__" {
			return i, false
		}
		if p.duplicate(name) {
			return i, false
		}
		i = skipBlanks(line, i+1)
		if i >= len(line) || line[i] != '"' {
			return i, false
		}
		value, j, ok := p.readValue(line, i+1)
		if !ok {
			return j, false
		}
		p.labels = append(p.labels, rawLabel{name: name, value: value})
		i = skipBlanks(line, j)
		if i >= len(line) {
			return i, false
		}
		switch line[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// duplicate reports whether a label called name was already read on this
// line: a linear scan for the usual handful of labels, a set beyond that so
// that a hostile line of a million labels stays linear.
func (p *lineParser) duplicate(name []byte) bool {
	const linear = 16
	if len(p.labels) < linear {
		for _, l := range p.labels {
			if bytes.Equal(l.name, name) {
				return true
			}
		}
		return false
	}
	if p.seen == nil {
		p.seen = map[string]struct{}{}
	}
	if len(p.seen) == 0 {
		for _, l := range p.labels {
			p.seen[string(l.name)] = struct{}{}
		}
	}
	if _, dup := p.seen[string(name)]; dup {
		return true
	}
	p.seen[string(name)] = struct{}{}
	return false
}

// readValue reads a quoted label value starting after the opening quote and
// returns it unescaped and the index after the closing quote.
func (p *lineParser) readValue(line []byte, i int) ([]byte, int, bool) {
	start := i
	for j := i; j < len(line); j++ {
		switch line[j] {
		case '"':
			return line[start:j], j + 1, true
		case '\\':
			return p.readEscapedValue(line, start)
		}
	}
	return nil, len(line), false
}

func (p *lineParser) readEscapedValue(line []byte, start int) ([]byte, int, bool) {
	bufStart := len(p.buf)
	escaped := false
	for j := start; j < len(line); j++ {
		c := line[j]
		if escaped {
			switch c {
			case '\\', '"':
				p.buf = append(p.buf, c)
			case 'n':
				p.buf = append(p.buf, '\n')
			default:
				return nil, j, false
			}
			escaped = false
			continue
		}
		switch c {
		case '\\':
			escaped = true
		case '"':
			return p.buf[bufStart:], j + 1, true
		default:
			p.buf = append(p.buf, c)
		}
	}
	return nil, len(line), false
}

// parseValue parses a sample value. Besides what strconv accepts (including
// NaN and ±Inf in any case) it accepts "-nan" and "+nan" as printed by C's
// printf (llama.cpp). Like expfmt it refuses hex floats and underscores.
func parseValue(tok []byte) (float64, bool) {
	if bytes.ContainsAny(tok, "pP_") {
		return 0, false
	}
	if len(tok) == 4 && (tok[0] == '-' || tok[0] == '+') && strings.EqualFold(string(tok[1:]), "nan") {
		return math.NaN(), true
	}
	v, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return 0, false
	}
	return v, true
}
