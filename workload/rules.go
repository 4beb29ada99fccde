package workload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/inferensys/aiwatt/attribution"
)

// Default pod label and annotation keys of the workload labels.
const (
	DefaultProjectKey      = "aiwatt.io/project"
	DefaultModelIDKey      = "aiwatt.io/model-id"
	DefaultWorkloadTypeKey = "aiwatt.io/workload-type"
)

// Rules configure how workloads are named: from pod labels and annotations
// in Kubernetes, and by rules outside it. It is meant to be embedded in the
// agent's strict YAML configuration; the zero value is valid and uses the
// defaults.
//
//	pod_labels:
//	  project: [aiwatt.io/project, app.kubernetes.io/part-of]
//	rules:
//	  - name: vllm
//	    match:
//	      cmdline: 'vllm\.entrypoints\.openai\.api_server.* --model (\S+)'
//	    labels:
//	      project: search
//	      model_id: $1
//	      workload_type: inference
//	  - name: slurm
//	    match: {slurm_job: "*"}
//	    labels: {project: hpc, workload_type: training, model_id: "job-{{slurm_job}}"}
type Rules struct {
	// PodLabels says which pod labels and annotations give project,
	// model_id and workload_type.
	PodLabels LabelMapping `yaml:"pod_labels"`
	// Rules name processes that are in no known pod; the first rule that
	// matches wins.
	Rules []Rule `yaml:"rules"`
}

// LabelMapping lists, for each workload label, the pod label or annotation
// keys to read it from, in order: the first key with a non-empty value
// wins, and for one key an annotation wins over a label (annotations can be
// set on a running pod; labels often come from a template the team does not
// own). A non-empty list replaces the default key, so list the default too
// to keep it: [aiwatt.io/project, app.kubernetes.io/part-of].
type LabelMapping struct {
	// Project defaults to [aiwatt.io/project].
	Project []string `yaml:"project"`
	// ModelID defaults to [aiwatt.io/model-id].
	ModelID []string `yaml:"model_id"`
	// WorkloadType defaults to [aiwatt.io/workload-type].
	WorkloadType []string `yaml:"workload_type"`
}

// Rule names the processes it matches. Every condition that is set must
// hold; at least one must be set, and at least one label.
type Rule struct {
	// Name is optional and appears in errors.
	Name string `yaml:"name"`
	// Match holds the conditions.
	Match RuleMatch `yaml:"match"`
	// Labels are the workload labels of matched processes.
	Labels RuleLabels `yaml:"labels"`
}

// RuleMatch holds the conditions of a rule.
type RuleMatch struct {
	// Cmdline is a regular expression (RE2 syntax, unanchored: use ^ and $
	// to anchor) matched against the command line, its arguments joined by
	// single spaces. Its capture groups can be used in the labels.
	Cmdline string `yaml:"cmdline"`
	// Cgroup is a regular expression (RE2, unanchored) matched against the
	// process's cgroup path, e.g. "^/system.slice/vllm".
	Cgroup string `yaml:"cgroup"`
	// User is a user name, looked up in <root>/etc/passwd when the rules
	// are compiled, or a numeric UID; it matches the effective UID.
	User string `yaml:"user"`
	// SlurmJob is a Slurm job ID, or "*" for any Slurm job.
	SlurmJob string `yaml:"slurm_job"`
	// SystemdUnit is a systemd service name or a glob (path.Match syntax),
	// such as "vllm@*.service".
	SystemdUnit string `yaml:"systemd_unit"`
}

// RuleLabels are the workload labels a rule gives. A value is a template:
//
//   - $1, ${1}, ${name}: a capture group of match.cmdline (numbered or
//     named, RE2 (?P<name>…)); write ${1}x, not $1x, before a letter,
//     digit or underscore; $$ is a literal $;
//   - {{slurm_job}}, {{slurm_step}}, {{slurm_user}}, {{systemd_unit}},
//     {{comm}}, {{uid}}, {{container_id}}: what the process's cgroup, stat
//     and (for Slurm, when the cgroup names no job) environment say (empty
//     when unknown).
type RuleLabels struct {
	// Project is the project label.
	Project string `yaml:"project"`
	// ModelID is the model_id label.
	ModelID string `yaml:"model_id"`
	// WorkloadType is the workload_type label.
	WorkloadType string `yaml:"workload_type"`
}

