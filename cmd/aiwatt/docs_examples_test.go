package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/inferensys/aiwatt/agent"
	"github.com/inferensys/aiwatt/cloud"
	"github.com/inferensys/aiwatt/report"
)

// Documentation examples are tested, so that they cannot drift from the
// code. The convention (stated in docs/README.md for writers):
//
//   - Every fenced YAML block in README.md and docs/ names what it is after
//     the language: ```yaml aiwatt-agent (an agent configuration, loaded
//     with the agent's loader), ```yaml aiwatt-carbon (an `aiwatt carbon`
//     service file), ```yaml aiwatt-cloud (an aiwatt-cloud file), ```yaml
//     aiwatt-report (an `aiwatt report` file), ```yaml helm-values (values of
//     the Helm chart: the configurations under agent.config, carbon.config
//     and reports.config are loaded with their loaders), ```yaml fragment (a
//     few keys of one of those, not loadable alone) or ```yaml other (not
//     aiwatt's: Kubernetes objects, Prometheus configuration and rules). A
//     YAML block without one of these words fails the test.
//   - Every line of a fenced code block that starts with `aiwatt SUBCOMMAND`
//     (optionally after "$ " or "sudo "), continued by trailing
//     backslashes, is parsed by the real command-line parser. Synopsis lines
//     ("aiwatt run [flags] -- ...") and output lines ("aiwatt run: ...")
//     are not command lines.

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file string // path relative to the repository root
	line int    // line of the first content line
	info string // the info string after the opening fence
	text string // the content, indentation of the fence removed
}

