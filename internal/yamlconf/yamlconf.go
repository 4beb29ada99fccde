// Package yamlconf decodes strict YAML configuration files: unknown keys are
// refused, only one document is allowed, .nan and .inf are refused, a
// fraction is never truncated into an integer, a file is at most
// MaxFileSize (1 MiB), and every error reads
// "FILE:LINE: reason" so that bad configuration is refused at start with
// file, line and reason. Values from the document are never echoed in
// errors, because a configuration file may hold a secret typed by mistake
// where only a reference ({file: PATH} or {env: NAME}) belongs.
//
// It owns no configuration of its own and must not import other aiwatt
// packages.
package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode decodes the single YAML document in data into out, refusing
// unknown keys. name (usually the file path) prefixes every error line:
// "name:LINE: reason". An empty document leaves out untouched and is not an
// error. Decode returns the document's node tree for Line; it is nil for an
// empty document.
func Decode(name string, data []byte, out any) (*yaml.Node, error) {
	if len(data) > MaxFileSize {
		return nil, tooLarge(name)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, rewrite(name, err)
	}
	// A second document in the same file is almost always a mistake.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: only one YAML document is allowed", name, extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, rewrite(name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, rewrite(name, err)
	}
	if err := checkScalars(name, &root, out); err != nil {
		return nil, err
	}
	return &root, nil
}

var (
	lineRE  = regexp.MustCompile(`^line (\d+): (.*)$`)
	valueRE = regexp.MustCompile("(cannot unmarshal !!\\w+) `[^`]*`")
)

// rewrite turns the YAML library's messages into "name:LINE: reason" lines
// and drops the document values it quotes.
func rewrite(name string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		m = valueRE.ReplaceAllString(m, "$1")
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s", name, sm[1], sm[2]))
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s", name, m))
	}
	return errors.New(strings.Join(out, "\n"))
}

// Line returns the line of the node at path in root: path is a dotted list
// of mapping keys, each optionally followed by sequence indexes, e.g.
// "zones[1].providers[0].token"; an index may also be a path segment of its
// own ("rules.2.match"). When part of the path is absent (a
// defaulted key), it returns the line of the deepest part found; 1 when
// nothing is found or root is nil.
func Line(root *yaml.Node, path string) int {
	if root == nil {
		return 1
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 1
	if path == "" {
		return max(n.Line, 1)
	}
	for _, part := range strings.Split(path, ".") {
		key, idx := splitIndexes(part)
		if s := resolve(n); key != "" && s.Kind == yaml.SequenceNode {
			// A sequence index written as a path segment ("rules.2.match"),
			// as validators that keep paths as []string write it.
			i, err := strconv.Atoi(key)
			if err != nil {
				return line
			}
			key, idx = "", append([]int{i}, idx...)
		}
		if key != "" {
			v, kline, ok := lookup(n, key)
			if !ok {
				return line
			}
			n, line = v, kline
		}
		for _, i := range idx {
			n = resolve(n)
			if n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}

// lookup finds key in the mapping n (following aliases and merge keys) and
// returns its value and the key's line.
func lookup(n *yaml.Node, key string) (*yaml.Node, int, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil, 0, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i].Line, true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "<<" {
			if v, line, ok := lookup(n.Content[i+1], key); ok {
				return v, line, true
			}
		}
	}
	return nil, 0, false
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// splitIndexes splits "providers[0][1]" into "providers" and [0 1].
// Malformed indexes become -1, which Line treats as absent.
func splitIndexes(part string) (string, []int) {
	key, rest, found := strings.Cut(part, "[")
	if !found {
		return part, nil
	}
	var idx []int
	for _, s := range strings.Split(strings.TrimSuffix(rest, "]"), "][") {
		i, err := strconv.Atoi(s)
		if err != nil {
			i = -1
		}
		idx = append(idx, i)
	}
	return key, idx
}