// FieldError is a validation failure of one configuration key.
type FieldError struct {
	// Path is the key's YAML path, a sequence index as a decimal string:
	// ["rules", "2", "match", "cmdline"].
	Path []string
	// Msg says what is wrong.
	Msg string
	// Err is the underlying cause, if any (errors.Is sees through it).
	Err error
}

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

// Error formats the error as "rules[2].match.cmdline: msg".
func (e *FieldError) Error() string {
	var b strings.Builder
	for i, p := range e.Path {
		switch {
		case isDigits(p):
			b.WriteString("[" + p + "]")
		case i > 0:
			b.WriteString("." + p)
		default:
			b.WriteString(p)
		}
	}
	return b.String() + ": " + e.Msg
}

// placeholders are the {{name}} values a label template may use.
var placeholders = []string{"slurm_job", "slurm_step", "slurm_user", "systemd_unit", "comm", "uid", "container_id"}

// Validate checks the rules without touching the filesystem. Its error
// joins one *FieldError per problem (use errors.As or errors.Join's
// Unwrap() []error to walk them).
func (r *Rules) Validate() error {
	var errs []error
	add := func(msg string, p ...string) { errs = append(errs, &FieldError{Path: p, Msg: msg}) }
	for _, l := range []struct {
		label string
		keys  []string
	}{{"project", r.PodLabels.Project}, {"model_id", r.PodLabels.ModelID}, {"workload_type", r.PodLabels.WorkloadType}} {
		for i, k := range l.keys {
			if strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t\n") {
				add(fmt.Sprintf("bad label or annotation key %q", k), "pod_labels", l.label, strconv.Itoa(i))
			}
		}
	}
	for i := range r.Rules {
		errs = append(errs, r.Rules[i].validate(i)...)
	}
	return errors.Join(errs...)
}

func (rule *Rule) validate(i int) []error {
	var errs []error
	idx := strconv.Itoa(i)
	who := "rule " + idx
	if rule.Name != "" {
		who += " (" + rule.Name + ")"
	}
	add := func(msg string, p ...string) {
		errs = append(errs, &FieldError{Path: append([]string{"rules", idx}, p...), Msg: who + ": " + msg})
	}
	m := rule.Match
	if m == (RuleMatch{}) {
		add("no condition: set at least one of cmdline, cgroup, user, slurm_job, systemd_unit", "match")
	}
	var cmdRE *regexp.Regexp
	if m.Cmdline != "" {
		re, err := regexp.Compile(m.Cmdline)
		if err != nil {
			add(fmt.Sprintf("bad regular expression: %v", err), "match", "cmdline")
		}
		cmdRE = re
	}
	if m.Cgroup != "" {
		if _, err := regexp.Compile(m.Cgroup); err != nil {
			add(fmt.Sprintf("bad regular expression: %v", err), "match", "cgroup")
		}
	}
	if m.User != "" && strings.ContainsAny(m.User, ": \t\n") {
		add(fmt.Sprintf("bad user %q", m.User), "match", "user")
	}
	if m.SlurmJob != "" && m.SlurmJob != "*" && !isDigits(m.SlurmJob) {
		add(fmt.Sprintf("want a numeric job ID or \"*\", got %q", m.SlurmJob), "match", "slurm_job")
	}
	if m.SystemdUnit != "" {
		if _, err := path.Match(m.SystemdUnit, ""); err != nil {
			add(fmt.Sprintf("bad glob %q: %v", m.SystemdUnit, err), "match", "systemd_unit")
		}
	}
	if rule.Labels == (RuleLabels{}) {
		add("no label: set at least one of project, model_id, workload_type", "labels")
	}
	for _, l := range []struct{ key, tmpl string }{
		{"project", rule.Labels.Project}, {"model_id", rule.Labels.ModelID}, {"workload_type", rule.Labels.WorkloadType},
	} {
		if err := checkTemplate(l.tmpl, cmdRE, m.Cmdline != ""); err != nil {
			add(err.Error(), "labels", l.key)
		}
	}
	return errs
}