// readBlocks returns the fenced code blocks of one Markdown document.
func readBlocks(name, doc string) ([]docBlock, error) {
	var blocks []docBlock
	var cur *docBlock
	var indent string
	var body strings.Builder
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if cur == nil {
			if strings.HasPrefix(trimmed, "```") {
				cur = &docBlock{file: name, line: n + 1, info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
				indent = line[:len(line)-len(trimmed)]
				body.Reset()
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") && strings.TrimSpace(trimmed) == "```" {
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		body.WriteString(strings.TrimPrefix(line, indent) + "\n")
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: code block never closed", name, cur.line-1)
	}
	return blocks, sc.Err()
}

// repoDocs returns the code blocks of README.md and every Markdown file
// under docs/.
func repoDocs(t *testing.T) []docBlock {
	t.Helper()
	root := filepath.Join("..", "..")
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var all []docBlock
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := readBlocks(f, string(b))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, blocks...)
	}
	return all
}

// yamlKinds are the words a YAML block names itself with.
var yamlKinds = map[string]bool{"aiwatt-agent": true, "aiwatt-carbon": true, "aiwatt-cloud": true, "aiwatt-report": true, "helm-values": true, "fragment": true, "other": true}

// checkConfigBlock loads one YAML block with the loader its kind names; the
// error names the document line. It returns the kind and how many
// configurations were loaded.
func checkConfigBlock(b docBlock) (string, int, error) {
	fields := strings.Fields(b.info)
	if len(fields) == 0 || (fields[0] != "yaml" && fields[0] != "yml") {
		return "", 0, nil
	}
	kind := ""
	if len(fields) > 1 {
		kind = fields[1]
	}
	if !yamlKinds[kind] {
		return "", 0, fmt.Errorf("%s:%d: a yaml block must say what it is (```yaml aiwatt-agent, aiwatt-carbon, aiwatt-cloud, aiwatt-report, helm-values, fragment or other), got %q", b.file, b.line-1, b.info)
	}
	// Errors read "BLOCK:LINE: ..."; BLOCK names the document and the
	// block's first line, so LINE is counted from there.
	name := fmt.Sprintf("%s (block at line %d)", b.file, b.line)
	switch kind {
	case "helm-values":
		n, err := checkHelmValues(name, []byte(b.text))
		return kind, n, err
	case "fragment", "other":
		return kind, 0, nil
	}
	return kind, 1, loadConfig(kind, name, []byte(b.text))
}

// loadConfig loads data with the loader of kind.
func loadConfig(kind, name string, data []byte) error {
	var err error
	switch kind {
	case "aiwatt-agent":
		_, err = agent.ParseConfig(name, data)
	case "aiwatt-carbon":
		_, err = parseCarbonFile(name, data)
	case "aiwatt-cloud":
		_, err = cloud.ParseConfig(name, data)
	case "aiwatt-report":
		path := filepath.Join(os.TempDir(), fmt.Sprintf("aiwatt-doc-report-%d.yml", os.Getpid()))
		if err = os.WriteFile(path, data, 0o600); err == nil {
			_, err = report.LoadConfig(path)
			_ = os.Remove(path)
		}
	}
	return err
}

// helmConfigs are the chart values that hold a configuration file, and the
// kind of each.
var helmConfigs = []struct{ component, kind string }{{"agent", "aiwatt-agent"}, {"carbon", "aiwatt-carbon"}, {"reports", "aiwatt-report"}}

// checkHelmValues loads the configurations a block of Helm values holds
// (COMPONENT.config) and returns how many; the error names the value.
func checkHelmValues(name string, data []byte) (int, error) {
	var values map[string]struct {
		Config yaml.Node `yaml:"config"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	loaded := 0
	var errs []error
	for _, h := range helmConfigs {
		v, ok := values[h.component]
		if !ok || v.Config.Kind == 0 {
			continue
		}
		loaded++
		cfg, err := yaml.Marshal(&v.Config)
		if err != nil {
			return loaded, fmt.Errorf("%s: %s.config: %w", name, h.component, err)
		}
		if err := loadConfig(h.kind, fmt.Sprintf("%s, value %s.config (from line %d)", name, h.component, v.Config.Line), cfg); err != nil {
			errs = append(errs, err)
		}
	}
	return loaded, errors.Join(errs...)
}

// TestDocumentedConfigurationsLoad loads every configuration example of
// README.md and docs/ with the real loader of its kind.
func TestDocumentedConfigurationsLoad(t *testing.T) {
	count := map[string]int{}
	helmLoaded := 0
	for _, b := range repoDocs(t) {
		kind, n, err := checkConfigBlock(b)
		if err != nil {
			t.Errorf("documented configuration refused:\n%v", err)
		}
		count[kind]++
		if kind == "helm-values" {
			helmLoaded += n
		}
	}
	// The test must have found the examples it is about.
	for kind, least := range map[string]int{"aiwatt-agent": 3, "aiwatt-carbon": 1, "aiwatt-cloud": 1, "helm-values": 3} {
		if count[kind] < least {
			t.Errorf("found %d %s examples, want at least %d", count[kind], kind, least)
		}
	}
	if helmLoaded < 3 {
		t.Errorf("loaded %d configurations from Helm values, want at least 3 (agent, carbon, reports)", helmLoaded)
	}
	t.Logf("configuration examples checked: %v; configurations in Helm values: %d", count, helmLoaded)
}

// commandLines returns the aiwatt command lines of a code block, split into
// words, with the line they start on.
func commandLines(b docBlock) ([][]string, []int, error) {
	if f := strings.Fields(b.info); len(f) > 0 && (f[0] == "yaml" || f[0] == "yml" || f[0] == "promql") {
		return nil, nil, nil
	}
	var cmds [][]string
	var at []int
	lines := strings.Split(b.text, "\n")
	for i := 0; i < len(lines); i++ {
		start := i
		l := strings.TrimSpace(lines[i])
		l = strings.TrimPrefix(l, "$ ")
		l = strings.TrimPrefix(l, "sudo ")
		if !strings.HasPrefix(l, "aiwatt ") {
			continue
		}
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(lines[i])
		}
		words, err := shellWords(l)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", b.file, b.line+start, err)
		}
		if len(words) < 2 || !subcommands[words[1]] || strings.Contains(l, "[flags]") {
			continue // output ("aiwatt run: ...", a table row) or a synopsis
		}
		cmds = append(cmds, words)
		at = append(at, b.line+start)
	}
	return cmds, at, nil
}

// subcommands are aiwatt's subcommands: a code line "aiwatt WORD ..." is a
// command line only when WORD is one of them.
var subcommands = map[string]bool{"agent": true, "carbon": true, "gate": true, "report": true, "run": true, "version": true, "help": true}

// shellWords splits a command line as a POSIX shell would for plain words,
// single and double quotes and backslash escapes; it stops at a comment.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			i = len(s)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// parseCommandLine runs one documented command line through the real
// parser and checks that it selects the subcommand it names.
func parseCommandLine(words []string) error {
	a := newApp()
	a.app.Terminate(nil)
	a.app.UsageWriter(new(strings.Builder))
	a.app.ErrorWriter(new(strings.Builder))
	cmd, err := a.app.Parse(words[1:])
	if err != nil {
		return err
	}
	if cmd != words[1] {
		return fmt.Errorf("parsed as %q, not %q", cmd, words[1])
	}
	return nil
}

// TestDocumentedCommandLinesParse runs every documented `aiwatt …` command
// line through the real kingpin parser.
func TestDocumentedCommandLinesParse(t *testing.T) {
	n := 0
	seen := map[string]bool{}
	for _, b := range repoDocs(t) {
		cmds, at, err := commandLines(b)
		if err != nil {
			t.Error(err)
			continue
		}
		for i, words := range cmds {
			n++
			seen[words[1]] = true
			if err := parseCommandLine(words); err != nil {
				t.Errorf("%s:%d: documented command line %q does not parse: %v", b.file, at[i], strings.Join(words, " "), err)
			}
		}
	}
	for _, sub := range []string{"carbon", "gate", "report", "run"} {
		if !seen[sub] {
			t.Errorf("no documented command line of aiwatt %s found", sub)
		}
	}
	if n < 8 {
		t.Errorf("found %d documented command lines, want at least 8", n)
	}
	t.Logf("command lines checked: %d", n)
}

// TestDocCheckersRefuseBadExamples shows that the checks above can fail: a
// wrong configuration, an unlabelled YAML block and a wrong flag are caught.
func TestDocCheckersRefuseBadExamples(t *testing.T) {
	doc := "text\n\n```yaml aiwatt-agent\nworkloads:\n  rules:\n    - match: {slurm_job: '.+'}\n```\n\n```yaml\na: 1\n```\n\n" +
		"  ```sh\n  aiwatt gate --budget 1kWh \\\n    --no-such-flag\n  aiwatt run: output line\n  ```\n"
	blocks, err := readBlocks("bad.md", doc)
	if err != nil || len(blocks) != 3 {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	if _, _, err := checkConfigBlock(blocks[0]); err == nil || !strings.Contains(err.Error(), "bad.md (block at line 4):3: workloads.rules.0.match.slurm_job") {
		t.Errorf("bad agent example: %v", err)
	}
	if _, _, err := checkConfigBlock(blocks[1]); err == nil || !strings.Contains(err.Error(), "bad.md:9: a yaml block must say what it is") {
		t.Errorf("unlabelled block: %v", err)
	}
	cmds, at, err := commandLines(blocks[2])
	if err != nil || len(cmds) != 1 || at[0] != 14 {
		t.Fatalf("command lines %q at %v: %v", cmds, at, err)
	}
	if err := parseCommandLine(cmds[0]); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("bad flag parsed: %v", err)
	}
	helm := docBlock{file: "deploy.md", line: 2, info: "yaml helm-values",
		text: "agent:\n  config:\n    cpu_model: {cpus: 2.5}\nreports:\n  config:\n    pue: 0.5\ncarbon:\n  enabled: true\n"}
	if _, n, err := checkConfigBlock(helm); n != 2 || err == nil || !strings.Contains(err.Error(), "value agent.config") ||
		!strings.Contains(err.Error(), "a whole number is required") || !strings.Contains(err.Error(), "pue: must be at least 1") {
		t.Errorf("bad Helm values: %v", err)
	}
	if w, err := shellWords(`aiwatt gate --selector '{project="vision"}' --x "a \"b\"" c\ d # note`); err != nil ||
		strings.Join(w, "|") != `aiwatt|gate|--selector|{project="vision"}|--x|a "b"|c d` {
		t.Errorf("shellWords: %q %v", w, err)
	}
}