// checkTemplate checks the $ references and {{placeholders}} of a label
// template against the cmdline regular expression (nil when there is none).
func checkTemplate(t string, re *regexp.Regexp, haveCmdline bool) error {
	for rest := t; ; {
		i := strings.Index(rest, "{{")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return fmt.Errorf("unclosed {{ in %q", t)
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		known := false
		for _, p := range placeholders {
			known = known || p == name
		}
		if !known {
			return fmt.Errorf("unknown placeholder {{%s}} in %q; known: {{%s}}", name, t, strings.Join(placeholders, "}}, {{"))
		}
		rest = rest[i+j+2:]
	}
	for i := 0; i < len(t); i++ {
		if t[i] != '$' {
			continue
		}
		if i+1 < len(t) && t[i+1] == '$' {
			i++
			continue
		}
		name, n := refName(t[i+1:])
		if name == "" {
			return fmt.Errorf("bad $ reference in %q: write $$ for a literal $", t)
		}
		i += n
		if !haveCmdline {
			return fmt.Errorf("$%s in %q refers to a capture group, but match.cmdline is not set", name, t)
		}
		if re == nil {
			continue // the regular expression is already reported bad
		}
		if num, err := strconv.Atoi(name); err == nil {
			if num > re.NumSubexp() {
				return fmt.Errorf("$%s in %q: match.cmdline has %d capture groups", name, t, re.NumSubexp())
			}
			continue
		}
		if re.SubexpIndex(name) < 0 {
			return fmt.Errorf("${%s} in %q: match.cmdline has no group (?P<%s>…) (write ${1}x, not $1x, before a letter)", name, t, name)
		}
	}
	return nil
}

// refName returns the group name after a $ as regexp.Expand reads it, and
// how many bytes it takes.
func refName(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		j := strings.IndexByte(s, '}')
		if j < 2 {
			return "", 0
		}
		return s[1:j], j + 1
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= '0' && s[n] <= '9' || s[n] >= 'a' && s[n] <= 'z' || s[n] >= 'A' && s[n] <= 'Z') {
		n++
	}
	return s[:n], n
}

// CompileOptions are the environment of compiled rules.
type CompileOptions struct {
	// Root is the host's root filesystem (--path.rootfs) holding
	// etc/passwd for user names; empty means "/".
	Root string
}

// Matcher is a compiled Rules: it names workloads. It is immutable and
// safe for concurrent use.
type Matcher struct {
	mapping LabelMapping
	rules   []compiledRule
}

type compiledRule struct {
	name    string
	cmdline *regexp.Regexp
	cgroup  *regexp.Regexp
	uid     int // -1 any
	slurm   string
	unit    string
	labels  RuleLabels
}

// Compile validates the rules and resolves user names. Its error joins one
// *FieldError per problem.
func (r *Rules) Compile(opts CompileOptions) (*Matcher, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	m := &Matcher{mapping: r.PodLabels.withDefaults()}
	var users map[string]int
	var errs []error
	for i, rule := range r.Rules {
		c := compiledRule{name: rule.Name, uid: -1, slurm: rule.Match.SlurmJob, unit: rule.Match.SystemdUnit, labels: rule.Labels}
		if rule.Match.Cmdline != "" {
			c.cmdline = regexp.MustCompile(rule.Match.Cmdline) // validated
		}
		if rule.Match.Cgroup != "" {
			c.cgroup = regexp.MustCompile(rule.Match.Cgroup)
		}
		if u := rule.Match.User; u != "" {
			if n, err := strconv.Atoi(u); err == nil && n >= 0 {
				c.uid = n
			} else {
				if users == nil {
					var err error
					if users, err = readPasswd(opts.Root); err != nil {
						users = map[string]int{}
						errs = append(errs, &FieldError{Path: []string{"rules", strconv.Itoa(i), "match", "user"},
							Msg: fmt.Sprintf("rule %d: user %q: %v (use the numeric UID)", i, u, err), Err: err})
						continue
					}
				}
				uid, ok := users[u]
				if !ok {
					errs = append(errs, &FieldError{Path: []string{"rules", strconv.Itoa(i), "match", "user"},
						Msg: fmt.Sprintf("rule %d: user %q is not in %s (use the numeric UID)", i, u, passwdPath(opts.Root))})
					continue
				}
				c.uid = uid
			}
		}
		m.rules = append(m.rules, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

// HasRule reports whether a rule is called name (inference targets name
// the rule their server's processes match).
func (r *Rules) HasRule(name string) bool {
	for i := range r.Rules {
		if r.Rules[i].Name == name {
			return true
		}
	}
	return false
}

// DefaultMatcher is the matcher of the zero Rules: default pod label keys
// and no rules.
func DefaultMatcher() *Matcher { return &Matcher{mapping: LabelMapping{}.withDefaults()} }

// Match returns the labels of the first rule matching the process, and the
// rule's index; -1 when none matches.
func (m *Matcher) Match(info *ProcessInfo) (attribution.Key, int) {
	for i := range m.rules {
		r := &m.rules[i]
		var sub []int
		if r.cmdline != nil {
			if sub = r.cmdline.FindStringSubmatchIndex(info.Cmdline); sub == nil {
				continue
			}
		}
		if r.cgroup != nil && !r.cgroup.MatchString(info.Cgroup.Path) {
			continue
		}
		if r.uid >= 0 && info.UID != r.uid {
			continue
		}
		if r.slurm != "" && (info.Cgroup.SlurmJob == "" || (r.slurm != "*" && r.slurm != info.Cgroup.SlurmJob)) {
			continue
		}
		if r.unit != "" {
			if ok, _ := path.Match(r.unit, info.Cgroup.SystemdUnit); !ok || info.Cgroup.SystemdUnit == "" {
				continue
			}
		}
		return attribution.Key{
			Project:      r.expand(r.labels.Project, info, sub),
			ModelID:      r.expand(r.labels.ModelID, info, sub),
			WorkloadType: r.expand(r.labels.WorkloadType, info, sub),
		}, i
	}
	return attribution.Key{}, -1
}

var emptyRE = regexp.MustCompile("")

// expand fills a label template for info; sub is the cmdline match.
func (r *compiledRule) expand(t string, info *ProcessInfo, sub []int) string {
	if !strings.ContainsAny(t, "${") {
		return t
	}
	if strings.Contains(t, "{{") {
		uid := ""
		if info.UID >= 0 {
			uid = strconv.Itoa(info.UID)
		}
		esc := func(s string) string { return strings.ReplaceAll(s, "$", "$$") }
		t = strings.NewReplacer(
			"{{slurm_job}}", esc(info.Cgroup.SlurmJob),
			"{{slurm_step}}", esc(info.Cgroup.SlurmStep),
			"{{slurm_user}}", esc(info.SlurmUser),
			"{{systemd_unit}}", esc(info.Cgroup.SystemdUnit),
			"{{comm}}", esc(info.Comm),
			"{{uid}}", uid,
			"{{container_id}}", info.Cgroup.ContainerID,
		).Replace(t)
	}
	if !strings.Contains(t, "$") {
		return t
	}
	if r.cmdline == nil || sub == nil {
		return string(emptyRE.ExpandString(nil, t, "", []int{0, 0}))
	}
	return string(r.cmdline.ExpandString(nil, t, info.Cmdline, sub))
}

// passwdPath returns <root>/etc/passwd.
func passwdPath(root string) string {
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, "etc", "passwd")
}

// readPasswd maps user names to UIDs from <root>/etc/passwd.
func readPasswd(root string) (map[string]int, error) {
	p := passwdPath(root)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err // names the path already
	}
	users := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, ":", 4)
		if len(f) < 3 {
			continue
		}
		if uid, err := strconv.Atoi(f[2]); err == nil && uid >= 0 {
			if _, dup := users[f[0]]; !dup {
				users[f[0]] = uid
			}
		}
	}
	return users, nil
}

// withDefaults returns the mapping with each empty list set to its default key.
func (m LabelMapping) withDefaults() LabelMapping {
	if len(m.Project) == 0 {
		m.Project = []string{DefaultProjectKey}
	}
	if len(m.ModelID) == 0 {
		m.ModelID = []string{DefaultModelIDKey}
	}
	if len(m.WorkloadType) == 0 {
		m.WorkloadType = []string{DefaultWorkloadTypeKey}
	}
	return m
}

// PodKey returns the workload key of a container of a pod: its namespace,
// name and container name, and project, model_id and workload_type read
// from its annotations and labels by the matcher's mapping. container may
// be empty (the pod sandbox, or a container not yet in the pod's status).
func (m *Matcher) PodKey(pod *PodMeta, container string) attribution.Key {
	return attribution.Key{
		Namespace:    pod.Namespace,
		Pod:          pod.Name,
		Container:    container,
		Project:      lookup(pod, m.mapping.Project),
		ModelID:      lookup(pod, m.mapping.ModelID),
		WorkloadType: lookup(pod, m.mapping.WorkloadType),
	}
}

// lookup returns the value of the first key set on the pod, annotation
// before label.
func lookup(pod *PodMeta, keys []string) string {
	for _, k := range keys {
		if v := pod.Annotations[k]; v != "" {
			return v
		}
		if v := pod.Labels[k]; v != "" {
			return v
		}
	}
	return ""
}
